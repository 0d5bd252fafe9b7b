"""The Avatar sidebar as an artist sees it at the default width (issue 17): every text readable, one
next step, advanced settings folded away, buttons greyed with a reason, '//' folders accepted, and
long messages wrapped to the panel. The panels' own draw code is run on a recording layout
(``tests/fixtures/recording_layout.py``) in real headless Blender with the add-on enabled."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from blender_addon.core.job_watch import NOT_SUBMITTED, JobEvent
from blender_addon.core.sidebar_text import PANEL_WIDTH
from tests.fixtures.blender_matrix import needs_blender
from tests.fixtures.recording_layout import RecordingLayout, overflow, shown

bpy = pytest.importorskip("bpy")
addon_utils = pytest.importorskip("addon_utils")
from mathutils import Vector  # noqa: E402

pytestmark = pytest.mark.blender

LONG_ERROR = ("train-eg3d failed: the preset 'full' needs about 31.5 GB of memory and this machine has 24.0 GB free "
              "(use the preset 'small', which needs about 6.2 GB)")
CUT_PROMPTS = ("12 of 24 prompts are longer than the text encoder reads (77 tokens): words from 'freckles, front view' "
               "on were ignored. Shorten the style or use fewer attributes per image.")


@pytest.fixture
def addon(tmp_path):
    """The add-on enabled in a fresh Blender (its preferences exist), its data folder in tmp_path."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable("blender_addon", default_set=True, handle_error=lambda error: (_ for _ in ()).throw(error))
    prefs = bpy.context.preferences.addons["blender_addon"].preferences
    prefs.data_dir = str(tmp_path / "data")
    from blender_addon.blender import panels, session

    try:
        yield SimpleNamespace(panels=panels, session=session.session(), prefs=prefs)
    finally:
        addon_utils.disable("blender_addon", default_set=True)


def _draw(panel, context=None) -> RecordingLayout:
    layout = RecordingLayout()
    panel.draw(SimpleNamespace(layout=layout), context or bpy.context)
    return layout


def _visible_panels(panels) -> list:
    return [panel for panel in panels.CLASSES if not hasattr(panel, "poll") or panel.poll(bpy.context)]


def _busy_session(addon) -> None:
    """Everything the panels can show at once: a connection, a rig with rendered conditions, jobs in
    every state with long stages, errors and notices, a models report with skips, multi-view images."""
    from blender_addon.blender.demo_head import add_demo_head

    state, settings = addon.session, bpy.context.scene.avatar_foundry
    state.health = {"device_name": "NVIDIA GeForce RTX 4090 Laptop GPU", "device": "cuda", "version": "0.1.0", "protocol_version": "1.0"}
    state.info = "registered 3 model(s); 2 skipped"
    state.models = [{"name": name, "role": "base"} for name in ("stable-diffusion-v1-5", "control_v11p_sd15_openpose", "my-lora")]
    state.models_report = {"added": ["a", "b", "c"], "skipped": [
        {"path": "/models/sdxl/sd_xl_base_1.0.safetensors", "reason": "an SDXL model: Avatar Foundry runs SD 1.x and 2.x models"}]}
    rig = add_demo_head(bpy.context)
    settings.conditions.rig, settings.conditions.last_bundle = rig, "/tmp/bundle"
    settings.deferred.prior = "none"  # its note on small sizes is drawn too
    settings.conditions.stage, settings.conditions.progress = "rendering view 7 of 64 (depth, normals)", 0.1
    jobs = [
        {"id": "a" * 32, "kind": "train-style-prior", "state": "running", "stage": "training step 1200 of 20000 (loss 0.0312)",
         "progress": 0.06, "eta_seconds": 18000.0, "created_at": "2026-01-01T00:00:05"},
        {"id": "b" * 32, "kind": "train-eg3d", "state": "failed", "stage": "interrupted", "progress": 0.3, "created_at": "2026-01-01T00:00:04",
         "error": {"message": LONG_ERROR, "hint": "choose a smaller preset"}},
        {"id": "c" * 32, "kind": "multiview", "state": "succeeded", "stage": "done", "progress": 1.0, "created_at": "2026-01-01T00:00:03"},
        {"id": "local-1", "kind": "generate-avatar", "state": "submitting", "stage": "sending to the backend", "created_at": "2026-01-01T00:00:06"},
    ]
    for job in jobs:
        state.board.apply(JobEvent("update", job))
    state.board.apply(JobEvent("error", message="generate-avatar was not submitted: cannot reach the backend at "
                                                "http://127.0.0.1:8765: [Errno 111] Connection refused", job_id="local-1"))
    state.board.apply(JobEvent("unreachable", message="the backend's answer to GET /jobs/aaaa was cut short (20 bytes arrived)", job_id="a" * 32))
    state.board.last_error = LONG_ERROR
    state.notices["c" * 32] = [CUT_PROMPTS]
    state.imported.append("loaded 24 multi-view images")
    for index, view in enumerate(("front", "side", "back")):
        image = bpy.data.images.new(f"{'c' * 8}_{view}", 8, 8)
        image["avatar_foundry_job_id"], image["avatar_foundry_kind"], image["avatar_foundry_seed"] = "c" * 32, "multiview", 1000 + index
        image["avatar_foundry_metadata"] = ('{"prompt": "a stylized 3D cartoon character head, Pixar style, ' + view +
                                            ' view, red hair, freckles", "view_class": "' + view + '", "yaw": ' + str(90.0 * index) + ', "pitch": 0.0}')
    imported = bpy.data.objects.new("Avatar seed 7", None)
    bpy.context.scene.collection.objects.link(imported)
    imported["avatar_foundry_job_id"], imported["avatar_foundry_kind"] = "d" * 32, "generate-avatar"
    bpy.context.view_layer.objects.active = imported


