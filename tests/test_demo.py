"""The demo is the artist's whole path through the add-on and a real backend, on tiny models: every
job succeeds and its result lands in the saved .blend where an artist would look for it, in every
supported Blender (the demo itself runs in the backend's Python, the artist's session in this Blender)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.fixtures.blender_matrix import run_backend_python

JOBS = ("multiview", "train-eg3d", "generate-avatar", "train-style-prior", "generate-avatar-image-guided", "animate-default", "train-deferred",
        "animate",
        "train-nphm", "fit-nphm", "train-deferred-nphm", "animate-nphm")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    run_backend_python("-m", "backend.cli", "demo", "--out", str(out), "--timeout", "900", "--blender-python", sys.executable, "--no-open")
    return out, json.loads((out / "summary.json").read_text())


@pytest.mark.blender
@pytest.mark.slow
def test_every_step_of_the_demo_succeeds_and_leaves_its_results(demo):
    out, summary = demo
    assert {name: job["state"] for name, job in summary["jobs"].items()} == dict.fromkeys(JOBS, "succeeded")
    frames = summary["animation_frames"]
    assert len(frames) == 6 and all(Image.open(frame).size == (32, 32) for frame in frames)
    nphm_frames = summary["nphm_animation_frames"]  # the same animation through the neural head fitted to it
    assert len(nphm_frames) == 6 and all(Image.open(frame).size == (32, 32) for frame in nphm_frames)
    assert (out / "results" / summary["jobs"]["generate-avatar"]["id"] / "avatar.glb").is_file()
    assert not list((out / "results").rglob("*.safetensors"))  # weights stay on the backend
    with Image.open(summary["contact_sheet"]) as sheet:  # every stage's result in one picture
        low, high = sheet.convert("L").getextrema()
        assert sheet.height > 4 * 96 and high - low > 100


def centred_object(path) -> np.ndarray:
    """The mask of what differs from the corner colour of an image, checked to be one centred object."""
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(float)
    mask = np.abs(pixels - pixels[0, 0]).max(-1) > 20
    assert 0.1 < mask.mean() < 0.8, f"the object fills {mask.mean():.0%} of {path}"
    centre = np.argwhere(mask).mean(0) / mask.shape[0]
    assert np.all(np.abs(centre - 0.5) < 0.15), f"the object is off centre in {path}: {centre}"
    return mask


@pytest.mark.blender
@pytest.mark.slow
def test_the_demo_avatar_is_the_embedded_default_and_a_textured_head(demo):
    out, summary = demo
    avatar = out / "results" / summary["jobs"]["generate-avatar"]["id"]
    document = json.loads((avatar / "avatar.json").read_text())
    assert document["checkpoint"] == "embedded default generator" and document["mesh"]["watertight"]
    assert "embedded default generator" in json.loads((avatar / "notices.json").read_text())["notices"][0]
    pixels = np.asarray(Image.open(summary["avatar_mesh_render"]).convert("RGB")).astype(float)
    mask = centred_object(summary["avatar_mesh_render"])
    assert pixels[mask].std(0).max() > 10, "the mesh carries a texture, not one flat colour"
    centred_object(avatar / "previews" / "yaw_+000.png")  # the generator's own front view: a head on black


@pytest.mark.blender
@pytest.mark.slow
def test_the_demo_animates_the_rig_through_the_embedded_renderer_as_a_head_whose_mouth_moves(demo):
    """With no renderer trained, Animate bakes the rig's jaw animation through the embedded default renderer:
    each frame is a head in the middle of the frame, and opening the jaw changes the lower face, not the brow."""
    out, summary = demo
    paths = summary["default_renderer_frames"]
    job = out / "results" / summary["jobs"]["animate-default"]["id"]
    assert "embedded default renderer" in json.loads((job / "notices.json").read_text())["notices"][0]
    frames = [np.asarray(Image.open(path).convert("RGB")).astype(float) for path in paths]
    assert len(frames) == 6 and all(frame.shape == (64, 64, 3) for frame in frames)
    mask = centred_object(paths[0])
    rows = np.argwhere(mask)[:, 0]
    top, bottom = rows.min(), rows.max()
    middle = (top + bottom) // 2
    change = np.abs(frames[2] - frames[0]).mean(-1)  # the jaw closed (frame 1) and nearly fully open (frame 3)
    lower, upper = change[middle:bottom + 1][mask[middle:bottom + 1]].mean(), change[top:middle][mask[top:middle]].mean()
    assert lower > 3.0 and lower > 2 * upper, f"opening the jaw changed the lower face by {lower:.1f} and the upper by {upper:.1f} levels"


@pytest.mark.blender
@pytest.mark.slow
def test_the_demo_gan_learns_from_cycles_renders_of_varied_heads(demo):
    out, summary = demo
    dataset = json.loads((out / "rendered-heads" / "dataset" / "dataset.json").read_text())
    assert len(dataset["items"]) == 6 * 8 and dataset["background"] == "black"
    first, last = (np.asarray(Image.open(out / "rendered-heads" / "dataset" / dataset["items"][index]["file"])) for index in (0, -1))
    assert np.abs(first.astype(float) - last).mean() > 5, "different heads and views"
    assert json.loads((Path(summary["rendered_heads_gan"]) / "config.json").read_text())["extra"]["images_seen"] >= 1200


@pytest.mark.blender
@pytest.mark.slow
def test_the_saved_scene_holds_the_avatars_beside_the_head_the_gallery_and_the_baked_animation(demo):
    import bpy
    from mathutils import Vector

    from blender_addon.blender.blender_versions import sequencer_strips
    from blender_addon.blender.importers import AVATAR_SPACING
    from blender_addon.blender.rig import head_frame

    out, summary = demo
    bpy.ops.wm.open_mainfile(filepath=summary["blend"])
    avatars = {obj.name: obj for obj in bpy.data.objects if obj.get("avatar_foundry_kind") == "generate-avatar"}
    assert sorted(avatars) == sorted(summary["avatars"]) and "Avatar seed 3" in avatars
    guided = [obj for obj in avatars.values() if json.loads(obj["avatar_foundry_params"])["style_prior"]]
    assert len(guided) == 1 and guided[0]["avatar_foundry_job_id"] == summary["jobs"]["generate-avatar-image-guided"]["id"]
    rig = bpy.data.objects["DemoHead"]
    frame = head_frame(rig)
    side = rig.matrix_world.to_3x3().col[0].normalized()
    offsets = [obj.location - Vector(frame.center) for obj in avatars.values()]
    assert all((offset - offset.dot(side) * side).length < 1e-5 for offset in offsets), "beside the head, along the rig's side axis"
    assert sorted(offset.dot(side) for offset in offsets) == pytest.approx([AVATAR_SPACING * frame.size * place for place in (1, 2)])
    assert all(obj.scale[0] == pytest.approx(frame.size) for obj in avatars.values())
    gallery = [image for image in bpy.data.images if image.get("avatar_foundry_kind") == "multiview"]
    assert len(gallery) == 6 and all("view" in json.loads(image["avatar_foundry_metadata"])["prompt"] for image in gallery)
    sequences = {image["avatar_foundry_job_id"]: image for image in bpy.data.images if image.get("avatar_foundry_kind") == "animate"}
    default, rig, neural_head = (sequences[summary["jobs"][name]["id"]] for name in ("animate-default", "animate", "animate-nphm"))
    assert all(sequence.source == "SEQUENCE" and sequence["avatar_foundry_frame_count"] == 6 for sequence in (default, rig, neural_head))
    # one image strip of 6 frames per animation: the embedded renderer's, the trained one's, the neural head's
    assert [len(strip.elements) for strip in sequencer_strips(bpy.context.scene.sequence_editor)] == [6, 6, 6]
    assert bpy.data.objects["Front"].data.background_images[-1].image == neural_head
    proxy = [obj for obj in bpy.data.objects if obj.get("avatar_foundry_kind") == "fit-nphm"]
    assert len(proxy) == 6 and all("nphm_ambient" in obj.data.attributes for obj in proxy)  # the fitted neural head, a frame each


def test_the_demo_never_deletes_a_folder_it_did_not_make(tmp_path):
    from backend.demo.pipeline import prepare_folder
    from backend.errors import InvalidInput

    (tmp_path / "my-work.txt").write_text("precious")
    with pytest.raises(InvalidInput, match="not empty"):
        prepare_folder(tmp_path)
    assert (tmp_path / "my-work.txt").read_text() == "precious"
