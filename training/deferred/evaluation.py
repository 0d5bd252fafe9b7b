"""Image metrics of a trained deferred renderer on held-out renders of a deferred dataset.

PSNR and SSIM on RGB in [0, 1], over the whole image and over the mask only ("masked" variants:
the background, usually a flat colour, otherwise inflates both). Figures are the mean over renders.
DiffusionAvatars reports unmasked PSNR averaged per sequence on NeRSemble with its own crops and
colour correction; numbers from here are comparable only to runs of this same evaluation.

Beside the model, the same metrics for the baseline every renderer must beat: the per-view mean
image (the mean training target of the render's view; for a view never trained on, of the training
view whose camera is nearest). ``psnr_mouth`` is the PSNR in the mouth region: the disc around the
mouth-corner landmarks (radius ``MOUTH_RADIUS`` x their distance) inside the mask, in renders whose
both corners are visible; where the expression shows most, it tells whether the renderer follows it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from backend.errors import InvalidInput
from backend.formats.configs import config_from_dict
from backend.models.deferred.baking import save_image
from backend.models.deferred.renderer import DeferredRenderer
from backend.progress import Progress
from blender_addon.formats.files import atomic_write_json

from .dataset import DeferredDataset, HoldOut, load_deferred_bundle, split_renders

SPLITS = ("held-out", "all")
METRIC_KEYS = ("psnr", "ssim", "psnr_masked", "ssim_masked", "psnr_mouth")
MOUTH_CORNERS = ("mouth_L", "mouth_R")
MOUTH_RADIUS = 0.9
"""The mouth region's radius, in units of the distance between the mouth corners."""
METRICS_NAME = "evaluation.json"
PSNR_CAP = 100.0
"""Reported for identical images (whose PSNR is infinite), so reports stay plain JSON."""


