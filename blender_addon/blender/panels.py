"""The "Avatar" tab of the 3D viewport's sidebar: Backend, Conditions, Generate, Avatars, Animate, Jobs.

Each panel shows its step's button and the few settings a first run needs; everything else sits in
sub-panels that start collapsed. The Backend panel says what to do next. Every text is sized to the
sidebar's default width (``core.sidebar_text``, measured in the interface font): a field whose label
would be cut gets its label on its own line, and messages are wrapped to the panel.
"""

from __future__ import annotations

from pathlib import PureWindowsPath

import bpy

from ..core.job_watch import NOT_SUBMITTED, SUBMITTING
from ..core.next_step import Progress, next_step
from ..core.provenance import PREFIX
from ..core.sidebar_text import BOX_WIDTH, FIELD_LABEL_WIDTH, PANEL_WIDTH
from .gallery import AVATAR_PT_generate_gallery
from .interface_text import text_width, wrap_to
from .properties import CONTROL_KINDS
from .rig import animation_notice
from .session import session

JOBS_SHOWN = 12


class _AvatarPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Avatar"


def _text_lines(layout: bpy.types.UILayout, text: str, icon: str = "NONE", width: float = BOX_WIDTH) -> None:
    """``text`` wrapped to ``width`` pixels, the icon on its first line only (later lines indented alike)."""
    for index, line in enumerate(wrap_to(text, width, icon != "NONE")):
        layout.label(text=line, icon=icon if index == 0 else "BLANK1" if icon != "NONE" else "NONE")


def _message_box(layout: bpy.types.UILayout, text: str, icon: str) -> None:
    _text_lines(layout.box(), text, icon)


def _field(layout: bpy.types.UILayout, data, name: str, label: str | None = None) -> None:
    """A text, pointer or menu field whose label is never cut: on its own line when it is long."""
    label = label if label is not None else data.bl_rna.properties[name].name
    if text_width(label) <= FIELD_LABEL_WIDTH:
        layout.prop(data, name, text=label)
        return
    column = layout.column(align=True)
    column.label(text=f"{label}:")
    column.prop(data, name, text="")


def _settings(context):
    return context.scene.avatar_foundry


class AVATAR_PT_backend(_AvatarPanel, bpy.types.Panel):
    bl_label = "Backend"
    bl_idname = "AVATAR_PT_backend"

    def draw(self, context):
        layout = self.layout
        state = session()
        health = state.health
        if health:
            _text_lines(layout, f"Connected: {health.get('device_name', '?')}", "CHECKMARK", PANEL_WIDTH)
            _text_lines(layout, f"backend {health.get('version')} · protocol {health.get('protocol_version')}", width=PANEL_WIDTH)
        else:
            layout.label(text="Checking..." if state.checking else "Not connected", icon="TIME" if state.checking else "ERROR")
        _draw_start_progress(layout, state)
        row = layout.row(align=True)
        row.operator("avatar_foundry.backend_check", text="Check", icon="FILE_REFRESH")
        if state.backend.running():
            row.operator("avatar_foundry.backend_start", text="Restart", icon="RECOVER_LAST").restart = True
            row.operator("avatar_foundry.backend_stop", text="Stop", icon="CANCEL")
        else:
            row.operator("avatar_foundry.backend_start", text="Start", icon="PLAY").restart = False
        _message_box(layout, "Next: " + next_step(_progress(context)), "FORWARD")
        if state.board.last_error:
            _message_box(layout, state.board.last_error, "ERROR")
        if state.info:
            _text_lines(layout, state.info, "INFO", PANEL_WIDTH)
        skipped = (state.models_report or {}).get("skipped") or []
        if skipped:
            _text_lines(layout, f"{len(skipped)} model file(s) skipped: see Models", "INFO", PANEL_WIDTH)


def _progress(context) -> Progress:
    settings, state = _settings(context), session()
    return Progress(connected=state.health is not None, has_rig=settings.conditions.rig is not None,
                    conditions_rendered=bool(settings.conditions.last_bundle), has_dataset=bool(settings.train.dataset.strip()),
                    has_generator=bool(settings.avatar.checkpoint.strip()),
                    running=[job["kind"] for job in state.board.active() if job["state"] in ("queued", "running", SUBMITTING)])


class AVATAR_PT_backend_models(_AvatarPanel, bpy.types.Panel):
    bl_label = "Models"
    bl_idname = "AVATAR_PT_backend_models"
    bl_parent_id = "AVATAR_PT_backend"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        state = session()
        if state.models:
            names = ", ".join(model["name"] for model in state.models)
            _text_lines(layout, f"{len(state.models)} registered: {names}", width=PANEL_WIDTH)
        else:
            layout.label(text="No models registered")
        layout.operator("avatar_foundry.register_models", text="Register Models Folder", icon="FILE_FOLDER")
        if state.scanning:
            layout.label(text="Registering the folder...", icon="TIME")
        for skipped in (state.models_report or {}).get("skipped") or []:  # the file's name, from a POSIX or Windows path
            _message_box(layout, f"skipped {PureWindowsPath(skipped['path']).name}: {skipped['reason']}", "INFO")
        layout.operator("avatar_foundry.free_memory", text="Free Memory", icon="TRASH")


