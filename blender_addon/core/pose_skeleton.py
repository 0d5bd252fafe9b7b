"""The face/head pose skeleton: landmark names, the limbs between them, and drawing it.

Drawn OpenPose-style: coloured limbs between visible landmarks and a dot on each, on black.
A limb is drawn only when both of its landmarks are visible, as OpenPose does.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

LANDMARK_NAMES = (
    "nose_tip", "neck", "eye_L", "eye_R", "ear_L", "ear_R",
    "brow_L", "brow_R", "mouth_L", "mouth_R", "chin",
)
"""Landmarks a rig provides, as vertex groups named ``landmark:<name>``."""

LANDMARK_GROUP_PREFIX = "landmark:"

LIMBS: tuple[tuple[str, str, tuple[int, int, int]], ...] = (
    ("neck", "nose_tip", (0, 0, 255)),
    ("nose_tip", "eye_R", (170, 0, 255)),
    ("eye_R", "ear_R", (255, 0, 255)),
    ("nose_tip", "eye_L", (255, 0, 170)),
    ("eye_L", "ear_L", (255, 0, 85)),
    ("eye_R", "brow_R", (255, 170, 0)),
    ("eye_L", "brow_L", (255, 255, 0)),
    ("mouth_R", "mouth_L", (0, 255, 0)),
    ("mouth_R", "chin", (0, 255, 170)),
    ("mouth_L", "chin", (0, 170, 255)),
)

LANDMARK_COLOURS: dict[str, tuple[int, int, int]] = {
    "nose_tip": (255, 0, 0), "neck": (255, 85, 0), "eye_L": (255, 170, 0), "eye_R": (170, 255, 0),
    "ear_L": (85, 255, 0), "ear_R": (0, 255, 85), "brow_L": (0, 255, 255), "brow_R": (0, 85, 255),
    "mouth_L": (85, 0, 255), "mouth_R": (170, 0, 255), "chin": (255, 0, 255),
}

Landmark2D = Sequence[float]  # [x, y, visible]


def stroke_width(width: int, height: int) -> float:
    """Limb thickness in pixels, proportional to the image (4 px at 512)."""
    return max(1.0, min(width, height) / 128.0)


def _segment_distance(xs: np.ndarray, ys: np.ndarray, start: Sequence[float], end: Sequence[float]) -> np.ndarray:
    direction = np.array([end[0] - start[0], end[1] - start[1]], dtype=np.float64)
    length_squared = float(direction @ direction)
    dx, dy = xs - start[0], ys - start[1]
    if length_squared == 0.0:
        return np.hypot(dx, dy)
    t = np.clip((dx * direction[0] + dy * direction[1]) / length_squared, 0.0, 1.0)
    return np.hypot(dx - t * direction[0], dy - t * direction[1])


def _paint(image: np.ndarray, start: Sequence[float], end: Sequence[float], radius: float, colour: Sequence[int]) -> None:
    """Fill the pixels whose centres lie within ``radius`` of the segment (a dot when start == end)."""
    height, width = image.shape[:2]
    left = max(int(np.floor(min(start[0], end[0]) - radius)), 0)
    right = min(int(np.ceil(max(start[0], end[0]) + radius)) + 1, width)
    top = max(int(np.floor(min(start[1], end[1]) - radius)), 0)
    bottom = min(int(np.ceil(max(start[1], end[1]) + radius)) + 1, height)
    if left >= right or top >= bottom:
        return
    ys, xs = np.mgrid[top:bottom, left:right].astype(np.float64) + 0.5
    inside = _segment_distance(xs, ys, start, end) <= radius
    image[top:bottom, left:right][inside] = colour


def draw_skeleton(landmarks: Mapping[str, Landmark2D], width: int, height: int) -> np.ndarray:
    """RGB uint8 image (H, W, 3): limbs between visible landmarks, then a dot on each visible one."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    thickness = stroke_width(width, height)
    for first, second, colour in LIMBS:
        a, b = landmarks.get(first), landmarks.get(second)
        if a is not None and b is not None and a[2] > 0.5 and b[2] > 0.5:
            _paint(image, a, b, thickness / 2.0, colour)
    for name, point in landmarks.items():
        if point[2] > 0.5:
            _paint(image, point, point, thickness, LANDMARK_COLOURS.get(name, (255, 255, 255)))
    return image
