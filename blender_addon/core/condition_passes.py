"""Turn the raw per-pixel outputs of one condition render into the bundle's passes.

The renderer writes, per pixel, the world position, world normal and rest-pose (canonical)
position of the surface it hit, plus coverage. This module maps them into the camera of the
view's label and into head space, the units and axes ``formats.condition_bundle`` specifies.
A neural-head proxy's canonical coordinates are in head space already, and it adds ambient coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..formats.cameras import HeadFrame, parse_label
from .projection import head_directions_from_blender, head_points_from_blender

MASK_THRESHOLD = 0.5


@dataclass
class RawRender:
    """Arrays (H, W, ...) straight from the renderer, row 0 at the top, Blender world axes."""

    position: np.ndarray
    normal: np.ndarray
    canonical: np.ndarray
    coverage: np.ndarray
    canonical_in_head_space: bool = False
    """False: ``canonical`` is a rest-pose position in Blender world axes (a rig's); True: head-space
    coordinates as they are (a neural-head proxy's, read from its vertices)."""
    ambient: np.ndarray | None = None
    """A neural-head proxy's ambient coordinates (H, W, A); None for a rig."""


@dataclass
class ConditionPasses:
    depth: np.ndarray  # (H, W) float32
    normal: np.ndarray  # (H, W, 3) float32
    canonical: np.ndarray  # (H, W, 3) float32
    mask: np.ndarray  # (H, W) uint8, 0 or 255
    ambient: np.ndarray | None = None  # (H, W, A) float32, a neural-head proxy's only


def compute_passes(raw: RawRender, label: Sequence[float], frame: HeadFrame, canonical_frame: HeadFrame | None = None) -> ConditionPasses:
    """The passes of one render. ``frame`` is the head box the camera was placed on (the posed head);
    canonical coordinates are rest-pose positions, so they are mapped through the rest pose's box,
    ``canonical_frame`` (the same box when not given), and stay inside it wherever the pose moved the head."""
    cam2world, _ = parse_label(label)
    matrix = np.asarray(cam2world, dtype=np.float64)
    rotation, camera_position = matrix[:3, :3], matrix[:3, 3]
    inside = raw.coverage > MASK_THRESHOLD
    head_position = head_points_from_blender(raw.position, frame)
    depth = ((head_position - camera_position) @ rotation)[..., 2]
    normal = head_directions_from_blender(raw.normal) @ rotation
    length = np.linalg.norm(normal, axis=-1, keepdims=True)
    normal = np.divide(normal, length, out=np.zeros_like(normal), where=length > 1e-8)
    canonical = raw.canonical if raw.canonical_in_head_space else head_points_from_blender(raw.canonical, canonical_frame or frame)
    canonical = np.clip(canonical, -0.5, 0.5)
    return ConditionPasses(
        depth=np.where(inside, depth, 0.0).astype(np.float32),
        normal=np.where(inside[..., None], normal, 0.0).astype(np.float32),
        canonical=np.where(inside[..., None], canonical, 0.0).astype(np.float32),
        mask=np.where(inside, 255, 0).astype(np.uint8),
        ambient=None if raw.ambient is None else np.where(inside[..., None], raw.ambient, 0.0).astype(np.float32),
    )
