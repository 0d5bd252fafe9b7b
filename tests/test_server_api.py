"""The HTTP API against the real backend process: auth, origin checks, bad input, jobs and artifacts."""

from __future__ import annotations

import io
import json
import zipfile

import httpx
import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import save_file

from backend.models.store import ModelStore

from blender_addon.formats import protocol
from tests.fixtures.server import start_backend, submit_bundle_job, wait_for_job, write_condition_bundle, zip_folder

UPLOAD_CAP_MB = 1


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    """One backend for this module, with a 1 MiB upload cap so oversized uploads are cheap to make."""
    running = start_backend(tmp_path_factory.mktemp("api-data"), "--max-upload-mb", str(UPLOAD_CAP_MB), "--max-extracted-mb", "4")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(backend):
    with backend.client() as http:
        yield http


@pytest.fixture(scope="module")
def bundle_zip(tmp_path_factory) -> bytes:
    return zip_folder(write_condition_bundle(tmp_path_factory.mktemp("bundle"), views=2, size=32))


@pytest.fixture(scope="module")
def finished_job(client, bundle_zip) -> dict:
    response = submit_bundle_job(client, bundle_zip, {"thumbnail_size": 32})
    assert response.status_code == 201, response.text
    return wait_for_job(client, response.json()["id"])


def _error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"code", "message", "hint", "field"}
    assert "Traceback" not in error["message"]
    return error


def _stored_state(backend, client) -> tuple[list, list]:
    return client.get("/v1/jobs").json()["jobs"], sorted(p.name for p in (backend.data_dir / "jobs").iterdir())


def test_health_reports_versions_device_and_job_kinds(client, backend):
    health = client.get("/v1/health").json()
    assert health["status"] == "ok"
    assert protocol.major(health["protocol_version"]) == protocol.major(protocol.PROTOCOL_VERSION)
    assert health["device"] == "cpu" and health["torch"] and health["diffusers"]
    assert "echo-conditions" in health["job_kinds"]
    assert health["data_dir"] == str(backend.data_dir.resolve())


def test_requests_without_the_right_token_get_401(backend):
    assert httpx.get(f"{backend.url}/v1/health").status_code == 401
    wrong = httpx.get(f"{backend.url}/v1/jobs", headers={"Authorization": "Bearer not-the-token"})
    _error(wrong, 401, protocol.UNAUTHORIZED)
    assert httpx.get(f"{backend.url}/v1/health", headers=backend.headers).status_code == 200


def test_token_file_is_private_to_the_user(backend):
    assert (backend.data_dir / "token").stat().st_mode & 0o777 == 0o600


def test_browser_cross_origin_requests_are_refused_even_with_the_token(client):
    response = client.get("/v1/health", headers={"Origin": "http://evil.example"})
    _error(response, 403, protocol.FORBIDDEN_ORIGIN)
    assert client.get("/v1/health", headers={"Origin": "http://127.0.0.1:5173"}).status_code == 200


def test_requests_for_a_non_loopback_host_are_refused(client):
    """DNS rebinding: a hostile name resolving to 127.0.0.1 arrives with its own Host header."""
    _error(client.get("/v1/health", headers={"Host": "evil.example"}), 403, protocol.FORBIDDEN_ORIGIN)
    assert client.get("/v1/health", headers={"Host": "localhost:8765"}).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "no-such-kind", "params": {}}, "kind"),
        ({"params": {}}, "kind"),
        ({"kind": 5, "params": {}}, "kind"),
        ({"kind": "echo-conditions", "params": {}, "priority": 1}, "priority"),
        ({"kind": "echo-conditions", "params": {"thumbnail_size": "large"}}, "params.thumbnail_size"),
        ({"kind": "echo-conditions", "params": {"thumbnail_size": "128"}}, "params.thumbnail_size"),
        ({"kind": "echo-conditions", "params": {"thumbnail_size": 4}}, "params.thumbnail_size"),
        ({"kind": "echo-conditions", "params": {"colour": "red"}}, "params.colour"),
        ({"kind": "echo-conditions", "params": "thumbnail_size=64"}, "params"),
        ({"kind": "echo-conditions", "params": {}}, "bundle"),
    ],
)
def test_bad_job_requests_get_422_naming_the_field_and_store_nothing(backend, client, body, field):
    before = _stored_state(backend, client)
    error = _error(client.post("/v1/jobs", json=body), 422, protocol.INVALID_INPUT)
    assert error["field"] == field
    assert error["hint"]
    assert _stored_state(backend, client) == before


