"""Quality on held-out data, against the true head: what a reviewer of the papers would ask first.

The demo head is rendered by Cycles (the add-on's own condition render, with the character as the
target pass) from training cameras and from held-out cameras at other yaws and pitches. Then:

- **EG3D fit**: one tri-plane field fitted through the project's volume renderer to the training
  views (``training/eg3d/triplane_fit.py``); PSNR/SSIM (whole and inside the head mask) on the held-out
  views, beside the mean training image (the baseline any model must beat), and the fitted geometry.
- **3D GAN**: the tiny EG3D preset trained on the same views (matted on black, as the multiview stage
  mats painted images); its mean avatar's mesh against the true head mesh.
- Geometry (``backend/geometry/shape_metrics.py``): Chamfer-L1, occupancy IoU and landmark distance,
  each as a fraction of the true head's bounding-box diagonal, beside the ellipsoid inscribed in the
  head's box (what a model knowing only where the head is would give).

- **Deferred renderer** (quality_deferred.py): the renderer trained from scratch on the demo head with
  painted lips over 150 random expressions, held-out views and expressions, against the per-view mean image and against
  itself without expression conditioning, with a mouth-region PSNR.

Sizes come from the environment so a GPU run can go further: ``AVATAR_FOUNDRY_QUALITY_RESOLUTION``
(64), ``_FIT_STEPS`` (600), ``_GAN_IMAGES`` (4000), ``_DEFERRED_RESOLUTION`` (32), ``_DEFERRED_STEPS``
(the small renderer's 1500; six models of about 8 min each on one CPU thread at 32²). The figures that show the
expression code at work (RESULTS.md) took ``_DEFERRED_RESOLUTION=64 _DEFERRED_STEPS=3500``: about 67 min per model.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality_deferred  # noqa: E402

TRAIN_VIEWS = 36
HELD_OUT_VIEWS = 12


def setting(name: str, default: int) -> int:
    return int(os.environ.get(f"AVATAR_FOUNDRY_QUALITY_{name}", default))


def render_views(folder: Path, resolution: int):
    """Cycles renders of the demo head from training and held-out orbits; the true mesh and landmarks."""
    from blender_addon.core.view_plan import OrbitSettings
    from training.synthetic_heads import render_head

    orbits = {"train": OrbitSettings(views=TRAIN_VIEWS, jitter_degrees=4.0, seed=0),
              "held_out": OrbitSettings(views=HELD_OUT_VIEWS, yaw_min=-165.0, yaw_max=195.0, pitch_min=-20.0, pitch_max=25.0, seed=1)}
    truth = None
    for split, orbit in orbits.items():
        truth = render_head(folder / split, orbit, resolution)
    return truth


def image_scores(predictions, targets, masks) -> dict[str, float]:
    from training.deferred.evaluation import image_metrics

    unit = lambda image: ((image.permute(1, 2, 0).double().numpy() + 1) / 2).clip(0, 1)  # noqa: E731
    rows = [image_metrics(unit(p), unit(t), m) for p, t, m in zip(predictions, targets, masks)]
    means = {key: [row[key] for row in rows if row[key] is not None] for key in rows[0]}
    return {key: round(float(np.mean(values)), 3) for key, values in means.items() if values}


def shape_scores(mesh, truth, landmarks) -> dict[str, float]:
    from backend.geometry.shape_metrics import chamfer_distance, landmark_distance, occupancy_iou

    return {"chamfer_fraction": round(chamfer_distance(mesh, truth), 4), "occupancy_iou": round(occupancy_iou(mesh, truth), 4),
            "landmark_distance_fraction": round(landmark_distance(mesh, landmarks, truth), 4)}


def mesh_of(field):
    from backend.geometry.mesh_extraction import MeshSettings, mesh_from_field

    return mesh_from_field(field, MeshSettings(grid_resolution=96, max_faces=None))


def run(device) -> dict:
    import torch

    from backend.avatars import GeneratorField
    from backend.geometry.shape_metrics import box_ellipsoid
    from training.eg3d.config import tiny_config
    from training.eg3d.trainer import train_eg3d
    from training.eg3d.triplane_fit import FitSettings, FittedField, fit_triplane
    from training.datasets.rendered_characters import matted_bundle, write_gan_dataset

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    resolution = setting("RESOLUTION", 64)
    report: dict = {"resolution": resolution, "train_views": TRAIN_VIEWS, "held_out_views": HELD_OUT_VIEWS}
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        start = time.perf_counter()
        true_head = render_views(folder, resolution)
        truth, landmarks = true_head.mesh(), true_head.landmarks
        report["render_s"] = round(time.perf_counter() - start, 1)
        train_images, _, train_cameras = matted_bundle(folder / "train")
        held_images, held_masks, held_cameras = matted_bundle(folder / "held_out")

        report["baseline_mean_image"] = image_scores(train_images.mean(0, keepdim=True).expand_as(held_images), held_images, held_masks)
        report["baseline_box_ellipsoid"] = shape_scores(box_ellipsoid(truth), truth, landmarks)

        start = time.perf_counter()
        fit_settings = FitSettings(steps=setting("FIT_STEPS", 600))
        field = fit_triplane(train_images, train_cameras, fit_settings)
        with torch.no_grad():
            fitted = torch.cat([field.render(held_cameras[i:i + 4], resolution) for i in range(0, len(held_cameras), 4)])
        report["eg3d_fit"] = {**image_scores(fitted, held_images, held_masks), **shape_scores(mesh_of(FittedField(field)), truth, landmarks),
                              "steps": fit_settings.steps, "seconds": round(time.perf_counter() - start, 1)}

        start = time.perf_counter()
        gan_images = torch.nn.functional.interpolate(train_images, size=32, mode="area")
        dataset = write_gan_dataset(folder / "gan-data", gan_images, train_cameras)
        config = replace(tiny_config(), total_images=setting("GAN_IMAGES", 4000), tick_images=1000, snapshot_ticks=100)
        result = train_eg3d(dataset, folder / "gan-run", config)
        generator = result.generator_ema
        ws = generator.mapping(torch.zeros(1, generator.z_dim), truncation_psi=0.0)
        report["gan_tiny"] = {**shape_scores(mesh_of(GeneratorField(generator, ws)), truth, landmarks),
                              "images_seen": result.images_seen, "seconds": round(time.perf_counter() - start, 1)}
        report["deferred"] = quality_deferred.run(folder, setting("DEFERRED_RESOLUTION", 32), setting("DEFERRED_STEPS", 0) or None)
    return report
