"""The camera convention: Blender cameras and EG3D labels convert both ways without loss."""

import math

import pytest

from blender_addon.formats import cameras
from blender_addon.formats.errors import FormatError


def blender_look_at(position, target):
    """A Blender camera matrix_world looking from position at target, Blender +z up."""
    forward = [target[i] - position[i] for i in range(3)]
    length = math.sqrt(sum(x * x for x in forward))
    forward = [x / length for x in forward]
    right = cameras._normalize(cameras._cross(forward, (0, 0, 1)))
    up = cameras._cross(right, forward)
    # Blender camera axes: x right, y up, z backwards.
    rotation = [[right[i], up[i], -forward[i]] for i in range(3)]
    return cameras.join_matrix4(rotation, position)


def test_frontal_blender_camera_gives_hand_computed_label():
    # Head at (0, 0, 1.6) in Blender, 0.5 m box; a camera 1.35 m in front of the face (-y) looks at it.
    frame = cameras.HeadFrame(center=(0.0, 0.0, 1.6), size=0.5)
    matrix = blender_look_at((0.0, -1.35, 1.6), (0.0, 0.0, 1.6))
    label = cameras.blender_camera_to_label(matrix, math.radians(90.0), 512, 256, frame)
    expected_cam2world = [
        1, 0, 0, 0,
        0, -1, 0, 0,   # OpenCV y (down) is head-space -y
        0, 0, -1, 2.7,  # looking along -z from z = 1.35 / 0.5
        0, 0, 0, 1,
    ]
    # fov 90 deg: focal = 0.5 image widths = 1.0 image heights for a 2:1 image.
    expected_intrinsics = [0.5, 0, 0.5, 0, 1.0, 0.5, 0, 0, 1]
    assert label == pytest.approx(expected_cam2world + expected_intrinsics, abs=1e-9)
    assert cameras.yaw_pitch_from_label(label) == pytest.approx((0.0, 0.0), abs=1e-9)


@pytest.mark.parametrize("yaw,pitch", [(0, 0), (30, 10), (-120, -25), (179, 30), (90, 0)])
def test_blender_label_round_trip(yaw, pitch):
    frame = cameras.HeadFrame(center=(0.3, -0.2, 1.5), size=0.4)
    label = cameras.orbit_label(yaw, pitch, radius=2.5, fov_degrees=20.0, width=256, height=256)
    matrix, fov_x, aspect = cameras.label_to_blender_camera(label, frame)
    again = cameras.blender_camera_to_label(matrix, fov_x, 256, 256, frame)
    assert again == pytest.approx(label, abs=1e-9)
    assert aspect == pytest.approx(1.0)
    assert cameras.yaw_pitch_from_label(label) == pytest.approx((yaw, pitch), abs=1e-9)


def test_orbit_camera_looks_at_the_head_centre_with_up_upwards():
    label = cameras.orbit_label(60.0, 20.0)
    cam2world, _ = cameras.parse_label(label)
    position = [cam2world[i][3] for i in range(3)]
    forward = [cam2world[i][2] for i in range(3)]
    down = [cam2world[i][1] for i in range(3)]
    distance = math.sqrt(sum(x * x for x in position))
    assert distance == pytest.approx(cameras.DEFAULT_RADIUS)
    assert forward == pytest.approx([-x / distance for x in position])
    assert down[1] < 0  # image "down" points down in the world


def test_mirrored_label_flips_yaw_and_round_trips():
    label = cameras.orbit_label(40.0, 12.0)
    mirrored = cameras.mirror_label(label)
    yaw, pitch = cameras.yaw_pitch_from_label(mirrored)
    assert (yaw, pitch) == pytest.approx((-40.0, 12.0))
    assert cameras.mirror_label(mirrored) == pytest.approx(label)


@pytest.mark.parametrize("yaw,expected", [(0, "front"), (45, "front"), (-60, "side"), (134, "side"), (135, "back"), (-180, "back"), (300, "side")])
def test_view_class_from_yaw(yaw, expected):
    assert cameras.view_class(yaw) == expected


def test_bad_labels_are_refused_with_the_field_named():
    with pytest.raises(FormatError, match="25 numbers"):
        cameras.parse_label([0.0] * 24, "views[0].label")
    with pytest.raises(FormatError, match="NaN"):
        cameras.validate_label([float("nan")] * 25)
