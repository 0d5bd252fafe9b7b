"""The embedded default generator: a small EG3D trained on Cycles renders of varied demo heads.

Steps (each reproducible from its seed): render the head set (``training.synthetic_heads``), train the
EG3D trainer on it (resumable: running again continues the run in the work folder), measure the EMA
generator's mean avatar (psi = 0) against the average demo head with ``backend.geometry.shape_metrics``
beside the box-ellipsoid baseline, then write the checkpoint and its MODEL_CARD.md into the package.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from backend.models.eg3d.generator import GeneratorConfig, tiny_generator_config
from training.eg3d.config import TrainingConfig, tiny_config
from training.synthetic_heads import HeadSetSettings, TrueHead

from .time_budget import BudgetedProgress, TimeBudgetSpent, deadline_after

CARD_NAME = "MODEL_CARD.md"
REPORT_NAME = "training_report.json"
SAMPLES_NAME = "samples.png"


@dataclass(frozen=True)
class Eg3dDefaultSettings:
    heads: HeadSetSettings
    total_images: int


FULL = Eg3dDefaultSettings(HeadSetSettings(heads=64, views_per_head=16), total_images=48_000)
QUICK = Eg3dDefaultSettings(HeadSetSettings(heads=2, views_per_head=4), total_images=48)
"""Every step at the smallest size, to check the pipeline (tests, ``train-defaults --quick``)."""


def default_generator_config() -> GeneratorConfig:
    """32² output like the tiny preset, with planes 32², 16 channels and a wider backbone (~1.4 MB of
    float32 weights): what trains in about half an hour on one CPU core."""
    return tiny_generator_config(z_dim=64, w_dim=64, plane_resolution=32, plane_channels=16, channel_base=4096, channel_max=64,
                                 decoder_hidden=32, decoder_channels=16, sr_channel_base=1024, sr_channel_max=32)


def default_training_config(total_images: int) -> TrainingConfig:
    return replace(tiny_config(), generator=default_generator_config(), batch_size=8, total_images=total_images,
                   discriminator_channel_base=1024, discriminator_channel_max=64, discriminator_cmap_dim=64,
                   blur_fade_images=min(10_000, total_images), ema_half_life_images=2_000, tick_images=min(2_000, total_images),
                   snapshot_ticks=1, grid_seeds=4, seed=0)


def mean_avatar_scores(generator, truth: TrueHead) -> dict[str, float]:
    """Chamfer-L1, occupancy IoU and landmark distance of the generator's mean avatar (psi = 0) against the
    average demo head, each as a fraction of the head's bounding-box diagonal."""
    import torch

    from backend.avatars import GeneratorField
    from backend.geometry.mesh_extraction import MeshSettings, mesh_from_field

    ws = generator.mapping(torch.zeros(1, generator.z_dim), truncation_psi=0.0)
    mesh = mesh_from_field(GeneratorField(generator, ws), MeshSettings(grid_resolution=96, max_faces=None))
    return shape_scores(mesh, truth)


def shape_scores(mesh, truth: TrueHead) -> dict[str, float]:
    from backend.geometry.shape_metrics import chamfer_distance, landmark_distance, occupancy_iou

    true_mesh = truth.mesh()
    return {"chamfer_fraction": round(chamfer_distance(mesh, true_mesh), 4), "occupancy_iou": round(occupancy_iou(mesh, true_mesh), 4),
            "landmark_distance_fraction": round(landmark_distance(mesh, truth.landmarks, true_mesh), 4)}


