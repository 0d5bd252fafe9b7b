"""The head pose skeleton: landmark names, and drawing them as the OpenPose ControlNets learned.

The public OpenPose ControlNets were trained on images drawn by the ControlNet annotator
(controlnet_aux's ``draw_bodypose``/``draw_facepose``), so this draws exactly that convention:

- the COCO-18 body keypoints (0 nose, 1 neck, 2-7 shoulders/elbows/wrists, 8-13 hips/knees/ankles,
  14 right eye, 15 left eye, 16 right ear, 17 left ear), of which a head rig yields the head points;
  the neck is the point between the shoulders when both shoulders are given;
- each of the 17 limbs as a filled ellipse around the segment (half-width 4 px at 512) in its limb
  colour dimmed to 60 %, then a dot of radius 4 px in the keypoint's colour on each keypoint;
- face points (brows, mouth corners, chin and any other landmark that is not a body keypoint) as
  white dots of radius 3 px, drawn last.

Sizes are given for a 512 px short side (the annotator's detect resolution) and scale with it.
Landmark ``_L``/``_R`` are the character's own left and right, as OpenPose's are the person's.
A limb is drawn only when both of its keypoints are visible.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

LANDMARK_NAMES = (
    "nose_tip", "neck", "eye_L", "eye_R", "ear_L", "ear_R",
    "brow_L", "brow_R", "mouth_L", "mouth_R", "chin",
)
"""Landmarks a rig provides, as vertex groups named ``landmark:<name>``."""

LANDMARK_GROUP_PREFIX = "landmark:"

LANDMARK_CONVENTION: dict[str, str] = {
    "nose_tip": "the tip of the nose, on the surface (OpenPose nose)",
    "neck": "the base of the neck between the shoulders, inside the neck on its axis (OpenPose neck: the "
            "shoulders' midpoint); not the front of the neck under the chin",
    "eye_L": "the pupil: the front of the eyeball on the surface a camera in front sees (OpenPose eye)",
    "eye_R": "the pupil, as eye_L",
    "ear_L": "the ear: the side of the head midway between eye and nose height, at the depth of the head's "
             "axis, on the skin or ear, never on hair (OpenPose ear)",
    "ear_R": "the ear, as ear_L",
    "brow_L": "mid-brow: the middle of the eyebrow, on the surface (annotator face point)",
    "brow_R": "mid-brow, as brow_L",
    "mouth_L": "the mouth corner, on the surface (annotator face point)",
    "mouth_R": "the mouth corner, as mouth_L",
    "chin": "the lowest point of the chin's front, on the surface (annotator face point)",
}
"""Where each landmark sits on the head: the one convention for groups painted by hand and for Find
Landmarks, chosen so the drawn skeleton matches what the OpenPose annotator detects in a photo
(the pose ControlNets' training images). ``_L`` is the character's own left."""

REQUIRED_LANDMARKS = ("nose_tip", "eye_L", "eye_R")
"""Without these the skeleton shows neither where the face is nor which way it looks: a bundle
missing any of them can't condition a pose ControlNet and is refused."""

INTERIOR_LANDMARKS = ("neck",)
"""Landmarks inside the body: OpenPose draws them whenever the body around them is in view, so they
count as visible wherever they fall on the rendered head, even with the neck's surface in front."""

BODY_KEYPOINT_OF_LANDMARK: dict[str, int] = {
    "nose_tip": 0, "neck": 1, "shoulder_R": 2, "shoulder_L": 5,
    "eye_R": 14, "eye_L": 15, "ear_R": 16, "ear_L": 17,
}
"""Rig landmark -> its COCO-18 keypoint index; every other landmark is a face point."""

BODY_LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)
"""COCO-18 keypoint pairs, in OpenPose's drawing order; limb i has colour ``KEYPOINT_COLOURS[i]``."""

KEYPOINT_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
"""Colour of keypoint i (and, dimmed, of limb i)."""

LIMB_DIMMING = 0.6
REFERENCE_SIZE = 512
LIMB_HALF_WIDTH = 4
KEYPOINT_RADIUS = 4
FACE_POINT_RADIUS = 3
FACE_POINT_COLOUR = (255, 255, 255)

Landmark2D = Sequence[float]  # [x, y, visible]: pixel coordinates, x right, y down, pixel centres at +0.5


def scaled_size(size_at_512: int, width: int, height: int) -> int:
    """A stroke size given at a 512 px short side, at this image's size (at least 1 px)."""
    return max(1, round(size_at_512 * min(width, height) / REFERENCE_SIZE))


def dimmed(colour: Sequence[int]) -> tuple[int, int, int]:
    return tuple(int(channel * LIMB_DIMMING) for channel in colour)


def body_keypoints(landmarks: Mapping[str, Landmark2D]) -> list[tuple[float, float] | None]:
    """The 18 COCO keypoints in pixel-index coordinates (None where not visible)."""
    keypoints: list[tuple[float, float] | None] = [None] * len(KEYPOINT_COLOURS)
    for name, index in BODY_KEYPOINT_OF_LANDMARK.items():
        point = landmarks.get(name)
        if point is not None and point[2] > 0.5:
            keypoints[index] = (point[0] - 0.5, point[1] - 0.5)
    right, left = keypoints[2], keypoints[5]
    if right is not None and left is not None:
        keypoints[1] = ((right[0] + left[0]) / 2.0, (right[1] + left[1]) / 2.0)
    return keypoints


