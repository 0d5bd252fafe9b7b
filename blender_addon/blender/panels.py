"""The "Avatar" tab of the 3D viewport's sidebar: Backend, Conditions, Generate, Avatars, Animate, Jobs."""

from __future__ import annotations

import bpy

from ..core.provenance import PREFIX
from .properties import CONTROL_KINDS
from .rig import animation_notice
from .session import session


class _AvatarPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Avatar"


class AVATAR_PT_backend(_AvatarPanel, bpy.types.Panel):
    bl_label = "Backend"
    bl_idname = "AVATAR_PT_backend"

    def draw(self, context):
        layout = self.layout
        state = session()
        health = state.health
        if health:
            layout.label(text=f"Connected: {health.get('device_name', '?')} ({health.get('device', '?')})", icon="CHECKMARK")
            layout.label(text=f"backend {health.get('version')} · protocol {health.get('protocol_version')}")
        else:
            layout.label(text="Not connected", icon="ERROR")
        row = layout.row(align=True)
        row.operator("avatar_foundry.backend_check", text="Check", icon="FILE_REFRESH")
        if state.backend.running():
            row.operator("avatar_foundry.backend_start", text="Restart", icon="RECOVER_LAST").restart = True
            row.operator("avatar_foundry.backend_stop", text="Stop", icon="CANCEL")
        else:
            row.operator("avatar_foundry.backend_start", text="Start", icon="PLAY").restart = False
        layout.operator("avatar_foundry.free_memory", icon="TRASH")
        layout.operator("avatar_foundry.register_models", icon="FILE_FOLDER")
        if state.models:
            layout.label(text=f"{len(state.models)} model(s): " + ", ".join(model["name"] for model in state.models[:4])
                         + (" ..." if len(state.models) > 4 else ""))
        if state.board.last_error:
            box = layout.box()
            for line in _wrap(state.board.last_error, 48):
                box.label(text=line)


class AVATAR_PT_conditions(_AvatarPanel, bpy.types.Panel):
    bl_label = "Conditions"
    bl_idname = "AVATAR_PT_conditions"

    def draw(self, context):
        layout = self.layout
        conditions = context.scene.avatar_foundry.conditions
        layout.operator("avatar_foundry.add_demo_head", icon="USER")
        layout.prop(conditions, "rig")
        layout.operator("avatar_foundry.find_landmarks", icon="PINNED")
        if conditions.rig is not None and (notice := animation_notice(conditions.rig)) is not None:
            box = layout.box()
            for line in _wrap(notice, 48):
                box.label(text=line, icon="INFO")
        column = layout.column(align=True)
        for name in ("views", "resolution", "radius", "fov", "jitter", "seed"):
            column.prop(conditions, name)
        row = layout.row(align=True)
        row.prop(conditions, "yaw_min")
        row.prop(conditions, "yaw_max")
        row = layout.row(align=True)
        row.prop(conditions, "pitch_min")
        row.prop(conditions, "pitch_max")
        layout.prop(conditions, "use_frame_range")
        layout.prop(conditions, "output_dir")
        layout.operator("avatar_foundry.render_conditions", icon="RENDER_STILL").deferred = False
        if conditions.stage:
            layout.progress(factor=conditions.progress, text=conditions.stage)
        if conditions.last_bundle:
            row = layout.row(align=True)
            row.operator("avatar_foundry.preview_conditions", icon="IMAGE_DATA")
            row.operator("avatar_foundry.submit_job", text="Check on Backend").kind = "echo-conditions"


class AVATAR_PT_generate(_AvatarPanel, bpy.types.Panel):
    bl_label = "Generate"
    bl_idname = "AVATAR_PT_generate"

    def draw(self, context):
        settings = context.scene.avatar_foundry
        generate, train = settings.generate, settings.train
        layout = self.layout
        for name in ("style", "negative_prompt", "base"):
            layout.prop(generate, name)
        box = layout.box()
        box.label(text="ControlNets")
        for kind in CONTROL_KINDS:
            row = box.row(align=True)
            row.prop(generate, f"use_{kind}")
            sub = row.row(align=True)
            sub.enabled = getattr(generate, f"use_{kind}")
            sub.prop(generate, f"{kind}_model", text="")
            sub.prop(generate, f"{kind}_weight")
        column = layout.column(align=True)
        for name in ("attributes_file", "attributes_per_image", "per_view", "candidates", "seed", "steps", "guidance", "resolution"):
            column.prop(generate, name)
        layout.operator("avatar_foundry.generate_multiview", icon="IMAGE_DATA")
        box = layout.box()
        box.label(text="3D GAN")
        for name in ("dataset", "config", "total_images"):
            box.prop(train, name)
        box.operator("avatar_foundry.train_gan", icon="MOD_REMESH")