def test_unknown_multipart_fields_are_refused(client, bundle_zip):
    response = client.post("/v1/jobs", data={"request": json.dumps({"kind": "echo-conditions", "params": {}}), "priority": "high"},
                           files={"bundle": ("bundle.zip", bundle_zip, "application/zip")})
    assert _error(response, 422, protocol.INVALID_INPUT)["field"] == "priority"


def test_a_request_that_is_not_json_names_the_request(client):
    response = client.post("/v1/jobs", content=b"{kind: echo", headers={"Content-Type": "application/json"})
    assert _error(response, 422, protocol.INVALID_INPUT)["field"] == "request"


def test_an_upload_over_the_cap_is_refused_with_413(backend, client):
    before = _stored_state(backend, client)
    oversized = b"\0" * ((UPLOAD_CAP_MB << 20) + 1024)
    response = submit_bundle_job(client, oversized)
    assert _error(response, 413, protocol.PAYLOAD_TOO_LARGE)["field"] == "bundle"
    assert _stored_state(backend, client) == before


def test_an_upload_over_the_cap_without_content_length_is_refused_while_it_streams(backend, client):
    before = _stored_state(backend, client)
    chunks = (b"\0" * (256 << 10) for _ in range(4 * UPLOAD_CAP_MB + 1))
    response = client.post("/v1/jobs", content=chunks, headers={"Content-Type": "application/json"})
    assert _error(response, 413, protocol.PAYLOAD_TOO_LARGE)["field"] == "bundle"
    assert _stored_state(backend, client) == before


def test_a_corrupt_zip_is_refused(backend, client):
    before = _stored_state(backend, client)
    assert _error(submit_bundle_job(client, b"PK\x03\x04 this is not a zip"), 422, protocol.INVALID_INPUT)["field"] == "bundle"
    assert _stored_state(backend, client) == before


def test_a_zip_entry_escaping_the_bundle_is_refused_and_nothing_is_written(backend, client, tmp_path):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as writer:
        writer.writestr("conditions.json", "{}")
        writer.writestr("../../escaped.txt", "gotcha")
    before = _stored_state(backend, client)
    assert _error(submit_bundle_job(client, archive.getvalue()), 422, protocol.INVALID_INPUT)["field"] == "bundle"
    assert not list(backend.data_dir.rglob("escaped.txt"))
    assert _stored_state(backend, client) == before


