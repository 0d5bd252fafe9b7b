"""The embedded default renderer: the small from-scratch deferred renderer trained on the demo head.

Steps: render the demo head over random expressions (``training.synthetic_expressions``, Cycles), train
``train_small_renderer`` on it with that set's views and expressions held out (resumable: running again
continues the run in the work folder), score the held-out renders with ``evaluate`` beside the per-view
mean image, then write the checkpoint, a picture of held-out renders and MODEL_CARD.md into the package.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from training.synthetic_expressions import ExpressionSetSettings

from .time_budget import BudgetedProgress, TimeBudgetSpent, deadline_after

CARD_NAME = "MODEL_CARD.md"
REPORT_NAME = "training_report.json"
SAMPLES_NAME = "samples.png"
SCORES = ("psnr", "ssim", "psnr_masked", "ssim_masked", "psnr_mouth")
SAMPLE_RENDERS = 6


@dataclass(frozen=True)
class DeferredDefaultSettings:
    data: ExpressionSetSettings
    steps: int


FULL = DeferredDefaultSettings(ExpressionSetSettings(views=10, expressions=30, resolution=64), steps=1500)
QUICK = DeferredDefaultSettings(ExpressionSetSettings(views=3, expressions=5, resolution=16, held_out_views=("view_001",)), steps=4)
"""Every step at the smallest size, to check the pipeline (tests, ``train-defaults --quick``)."""


def build_deferred_default(work: Path, out: Path, quick: bool = False, progress=None, minutes: float | None = None) -> dict:
    """Render, train, score and write the embedded renderer into ``out``; returns the training report.
    ``minutes``: stop training after this long (the run resumes from there next time) and write what it reached."""
    import torch

    from backend.device import device_name
    from backend.formats.configs import config_to_dict
    from backend.models.deferred.checkpoint import load_renderer, read_renderer_config, save_renderer
    from backend.progress import SilentProgress
    from training.deferred.evaluation import evaluate_renderer
    from training.deferred.small_renderer import SMALL_RENDERER, train_small_renderer

    settings = QUICK if quick else FULL
    say = progress or (lambda message: None)
    record = _read_record(work)
    data, render_s = _expression_set(work / "data", settings.data)
    if render_s:
        record["render_seconds"] = round(render_s, 1)
    say(f"demo head over {settings.data.expressions} expressions x {settings.data.views} views ({record['render_seconds']:.0f} s of rendering)")

    run = work / "run"
    steps_before = _steps_trained(run)
    start = time.perf_counter()
    try:
        train_small_renderer(data, run, BudgetedProgress(say, deadline_after(minutes), _hundredth_step), steps=settings.steps,
                             hold_out=settings.data.hold_out)
    except TimeBudgetSpent:
        say(f"stopped after {minutes:g} min: writing what the run reached (running again resumes it)")
    train_s = time.perf_counter() - start
    if not (run / "config.json").is_file():
        from backend.errors import InvalidInput

        raise InvalidInput("the time was spent before the renderer's first snapshot", "run again with more --minutes", field="minutes")
    steps = _steps_trained(run)
    if steps > steps_before:
        record["trained_steps"] += steps - steps_before
        record["training_seconds"] = round(record["training_seconds"] + train_s, 1)
    _write_record(work, record)

    _, extra = read_renderer_config(run)
    save_renderer(out, load_renderer(run, None, dtype=torch.float16),
                  {**extra, "dataset": "the demo head over random expressions (training/synthetic_expressions.py), see MODEL_CARD.md"})
    renderer = load_renderer(out, None)  # what ships (float16 weights) is what is scored
    evaluation = evaluate_renderer(renderer, data, config_to_dict(settings.data.hold_out), SilentProgress(), out_dir=work / "evaluation")
    report = {
        "data": {**asdict(settings.data), "renders": settings.data.views * settings.data.expressions,
                 "render_seconds": record["render_seconds"]},
        "training": {"steps": steps, "planned_steps": settings.steps, "batch_size": SMALL_RENDERER.batch_size,
                     "steps_this_call": steps - steps_before, "training_seconds": record["training_seconds"],
                     "seconds_per_step": (round(record["training_seconds"] / record["trained_steps"], 3)
                                          if record["trained_steps"] else None),
                     "device": device_name(torch.device("cpu"))},
        "parameters": sum(p.numel() for p in renderer.parameters()),
        "held_out": {"renders": evaluation["renders"], "renderer": _rounded(evaluation),
                     "per_view_mean_image": _rounded(evaluation["per_view_mean_image"])},
    }
    write_samples(out / SAMPLES_NAME, data, work / "evaluation" / "renders", evaluation["per_render"])
    (out / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / CARD_NAME).write_text(model_card(report, settings), encoding="utf-8")
    held_out = report["held_out"]
    say(f"wrote {out}: held-out masked PSNR {held_out['renderer']['psnr_masked']:.2f} dB "
        f"(per-view mean image {held_out['per_view_mean_image']['psnr_masked']:.2f} dB)")
    return report


def _expression_set(folder: Path, settings: ExpressionSetSettings) -> tuple[Path, float]:
    """The rendered dataset (kept from an earlier call of the build when it is complete) and the seconds rendering took."""
    from blender_addon.formats.condition_bundle import MANIFEST_NAME

    if (folder / "full" / MANIFEST_NAME).is_file():
        return folder / "full", 0.0
    from training.synthetic_expressions import render_expression_set

    shutil.rmtree(folder, ignore_errors=True)  # a render cut short: start it again
    start = time.perf_counter()
    datasets = render_expression_set(folder, settings)
    return datasets["full"], time.perf_counter() - start


RECORD_NAME = "build_record.json"
"""In the work folder: seconds spent rendering and training over every call of the build (a resumed build
reports the whole run's time, not only its own call's)."""


def _read_record(work: Path) -> dict:
    path = work / RECORD_NAME
    record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return {"render_seconds": 0.0, "trained_steps": 0, "training_seconds": 0.0, **record}


def _write_record(work: Path, record: dict) -> None:
    from blender_addon.formats.files import atomic_write_json

    atomic_write_json(work / RECORD_NAME, record)


def _steps_trained(run: Path) -> int:
    from backend.models.deferred.checkpoint import read_renderer_config

    return int(read_renderer_config(run)[1].get("steps_trained", 0)) if (run / "config.json").is_file() else 0


def _hundredth_step(stage: str) -> bool:
    """Report every 100th training step (the trainer's stage reads 'training step N/M, loss L')."""
    match = re.match(r"training step (\d+)/", stage)
    return match is not None and int(match.group(1)) % 100 == 0


def _rounded(scores: dict) -> dict:
    return {key: None if scores[key] is None else round(scores[key], 3) for key in SCORES}


def write_samples(path: Path, data: Path, renders: Path, per_render: list[dict]) -> Path:
    """Held-out renders of different views (the first of each), a row each: the normal pass the renderer saw, the
    character (target) and the render."""
    from PIL import Image

    from blender_addon.formats.condition_bundle import read_bundle

    bundle = read_bundle(data)
    passes = {(render.view, render.frame): render.passes for render in bundle.renders}
    first_of_view = {}
    for row in per_render:
        first_of_view.setdefault(row["view"], row)
    rows = []
    for row in sorted(first_of_view.values(), key=lambda row: row["view"])[:SAMPLE_RENDERS]:
        key = (row["view"], row["frame"])
        tiles = [_normal_image(data / passes[key]["normal"]),
                 Image.open(data / passes[key]["target"]).convert("RGB"),
                 Image.open(renders / f"{row['view']}_f{row['frame']:05d}.png").convert("RGB")]
        rows.append(tiles)
    size = max(rows[0][1].size) * 2
    sheet = Image.new("RGB", (3 * size, len(rows) * size))
    for y, tiles in enumerate(rows):
        for x, tile in enumerate(tiles):
            sheet.paste(tile.resize((size, size), Image.NEAREST), (x * size, y * size))
    sheet.save(path)
    return path


def _normal_image(path: Path):
    """A normal pass (``.npy``, unit vectors) as the usual RGB picture of normals."""
    import numpy as np
    from PIL import Image

    normal = np.load(path)
    return Image.fromarray((np.clip(normal * 0.5 + 0.5, 0.0, 1.0) * 255).astype(np.uint8))


def model_card(report: dict, settings: DeferredDefaultSettings) -> str:
    data, training, held_out = report["data"], report["training"], report["held_out"]
    mine, mean = held_out["renderer"], held_out["per_view_mean_image"]
    row = lambda name, s: (f"| {name} | {s['psnr']:.2f} dB | {s['psnr_masked']:.2f} dB | {s['ssim_masked']:.3f} "  # noqa: E731
                           f"| {s['psnr_mouth']:.2f} dB |" if s["psnr_mouth"] is not None else
                           f"| {name} | {s['psnr']:.2f} dB | {s['psnr_masked']:.2f} dB | {s['ssim_masked']:.3f} | - |")
    per_step = training["seconds_per_step"]
    timing = (f"{training['training_seconds'] / 60:.0f} min ({per_step:.2f} s per step) on {training['device']}" if per_step
              else "not measured (no call of this build trained a step")
    return "\n".join([
        "# Embedded default renderer (deferred neural renderer, small, from scratch)",
        "",
        "The deferred neural renderer (`backend/models/deferred`, DiffusionAvatars' conditions: depth, normals, canonical",
        "coordinates and tri-plane features sampled at them, expression code through cross-attention) in its",
        "no-prior mode: the UNet trained from scratch in pixel space, one direct pass per frame, no downloaded weights.",
        "`avatar-foundry animate`, the server's animate job and the panel's Animate use it when no renderer is given.",
        "It learned one character, the demo head (`blender_addon/blender/demo_head.py`): on your own character, train",
        "a renderer on its renders (Render Deferred Dataset, Train Renderer).",
        "",
        "## Data",
        "",
        f"The average demo head rendered by Cycles through the add-on's \"render training data\"",
        f"(`training/synthetic_expressions.py`): {data['views']} orbit cameras (yaw ±75°, pitch -15..20°) x {data['expressions']} random",
        f"rig expressions (jaw, smile, blink, brow and pucker keys, face bones) at {data['resolution']}²: {data['renders']} renders",
        f"(rendering took {data['render_seconds']:.0f} s). Held out of training: views {', '.join(data['held_out_views'])} and every",
        f"{data['held_out_frame_stride']}th expression ({held_out['renders']} renders).",
        "",
        "## Model and training",
        "",
        f"`training/deferred/small_renderer.py` (`SMALL_RENDERER`): UNet widths 32/64/96, tri-planes 64² x 8 channels,",
        f"4 expression tokens, batch {training['batch_size']}, lr 1e-3 (networks) and 1e-2 (planes), 50 warm-up steps then",
        f"cosine; {training['steps']:,} steps of {training['planned_steps']:,}; {report['parameters']:,} parameters (stored as float16 safetensors, run in float32).",
        f"Wall time: {timing}, with OMP_NUM_THREADS=1 and `nice` on a 2-core machine shared with other work;",
        "not measured on a GPU: none was available to this build).",
        "",
        "## Quality on the held-out renders",
        "",
        "`avatar-foundry evaluate`'s figures (`training/deferred/evaluation.py`); the per-view mean image is the mean",
        "training target of the same (or nearest) view. Masked: inside the head mask; mouth: the disc around the",
        "mouth-corner landmarks.",
        "",
        "| | PSNR | PSNR (masked) | SSIM (masked) | mouth PSNR |",
        "| --- | --- | --- | --- | --- |",
        row("this renderer", mine),
        row("baseline: per-view mean image", mean),
        "",
        f"`{SAMPLES_NAME}`: held-out renders, a row each: the normal pass, the character, this renderer's frame.",
        "",
        "## Limits",
        "",
        f"{data['resolution']}² frames of one character. On another character it paints the demo head's look onto that",
        "character's geometry, and rigs whose expression names differ from the demo head's are refused (it names them).",
        "",
    ])
