"""The pose control image follows OpenPose's COCO-18 drawing, as the ControlNet annotator renders it
(controlnet_aux ``draw_bodypose``/``draw_facepose``): the public OpenPose ControlNets learned it.

The first test draws the same keypoints with controlnet_aux's own drawing code and compares pixels.
controlnet_aux is installed without its dependencies (``build.py setup``: they would replace the CPU
torch), and its package ``__init__`` imports every detector, so only its ``open_pose`` drawing modules
are loaded. The other tests pin the published constants: keypoint indices and colours, limb pairs,
limb colours dimmed to 60 %, a limb half-width and dot radius of 4 px and white face dots of radius
3 px at 512 px.
"""

from __future__ import annotations

import importlib
import importlib.util
import random
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from blender_addon.core.pose_skeleton import BODY_LIMBS, KEYPOINT_COLOURS, body_keypoints, draw_skeleton, face_points

HEAD_AND_SHOULDERS = ("nose_tip", "neck", "eye_L", "eye_R", "ear_L", "ear_R", "brow_L", "brow_R", "mouth_L",
                      "mouth_R", "chin", "shoulder_L", "shoulder_R")


def _visible(**points: tuple[float, float]) -> dict[str, list[float]]:
    return {name: [x + 0.5, y + 0.5, 1.0] for name, (x, y) in points.items()}


def _colour(image: np.ndarray, x: int, y: int) -> tuple[int, ...]:
    return tuple(int(c) for c in image[y, x])


def test_head_keypoints_get_their_coco18_colours_and_limbs_their_dimmed_colours():
    image = draw_skeleton(_visible(nose_tip=(256, 256), neck=(256, 400), eye_R=(200, 200), eye_L=(312, 200),
                                   ear_R=(120, 220), ear_L=(392, 220)), 512, 512)
    assert _colour(image, 256, 256) == (255, 0, 0)  # 0 nose
    assert _colour(image, 256, 400) == (255, 85, 0)  # 1 neck
    assert _colour(image, 200, 200) == (170, 0, 255)  # 14 right eye
    assert _colour(image, 312, 200) == (255, 0, 255)  # 15 left eye
    assert _colour(image, 120, 220) == (255, 0, 170)  # 16 right ear
    assert _colour(image, 392, 220) == (255, 0, 85)  # 17 left ear
    assert _colour(image, 256, 330) == (0, 0, 153)  # limb neck-nose: (0, 0, 255) x 0.6
    assert _colour(image, 228, 228) == (51, 0, 153)  # limb nose-right eye: (85, 0, 255) x 0.6
    assert _colour(image, 284, 228) == (153, 0, 153)  # limb nose-left eye: (255, 0, 255) x 0.6
    assert _colour(image, 352, 210) == (153, 0, 102)  # limb left eye-left ear: (255, 0, 170) x 0.6


