"""The deferred renderer's half of ``bench quality``: does a renderer trained from scratch learn the character?

Data: the add-on's "render training data" on the demo head (Cycles, the character itself as the
target pass): ``VIEWS`` cameras over the face's side of the orbit times ``EXPRESSIONS`` random rig
expressions (jaw, smile, blink, brow and pucker keys and the face bones). Held out of training: two
whole views and every ``FRAME_STRIDE``-th expression; scores are on every held-out render.

Two proxies, because where the expression shows decides what the expression code has to carry:

- ``full``: the conditions come from the posed head itself, so the geometry passes already show the
  expression (the add-on's dataset as written);
- ``neutral``: the geometry passes come from the head at rest (rendered from the same cameras), the
  target still shows the expression, so only the expression code can tell the renderer the
  expression (a coarse proxy, as a tracked template is in DiffusionAvatars).

Models (``prior='none'``: trained from scratch in pixel space, no downloaded weights):
``direct`` (one pass) and ``diffusion`` (sampled, 20 DDPM steps), and the direct model trained and
scored with every expression code zeroed ("w/o expression conditioning"). Scores and the per-view
mean image baseline are ``avatar-foundry evaluate``'s (training/deferred/evaluation.py), mouth region included.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

VIEWS = 10
EXPRESSIONS = 30
FRAME_STRIDE = 5
HELD_OUT_VIEWS = ("view_002", "view_007")


def render_expression_datasets(folder: Path, resolution: int) -> dict[str, Path]:
    """The demo head's deferred dataset (``full``) and its copy on the neutral proxy (``neutral``)."""
    import bpy

    from blender_addon.blender.condition_render import BundleRequest, render_bundle
    from blender_addon.blender.demo_head import add_demo_head
    from blender_addon.core.view_plan import OrbitSettings, plan_orbit_views
    from bench_conditions import blender_output_discarded

    bpy.ops.wm.read_factory_settings(use_empty=True)
    rig = add_demo_head(bpy.context)
    views = plan_orbit_views(OrbitSettings(views=VIEWS, yaw_min=-75.0, yaw_max=75.0, pitch_min=-15.0, pitch_max=20.0,
                                           jitter_degrees=3.0, seed=2), resolution, resolution)
    requests = {"full": BundleRequest(rig.name, folder / "full", views, resolution, resolution, target=rig.name,
                                      random_expressions=EXPRESSIONS, seed=3),
                "rest": BundleRequest(rig.name, folder / "rest", views, resolution, resolution)}
    with blender_output_discarded():
        for request in requests.values():
            for _ in render_bundle(request, bpy.context.scene):
                pass
    return {"full": folder / "full", "neutral": neutral_proxy_dataset(folder / "full", folder / "rest", folder / "neutral")}


def neutral_proxy_dataset(posed: Path, rest: Path, out: Path) -> Path:
    """``posed``'s renders (targets, expression codes, landmarks) over the geometry passes of the same view at rest."""
    from blender_addon.formats.condition_bundle import read_bundle, write_bundle_manifest

    shutil.copytree(posed, out)
    rest_bundle = read_bundle(rest)
    rest_passes = {render.view: render.passes for render in rest_bundle.renders}
    bundle = read_bundle(out)
    for render in bundle.renders:
        for name in ("depth", "normal", "canonical", "mask"):
            shutil.copyfile(rest / rest_passes[render.view][name], out / render.passes[name])
    write_bundle_manifest(out, bundle)
    return out


def zeroed_expressions(data: Path, out: Path) -> Path:
    """A copy of the dataset whose expression codes are all zero (the renderer learns without them)."""
    from blender_addon.formats.condition_bundle import read_bundle, write_bundle_manifest

    shutil.copytree(data, out)
    bundle = read_bundle(out)
    bundle = replace(bundle, frames=[replace(frame, expression=[0.0] * len(frame.expression)) for frame in bundle.frames])
    write_bundle_manifest(out, bundle)
    return out


MODELS = (("direct", "direct", False), ("diffusion", "diffusion", False), ("direct_without_expression", "direct", True))
"""(report key, mode, expression codes zeroed)."""
SCORES = ("psnr", "ssim", "psnr_masked", "ssim_masked", "psnr_mouth")


def run(folder: Path, resolution: int, steps: int | None = None) -> dict:
    """Render both datasets, train every model on each (``steps``: the small renderer's unless given) and score
    the held-out renders; the report's section."""
    from backend.formats.configs import config_to_dict
    from backend.models.deferred.checkpoint import load_renderer
    from backend.progress import SilentProgress
    from training.deferred.dataset import HoldOut
    from training.deferred.evaluation import evaluate_renderer
    from training.deferred.small_renderer import SMALL_RENDERER, train_small_renderer

    steps = steps or SMALL_RENDERER.steps
    hold_out = HoldOut(HELD_OUT_VIEWS, FRAME_STRIDE)
    start = time.perf_counter()
    datasets = render_expression_datasets(folder / "deferred", resolution)
    report: dict = {"resolution": resolution, "views": VIEWS, "expressions": EXPRESSIONS, "held_out_views": list(HELD_OUT_VIEWS),
                    "held_out_expressions": f"every {FRAME_STRIDE}th", "steps": steps, "render_s": round(time.perf_counter() - start, 1)}
    for proxy, data in datasets.items():
        section: dict = {}
        for name, mode, zeroed in MODELS:
            used = zeroed_expressions(data, folder / "deferred" / f"{proxy}-zeroed") if zeroed else data
            run_dir = folder / "deferred" / "runs" / f"{proxy}-{name}"
            start = time.perf_counter()
            train_small_renderer(used, run_dir, mode=mode, steps=steps, hold_out=hold_out)
            seconds = round(time.perf_counter() - start, 1)
            summary = evaluate_renderer(load_renderer(run_dir, None), used, config_to_dict(hold_out), SilentProgress())
            section[name] = {**{key: _rounded(summary[key]) for key in SCORES}, "train_s": seconds}
            section["per_view_mean_image"] = {key: _rounded(summary["per_view_mean_image"][key]) for key in SCORES}
            section["held_out_renders"] = summary["renders"]
        report[proxy] = section
    return report


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