def face_points(landmarks: Mapping[str, Landmark2D]) -> list[tuple[float, float]]:
    return [(point[0] - 0.5, point[1] - 0.5) for name, point in landmarks.items()
            if name not in BODY_KEYPOINT_OF_LANDMARK and point[2] > 0.5]


def ellipse_polygon(centre: tuple[int, int], half_axes: tuple[int, int], angle_degrees: int) -> list[tuple[int, int]]:
    """Integer vertices of a rotated ellipse, one per degree, consecutive repeats dropped."""
    cos_a, sin_a = math.cos(math.radians(angle_degrees)), math.sin(math.radians(angle_degrees))
    vertices: list[tuple[int, int]] = []
    for step in range(361):
        t = math.radians(step)
        x, y = half_axes[0] * math.cos(t), half_axes[1] * math.sin(t)
        vertex = (round(centre[0] + x * cos_a - y * sin_a), round(centre[1] + x * sin_a + y * cos_a))
        if not vertices or vertex != vertices[-1]:
            vertices.append(vertex)
    return vertices


def fill_convex_polygon(image: np.ndarray, vertices: Sequence[tuple[int, int]], colour: Sequence[int]) -> None:
    """Fill a convex polygon given in pixel indices, its edges included, one span per row.

    Spans rather than half-plane tests, because integer-rounded ellipse vertices are only convex
    up to rounding (the staircase of a diagonal limb).
    """
    height, width = image.shape[:2]
    top, bottom = max(min(v[1] for v in vertices), 0), min(max(v[1] for v in vertices), height - 1)
    if top > bottom:
        return
    rows = np.arange(top, bottom + 1, dtype=np.float64)
    lefts, rights = np.full(rows.shape, np.inf), np.full(rows.shape, -np.inf)
    for a, b in zip(vertices, list(vertices[1:]) + [vertices[0]]):
        low, high = min(a[1], b[1]), max(a[1], b[1])
        crossing = (rows >= low) & (rows <= high)
        if a[1] == b[1]:
            xs_low, xs_high = np.full(rows.shape, min(a[0], b[0]), float), np.full(rows.shape, max(a[0], b[0]), float)
        else:
            xs_low = xs_high = a[0] + (rows - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
        lefts = np.where(crossing, np.minimum(lefts, xs_low), lefts)
        rights = np.where(crossing, np.maximum(rights, xs_high), rights)
    for row, left, right in zip(rows.astype(int), lefts, rights):
        first, last = max(int(np.round(left)), 0), min(int(np.round(right)), width - 1)
        if first <= last:
            image[row, first:last + 1] = colour


def fill_circle(image: np.ndarray, centre: tuple[int, int], radius: int, colour: Sequence[int]) -> None:
    height, width = image.shape[:2]
    left, right = max(centre[0] - radius, 0), min(centre[0] + radius, width - 1)
    top, bottom = max(centre[1] - radius, 0), min(centre[1] + radius, height - 1)
    if left > right or top > bottom:
        return
    rows, columns = np.mgrid[top:bottom + 1, left:right + 1]
    inside = (columns - centre[0]) ** 2 + (rows - centre[1]) ** 2 <= radius * radius
    image[top:bottom + 1, left:right + 1][inside] = colour


def draw_limb(image: np.ndarray, start: tuple[float, float], end: tuple[float, float], half_width: int, colour: Sequence[int]) -> None:
    """The annotator's limb: an ellipse through both keypoints, its angle and axes truncated to integers."""
    length = math.hypot(end[0] - start[0], end[1] - start[1])
    angle = int(math.degrees(math.atan2(start[1] - end[1], start[0] - end[0])))
    centre = (int((start[0] + end[0]) / 2.0), int((start[1] + end[1]) / 2.0))
    fill_convex_polygon(image, ellipse_polygon(centre, (int(length / 2.0), half_width), angle), colour)


def draw_skeleton(landmarks: Mapping[str, Landmark2D], width: int, height: int) -> np.ndarray:
    """RGB uint8 image (H, W, 3) on black: limbs, keypoint dots, then white face dots."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    keypoints = body_keypoints(landmarks)
    half_width = scaled_size(LIMB_HALF_WIDTH, width, height)
    for (first, second), colour in zip(BODY_LIMBS, KEYPOINT_COLOURS):
        if keypoints[first] is not None and keypoints[second] is not None:
            draw_limb(image, keypoints[first], keypoints[second], half_width, dimmed(colour))
    radius = scaled_size(KEYPOINT_RADIUS, width, height)
    for point, colour in zip(keypoints, KEYPOINT_COLOURS):
        if point is not None:
            fill_circle(image, (int(point[0]), int(point[1])), radius, colour)
    face_radius = scaled_size(FACE_POINT_RADIUS, width, height)
    for x, y in face_points(landmarks):
        fill_circle(image, (int(x), int(y)), face_radius, FACE_POINT_COLOUR)
    return image
