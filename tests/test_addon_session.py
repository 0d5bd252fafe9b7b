"""The add-on's session in real headless Blender (issue 17): buttons that talk to the backend never
wait for it on Blender's main thread, Check resumes following and clears the error box, a
submission to a backend that is down is shown as a failure, an unsaved file's results never land
in Blender's working directory, imported sequences resolve after saving (and show in the 5.x
Sequencer), and avatars are placed beside the head they were made from."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from blender_addon.core.job_watch import NOT_SUBMITTED, JobEvent
from blender_addon.formats.protocol import PROTOCOL_VERSION
from tests.fixtures.coloured_sphere import sphere_glb_from_backend
from tests.fixtures.hostile_server import HostileServer
from tests.fixtures.recording_layout import RecordingLayout, shown
from tests.fixtures.server import write_condition_bundle

bpy = pytest.importorskip("bpy")
addon_utils = pytest.importorskip("addon_utils")
from mathutils import Vector  # noqa: E402

from blender_addon.blender.blender_versions import sequencer_strips  # noqa: E402

pytestmark = pytest.mark.blender

HEALTH = {"status": "ok", "protocol_version": PROTOCOL_VERSION, "version": "0.1.0", "device": "cpu", "device_name": "CPU"}
SAFETY_SECONDS = 60.0
"""A held answer is released after this long anyway, so that a blocking button fails the test instead of hanging it."""


@pytest.fixture
def addon(tmp_path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable("blender_addon", default_set=True, handle_error=lambda error: (_ for _ in ()).throw(error))
    prefs = bpy.context.preferences.addons["blender_addon"].preferences
    prefs.data_dir, prefs.token = str(tmp_path / "data"), "token"
    from blender_addon.blender import panels, session

    try:
        yield SimpleNamespace(panels=panels, module=session, session=session.session(), prefs=prefs)
    finally:
        addon_utils.disable("blender_addon", default_set=True)


@pytest.fixture
def server():
    with HostileServer() as running:
        running.answer("/v1/health", HEALTH)
        running.answer("/v1/models", {"models": [{"name": "sd15", "role": "base"}]})
        yield running


def _panel_text(panel) -> str:
    layout = RecordingLayout()
    panel.draw(SimpleNamespace(layout=layout), bpy.context)
    return " ".join(shown(item) for item in layout.items())


def _drain_until(addon, done) -> None:
    deadline = time.monotonic() + SAFETY_SECONDS
    while not done():
        assert time.monotonic() < deadline, f"board: {addon.session.board.jobs}, error: {addon.session.board.last_error!r}"
        addon.module.drain_now()
        time.sleep(0.02)


def _press(operator) -> set:
    """What a click on the button runs: the operator's ``invoke`` (background Blender has no events,
    so ``bpy.ops`` there always runs ``execute``, the scripts' path)."""
    assert operator.poll(bpy.context)
    return operator.invoke(SimpleNamespace(), bpy.context, None)


def _held(server: HostileServer, path: str, body) -> threading.Event:
    release = threading.Event()
    threading.Timer(SAFETY_SECONDS, release.set).start()
    server.answer(path, body, hold=release)
    return release


def test_register_models_folder_returns_at_once_and_shows_what_it_skipped(addon, server, tmp_path):
    """The button returns while the backend is still scanning (it froze Blender for 6 s), is greyed
    until the answer comes, and the skipped files and their reasons appear in the panel."""
    addon.prefs.backend_url, addon.prefs.models_dir = server.url, str(tmp_path / "models")
    addon.session.health = HEALTH
    report = {"added": ["sd15"], "skipped": [{"path": "/models/sd_xl_base_1.0.safetensors",
                                              "reason": "an SDXL model: Avatar Foundry runs SD 1.x and 2.x models"}]}
    release = _held(server, "/v1/models/scan", report)
    from blender_addon.blender.operators import AVATAR_OT_register_models

    assert _press(AVATAR_OT_register_models) == {"FINISHED"}
    assert not release.is_set(), "the button waited for the backend"
    assert not bpy.ops.avatar_foundry.register_models.poll()
    assert "Registering the folder..." in _panel_text(addon.panels.AVATAR_PT_backend_models)
    release.set()
    _drain_until(addon, lambda: addon.session.models_report is not None)
    models = _panel_text(addon.panels.AVATAR_PT_backend_models)
    assert "skipped sd_xl_base_1.0.safetensors: an SDXL model: Avatar Foundry runs SD 1.x and 2.x models" in models
    assert "1 registered: sd15" in models
    assert "1 model file(s) skipped: see Models" in _panel_text(addon.panels.AVATAR_PT_backend)


