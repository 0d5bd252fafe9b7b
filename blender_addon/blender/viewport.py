"""Showing the artist what the add-on just added: select it and frame it in every 3D viewport.

Works from operators and from timers (which have no window in their context); without any window
(background Blender) there is nothing to frame and nothing happens."""

from __future__ import annotations

import bpy


def select_only(context: bpy.types.Context, objects: list[bpy.types.Object]) -> None:
    """``objects`` selected (the first one active), everything else deselected."""
    chosen = set(objects)
    for obj in context.view_layer.objects:
        obj.select_set(obj in chosen)
    if objects:
        context.view_layer.objects.active = objects[0]


def frame_in_viewports(context: bpy.types.Context, objects: list[bpy.types.Object]) -> int:
    """Select ``objects`` and frame them in each 3D viewport of every window; returns how many were framed."""
    visible = [obj for obj in objects if obj.name in context.view_layer.objects]
    if not visible:
        return 0
    select_only(context, visible)
    framed = 0
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            region = next((region for region in area.regions if region.type == "WINDOW"), None)
            if area.type != "VIEW_3D" or region is None:
                continue
            with context.temp_override(window=window, area=area, region=region):
                bpy.ops.view3d.view_selected()
            framed += 1
    return framed