def test_every_text_of_every_panel_fits_the_default_sidebar_width(addon):
    """No label, field label, button or wrapped message is cut at the default sidebar width, even with
    long errors, stages and notices; the button reads 'Generate Avatar', not 'Generate && Import Avatar';
    yaw and pitch limits can be told apart."""
    _busy_session(addon)
    cut, texts = [], []
    for panel in _visible_panels(addon.panels):
        for item in _draw(panel).items():
            texts.append(shown(item))
            if overflow(item):
                cut.append(f"{panel.bl_label}: {shown(item)!r} needs {overflow(item):.0f} more pixels")
    assert not cut, "\n".join(cut)
    assert "Generate Avatar" in texts and not any("&&" in text for text in texts)
    assert {"Yaw min", "Yaw max", "Pitch min", "Pitch max"} <= set(texts)
    assert any(text.startswith("From scratch: pixel space") for text in texts)
    assert "Multi-view Images" in [panel.bl_label for panel in _visible_panels(addon.panels)]


def test_long_messages_are_wrapped_whole_inside_their_box(addon):
    """The error box, a failed job's error and a prompt-truncation notice are drawn complete, line by
    line, each line within the panel (they were cut at 48 characters per line)."""
    _busy_session(addon)
    backend = " ".join(shown(item) for item in _draw(addon.panels.AVATAR_PT_backend).items())
    assert " ".join(LONG_ERROR.split()) in backend
    jobs = _draw(addon.panels.AVATAR_PT_jobs).items()
    jobs_text = " ".join(shown(item) for item in jobs)
    assert " ".join(CUT_PROMPTS.split()) in jobs_text and "choose a smaller preset" in jobs_text
    assert "generate-avatar not submitted generate-avatar was not submitted" in jobs_text and "Connection refused" in jobs_text
    assert "backend not answering, retrying" in jobs_text
    from blender_addon.blender.interface_text import text_width

    assert max(text_width(shown(item)) for item in jobs if item.kind == "label") <= PANEL_WIDTH


def test_a_first_time_artist_sees_few_fields_and_the_next_step(addon):
    """Advanced settings start folded: the open panels show a handful of fields (about 60 before), and
    the Backend panel names the one next step, which follows the artist's progress; the added demo
    head is framed in the viewport (it was a speck at 1.6 m)."""
    open_panels = [panel for panel in _visible_panels(addon.panels) if "DEFAULT_CLOSED" not in getattr(panel, "bl_options", set())
                   and getattr(panel, "bl_parent_id", "") in ("", *[p.bl_idname for p in addon.panels.CLASSES if "DEFAULT_CLOSED" not in getattr(p, "bl_options", set())])]
    fields = [item for panel in open_panels for item in _draw(panel).items() if item.kind == "prop"]
    assert len(fields) <= 10, [f"{item.data.bl_rna.identifier}.{item.name}" for item in fields]

    def next_step() -> str:
        text = " ".join(shown(item) for item in _draw(addon.panels.AVATAR_PT_backend).items())
        start = text.index("Next:")
        return text[start:text.index(")", start) + 1]

    assert next_step() == "Next: Start the backend (Start, above)"
    addon.session.health = {"device_name": "CPU", "version": "0.1.0", "protocol_version": "1.0"}
    assert next_step() == "Next: Add Demo Head or pick a Rig (Conditions)"
    assert bpy.ops.avatar_foundry.add_demo_head() == {"FINISHED"}
    assert next_step() == "Next: Render Conditions (Conditions)"
    view = next(area for area in bpy.context.window.screen.areas if area.type == "VIEW_3D").spaces.active.region_3d
    from blender_addon.blender.rig import head_frame

    head = head_frame(bpy.context.scene.avatar_foundry.conditions.rig)
    assert (view.view_location - Vector(head.center)).length < 0.1 * head.size, "the new head is framed in the viewport"
    assert view.view_distance < 3 * head.size, "close enough to see it (the factory view stands 18 m away)"