def _draw_start_progress(layout: bpy.types.UILayout, state) -> None:
    """Install Backend or Start Backend at work, or why Start failed (with the fix)."""
    start = state.start_task
    if state.install_task.running():
        layout.progress(factor=state.install_task.progress, text=f"Install Backend: {state.install_task.stage}")
    elif start.running():
        layout.progress(factor=start.progress, text=start.stage)
    elif start.state == "failed" and not state.health:
        _message_box(layout, start.message, "ERROR")


class AVATAR_PT_conditions(_AvatarPanel, bpy.types.Panel):
    bl_label = "Conditions"
    bl_idname = "AVATAR_PT_conditions"

    def draw(self, context):
        layout = self.layout
        conditions = _settings(context).conditions
        layout.operator("avatar_foundry.add_demo_head", text="Add Demo Head", icon="USER")
        _field(layout, conditions, "rig")
        layout.operator("avatar_foundry.find_landmarks", text="Find Landmarks", icon="PINNED")
        if conditions.rig is not None and (notice := animation_notice(conditions.rig)) is not None:
            _message_box(layout, notice, "INFO")
        layout.operator("avatar_foundry.render_conditions", text="Render Conditions", icon="RENDER_STILL")
        _draw_render_progress(layout, conditions)
        if conditions.last_bundle:
            row = layout.row(align=True)
            row.operator("avatar_foundry.preview_conditions", text="Preview", icon="IMAGE_DATA")
            row.operator("avatar_foundry.submit_job", text="Check Bundle").kind = "echo-conditions"


def _draw_render_progress(layout: bpy.types.UILayout, conditions) -> None:
    if conditions.stage:
        layout.progress(factor=conditions.progress, text=f"{conditions.progress:.0%}")
        _text_lines(layout, conditions.stage, width=PANEL_WIDTH)


class AVATAR_PT_conditions_views(_AvatarPanel, bpy.types.Panel):
    bl_label = "Views & Output"
    bl_idname = "AVATAR_PT_conditions_views"
    bl_parent_id = "AVATAR_PT_conditions"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        conditions = _settings(context).conditions
        column = self.layout.column(align=True)
        for name in ("views", "resolution", "yaw_min", "yaw_max", "pitch_min", "pitch_max", "radius", "fov", "jitter", "seed"):
            column.prop(conditions, name)
        self.layout.prop(conditions, "use_frame_range")
        _field(self.layout, conditions, "output_dir")


class AVATAR_PT_generate(_AvatarPanel, bpy.types.Panel):
    bl_label = "Generate"
    bl_idname = "AVATAR_PT_generate"

    def draw(self, context):
        layout = self.layout
        _field(layout, _settings(context).generate, "style", "Style prompt")
        layout.operator("avatar_foundry.generate_multiview", text="Generate Multi-view Images", icon="IMAGE_DATA")
        newest = next((job for job in session().board.ordered() if job["kind"] == "multiview"), None)
        for notice in session().notices.get(newest["id"], []) if newest else []:
            _message_box(layout, notice, "INFO")


class AVATAR_PT_generate_prompt(_AvatarPanel, bpy.types.Panel):
    bl_label = "Prompt & Base Model"
    bl_idname = "AVATAR_PT_generate_prompt"
    bl_parent_id = "AVATAR_PT_generate"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        generate = _settings(context).generate
        _field(self.layout, generate, "negative_prompt", "Negative prompt")
        _field(self.layout, generate, "base")
        _field(self.layout, generate, "attributes_file", "Attributes file")
        self.layout.prop(generate, "attributes_per_image")


class AVATAR_PT_generate_controlnets(_AvatarPanel, bpy.types.Panel):
    bl_label = "ControlNets"
    bl_idname = "AVATAR_PT_generate_controlnets"
    bl_parent_id = "AVATAR_PT_generate"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        generate = _settings(context).generate
        for kind in CONTROL_KINDS:
            column = self.layout.column(align=True)
            column.prop(generate, f"use_{kind}", text=f"{kind.capitalize()} ControlNet")
            sub = column.column(align=True)
            sub.enabled = getattr(generate, f"use_{kind}")
            sub.prop(generate, f"{kind}_model", text="Model")
            sub.prop(generate, f"{kind}_weight", text="Weight")