def build_eg3d_default(work: Path, out: Path, quick: bool = False, progress=None, minutes: float | None = None) -> dict:
    """Render, train, measure and write the embedded generator into ``out``; returns the training report.
    ``minutes``: stop training after this long (the run resumes from there next time) and write what it reached."""
    import torch

    from backend.device import device_name
    from backend.geometry.shape_metrics import box_ellipsoid
    from backend.models.eg3d.generator import load_generator, save_generator
    from training.eg3d.trainer import train_eg3d
    from training.synthetic_heads import render_head_set

    settings = QUICK if quick else FULL
    say = progress or (lambda message: None)
    start = time.perf_counter()
    dataset, heads = render_head_set(work / "heads", settings.heads)
    render_s = time.perf_counter() - start
    say(f"rendered {settings.heads.heads} heads x {settings.heads.views_per_head} views in {render_s:.0f} s")

    start = time.perf_counter()
    config = default_training_config(settings.total_images)
    run = work / "run"
    images_before = _images_already_seen(run)
    try:
        train_eg3d(dataset, run, config, progress=BudgetedProgress(say, deadline_after(minutes), lambda stage: "D accuracy" in stage))
    except TimeBudgetSpent:
        say(f"stopped after {minutes:g} min: writing what the run reached (running again resumes it)")
    train_s = time.perf_counter() - start
    images_seen, steps = _images_already_seen(run), _steps_done(run)
    rate = (images_seen - images_before) / train_s if images_seen - images_before >= config.tick_images else None  # else mostly start-up

    generator = load_generator(run)
    average_head = heads[0]
    report = {
        "data": {**asdict(settings.heads), "images": settings.heads.heads * settings.heads.views_per_head, "render_seconds": round(render_s, 1)},
        "training": {"images_seen": images_seen, "planned_images": config.total_images, "steps": steps, "batch_size": config.batch_size,
                     "images_this_call": images_seen - images_before, "seconds_this_call": round(train_s, 1),
                     "images_per_second": round(rate, 2) if rate else None,
                     "minutes_for_all_images": round(images_seen / rate / 60, 1) if rate else None,
                     "device": device_name(torch.device("cpu")), "last_tick": _last_tick(run)},
        "parameters": sum(p.numel() for p in generator.parameters()),
        "mean_avatar_vs_average_head": mean_avatar_scores(generator, average_head),
        "baseline_box_ellipsoid": shape_scores(box_ellipsoid(average_head.mesh()), average_head),
    }
    save_generator(out, generator, extra={"images_seen": images_seen, "step": steps,
                                          "dataset": "synthetic demo heads (training/synthetic_heads.py), see MODEL_CARD.md",
                                          "training_config": asdict(config)})
    grids = sorted((run / "samples").glob("grid_*.png"))
    if grids:
        shutil.copyfile(grids[-1], out / SAMPLES_NAME)
    (out / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / CARD_NAME).write_text(model_card(report, config), encoding="utf-8")
    say(f"wrote {out}: mean avatar Chamfer {report['mean_avatar_vs_average_head']['chamfer_fraction']:.2%} of the head's size")
    return report


def _images_already_seen(run: Path) -> int:
    """Images an earlier, interrupted call of the same run trained on (0 for a new run)."""
    from backend.models.eg3d.generator import read_generator_extra

    return int(read_generator_extra(run).get("images_seen", 0)) if (run / "config.json").is_file() else 0


def _steps_done(run: Path) -> int:
    from backend.models.eg3d.generator import read_generator_extra

    return int(read_generator_extra(run).get("step", 0))


def _last_tick(run: Path) -> dict | None:
    """The last line of the run's stats.jsonl: losses and D statistics of its last tick."""
    lines = (run / "stats.jsonl").read_text(encoding="utf-8").splitlines() if (run / "stats.jsonl").is_file() else []
    return json.loads(lines[-1]) if lines else None


def _minutes(training: dict) -> str:
    if not training["minutes_for_all_images"]:
        return "not measured (the call that wrote this trained less than a tick)"
    if training["images_this_call"] == training["images_seen"]:
        return f"{training['minutes_for_all_images']:.1f} min ({training['images_per_second']:.1f} images/s)"
    return (f"{training['minutes_for_all_images']:.1f} min for all images at the {training['images_per_second']:.1f} images/s of "
            f"the call that finished the run ({training['images_this_call']:,} images in {training['seconds_this_call'] / 60:.1f} min; "
            "an earlier call trained the rest)")


