"""Depth maps -> 3D points, in the project's one camera convention (EG3D's 25-number label: OpenCV-style
cam2world, normalised intrinsics; depth is camera-space z, as the condition bundle stores it)."""

from __future__ import annotations

import numpy as np

from blender_addon.formats.cameras import parse_label


def backproject_depth(depth: np.ndarray, mask: np.ndarray, label) -> np.ndarray:
    """(H, W) depth and mask (True on the head) -> (N, 3) points in the label's world (head) space."""
    cam2world, intrinsics = (np.asarray(m, dtype=np.float64) for m in parse_label(label))
    height, width = depth.shape
    rows, columns = np.nonzero(mask & np.isfinite(depth) & (depth > 0))
    u, v = (columns + 0.5) / width, (rows + 0.5) / height
    fx, fy, cx, cy, skew = intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2], intrinsics[0, 1]
    y_camera = (v - cy) / fy
    x_camera = (u - cx - skew * y_camera) / fx
    z = depth[rows, columns].astype(np.float64)
    camera_points = np.stack([x_camera * z, y_camera * z, z], axis=1)
    return camera_points @ cam2world[:3, :3].T + cam2world[:3, 3]