def psnr(prediction: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB of (H, W, 3) images in [0, 1]; ``mask`` (H, W) restricts it."""
    squared = (prediction - target) ** 2
    mse = float(squared[mask > 0.5].mean()) if mask is not None else float(squared.mean())
    return PSNR_CAP if mse == 0.0 else min(PSNR_CAP, 10.0 * math.log10(1.0 / mse))


def ssim(prediction: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Structural similarity (Gaussian-free 7x7 windows, as scikit-image); masked: mean of the SSIM map inside ``mask``."""
    from skimage.metrics import structural_similarity

    mean, similarity_map = structural_similarity(prediction, target, channel_axis=2, data_range=1.0, full=True)
    if mask is None:
        return float(mean)
    return float(similarity_map.mean(axis=2)[mask > 0.5].mean())


def image_metrics(prediction: np.ndarray, target: np.ndarray, mask: np.ndarray, mouth: np.ndarray | None = None) -> dict[str, float | None]:
    """Whole-image, masked and mouth-region metrics; those of an empty (or absent) region are None."""
    has_mask = bool((mask > 0.5).any())
    return {
        "psnr": psnr(prediction, target),
        "ssim": ssim(prediction, target),
        "psnr_masked": psnr(prediction, target, mask) if has_mask else None,
        "ssim_masked": ssim(prediction, target, mask) if has_mask else None,
        "psnr_mouth": psnr(prediction, target, mouth) if mouth is not None and mouth.any() else None,
    }


def mouth_region(landmarks: dict[str, list[float]], mask: np.ndarray) -> np.ndarray | None:
    """The mouth region (H, W) of a render inside ``mask``; None when a mouth corner is absent or hidden."""
    corners = [landmarks.get(name) for name in MOUTH_CORNERS]
    if any(corner is None or corner[2] < 0.5 for corner in corners):
        return None
    (left_x, left_y, _), (right_x, right_y, _) = corners
    radius = max(1.5, MOUTH_RADIUS * math.hypot(left_x - right_x, left_y - right_y))
    rows, cols = np.mgrid[0:mask.shape[0], 0:mask.shape[1]] + 0.5
    disc = (cols - (left_x + right_x) / 2) ** 2 + (rows - (left_y + right_y) / 2) ** 2 <= radius ** 2
    return disc & (mask > 0.5)


def per_view_mean_images(dataset: DeferredDataset, training: list[int]) -> dict[str, torch.Tensor]:
    """View id -> the mean target (1, 3, H, W) of that view's training renders."""
    sums: dict[str, list] = {}
    for index in training:
        sums.setdefault(dataset.bundle.renders[index].view, []).append(dataset.full(index)[1])
    return {view: torch.cat(targets).mean(0, keepdim=True) for view, targets in sums.items()}


def nearest_view(bundle, view_id: str, candidates: set[str]) -> str:
    """``view_id`` itself when among ``candidates``, else the candidate whose camera is nearest."""
    if view_id in candidates:
        return view_id
    position = {view.id: np.array(view.label)[[3, 7, 11]] for view in bundle.views}
    return min(sorted(candidates), key=lambda other: float(np.linalg.norm(position[other] - position[view_id])))


def evaluate_renderer(renderer: DeferredRenderer, data_dir: Path, hold_out: dict | None, progress: Progress,
                      split: str = "held-out", out_dir: Path | None = None) -> dict:
    """Render the chosen renders of the dataset and compare with their targets.

    ``hold_out`` is the split the run was trained with (from its checkpoint); 'held-out' evaluates
    only renders it never trained on. With ``out_dir``, renders and ``evaluation.json`` are written there.
    """
    if split not in SPLITS:
        raise InvalidInput(f"unknown split {split!r}", f"use one of: {', '.join(SPLITS)}", field="split")
    bundle = load_deferred_bundle(Path(data_dir))
    dataset = DeferredDataset(data_dir, renderer.config.expression_names, bundle)
    training, chosen = split_renders(bundle, config_from_dict(HoldOut, hold_out or {}, "hold_out"))
    if split == "all":
        chosen = list(range(len(bundle.renders)))
    elif not chosen:
        raise InvalidInput("the run held no renders out of training, so there is nothing unseen to evaluate",
                           "evaluate with --split all, or train with --holdout-views / --holdout-frame-stride", field="split")
    means = per_view_mean_images(dataset, training)
    per_render, baseline = [], []
    for position, index in enumerate(chosen):
        progress.update(position / len(chosen), f"evaluating render {position + 1}/{len(chosen)}")
        conditions, target = dataset.full(index)
        image = renderer.render(conditions)[0].cpu()
        render = bundle.renders[index]
        if out_dir is not None:
            save_image(Path(out_dir) / "renders" / f"{render.view}_f{render.frame:05d}.png", image)
        mask = conditions.mask[0].numpy()
        mouth = mouth_region(render.landmarks, mask)
        metrics = image_metrics(_to_unit(image), _to_unit(target[0]), mask, mouth)
        per_render.append({"view": render.view, "frame": render.frame, **metrics})
        mean_image = means[nearest_view(bundle, render.view, set(means))][0]
        baseline.append(image_metrics(_to_unit(mean_image), _to_unit(target[0]), mask, mouth))
    summary = {"split": split, "renders": len(per_render), **_means(per_render), "per_view_mean_image": _means(baseline),
               "per_render": per_render}
    if out_dir is not None:
        atomic_write_json(Path(out_dir) / METRICS_NAME, summary)
    progress.update(1.0, "evaluation done")
    return summary


def _to_unit(image: torch.Tensor) -> np.ndarray:
    return ((image.permute(1, 2, 0).numpy().astype(np.float64) + 1.0) / 2.0).clip(0.0, 1.0)


def _means(rows: list[dict]) -> dict[str, float | None]:
    means = {}
    for key in METRIC_KEYS:
        values = [row[key] for row in rows if row[key] is not None]
        means[key] = float(np.mean(values)) if values else None
    return means
