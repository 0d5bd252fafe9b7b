"""The neural-head proxy from the command line, end to end: a rig's heads train a tiny NPHM, its frames are
fitted with proxy meshes, those are rendered as the deferred dataset (with the rig's character as target) and
as an animation's conditions, the deferred renderer trains on the first with DiffusionAvatars' 73-channel
layout and bakes the second. Each step reads exactly what the previous one wrote."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from backend.cli import main
from backend.models.store import ModelStore
from backend.models.tiny import register_tiny_models
from blender_addon.formats.condition_bundle import read_bundle

pytest.importorskip("bpy")
pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _run(*argv: str) -> None:
    assert main(list(argv)) == 0, " ".join(argv)


def test_rig_to_nphm_fit_to_proxy_passes_to_a_73_channel_renderer_to_an_animation(tiny_models, tmp_path):
    heads, frames, fit, data = tmp_path / "heads", tmp_path / "rig_frames", tmp_path / "fit", tmp_path / "data"
    register_tiny_models(ModelStore(data / "models"), tiny_models.paths)
    _run("export-heads", "--demo-rig", "--random-expressions", "6", "--out", str(heads / "demo"))
    _run("train", "nphm", "--data", str(heads), "--out", str(tmp_path / "nphm"), "--config", "tiny", "--identity-steps", "60",
         "--expression-steps", "40", "--device", "cpu")
    _run("export-heads", "--demo-rig", "--frames", "1-2", "--out", str(frames))
    _run("fit", "nphm", "--model", str(tmp_path / "nphm"), "--targets", str(frames), "--out", str(fit), "--identity-steps", "60",
         "--frame-steps", "20", "--points-per-step", "256", "--proxy-resolution", "32", "--device", "cpu")
    fitted = json.loads((fit / "fit.json").read_text())

    _run("render-conditions", "--demo-rig", "--nphm-proxy", str(fit / "proxy"), "--target-object", "DemoHead_mesh", "--views", "2",
         "--res", "32", "--target-samples", "2", "--out", str(tmp_path / "deferred"))
    dataset = read_bundle(tmp_path / "deferred")
    assert [frame.index for frame in dataset.frames] == [1, 2] and len(dataset.renders) == 4
    for frame, fitted_frame in zip(dataset.frames, fitted["frames"]):
        assert frame.expression == pytest.approx(fitted_frame["expression"], abs=1e-6)
    assert dataset.expression_names == [f"nphm:{k}" for k in range(len(fitted["frames"][0]["expression"]))]
    for render in dataset.renders:
        inside = np.array(Image.open(tmp_path / "deferred" / render.passes["mask"])) > 0
        ambient = np.load(tmp_path / "deferred" / render.passes["ambient"])
        assert inside.mean() > 0.1 and np.abs(ambient[inside]).max() > 0 and not ambient[~inside].any()

    _run("train", "deferred", "--data", str(tmp_path / "deferred"), "--out", str(tmp_path / "renderer"), "--base", tiny_models.names["base"],
         "--steps", "1", "--batch-size", "2", "--resolution", "16", "--triplane-resolution", "16", "--steps-inference", "2",
         "--data-dir", str(data), "--device", "cpu")
    from backend.models.deferred.checkpoint import load_renderer

    renderer = load_renderer(tmp_path / "renderer", ModelStore(data / "models"))
    assert renderer.config.channels.count == 73 and renderer.config.channels.ambient_dims == 2

    _run("render-conditions", "--demo-rig", "--nphm-proxy", str(fit / "proxy"), "--views", "1", "--res", "32", "--out", str(tmp_path / "anim"))
    _run("animate", "--checkpoint", str(tmp_path / "renderer"), "--conditions", str(tmp_path / "anim"), "--out", str(tmp_path / "baked"),
         "--data-dir", str(data), "--device", "cpu")
    baked = sorted((tmp_path / "baked" / "frames").glob("*.png"))
    assert [path.name for path in baked] == ["view_000_f00001.png", "view_000_f00002.png"]
    assert Image.open(baked[0]).size == (32, 32)