class AVATAR_PT_generate_sampling(_AvatarPanel, bpy.types.Panel):
    bl_label = "Sampling"
    bl_idname = "AVATAR_PT_generate_sampling"
    bl_parent_id = "AVATAR_PT_generate"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        generate = _settings(context).generate
        column = self.layout.column(align=True)
        for name in ("per_view", "candidates", "seed", "steps", "guidance", "resolution"):
            column.prop(generate, name)


class AVATAR_PT_generate_gan(_AvatarPanel, bpy.types.Panel):
    bl_label = "Train 3D GAN"
    bl_idname = "AVATAR_PT_generate_gan"
    bl_parent_id = "AVATAR_PT_generate"

    def draw(self, context):
        train = _settings(context).train
        _field(self.layout, train, "dataset")
        _field(self.layout, train, "config")
        self.layout.prop(train, "total_images")
        self.layout.operator("avatar_foundry.train_gan", text="Train 3D GAN", icon="MOD_REMESH")


class AVATAR_PT_avatars(_AvatarPanel, bpy.types.Panel):
    bl_label = "Avatars"
    bl_idname = "AVATAR_PT_avatars"

    def draw(self, context):
        avatar = _settings(context).avatar
        layout = self.layout
        _field(layout, avatar, "checkpoint")
        layout.prop(avatar, "seed")
        layout.operator("avatar_foundry.generate_avatar", text="Generate Avatar", icon="IMPORT")
        obj = context.active_object
        if obj is not None and PREFIX + "job_id" in obj:
            row = layout.row(align=True)
            row.operator("avatar_foundry.vary_seed", text="Regenerate").new_seed = False
            row.operator("avatar_foundry.vary_seed", text="Vary Seed").new_seed = True


class AVATAR_PT_avatars_mesh(_AvatarPanel, bpy.types.Panel):
    bl_label = "Mesh & Texture"
    bl_idname = "AVATAR_PT_avatars_mesh"
    bl_parent_id = "AVATAR_PT_avatars"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        avatar = _settings(context).avatar
        column = self.layout.column(align=True)
        for name in ("truncation", "mesh_resolution", "texture_size"):
            column.prop(avatar, name)


class AVATAR_PT_avatars_guided(_AvatarPanel, bpy.types.Panel):
    bl_label = "Image-guided"
    bl_idname = "AVATAR_PT_avatars_guided"
    bl_parent_id = "AVATAR_PT_avatars"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        avatar = _settings(context).avatar
        layout = self.layout
        _field(layout, avatar, "reference_image")
        _field(layout, avatar, "style_prior")
        layout.prop(avatar, "guidance_scale")
        box = layout.box()
        box.label(text="Style prior training")
        _field(box, avatar, "prior_config", "Preset")
        box.prop(avatar, "prior_steps", text="Steps")
        box.operator("avatar_foundry.train_style_prior", text="Train Style Prior", icon="BRUSH_DATA")


class AVATAR_PT_animate(_AvatarPanel, bpy.types.Panel):
    bl_label = "Animate"
    bl_idname = "AVATAR_PT_animate"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        settings = _settings(context)
        animate, layout = settings.animate, self.layout
        layout.row().prop(animate, "proxy", expand=True)
        if animate.proxy == "NPHM":
            _field(layout, animate, "nphm_proxy")
        else:
            _field(layout, settings.conditions, "rig")
        for name in ("checkpoint", "camera"):
            _field(layout, animate, name)
        column = layout.column(align=True)
        column.prop(animate, "frame_start", text="Start frame")
        column.prop(animate, "frame_end", text="End frame")
        _field(layout, animate, "output_dir")
        layout.operator("avatar_foundry.animate", text="Animate", icon="RENDER_ANIMATION")
        _draw_render_progress(layout, settings.conditions)


class AVATAR_PT_animate_neural_head(_AvatarPanel, bpy.types.Panel):
    bl_label = "Neural Head (NPHM)"
    bl_idname = "AVATAR_PT_animate_neural_head"
    bl_parent_id = "AVATAR_PT_animate"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        animate, layout = _settings(context).animate, self.layout
        _text_lines(layout, "A neural head trained on the rig and fitted to its animation (Start to End frame) "
                    "becomes the Neural head proxy", width=PANEL_WIDTH)
        _field(layout, animate, "nphm_config")
        column = layout.column(align=True)
        column.prop(animate, "nphm_expressions")
        column.prop(animate, "nphm_steps")
        layout.operator("avatar_foundry.train_neural_head", text="Train Neural Head", icon="MESH_MONKEY")
        _field(layout, animate, "nphm_model")
        column = layout.column(align=True)
        for name in ("fit_identity_steps", "fit_frame_steps", "proxy_resolution"):
            column.prop(animate, name)
        layout.operator("avatar_foundry.fit_neural_head", text="Fit Neural Head", icon="TRACKING")
        layout.operator("avatar_foundry.import_nphm_proxy", text="Import NPHM Proxy", icon="IMPORT")


