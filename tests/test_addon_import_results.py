"""A baked animation comes into every supported Blender the way the artist looks for it: an image
sequence, a strip of all its frames in the scene's sequencer, the camera's background; an import that
fails midway leaves nothing of it behind."""

from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core.png import encode_png
from blender_addon.formats.animation import Animation, AnimationFrame, frame_file, write_animation_manifest

bpy = pytest.importorskip("bpy")

from blender_addon.blender import importers  # noqa: E402
from blender_addon.blender.blender_versions import sequencer_strips, strip_start  # noqa: E402
from blender_addon.blender.session import Session  # noqa: E402
from blender_addon.core.job_watch import JobEvent  # noqa: E402

pytestmark = pytest.mark.blender

JOB = {"id": "job-anim", "kind": "animate", "state": "succeeded", "params": {"checkpoint": "job:renderer"}}
FRAMES = 4


def _baked_animation(folder):
    """An animate job's result folder: FRAMES grey levels of one view, then frames.json."""
    frames = [AnimationFrame(frame, "Front", frame_file("Front", frame)) for frame in range(1, FRAMES + 1)]
    for frame in frames:
        (folder / frame.file).parent.mkdir(parents=True, exist_ok=True)
        (folder / frame.file).write_bytes(encode_png(np.full((8, 8, 3), 40 * frame.frame, np.uint8)))
    write_animation_manifest(folder, Animation(24.0, 8, 8, frames))
    return folder


def _scene_with_camera() -> bpy.types.Object:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    camera = bpy.data.objects.new("Front", bpy.data.cameras.new("Front"))
    bpy.context.scene.collection.objects.link(camera)
    bpy.context.scene.frame_start = 10
    return camera


def test_an_animation_becomes_an_image_sequence_a_sequencer_strip_and_the_camera_background(tmp_path):
    """Every frame is in the strip, which starts at the scene's first frame; the camera shows the sequence."""
    camera = _scene_with_camera()
    summary = importers.import_result(_baked_animation(tmp_path), JOB, bpy.context.scene, camera=camera)
    assert "sequencer strip" in summary
    (image,) = [image for image in bpy.data.images if image.get("avatar_foundry_job_id") == JOB["id"]]
    assert image.source == "SEQUENCE" and image["avatar_foundry_frame_count"] == FRAMES
    (strip,) = sequencer_strips(bpy.context.scene.sequence_editor)
    assert len(strip.elements) == FRAMES and strip_start(strip) == 10 and strip["avatar_foundry_job_id"] == JOB["id"]
    assert camera.data.background_images[0].image == image


def test_an_import_that_fails_midway_leaves_no_image_behind(tmp_path, monkeypatch):
    """The failure is injected after the image sequence is loaded, while the strip is added: the
    panel shows the error and the file holds no half import."""
    _scene_with_camera()
    images_before = len(bpy.data.images)

    def broken_strip(*args, **kwargs):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(importers, "add_sequence_strip", broken_strip)
    session = Session()
    session.handle(JobEvent("downloaded", JOB, folder=_baked_animation(tmp_path)), bpy.context.scene)
    assert "import of job job-anim failed: injected failure" in session.board.last_error
    assert len(bpy.data.images) == images_before and not session.imported