def test_a_corrupt_image_in_the_bundle_is_refused_naming_the_pass(backend, client, tmp_path):
    root = write_condition_bundle(tmp_path / "bundle", views=2, size=32)
    (root / "renders/v01/f00000/mask.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    before = _stored_state(backend, client)
    error = _error(submit_bundle_job(client, zip_folder(root)), 422, protocol.INVALID_INPUT)
    assert error["field"] == "renders[1].passes.mask"
    assert _stored_state(backend, client) == before


def test_a_bundle_with_a_wrong_manifest_is_refused_naming_the_field(client, tmp_path):
    root = write_condition_bundle(tmp_path / "bundle", views=1, size=32)
    manifest = json.loads((root / "conditions.json").read_text())
    manifest["views"][0]["view_class"] = "diagonal"
    (root / "conditions.json").write_text(json.dumps(manifest))
    assert _error(submit_bundle_job(client, zip_folder(root)), 422, protocol.INVALID_INPUT)["field"] == "views[0].view_class"


def test_echo_job_runs_to_success_and_its_artifacts_download(client, finished_job):
    assert finished_job["state"] == "succeeded", finished_job
    assert finished_job["progress"] == 1.0 and finished_job["error"] is None
    assert finished_job["started_at"] and finished_job["finished_at"]
    assert finished_job["params"] == {"thumbnail_size": 32}
    names = {a["name"]: a["size"] for a in client.get(f"/v1/jobs/{finished_job['id']}/artifacts").json()["artifacts"]}
    assert {"contact_sheet.png", "summary.json", "rows/v00_f00000.png", "rows/v01_f00000.png"} <= set(names)
    sheet = client.get(f"/v1/jobs/{finished_job['id']}/artifacts/contact_sheet.png")
    assert sheet.status_code == 200 and len(sheet.content) == names["contact_sheet.png"]
    image = Image.open(io.BytesIO(sheet.content))
    assert image.height == 16 + 2 * 32  # a header line and one 32-pixel row per render
    summary = client.get(f"/v1/jobs/{finished_job['id']}/artifacts/summary.json").json()
    assert summary["renders"] == 2 and summary["passes"]["depth"] == 2
    assert 2.3 < summary["depth_range"][0] < summary["depth_range"][1] < 2.8


def test_a_zipped_top_folder_is_accepted_like_the_folder_itself(client, tmp_path):
    root = write_condition_bundle(tmp_path / "outer" / "my-bundle", views=1, size=16)
    response = submit_bundle_job(client, zip_folder(root.parent), {"thumbnail_size": 16})
    assert response.status_code == 201, response.text
    assert wait_for_job(client, response.json()["id"])["state"] == "succeeded"


def test_a_plain_upload_is_accepted_where_a_kind_takes_any_zip_and_bad_references_fail_the_job(client):
    """generate-avatar takes a zip with a reference image (no conditions.json); a 'job:<id>' that
    names no job fails the job with MODEL_MISSING instead of reading any path."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as writer:
        buffer = io.BytesIO()
        Image.new("RGB", (16, 16), (200, 120, 90)).save(buffer, format="PNG")
        writer.writestr("reference.png", buffer.getvalue())
    response = submit_bundle_job(client, archive.getvalue(), {"checkpoint": "job:no-such-job"}, kind="generate-avatar")
    assert response.status_code == 201, response.text
    job = wait_for_job(client, response.json()["id"])
    assert job["state"] == "failed" and job["error"]["code"] == protocol.MODEL_MISSING


@pytest.mark.parametrize("name", ["%2e%2e/%2e%2e/token", "..%2F..%2Ftoken", "%2Fetc%2Fpasswd", "rows%5C..%5C..%5Ctoken"])
def test_artifact_names_leaving_the_job_folder_are_refused(client, finished_job, name):
    response = client.get(f"/v1/jobs/{finished_job['id']}/artifacts/{name}")
    assert response.status_code in (404, 422)
    assert response.json()["error"]["field"] == "name"


def test_unknown_jobs_and_artifacts_are_404(client, finished_job):
    assert _error(client.get("/v1/jobs/doesnotexist"), 404, protocol.NOT_FOUND)["field"] == "id"
    assert _error(client.get(f"/v1/jobs/{finished_job['id']}/artifacts/nope.png"), 404, protocol.NOT_FOUND)["field"] == "name"
    _error(client.get("/v1/no-such-endpoint"), 404, protocol.NOT_FOUND)


def test_job_list_is_newest_first(client, bundle_zip):
    first = submit_bundle_job(client, bundle_zip, {"thumbnail_size": 16}).json()
    second = submit_bundle_job(client, bundle_zip, {"thumbnail_size": 16}).json()
    ids = [job["id"] for job in client.get("/v1/jobs").json()["jobs"]]
    assert ids.index(second["id"]) < ids.index(first["id"])
    wait_for_job(client, second["id"])


def test_cancelling_a_finished_job_leaves_it_as_it_was(client, finished_job):
    after = client.post(f"/v1/jobs/{finished_job['id']}/cancel").json()
    assert after["state"] == "succeeded" and after["finished_at"] == finished_job["finished_at"]


def test_unload_answers_with_the_number_of_models_freed(client):
    assert client.post("/v1/unload").json() == {"unloaded": 0}


def test_models_lists_what_the_model_store_holds(backend, client, tmp_path):
    assert client.get("/v1/models").json() == {"models": []}
    lora = tmp_path / "toon.safetensors"
    save_file({"lora_down.weight": np.zeros((2, 2), np.float32)}, str(lora))
    ModelStore(backend.data_dir / "models").add(lora, name="toon", role="lora")
    assert client.get("/v1/models").json() == {"models": [{"name": "toon", "role": "lora", "path": str(lora.resolve()), "format": "lora"}]}


def test_models_scan_registers_a_local_folder_and_a_bad_folder_is_named(backend, client, tmp_path):
    models = tmp_path / "downloads"
    models.mkdir()
    save_file({"unet.lora_A.weight": np.zeros((2, 2), np.float32)}, str(models / "toon-style.safetensors"))
    (models / "notes.txt").write_text("not a model")
    report = client.post("/v1/models/scan", json={"folder": str(models)}).json()
    assert [entry["name"] for entry in report["added"]] == ["toon-style"] and report["skipped"][0]["path"].endswith("notes.txt")
    assert {"name": "toon-style", "role": "lora"}.items() <= next(
        model for model in client.get("/v1/models").json()["models"] if model["name"] == "toon-style").items()
    refused = client.post("/v1/models/scan", json={"folder": str(tmp_path / "nowhere")})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "folder"
