"""The embedded default renderer (backend/default_models/deferred): it loads with the exact loader and no
base model, and is what animate uses when no renderer is given; on the demo head's
rig its frames follow the jaw (where the jaw moves, each frame matches its own Cycles render, not the other's)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from backend.cli import main
from backend.default_models import DEFAULT_RENDERER, DEFAULT_RENDERER_NOTICE
from backend.jobs.registry import JobContext, get_kind
from backend.model_cache import ModelCache
from backend.models.deferred.checkpoint import load_renderer
from backend.progress import SilentProgress
from blender_addon.formats.condition_bundle import read_bundle
from blender_addon.formats.notices import read_notices

SIZE = 64


@pytest.fixture(scope="module")
def jaw_animation(tmp_path_factory) -> Path:
    """The average demo head seen from the front at the renderer's size, the jaw closed at frame 1 and open at
    frame 2, with the head itself rendered as each frame's target (Cycles)."""
    import bpy

    from blender_addon.blender.condition_render import BundleRequest, render_bundle
    from blender_addon.blender.demo_head import add_demo_head
    from blender_addon.blender.rig import shape_key_owner
    from blender_addon.core.view_plan import OrbitSettings, plan_orbit_views

    folder = tmp_path_factory.mktemp("jaw")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    rig = add_demo_head(bpy.context)
    jaw = shape_key_owner(rig).data.shape_keys.key_blocks["jaw_open"]
    for frame, value in ((1, 0.0), (2, 1.0)):
        jaw.value = value
        jaw.keyframe_insert("value", frame=frame)
    views = plan_orbit_views(OrbitSettings(views=1, yaw_min=-4.0, yaw_max=4.0, pitch_min=0.0, pitch_max=0.0), SIZE, SIZE)
    for _ in render_bundle(BundleRequest(rig.name, folder, views, SIZE, SIZE, frames=[1, 2], target=rig.name), bpy.context.scene):
        pass
    return folder


def test_the_embedded_renderer_loads_strictly_without_a_base_model_and_has_its_card():
    assert (DEFAULT_RENDERER / "model.safetensors").stat().st_size < 8 * 1024 * 1024, "the embedded default must stay a few MB"
    renderer = load_renderer(DEFAULT_RENDERER, None)  # every tensor, every shape; no model store
    report = json.loads((DEFAULT_RENDERER / "training_report.json").read_text())
    card = (DEFAULT_RENDERER / "MODEL_CARD.md").read_text()
    assert renderer.config.prior == "none" and report["parameters"] == sum(p.numel() for p in renderer.parameters())
    assert f"{report['held_out']['renderer']['psnr_masked']:.2f} dB" in card
    assert report["held_out"]["renderer"]["psnr_masked"] > report["held_out"]["per_view_mean_image"]["psnr_masked"]


def unit_image(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(np.float64) / 255.0


def test_animate_without_a_renderer_uses_the_default_and_its_frames_follow_the_jaw(jaw_animation, tmp_path, capsys):
    out = tmp_path / "baked"
    assert main(["animate", "--conditions", str(jaw_animation), "--out", str(out), "--device", "cpu"]) == 0
    assert DEFAULT_RENDERER_NOTICE in capsys.readouterr().out and read_notices(out) == [DEFAULT_RENDERER_NOTICE]
    bundle = read_bundle(jaw_animation)
    renders = {render.frame: render for render in bundle.renders}
    targets = {frame: unit_image(jaw_animation / render.passes["target"]) for frame, render in renders.items()}
    frames = {frame: unit_image(out / "frames" / f"{render.view}_f{frame:05d}.png") for frame, render in renders.items()}
    jaw = np.abs(targets[1] - targets[2]).max(-1) > 0.1  # where Cycles shows the jaw move: the chin and lower face
    assert jaw.sum() > 20
    error = lambda frame, target: float(((frames[frame] - targets[target]) ** 2)[jaw].mean())  # noqa: E731
    assert error(1, 1) < 0.5 * error(1, 2) and error(2, 2) < 0.5 * error(2, 1), "each frame's jaw is its own expression's"
    head = unit_image(jaw_animation / renders[2].passes["mask"])[..., 0] > 0.5
    for frame in (1, 2):
        mse = float(((frames[frame] - targets[frame]) ** 2)[head].mean())
        assert 10 * np.log10(1 / mse) > 20.0, f"frame {frame} looks like the demo head (masked PSNR above 20 dB)"


def test_the_animate_job_without_a_checkpoint_uses_the_default(jaw_animation, tmp_path):
    def refuse(reference: str) -> Path:
        raise AssertionError(f"nothing should be resolved, got {reference!r}")

    kind = get_kind("animate")
    context = JobContext("job", tmp_path, jaw_animation, SilentProgress(), ModelCache(), refuse, torch.device("cpu"))
    kind.run(kind.params(), context)
    assert read_notices(tmp_path) == [DEFAULT_RENDERER_NOTICE]
    assert len(json.loads((tmp_path / "frames.json").read_text())["frames"]) == 2