def test_check_returns_at_once_clears_the_error_box_and_resumes_following(addon, server, tmp_path):
    """Check answers in the background; when the backend answers, the stale error box empties and a
    job whose follower had ended is followed again to its real end."""
    addon.prefs.backend_url = server.url
    board = addon.session.board
    board.apply(JobEvent("update", {"id": "j1", "kind": "multiview", "state": "running", "stage": "starting", "created_at": "x"}))
    board.apply(JobEvent("unreachable", message="cannot reach the backend", job_id="j1", unreachable=True))
    assert "backend not answering" in _panel_text(addon.panels.AVATAR_PT_backend)
    server.answer("/v1/jobs/j1", {"id": "j1", "kind": "multiview", "state": "cancelled", "stage": "cancelled", "created_at": "x"})
    release = _held(server, "/v1/health", HEALTH)
    from blender_addon.blender.operators import AVATAR_OT_backend_check

    assert _press(AVATAR_OT_backend_check) == {"FINISHED"}
    assert not release.is_set(), "the button waited for the backend"
    assert "Checking..." in _panel_text(addon.panels.AVATAR_PT_backend)
    release.set()
    _drain_until(addon, lambda: board.jobs["j1"]["state"] == "cancelled")
    backend = _panel_text(addon.panels.AVATAR_PT_backend)
    assert "Connected: CPU" in backend and "not answering" not in backend and board.last_error == ""


def test_a_job_sent_to_a_backend_that_is_down_is_reported_as_not_submitted(addon, tmp_path):
    """The panel said 'Connected' from an old check; the backend is gone: the button does not claim the
    job was submitted, the Jobs panel shows it as not submitted with the reason, and the status flips."""
    addon.prefs.backend_url = "http://127.0.0.1:9"
    addon.session.health = HEALTH
    bpy.context.scene.avatar_foundry.conditions.last_bundle = str(write_condition_bundle(tmp_path / "bundle"))
    assert bpy.ops.avatar_foundry.generate_multiview() == {"FINISHED"}
    _drain_until(addon, lambda: any(job["state"] == NOT_SUBMITTED for job in addon.session.board.jobs.values()))
    jobs = _panel_text(addon.panels.AVATAR_PT_jobs)
    assert "multiview not submitted multiview was not submitted: cannot reach the backend" in jobs
    assert "Not connected" in _panel_text(addon.panels.AVATAR_PT_backend)


def test_an_unsaved_files_results_go_to_the_backend_data_folder_not_the_working_directory(addon, tmp_path, monkeypatch):
    """'//' folders of a never-saved file resolve under <backend data folder>/results; once saved, beside the file."""
    from blender_addon.blender.output_folders import resolve_folder, results_folder

    monkeypatch.chdir(tmp_path)
    data_results = (tmp_path / "data" / "results").resolve()
    assert results_folder() == data_results / "avatar_foundry"
    assert resolve_folder(bpy.context.scene.avatar_foundry.conditions.output_dir) == data_results / "avatar_foundry" / "conditions"
    (tmp_path / "project").mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "project" / "scene.blend"))
    assert results_folder() == (tmp_path / "project" / "avatar_foundry").resolve()


def _write_animation(folder: Path, frames: int = 3) -> None:
    from blender_addon.core.png import encode_png
    from blender_addon.formats.animation import Animation, AnimationFrame, frame_file, write_animation_manifest

    entries = [AnimationFrame(frame, "Front", frame_file("Front", frame)) for frame in range(1, frames + 1)]
    for entry in entries:
        (folder / entry.file).parent.mkdir(parents=True, exist_ok=True)
        (folder / entry.file).write_bytes(encode_png(np.full((4, 4), 40 * entry.frame, np.uint8)))
    write_animation_manifest(folder, Animation(24.0, 4, 4, entries))


def test_an_imported_sequence_resolves_after_saving_and_shows_in_the_sequencer(addon, tmp_path, monkeypatch):
    """Results downloaded by an unsaved file (a path relative to where Blender started) load with paths
    that still resolve once the file is saved and opened from elsewhere; the strip's scene is the one
    the 5.x Sequencer shows."""
    from blender_addon.blender.importers import import_result

    started_in = tmp_path / "started_here"
    _write_animation(started_in / "avatar_foundry" / "job1")
    monkeypatch.chdir(started_in)
    scene = bpy.context.scene
    import_result(Path("avatar_foundry/job1"), {"id": "job1", "kind": "animate"}, scene)
    if hasattr(bpy.types.WorkSpace, "sequencer_scene"):
        assert all(workspace.sequencer_scene == scene for workspace in bpy.data.workspaces)
    (tmp_path / "saved").mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "saved" / "shot.blend"))
    monkeypatch.chdir(tmp_path / "saved")
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "saved" / "shot.blend"))
    image = next(image for image in bpy.data.images if image.get("avatar_foundry_job_id") == "job1")
    assert Path(bpy.path.abspath(image.filepath)).is_file(), image.filepath
    strip = next(iter(sequencer_strips(bpy.context.scene.sequence_editor)))
    assert Path(bpy.path.abspath(strip.directory), strip.elements[2].filename).is_file(), strip.directory