def model_card(report: dict, config: TrainingConfig) -> str:
    data, training = report["data"], report["training"]
    scores, baseline = report["mean_avatar_vs_average_head"], report["baseline_box_ellipsoid"]
    generator = config.generator
    row = lambda name, s: (f"| {name} | {s['chamfer_fraction']:.2%} | {s['occupancy_iou']:.3f} "  # noqa: E731
                           f"| {s['landmark_distance_fraction']:.2%} |")
    return "\n".join([
        "# Embedded default generator (EG3D, small)",
        "",
        "A tri-plane 3D GAN (EG3D, as `backend/models/eg3d`) trained by this project on its own synthetic heads, with",
        "no downloaded weights. `avatar-foundry generate`, the server's generate-avatar job and the panel's Generate",
        "Avatar use it when no generator is given; `python build.py train-defaults` makes it again.",
        "",
        "## Data",
        "",
        f"{data['heads']} demo heads (`blender_addon/blender/demo_head.py`): head 0 the average head, the others with",
        f"identities `sample_identity(seed + k)` (head width/height/depth, jaw, chin, nose length and width, eye",
        "spacing, ears, brow ridge) and looks `sample_appearance(seed + k)` (skin tone, hair colour, hairline and",
        f"hair drop, eye colour), seed {data['seed']}. Each rendered by Cycles (the add-on's condition render) from",
        f"{data['views_per_head']} orbit cameras (full yaw, pitch ±30°, {data['jitter_degrees']}° jitter) at {data['resolution']}²,",
        f"matted on black with the rendered head mask (`backend/multiview/matting.py`) and reduced to",
        f"{data['dataset_resolution']}²: {data['images']} images (rendering took {data['render_seconds']:.0f} s).",
        "",
        "## Model and training",
        "",
        f"Generator: planes {generator.plane_resolution}² x {generator.plane_channels} channels, z/w {generator.z_dim}, neural rendering",
        f"{generator.neural_rendering_resolution}², output {generator.output_resolution}², {report['parameters']:,} parameters (float32 safetensors).",
        f"Trainer `training/eg3d/trainer.py`, batch {config.batch_size}, G lr {config.g_lr}, D lr {config.d_lr}, R1 gamma",
        f"{config.r1_gamma}, EMA half-life {config.ema_half_life_images} images, seed {config.seed}:",
        f"{training['images_seen']:,} images seen ({training['steps']:,} steps; {training['planned_images']:,} planned) on {training['device']}.",
        f"Wall time: {_minutes(training)}, with OMP_NUM_THREADS=1 and `nice` on a 2-core machine shared with",
        f"other work (not measured on a GPU: none was available to this build). Fixed seeds (rows) x yaws",
        f"0/90/180/-90 (columns) at the run's last tick: `{SAMPLES_NAME}`.",
        "",
        "## Quality",
        "",
        "The mean avatar (psi = 0) meshed at a 96³ grid against the average demo head; distances are fractions of",
        "the head's bounding-box diagonal (`backend/geometry/shape_metrics.py`), beside the ellipsoid inscribed in",
        "the head's box (what knowing only where the head is gives).",
        "",
        "| | Chamfer-L1 | occupancy IoU | landmark distance |",
        "| --- | --- | --- | --- |",
        row("mean avatar of this generator", scores),
        row("baseline: box ellipsoid", baseline),
        "",
        "No held-out image PSNR: a GAN samples new heads rather than reproducing given views.",
        "",
        "## Limits",
        "",
        f"{generator.output_resolution}² images and a small network: coarse heads in the demo head's style (skin, a hair cap,",
        "eyes), not faces. Dark hair matted on black looks like the background, so where the hair is dark the back of",
        "the head can come out thin (below the mesh's density level): the Chamfer figure shows it, the landmark",
        "distance measures the face. Painting multi-view images of your own style needs real Stable Diffusion weights.",
        "",
    ])