class AVATAR_PT_animate_dataset(_AvatarPanel, bpy.types.Panel):
    bl_label = "1. Deferred Dataset"
    bl_idname = "AVATAR_PT_animate_dataset"
    bl_parent_id = "AVATAR_PT_animate"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        settings = _settings(context)
        deferred, layout = settings.deferred, self.layout
        if settings.animate.proxy == "NPHM":
            _text_lines(layout, "Every frame of the neural head as proxy, the character animated alike as Target", width=PANEL_WIDTH)
        else:
            _text_lines(layout, "The rig as proxy, the detailed character as Target", width=PANEL_WIDTH)
        _field(layout, deferred, "target")
        if settings.animate.proxy != "NPHM":
            layout.prop(deferred, "random_expressions")
        _field(layout, deferred, "output_dir")
        layout.operator("avatar_foundry.render_deferred_dataset", text="Render Deferred Dataset", icon="RENDER_STILL")


class AVATAR_PT_animate_training(_AvatarPanel, bpy.types.Panel):
    bl_label = "2. Train Renderer"
    bl_idname = "AVATAR_PT_animate_training"
    bl_parent_id = "AVATAR_PT_animate"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        settings = _settings(context)
        deferred, layout = settings.deferred, self.layout
        _field(layout, deferred, "prior")
        if deferred.prior == "latent-diffusion":
            _field(layout, deferred, "base")
        _field(layout, deferred, "mode")
        column = layout.column(align=True)
        for name in ("steps", "crop", "batch_size"):
            column.prop(deferred, name)
        size = deferred.crop or settings.conditions.resolution
        source = "Crop" if deferred.crop else "Conditions resolution"
        _text_lines(layout, f"Trains at {size} px ({source})", "INFO", PANEL_WIDTH)
        if deferred.prior == "none":
            _text_lines(layout, "From scratch: pixel space, so keep it small (32 to 128 px); the embedded renderer "
                                "learned the demo head in 1,500 steps", "INFO", PANEL_WIDTH)
        layout.operator("avatar_foundry.train_renderer", text="Train Renderer", icon="SHADING_RENDERED")


class AVATAR_PT_jobs(_AvatarPanel, bpy.types.Panel):
    bl_label = "Jobs"
    bl_idname = "AVATAR_PT_jobs"

    def draw(self, context):
        layout = self.layout
        state = session()
        jobs = state.board.ordered()
        if not jobs:
            layout.label(text="No jobs yet")
        for job in jobs[:JOBS_SHOWN]:
            _draw_job(layout.box(), job, state)
        for line in state.imported[-3:]:
            _text_lines(layout, line, "IMPORT", PANEL_WIDTH)


def _draw_job(box: bpy.types.UILayout, job: dict, state) -> None:
    """One job: kind and state, a bar with percent and ETA, its stage, and what went wrong."""
    row = box.row()
    row.label(text=job["kind"])
    if job["state"] in ("queued", "running"):
        row.operator("avatar_foundry.cancel_job", text="", icon="X").job_id = job["id"]
    elif job["state"] == "succeeded":
        row.operator("avatar_foundry.open_results", text="", icon="FILE_FOLDER").job_id = job["id"]
    if job["state"] in ("queued", "running"):
        eta = job.get("eta_seconds")
        progress = float(job.get("progress") or 0.0)
        box.progress(factor=progress, text=f"{job['state']} {progress:.0%}" + (f" · ETA {_duration(eta)}" if eta is not None else ""))
    else:
        box.label(text=job["state"])
    if job.get("stage") and job["state"] != NOT_SUBMITTED and (job["state"] != "succeeded" or job["stage"] != "done"):
        _text_lines(box, job["stage"])
    if job["id"] in state.board.lost_contact:
        _text_lines(box, f"backend not answering, retrying: {state.board.lost_contact[job['id']]}", "ERROR")
    error = job.get("error")
    if isinstance(error, dict) and error.get("message"):
        _text_lines(box, f"{error['message']} {error.get('hint') or ''}".strip(), "ERROR")
    for notice in state.notices.get(job["id"], []):
        _text_lines(box, notice, "INFO")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


CLASSES = (AVATAR_PT_backend, AVATAR_PT_backend_models, AVATAR_PT_conditions, AVATAR_PT_conditions_views,
           AVATAR_PT_generate, AVATAR_PT_generate_prompt, AVATAR_PT_generate_controlnets, AVATAR_PT_generate_sampling,
           AVATAR_PT_generate_gallery, AVATAR_PT_generate_gan, AVATAR_PT_avatars, AVATAR_PT_avatars_mesh, AVATAR_PT_avatars_guided,
           AVATAR_PT_animate, AVATAR_PT_animate_neural_head, AVATAR_PT_animate_dataset, AVATAR_PT_animate_training, AVATAR_PT_jobs)