def test_buttons_that_cannot_run_are_greyed_with_the_reason(addon):
    """Every operator has a poll; while not connected the job buttons are greyed and say why, and
    calling one from a script fails with that reason; once connected the missing input is named."""
    from blender_addon.blender import gallery, operators

    assert all(hasattr(cls, "poll") for cls in operators.CLASSES + gallery.OPERATORS)
    for name in ("generate_multiview", "train_gan", "generate_avatar", "train_style_prior", "train_renderer", "free_memory"):
        assert not getattr(bpy.ops.avatar_foundry, name).poll(), name
    with pytest.raises(RuntimeError, match="Not connected to the backend: press Check or Start"):
        bpy.ops.avatar_foundry.generate_multiview()
    addon.session.health = {"device_name": "CPU", "version": "0.1.0", "protocol_version": "1.0"}
    with pytest.raises(RuntimeError, match="Render Conditions first"):
        bpy.ops.avatar_foundry.generate_multiview()
    with pytest.raises(RuntimeError, match="Dataset is empty: run Generate Multi-view Images first"):
        bpy.ops.avatar_foundry.train_gan()
    bpy.context.scene.avatar_foundry.conditions.last_bundle = "/tmp/bundle"
    assert bpy.ops.avatar_foundry.generate_multiview.poll()
    with pytest.raises(RuntimeError, match="no rig is selected"):
        bpy.ops.avatar_foundry.render_conditions()
    with pytest.raises(RuntimeError, match="no multi-view images yet"):
        bpy.ops.avatar_foundry.gallery_step()


@needs_blender((4, 5), "path properties that accept '//'")
def test_folder_settings_accept_blend_relative_paths(addon):
    """Blender 5.x draws a '//' path red unless the property allows it: every folder and file setting does."""
    from blender_addon.blender import properties

    paths = [(group.__name__, prop.identifier) for group in properties.CLASSES for prop in group.bl_rna.properties
             if getattr(prop, "subtype", "") in ("DIR_PATH", "FILE_PATH")]
    assert len(paths) >= 7
    refused = [name for name in paths if not getattr(getattr(properties, name[0]).bl_rna.properties[name[1]], "is_path_supports_blend_relative")]
    assert not refused, refused


def test_the_gallery_browses_the_multi_view_images(addon):
    """The Multi-view Images sub-panel shows one painted image at a time with its view, angles, seed and
    prompt; Next steps through them and wraps around; with no window the Image Editor button says why."""
    from blender_addon.blender.gallery import AVATAR_PT_generate_gallery

    _busy_session(addon)

    def described() -> list[str]:
        return [shown(item) for item in _draw(AVATAR_PT_generate_gallery).items() if item.kind == "label"]

    assert described()[:2] == ["1 of 3: back, yaw 180°, pitch 0°", "seed 1002"]
    assert "freckles" in " ".join(described())
    assert bpy.ops.avatar_foundry.gallery_step(step=1) == {"FINISHED"}
    assert described()[0] == "2 of 3: front, yaw 0°, pitch 0°"
    bpy.ops.avatar_foundry.gallery_step(step=2)
    assert described()[0] == "1 of 3: back, yaw 180°, pitch 0°"
    with pytest.raises(RuntimeError, match="Blender runs without a window: no Image Editor to open"):
        bpy.ops.avatar_foundry.gallery_show()
    assert addon.session.board.jobs["local-1"]["state"] == NOT_SUBMITTED
