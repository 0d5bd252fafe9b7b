"""Image metrics of a trained deferred renderer on held-out renders of a deferred dataset.

PSNR and SSIM on RGB in [0, 1], over the whole image and over the mask only ("masked" variants:
the background, usually a flat colour, otherwise inflates both). Figures are the mean over renders.
DiffusionAvatars reports unmasked PSNR averaged per sequence on NeRSemble with its own crops and
colour correction; numbers from here are comparable only to runs of this same evaluation.
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


def image_metrics(prediction: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict[str, float | None]:
    """Whole-image and masked PSNR/SSIM; the masked ones are None for an empty mask."""
    has_mask = bool((mask > 0.5).any())
    return {
        "psnr": psnr(prediction, target),
        "ssim": ssim(prediction, target),
        "psnr_masked": psnr(prediction, target, mask) if has_mask else None,
        "ssim_masked": ssim(prediction, target, mask) if has_mask else None,
    }


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
    chosen = list(range(len(bundle.renders)))
    if split == "held-out":
        _, chosen = split_renders(bundle, config_from_dict(HoldOut, hold_out or {}, "hold_out"))
        if not chosen:
            raise InvalidInput("the run held no renders out of training, so there is nothing unseen to evaluate",
                               "evaluate with --split all, or train with --holdout-views / --holdout-frame-stride", field="split")
    per_render = []
    for position, index in enumerate(chosen):
        progress.update(position / len(chosen), f"evaluating render {position + 1}/{len(chosen)}")
        conditions, target = dataset.full(index)
        image = renderer.render(conditions)[0].cpu()
        render = bundle.renders[index]
        if out_dir is not None:
            save_image(Path(out_dir) / "renders" / f"{render.view}_f{render.frame:05d}.png", image)
        metrics = image_metrics(_to_unit(image), _to_unit(target[0]), conditions.mask[0].numpy())
        per_render.append({"view": render.view, "frame": render.frame, **metrics})
    summary = {"split": split, "renders": len(per_render), **_means(per_render), "per_render": per_render}
    if out_dir is not None:
        atomic_write_json(Path(out_dir) / METRICS_NAME, summary)
    progress.update(1.0, "evaluation done")
    return summary


def _to_unit(image: torch.Tensor) -> np.ndarray:
    return ((image.permute(1, 2, 0).numpy().astype(np.float64) + 1.0) / 2.0).clip(0.0, 1.0)


def _means(rows: list[dict]) -> dict[str, float | None]:
    means = {}
    for key in ("psnr", "ssim", "psnr_masked", "ssim_masked"):
        values = [row[key] for row in rows if row[key] is not None]
        means[key] = float(np.mean(values)) if values else None
    return means
