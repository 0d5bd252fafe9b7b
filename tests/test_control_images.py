"""Normal control images follow ControlNet 1.1 normalbae: blue is front, red is left, green is top."""

from __future__ import annotations

import numpy as np

from backend.multiview.condition_images import normal_to_image

SIZE = 65


def _sphere_normals() -> tuple[np.ndarray, np.ndarray]:
    """A unit sphere seen head-on, its normals in the bundle's OpenCV camera axes (x right, y down, z away)."""
    centre = (SIZE - 1) / 2
    rows, columns = np.mgrid[0:SIZE, 0:SIZE]
    x, y = (columns - centre) / centre, (rows - centre) / centre
    mask = x * x + y * y < 0.98
    z = -np.sqrt(np.clip(1.0 - x * x - y * y, 0.0, 1.0))
    normal = np.stack([x, y, z], axis=-1).astype(np.float32)
    return np.where(mask[..., None], normal, 0.0), mask


def test_sphere_rims_are_red_left_green_top_and_its_centre_blue():
    normal, mask = _sphere_normals()
    rgb = np.asarray(normal_to_image(normal, mask)).astype(int)
    middle = SIZE // 2
    left, right, top, bottom, centre = rgb[middle, 1], rgb[middle, -2], rgb[1, middle], rgb[-2, middle], rgb[middle, middle]
    assert left[0] > 240 and right[0] < 15  # red is left
    assert top[1] > 240 and bottom[1] < 15  # green is top
    assert tuple(centre) == (128, 128, 255)  # blue is front
    assert left[1] == right[1] == 128 and top[0] == bottom[0] == 128
    assert not rgb[0, 0].any()  # black outside the mask
