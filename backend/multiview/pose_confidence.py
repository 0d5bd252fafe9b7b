"""Pose confidence: how well a generated image agrees with the condition it was painted from.

The coarse-to-fine discriminator of StyleAvatar3D trusts an image's exact camera label only when
the image really shows the head in that pose. The score in [0, 1] is the mean of two agreements:

1. **Silhouette agreement**: the intersection over union of the image's foreground and the
   rendered head mask. The foreground is every pixel whose colour differs from the background
   colour (the median colour of the image's border) by more than ``FOREGROUND_DISTANCE``.
2. **Edge agreement**: the fraction of condition edges (the mask outline and depth jumps larger
   than ``DEPTH_JUMP`` of the head's depth range) that have an image edge within
   ``EDGE_TOLERANCE_PIXELS`` pixels. Image edges are pixels whose luminance gradient magnitude is
   in the top ``IMAGE_EDGE_QUANTILE`` of the image.

Both parts are cheap (numpy only) and need no detector; an image painted off the silhouette or
with features away from the rendered contours scores low.
"""

from __future__ import annotations

import numpy as np

FOREGROUND_DISTANCE = 0.12
DEPTH_JUMP = 0.08
EDGE_TOLERANCE_PIXELS = 2
IMAGE_EDGE_QUANTILE = 0.15


def pose_confidence(image: np.ndarray, mask: np.ndarray, depth: np.ndarray | None = None) -> float:
    """``image`` float RGB in [0, 1] (H, W, 3); ``mask`` bool (H, W); ``depth`` (H, W) or None."""
    if image.shape[:2] != mask.shape:
        raise ValueError(f"image {image.shape[:2]} and mask {mask.shape} differ in size")
    silhouette = mask_iou(foreground_of(image), mask)
    condition_edges = condition_edges_of(mask, depth)
    if not condition_edges.any():
        return float(silhouette)
    return float(0.5 * silhouette + 0.5 * edge_recall(image_edges_of(image), condition_edges))


def foreground_of(image: np.ndarray) -> np.ndarray:
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    background = np.median(border, axis=0)
    return np.linalg.norm(image - background, axis=-1) > FOREGROUND_DISTANCE


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def condition_edges_of(mask: np.ndarray, depth: np.ndarray | None) -> np.ndarray:
    edges = _boundary(mask)
    if depth is not None and mask.any():
        inside = depth[mask]
        depth_range = float(inside.max() - inside.min()) or 1.0
        jumps = np.maximum(np.abs(np.diff(depth, axis=0, append=depth[-1:])), np.abs(np.diff(depth, axis=1, append=depth[:, -1:])))
        edges |= (jumps > DEPTH_JUMP * depth_range) & _dilate(mask, 1)
    return edges


def image_edges_of(image: np.ndarray) -> np.ndarray:
    luminance = image @ np.array([0.299, 0.587, 0.114])
    gradient_y, gradient_x = np.gradient(luminance)
    magnitude = np.hypot(gradient_x, gradient_y)
    if not magnitude.any():
        return np.zeros_like(magnitude, dtype=bool)
    return magnitude >= np.quantile(magnitude, 1.0 - IMAGE_EDGE_QUANTILE)


def edge_recall(image_edges: np.ndarray, condition_edges: np.ndarray) -> float:
    near_image_edge = _dilate(image_edges, EDGE_TOLERANCE_PIXELS)
    return float((near_image_edge & condition_edges).sum() / condition_edges.sum())


def _boundary(mask: np.ndarray) -> np.ndarray:
    return mask & ~_erode(mask, 1)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    padded = np.pad(mask, radius, mode="constant", constant_values=False)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (2 * radius + 1, 2 * radius + 1))
    return windows.any(axis=(-1, -2))


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    return ~_dilate(~mask, radius)
