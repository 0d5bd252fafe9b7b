"""The deferred renderer through the real backend: a train-deferred job, then an animate job naming it,
and the capture importer that turns captured frames into a deferred dataset."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from backend.models.store import ModelStore
from backend.progress import SilentProgress
from blender_addon.formats import protocol
from blender_addon.formats.cameras import orbit_label
from blender_addon.formats.condition_bundle import read_bundle
from tests.fixtures.deferred import EXPRESSION_NAMES, sphere_passes, write_sphere_dataset
from tests.fixtures.server import start_backend, submit_bundle_job, wait_for_job, zip_folder
from training.datasets.deferred_capture import import_capture

JOB_TIMEOUT_SECONDS = 600.0


def test_train_deferred_job_then_animate_job_returns_the_frame_sequence(tiny_models, deferred_dataset, tmp_path):
    data_dir = tmp_path / "data"
    ModelStore(data_dir / "models").add(tiny_models.paths.base, "tiny-sd", "base")
    backend = start_backend(data_dir)
    try:
        with backend.client() as client:
            response = submit_bundle_job(client, zip_folder(deferred_dataset), kind="train-deferred", params={
                "base": "tiny-sd", "steps": 1, "batch_size": 1, "resolution": 16, "triplane_resolution": 16,
                "triplane_channels": 2, "steps_inference": 2, "holdout_views": ["cam2"]})
            assert response.status_code == 201, response.text
            trained = wait_for_job(client, response.json()["id"], timeout=JOB_TIMEOUT_SECONDS)
            assert trained["state"] == "succeeded", trained["error"]
            names = {item["name"] for item in client.get(f"/v1/jobs/{trained['id']}/artifacts").json()["artifacts"]}
            assert {"config.json", "model.safetensors", "train_state.safetensors", "validation/step_000001.png"} <= names

            animation = write_sphere_dataset(tmp_path / "animation", size=16, yaws=(10.0,), jaw_values=(0.0, 0.5, 1.0), with_target=False)
            response = submit_bundle_job(client, zip_folder(animation), kind="animate", params={"checkpoint": f"job:{trained['id']}"})
            assert response.status_code == 201, response.text
            animated = wait_for_job(client, response.json()["id"], timeout=JOB_TIMEOUT_SECONDS)
            assert animated["state"] == "succeeded", animated["error"]
            manifest = client.get(f"/v1/jobs/{animated['id']}/artifacts/frames.json").json()
            assert [item["frame"] for item in manifest["frames"]] == [0, 1, 2]
            first = client.get(f"/v1/jobs/{animated['id']}/artifacts/{manifest['frames'][0]['file']}")
            assert first.status_code == 200 and first.content.startswith(b"\x89PNG")

            missing = submit_bundle_job(client, zip_folder(animation), kind="animate", params={"checkpoint": "no-such-run"})
            failed = wait_for_job(client, missing.json()["id"], timeout=JOB_TIMEOUT_SECONDS)
            assert failed["state"] == "failed" and failed["error"]["code"] == protocol.MODEL_MISSING
            assert "no-such-run" in failed["error"]["message"] and failed["error"]["hint"]
    finally:
        backend.stop()


def write_capture(root, size: int = 16) -> None:
    cameras = [{"id": "front", "label": orbit_label(0.0, 0.0)}, {"id": "left", "label": orbit_label(40.0, 5.0)}]
    frames = [{"index": 0, "expression": [0.0, 0.0, 0.0]}, {"index": 1, "expression": [0.8, 0.1, -0.2]}]
    (root).mkdir(parents=True)
    (root / "capture.json").write_text(json.dumps({"version": 1, "expression_names": EXPRESSION_NAMES, "fps": 25,
                                                   "cameras": cameras, "frames": frames}))
    for camera in cameras:
        for frame in frames:
            if camera["id"] == "left" and frame["index"] == 1:
                continue  # this camera missed a frame
            folder = root / camera["id"] / f"{frame['index']:05d}"
            folder.mkdir(parents=True)
            passes = sphere_passes(camera["label"], size, frame["expression"][0])
            photo = passes["target"].copy()
            photo[passes["mask"] == 0] = (0, 90, 0)  # a green screen behind the head
            Image.fromarray(photo).save(folder / "image.png")
            Image.fromarray(passes["mask"]).save(folder / "mask.png")
            for name in ("depth", "normal", "canonical"):
                np.save(folder / f"{name}.npy", passes[name])


def test_capture_import_writes_a_deferred_dataset_with_white_background_and_skips_missing_frames(tmp_path):
    write_capture(tmp_path / "capture")
    import_capture(tmp_path / "capture", tmp_path / "dataset", SilentProgress())
    bundle = read_bundle(tmp_path / "dataset")
    assert [(render.view, render.frame) for render in bundle.renders] == [("front", 0), ("front", 1), ("left", 0)]
    assert bundle.expression_names == EXPRESSION_NAMES and bundle.source["fps"] == 25.0
    assert bundle.view("left").view_class in ("front", "side") and abs(bundle.view("left").yaw - 40.0) < 1e-6
    render = bundle.renders[0]
    target = np.asarray(Image.open(tmp_path / "dataset" / render.passes["target"]))
    mask = np.asarray(Image.open(tmp_path / "dataset" / render.passes["mask"]))
    assert (target[mask == 0] == 255).all(), "the green screen became white"
    assert np.array_equal(np.load(tmp_path / "dataset" / render.passes["canonical"]),
                          np.load(tmp_path / "capture" / "front" / "00000" / "canonical.npy"))
