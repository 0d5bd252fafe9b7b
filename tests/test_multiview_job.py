"""The ``multiview`` job kind through the real backend: models from the server's store, the bundle
uploaded as a zip, the dataset listed and downloadable as artifacts; bad model names fail clearly."""

from __future__ import annotations

import json

import pytest

from backend.models.store import ModelStore
from backend.models.tiny import register_tiny_models
from tests.fixtures.server import start_backend, submit_bundle_job, wait_for_job, zip_folder
from tests.test_multiview_generation import write_bundle


@pytest.fixture(scope="module")
def backend_with_models(tiny_models, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("multiview-backend")
    register_tiny_models(ModelStore(data_dir / "models"), tiny_models.paths)
    backend = start_backend(data_dir)
    yield backend
    backend.stop()


def test_multiview_job_paints_the_dataset_as_artifacts(backend_with_models, tiny_models, tmp_path):
    client = backend_with_models.client()
    models = {entry["name"]: entry["role"] for entry in client.get("/v1/models").json()["models"]}
    assert models["tiny-sd"] == "base" and models["tiny-controlnet-pose"] == "controlnet-pose"
    params = {"style": "a cartoon head", "base": "tiny-sd", "steps": 1,
              "controlnets": {"pose": "tiny-controlnet-pose", "depth": "tiny-controlnet-depth"}}
    response = submit_bundle_job(client, zip_folder(write_bundle(tmp_path / "bundle")), params, kind="multiview")
    assert response.status_code == 201, response.text
    job = wait_for_job(client, response.json()["id"], timeout=300)
    assert job["state"] == "succeeded", job["error"]
    names = {artifact["name"] for artifact in client.get(f"/v1/jobs/{job['id']}/artifacts").json()["artifacts"]}
    assert "dataset.json" in names and sum(name.startswith("images/") for name in names) == 3
    dataset = json.loads(client.get(f"/v1/jobs/{job['id']}/artifacts/dataset.json").content)
    image = client.get(f"/v1/jobs/{job['id']}/artifacts/{dataset['items'][0]['file']}")
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")


def test_multiview_job_with_an_unknown_base_model_fails_with_model_missing(backend_with_models, tmp_path):
    client = backend_with_models.client()
    params = {"style": "a cartoon head", "base": "not-registered", "controlnets": {"pose": "tiny-controlnet-pose"}}
    response = submit_bundle_job(client, zip_folder(write_bundle(tmp_path / "bundle", yaws=(0.0,))), params, kind="multiview")
    job = wait_for_job(client, response.json()["id"], timeout=120)
    assert job["state"] == "failed" and job["error"]["code"] == "MODEL_MISSING"
    assert "not-registered" in job["error"]["message"]
    assert client.get(f"/v1/jobs/{job['id']}/artifacts").json()["artifacts"] == []
