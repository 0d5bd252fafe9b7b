"""Seconds per view of the add-on's condition render (all passes, one Cycles render per view) at
512x512 on the demo head, through the bpy module. Target: under 0.5 s per view."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from training.synthetic_heads import blender_output_discarded

RESOLUTION = 512
VIEWS = 8


def run(device) -> dict:
    import bpy

    from blender_addon.blender.condition_render import BundleRequest, render_bundle
    from blender_addon.blender.demo_head import add_demo_head
    from blender_addon.core.view_plan import OrbitSettings, plan_orbit_views

    bpy.ops.wm.read_factory_settings(use_empty=True)
    rig = add_demo_head(bpy.context)
    views = plan_orbit_views(OrbitSettings(views=VIEWS), RESOLUTION, RESOLUTION)
    with tempfile.TemporaryDirectory() as folder, blender_output_discarded():
        request = BundleRequest(rig.name, Path(folder), views, RESOLUTION, RESOLUTION)
        steps = render_bundle(request, bpy.context.scene)
        start = time.perf_counter()
        next(steps)  # the first view includes building the temporary scene and Cycles' scene sync
        first = time.perf_counter() - start
        for _ in steps:
            pass
        total = time.perf_counter() - start
    return {
        "resolution": RESOLUTION,
        "views": VIEWS,
        "first_view_s": round(first, 3),
        "seconds_per_view": round(total / VIEWS, 3),
        "seconds_per_view_after_first": round((total - first) / (VIEWS - 1), 3),
        "target_seconds_per_view": 0.5,
    }
