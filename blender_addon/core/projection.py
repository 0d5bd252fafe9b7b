"""Project head-space points into a view and decide, from the rendered depth, which are visible."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..formats.cameras import BLENDER_TO_HEAD, HeadFrame, parse_label

DEFAULT_DEPTH_TOLERANCE = 0.02
"""Head-space units a landmark may lie behind the rendered surface and still count as visible."""


def world_to_camera(label: Sequence[float], points: np.ndarray) -> np.ndarray:
    """Head-space points (N, 3) -> OpenCV camera coordinates (N, 3) of the label's camera."""
    cam2world, _ = parse_label(label)
    matrix = np.asarray(cam2world, dtype=np.float64)
    rotation, position = matrix[:3, :3], matrix[:3, 3]
    return (np.asarray(points, dtype=np.float64) - position) @ rotation


def project(label: Sequence[float], points: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (N, 2; x right, y down, pixel centres at +0.5) and camera depth (N,)."""
    _, intrinsics = parse_label(label)
    camera = world_to_camera(label, points)
    depth = camera[:, 2]
    safe = np.where(np.abs(depth) < 1e-9, 1e-9, depth)
    x = (intrinsics[0][0] * camera[:, 0] / safe + intrinsics[0][2]) * width
    y = (intrinsics[1][1] * camera[:, 1] / safe + intrinsics[1][2]) * height
    return np.stack([x, y], axis=1), depth


def visible_by_depth(
    pixels: np.ndarray,
    depth: np.ndarray,
    depth_map: np.ndarray,
    tolerance: float = DEFAULT_DEPTH_TOLERANCE,
) -> np.ndarray:
    """True where a projected point lies in the frame and no rendered surface is in front of it.

    ``depth_map`` is the rendered camera depth (0 where nothing was hit). A 3x3 neighbourhood is
    searched so that a point on a silhouette edge is not lost to pixel rounding.
    """
    height, width = depth_map.shape
    visible = np.zeros(len(depth), dtype=bool)
    for index, ((x, y), z) in enumerate(zip(pixels, depth)):
        column, row = int(np.floor(x)), int(np.floor(y))
        if z <= 0 or not (0 <= column < width and 0 <= row < height):
            continue
        window = depth_map[max(row - 1, 0): row + 2, max(column - 1, 0): column + 2]
        hits = window[window > 0]
        visible[index] = hits.size > 0 and z <= hits.max() + tolerance
    return visible


def head_directions_from_blender(vectors: np.ndarray) -> np.ndarray:
    """(..., 3) Blender world directions -> head-space directions (``BLENDER_TO_HEAD``)."""
    return np.asarray(vectors, dtype=np.float64) @ np.asarray(BLENDER_TO_HEAD).T


def head_points_from_blender(points: np.ndarray, frame: HeadFrame) -> np.ndarray:
    """Vectorised ``formats.cameras.blender_point_to_head``: (..., 3) Blender -> head space."""
    return head_directions_from_blender((np.asarray(points, dtype=np.float64) - np.asarray(frame.center)) / frame.size)