def test_limb_pairs_are_openposes_seventeen():
    assert len(BODY_LIMBS) == 17 and len(KEYPOINT_COLOURS) == 18
    assert BODY_LIMBS[12:] == ((1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
    assert BODY_LIMBS[:2] == ((1, 2), (1, 5))


def test_neck_lies_between_the_shoulders_when_the_rig_yields_them():
    image = draw_skeleton(_visible(shoulder_R=(100, 400), shoulder_L=(400, 400), neck=(250, 300)), 512, 512)
    assert _colour(image, 250, 400) == (255, 85, 0)  # the neck dot at the shoulders' midpoint
    assert not image[300, 250].any()  # not at the rig's own neck point
    assert _colour(image, 175, 400) == (153, 0, 0)  # neck-right shoulder, (255, 0, 0) x 0.6
    assert _colour(image, 325, 400) == (153, 51, 0)  # neck-left shoulder, (255, 85, 0) x 0.6
    assert _colour(image, 100, 400) == (255, 170, 0)  # 2 right shoulder
    assert _colour(image, 400, 400) == (85, 255, 0)  # 5 left shoulder


def _run_lengths(line: np.ndarray) -> int:
    return int(line.any(axis=-1).sum())


def test_stick_half_width_and_dot_radius_are_4px_at_512_and_scale_with_the_image():
    for size in (512, 1024):
        scale = size // 512
        image = draw_skeleton(_visible(nose_tip=(100 * scale, 300 * scale), neck=(400 * scale, 300 * scale)), size, size)
        assert _run_lengths(image[:, 250 * scale]) == 2 * 4 * scale + 1  # limb cross-section
        dot = image[:, 100 * scale]
        assert _run_lengths(dot) == 2 * 4 * scale + 1
        assert not image[300 * scale, 100 * scale - 4 * scale - 1].any()  # nothing beyond the dot's radius
        assert image[300 * scale, 100 * scale - 4 * scale].any()


def test_face_points_are_white_dots_of_radius_3_and_drawn_only_when_visible():
    landmarks = _visible(brow_L=(300, 150), chin=(256, 420), mouth_R=(220, 360))
    landmarks["mouth_R"][2] = 0.0
    image = draw_skeleton(landmarks, 512, 512)
    assert _colour(image, 300, 150) == (255, 255, 255)
    assert _run_lengths(image[:, 300]) == 7 and _run_lengths(image[150]) == 7
    assert _colour(image, 256, 420) == (255, 255, 255)
    assert not image[360, 220].any()
    assert set(map(tuple, image.reshape(-1, 3))) == {(0, 0, 0), (255, 255, 255)}  # face points draw no limbs


def test_a_limb_is_drawn_only_between_two_visible_keypoints():
    landmarks = _visible(nose_tip=(256, 256), eye_R=(150, 150))
    landmarks["eye_R"][2] = 0.0
    image = draw_skeleton(landmarks, 512, 512)
    assert not image[203, 203].any()
    assert _colour(image, 256, 256) == (255, 0, 0)


def _annotator_drawing():
    """controlnet_aux's ``open_pose/util.py`` and ``body.py``, loaded as a package of their own so that
    controlnet_aux's ``__init__`` (every detector, torchvision, timm) is never imported."""
    spec = importlib.util.find_spec("controlnet_aux")
    assert spec is not None, "controlnet_aux is missing: python build.py setup installs it (--no-deps)"
    name = "controlnet_aux_open_pose_drawing"
    if name not in sys.modules:
        package = types.ModuleType(name)
        package.__path__ = [str(Path(spec.submodule_search_locations[0]) / "open_pose")]
        sys.modules[name] = package
    return importlib.import_module(f"{name}.util"), importlib.import_module(f"{name}.body")


def _annotator_image(landmarks: dict[str, list[float]], size: int) -> np.ndarray:
    util, body = _annotator_drawing()
    keypoints = [None if point is None else body.Keypoint(point[0] / size, point[1] / size)
                 for point in body_keypoints(landmarks)]
    canvas = util.draw_bodypose(np.zeros((size, size, 3), np.uint8), keypoints)
    return util.draw_facepose(canvas, [body.Keypoint(x / size, y / size) for x, y in face_points(landmarks)])


def _outline(image: np.ndarray) -> np.ndarray:
    """Pixels whose colour differs from a 4-neighbour's: the rims of the drawn ellipses and dots."""
    packed = image.astype(np.int64) @ np.array([1, 256, 65536])
    rim = np.zeros(packed.shape, bool)
    vertical, horizontal = packed[1:] != packed[:-1], packed[:, 1:] != packed[:, :-1]
    rim[1:] |= vertical
    rim[:-1] |= vertical
    rim[:, 1:] |= horizontal
    rim[:, :-1] |= horizontal
    return rim


@pytest.mark.parametrize("seed", range(4))
def test_skeleton_is_the_annotators_drawing_up_to_rim_pixels(seed: int):
    """Against controlnet_aux's own OpenPose drawing of the same keypoints: every pixel inside the
    limbs and dots has the annotator's colour; only rim pixels of the filled ellipses may differ
    (OpenCV rasterises polygon edges slightly differently), and few of them."""
    rng = random.Random(seed)
    landmarks = {name: [rng.uniform(60, 450), rng.uniform(60, 450), 1.0] for name in HEAD_AND_SHOULDERS}
    ours, theirs = draw_skeleton(landmarks, 512, 512), _annotator_image(landmarks, 512)
    drawn = ours.any(-1) | theirs.any(-1)
    differing = (ours != theirs).any(-1)
    assert drawn.sum() > 2000
    assert not (differing & ~_outline(ours) & ~_outline(theirs)).any()
    assert differing.sum() < 0.03 * drawn.sum()
