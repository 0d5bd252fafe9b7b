"""The deferred renderer's half of ``bench quality``: does a renderer trained from scratch learn the character?

Data: ``training.synthetic_expressions`` (the demo head with painted lips over 150 random expressions, rendered
by Cycles through the add-on's "render training data"), with its held-out split: two whole views and every
fifth expression; scores are on every held-out render. The lips matter: the plain demo head's mouth is skin
coloured, so its expressions barely change the mouth's pixels (on the training views the per-view mean image
is within 43 dB of them there) and no mouth-region score could show an expression being learned.

Two proxies, because where the expression shows decides what the expression code has to carry:

- ``full``: the conditions come from the posed head itself, so the geometry passes already show the
  expression (the add-on's dataset as written);
- ``neutral``: the geometry passes come from the head at rest, the target still shows the expression,
  so only the expression code can tell the renderer the expression (a coarse proxy, as a tracked
  template is in DiffusionAvatars).

Models (``prior='none'``: trained from scratch in pixel space, no downloaded weights; the expression code
also in the timestep embedding, so that it reaches the full-resolution levels, which carry no attention):
``direct`` (one pass) and ``diffusion`` (sampled, 20 DDPM steps), and the direct model trained and
scored with every expression code zeroed ("w/o expression conditioning"). Scores and the per-view
mean image baseline are ``avatar-foundry evaluate``'s (training/deferred/evaluation.py), mouth region included.
"""

from __future__ import annotations

import time
from pathlib import Path

from training.synthetic_expressions import PAINTED_MOUTH, ExpressionSetSettings, render_expression_set, zeroed_expressions

MODELS = (("direct", "direct", False), ("diffusion", "diffusion", False), ("direct_without_expression", "direct", True))
"""(report key, mode, expression codes zeroed)."""
SCORES = ("psnr", "ssim", "psnr_masked", "ssim_masked", "psnr_mouth")
EXPRESSIONS = 150
"""Random expressions rendered (every fifth held out): with the 30 of the embedded renderer's data, 24 training
expressions of 14 moving channels leave the held-out ones far from any seen; 150 cost 2.4 min of Cycles at 64²
and nothing more per training step."""


def run(folder: Path, resolution: int, steps: int | None = None) -> dict:
    """Render both datasets, train every model on each (``steps``: the small renderer's unless given) and score
    the held-out renders; the report's section."""
    from backend.formats.configs import config_to_dict
    from backend.models.deferred.checkpoint import load_renderer
    from backend.progress import SilentProgress
    from training.deferred.evaluation import evaluate_renderer
    from training.deferred.small_renderer import SMALL_RENDERER, train_small_renderer

    steps = steps or SMALL_RENDERER.steps
    settings = ExpressionSetSettings(resolution=resolution, expressions=EXPRESSIONS, look=PAINTED_MOUTH)
    hold_out = settings.hold_out
    start = time.perf_counter()
    datasets = render_expression_set(folder / "deferred", settings, neutral=True)
    report: dict = {"resolution": resolution, "views": settings.views, "expressions": settings.expressions,
                    "held_out_views": list(settings.held_out_views), "held_out_expressions": f"every {settings.held_out_frame_stride}th",
                    "steps": steps, "render_s": round(time.perf_counter() - start, 1)}
    for proxy, data in datasets.items():
        section: dict = {}
        for name, mode, zeroed in MODELS:
            used = zeroed_expressions(data, folder / "deferred" / f"{proxy}-zeroed") if zeroed else data
            run_dir = folder / "deferred" / "runs" / f"{proxy}-{name}"
            start = time.perf_counter()
            train_small_renderer(used, run_dir, mode=mode, steps=steps, hold_out=hold_out, expression_in_time_embedding=True)
            seconds = round(time.perf_counter() - start, 1)
            summary = evaluate_renderer(load_renderer(run_dir, None), used, config_to_dict(hold_out), SilentProgress())
            section[name] = {**{key: _rounded(summary[key]) for key in SCORES}, "train_s": seconds}
            section["per_view_mean_image"] = {key: _rounded(summary["per_view_mean_image"][key]) for key in SCORES}
            section["held_out_renders"] = summary["renders"]
        report[proxy] = section
    return report


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