class AVATAR_PT_avatars(_AvatarPanel, bpy.types.Panel):
    bl_label = "Avatars"
    bl_idname = "AVATAR_PT_avatars"

    def draw(self, context):
        avatar = context.scene.avatar_foundry.avatar
        layout = self.layout
        for name in ("checkpoint", "seed", "truncation", "mesh_resolution", "texture_size"):
            layout.prop(avatar, name)
        box = layout.box()
        box.label(text="Image-guided (optional)")
        for name in ("reference_image", "style_prior", "guidance_scale"):
            box.prop(avatar, name)
        row = box.row(align=True)
        row.prop(avatar, "prior_config", text="")
        row.prop(avatar, "prior_steps", text="Steps")
        box.operator("avatar_foundry.train_style_prior", icon="BRUSH_DATA")
        layout.operator("avatar_foundry.generate_avatar", text="Generate && Import Avatar", icon="IMPORT")
        obj = context.active_object
        if obj is not None and PREFIX + "job_id" in obj:
            row = layout.row(align=True)
            row.operator("avatar_foundry.vary_seed", text="Regenerate").new_seed = False
            row.operator("avatar_foundry.vary_seed", text="Vary Seed").new_seed = True


class AVATAR_PT_animate(_AvatarPanel, bpy.types.Panel):
    bl_label = "Animate"
    bl_idname = "AVATAR_PT_animate"

    def draw(self, context):
        settings = context.scene.avatar_foundry
        deferred, layout = settings.deferred, self.layout
        layout.prop(settings.conditions, "rig")
        box = layout.box()
        box.label(text="Deferred dataset (proxy rig + detailed character)")
        for name in ("target", "random_expressions", "output_dir"):
            box.prop(deferred, name)
        box.operator("avatar_foundry.render_conditions", text="Render Deferred Dataset", icon="RENDER_STILL").deferred = True
        for name in ("base", "mode", "steps", "crop", "batch_size"):
            box.prop(deferred, name)
        box.operator("avatar_foundry.train_renderer", icon="SHADING_RENDERED")
        for name in ("checkpoint", "camera", "frame_start", "frame_end", "output_dir"):
            layout.prop(settings.animate, name)
        layout.operator("avatar_foundry.animate", icon="RENDER_ANIMATION")
        layout.operator("avatar_foundry.import_nphm_proxy", icon="IMPORT")
        if settings.conditions.stage:
            layout.progress(factor=settings.conditions.progress, text=settings.conditions.stage)


class AVATAR_PT_jobs(_AvatarPanel, bpy.types.Panel):
    bl_label = "Jobs"
    bl_idname = "AVATAR_PT_jobs"

    def draw(self, context):
        layout = self.layout
        state = session()
        jobs = state.board.ordered()
        if not jobs:
            layout.label(text="No jobs yet")
        for job in jobs[:12]:
            box = layout.box()
            row = box.row()
            row.label(text=f"{job['kind']} · {job['state']}")
            if job["state"] in ("queued", "running"):
                row.operator("avatar_foundry.cancel_job", text="", icon="X").job_id = job["id"]
            elif job["state"] == "succeeded":
                row.operator("avatar_foundry.open_results", text="", icon="FILE_FOLDER").job_id = job["id"]
            eta = job.get("eta_seconds")
            text = (job.get("stage") or job["state"]) + (f" · ETA {int(eta)} s" if eta is not None else "")
            box.progress(factor=float(job.get("progress") or 0.0), text=text)
            if job.get("error"):
                for line in _wrap(f"{job['error'].get('message', '')} {job['error'].get('hint') or ''}", 48):
                    box.label(text=line, icon="ERROR")
        for line in state.imported[-3:]:
            layout.label(text=line, icon="IMPORT")


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if len(line) + len(word) + 1 > width and line:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


CLASSES = (AVATAR_PT_backend, AVATAR_PT_conditions, AVATAR_PT_generate, AVATAR_PT_avatars, AVATAR_PT_animate, AVATAR_PT_jobs)