def _write_avatar(folder: Path, seed: int) -> None:
    """An avatar result as the backend writes one (its mesh export, run by the backend's Python)."""
    folder.mkdir(parents=True, exist_ok=True)
    sphere_glb_from_backend(folder / "avatar.glb")
    (folder / "avatar.json").write_text(json.dumps({"seed": seed}))


def _world_box(objects) -> tuple[Vector, Vector]:
    corners = [obj.matrix_world @ Vector(corner) for obj in objects for corner in obj.bound_box]
    return (Vector([min(c[i] for c in corners) for i in range(3)]), Vector([max(c[i] for c in corners) for i in range(3)]))


def _overlap(a: tuple[Vector, Vector], b: tuple[Vector, Vector]) -> bool:
    return all(a[0][i] < b[1][i] and b[0][i] < a[1][i] for i in range(3))


def test_avatars_are_placed_beside_the_head_along_the_rigs_side_axis(addon, tmp_path):
    """An imported avatar stands next to the head it was made from (it sat inside it), at the head's
    scale; a second one goes one place further; a turned rig turns the row with it."""
    from blender_addon.blender.demo_head import add_demo_head
    from blender_addon.blender.importers import import_result
    from blender_addon.blender.rig import head_frame, rig_meshes

    rig = add_demo_head(bpy.context)
    frame = head_frame(rig)
    head_box = _world_box(rig_meshes(rig))
    placed = []
    for index in range(2):
        _write_avatar(tmp_path / f"avatar{index}", seed=index)
        import_result(tmp_path / f"avatar{index}", {"id": f"job{index}", "kind": "generate-avatar", "params": {"seed": index}}, bpy.context.scene, rig)
        avatar = [obj for obj in bpy.data.objects if obj.get("avatar_foundry_job_id") == f"job{index}" and obj.type == "MESH"]
        bpy.context.view_layer.update()
        assert not _overlap(_world_box(avatar), head_box), "the avatar is inside the head"
        placed.append(_world_box(avatar))
    offsets = [(box[0] + box[1]) / 2 - Vector(frame.center) for box in placed]
    assert abs(offsets[0].x) > frame.size and abs(offsets[0].y) < 0.05 * frame.size and abs(offsets[0].z) < 0.05 * frame.size
    assert offsets[1].x == pytest.approx(2 * offsets[0].x, rel=0.05) and not _overlap(placed[0], placed[1])
    rig.rotation_euler.z = np.pi / 2
    bpy.context.view_layer.update()
    _write_avatar(tmp_path / "turned", seed=9)
    import_result(tmp_path / "turned", {"id": "turned", "kind": "generate-avatar"}, bpy.context.scene, rig)
    turned = [obj for obj in bpy.data.objects if obj.get("avatar_foundry_job_id") == "turned" and obj.type == "MESH"]
    bpy.context.view_layer.update()
    centre = head_frame(rig).center
    offset = (sum(_world_box(turned), Vector()) / 2) - Vector(centre)
    assert abs(offset.y) > frame.size and abs(offset.x) < 0.05 * frame.size, offset


def test_a_multiview_result_brings_its_images_to_the_gallery_and_its_cut_prompts_to_the_panel(addon, tmp_path):
    """When a multiview job's results arrive, the Generate panel says which prompts CLIP cut (only the
    backend log said so) and its Multi-view Images gallery opens on the new images."""
    from blender_addon.blender.gallery import AVATAR_PT_generate_gallery
    from blender_addon.core.png import encode_png
    from blender_addon.formats.notices import write_notices

    folder = tmp_path / "results" / "mv1"
    (folder / "images").mkdir(parents=True)
    items = []
    for index, view in enumerate(("front", "side")):
        (folder / "images" / f"{view}.png").write_bytes(encode_png(np.full((4, 4), 100 + index, np.uint8)))
        items.append({"file": f"images/{view}.png", "prompt": f"a head, {view} view", "seed": index, "view_class": view,
                      "yaw": 90.0 * index, "pitch": 0.0})
    (folder / "dataset.json").write_text(json.dumps({"items": items}))
    notice = "1 of 2 prompts are longer than the text encoder reads (77 tokens): words from 'freckles' on were ignored."
    write_notices(folder, [notice])
    job = {"id": "mv1", "kind": "multiview", "state": "succeeded", "created_at": "x"}
    addon.session.handle(JobEvent("downloaded", job, folder=folder), bpy.context.scene)
    assert " ".join(notice.split()) in _panel_text(addon.panels.AVATAR_PT_generate)
    assert " ".join(notice.split()) in _panel_text(addon.panels.AVATAR_PT_jobs)
    assert AVATAR_PT_generate_gallery.poll(bpy.context)
    assert " ".join(_panel_text(AVATAR_PT_generate_gallery).split()) == "Open 1 of 2: front, yaw 0°, pitch 0° seed 0 a head, front view"
