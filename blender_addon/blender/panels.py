"""The "Avatar" tab of the 3D viewport's sidebar: Backend, Conditions, Generate, Avatars, Animate, Jobs."""

from __future__ import annotations

import bpy

from ..core.provenance import PREFIX
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
        box = layout.box()
        box.label(text="Deferred dataset")
        box.prop(conditions, "target")
        box.prop(conditions, "random_expressions")
        box.operator("avatar_foundry.render_conditions", text="Render Deferred Dataset").deferred = True
        if conditions.last_bundle:
            layout.operator("avatar_foundry.submit_job", text="Check on Backend (echo)").kind = "echo-conditions"


class AVATAR_PT_generate(_AvatarPanel, bpy.types.Panel):
    bl_label = "Generate"
    bl_idname = "AVATAR_PT_generate"

    def draw(self, context):
        generate = context.scene.avatar_foundry.generate
        for name in ("prompt", "negative_prompt", "attributes", "seed", "steps", "guidance"):
            self.layout.prop(generate, name)
        self.layout.operator("avatar_foundry.submit_job", text="Generate Multi-view Images").kind = "multiview"


class AVATAR_PT_avatars(_AvatarPanel, bpy.types.Panel):
    bl_label = "Avatars"
    bl_idname = "AVATAR_PT_avatars"

    def draw(self, context):
        avatar = context.scene.avatar_foundry.avatar
        for name in ("checkpoint", "seed", "reference_job", "truncation", "mesh_resolution", "texture_size"):
            self.layout.prop(avatar, name)
        operator = self.layout.operator("avatar_foundry.submit_job", text="Generate && Import Avatar")
        operator.kind, operator.with_bundle = "generate-avatar", False
        obj = context.active_object
        if obj is not None and PREFIX + "job_id" in obj:
            row = self.layout.row(align=True)
            row.operator("avatar_foundry.vary_seed", text="Regenerate").new_seed = False
            row.operator("avatar_foundry.vary_seed", text="Vary Seed").new_seed = True


class AVATAR_PT_animate(_AvatarPanel, bpy.types.Panel):
    bl_label = "Animate"
    bl_idname = "AVATAR_PT_animate"

    def draw(self, context):
        settings = context.scene.avatar_foundry
        self.layout.prop(settings.conditions, "rig")
        for name in ("checkpoint", "camera", "frame_start", "frame_end", "output_dir"):
            self.layout.prop(settings.animate, name)
        self.layout.operator("avatar_foundry.animate", icon="RENDER_ANIMATION")


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
