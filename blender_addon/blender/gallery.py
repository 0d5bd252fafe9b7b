"""Browsing the multi-view images a multiview job painted: a thumbnail in the Generate panel with
previous/next, its view, seed and prompt, and a button that shows it in an Image Editor."""

from __future__ import annotations

import json

import bpy

from ..core.provenance import PREFIX
from ..core.sidebar_text import PANEL_WIDTH
from . import readiness
from .interface_text import wrap_to
from .session import session

NO_IMAGES = "no multi-view images yet: Generate Multi-view Images first"
THUMBNAIL_SCALE = 8.0


def gallery_images() -> list[bpy.types.Image]:
    """The images of the multiview job imported last in this session (else any in the file), in view order."""
    painted = [image for image in bpy.data.images if image.get(PREFIX + "kind") == "multiview"]
    jobs = [image.get(PREFIX + "job_id") for image in painted]
    job_id = session().gallery_job if session().gallery_job in jobs else (jobs[-1] if jobs else None)
    return sorted((image for image in painted if image.get(PREFIX + "job_id") == job_id), key=lambda image: image.name)


def current_image() -> bpy.types.Image | None:
    images = gallery_images()
    if not images:
        return None
    return images[session().gallery_index % len(images)]


def _describe(image: bpy.types.Image, position: int, count: int) -> list[str]:
    """'3 of 24: front, yaw 0°, pitch 10°', 'seed 123', then the prompt wrapped."""
    try:
        metadata = json.loads(image.get(PREFIX + "metadata", "{}"))
    except ValueError:
        metadata = {}
    angles = ", ".join(f"{name} {float(metadata[name]):.0f}°" for name in ("yaw", "pitch") if isinstance(metadata.get(name), (int, float)))
    lines = wrap_to(f"{position} of {count}: {metadata.get('view_class', '?')}" + (f", {angles}" if angles else ""), PANEL_WIDTH)
    if PREFIX + "seed" in image:
        lines.append(f"seed {image[PREFIX + 'seed']}")
    return lines + wrap_to(str(metadata.get("prompt", "")), PANEL_WIDTH)


class AVATAR_OT_gallery_step(bpy.types.Operator):
    """Show the previous or next multi-view image"""

    bl_idname = "avatar_foundry.gallery_step"
    bl_label = "Next Image"

    step: bpy.props.IntProperty(name="Step", default=1)

    @classmethod
    def poll(cls, context):
        return readiness.allow(cls, None if gallery_images() else NO_IMAGES)

    def execute(self, context):
        session().gallery_index = (session().gallery_index + self.step) % len(gallery_images())
        return {"FINISHED"}


class AVATAR_OT_gallery_show(bpy.types.Operator):
    """Show the multi-view image in an Image Editor (the open one, else a new window)"""

    bl_idname = "avatar_foundry.gallery_show"
    bl_label = "Open in Image Editor"

    @classmethod
    def poll(cls, context):
        reason = None if gallery_images() else NO_IMAGES
        windowless = context.window is None or bpy.app.background
        return readiness.allow(cls, reason or ("Blender runs without a window: no Image Editor to open" if windowless else None))

    def execute(self, context):
        image = current_image()
        editors = [area for window in context.window_manager.windows for area in window.screen.areas if area.type == "IMAGE_EDITOR"]
        if not editors:
            with context.temp_override(window=context.window):
                bpy.ops.wm.window_new()
            area = context.window_manager.windows[-1].screen.areas[0]
            area.type = "IMAGE_EDITOR"
            editors = [area]
        for area in editors:
            area.spaces.active.image = image
        self.report({"INFO"}, f"showing {image.name}")
        return {"FINISHED"}


class AVATAR_PT_generate_gallery(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Avatar"
    bl_label = "Multi-view Images"
    bl_idname = "AVATAR_PT_generate_gallery"
    bl_parent_id = "AVATAR_PT_generate"

    @classmethod
    def poll(cls, context):
        return bool(gallery_images())

    def draw(self, context):
        layout = self.layout
        images = gallery_images()
        index = session().gallery_index % len(images)
        image = images[index]
        image.preview_ensure()
        layout.template_icon(icon_value=image.preview.icon_id, scale=THUMBNAIL_SCALE)
        row = layout.row(align=True)
        row.operator("avatar_foundry.gallery_step", text="", icon="TRIA_LEFT").step = -1
        row.operator("avatar_foundry.gallery_show", text="Open", icon="IMAGE")
        row.operator("avatar_foundry.gallery_step", text="", icon="TRIA_RIGHT").step = 1
        for line in _describe(image, index + 1, len(images)):
            layout.label(text=line)


OPERATORS = (AVATAR_OT_gallery_step, AVATAR_OT_gallery_show)
