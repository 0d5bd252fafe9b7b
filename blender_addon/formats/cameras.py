"""The one camera convention of Avatar Foundry: EG3D's 25-number label, and Blender <-> label.

World ("head space"), used by every model::

          +y (up)
           |
           |      the head's centre is the origin; the head fits the box [-0.5, 0.5]^3
           o----- +x (the character's left)
          /
        +z (the direction the face looks; yaw = pitch = 0 views the face from here)

Blender is z-up and a character faces -y, so a Blender point p maps to head space as
``(p - centre) / size`` followed by (x, y, z) -> (x, z, -y). ``HeadFrame`` holds centre and size.

Cameras use OpenCV axes (x right, y down, z forward: the viewing direction). Blender cameras look
down their local -z with +y up, so their y and z axes flip.

Camera label (25 floats), exactly EG3D's:
    label[0:16]  cam2world 4x4, row-major, OpenCV camera axes, head-space world
    label[16:25] intrinsics 3x3, row-major, normalised by the image size:
                 [fx/W, 0, cx/W,  0, fy/H, cy/H,  0, 0, 1]

Orbit angles: yaw rotates about +y (positive yaw moves the camera towards +x, the character's
left), pitch lifts the camera (positive = above the head). The camera position is
radius * (cos(pitch) sin(yaw), sin(pitch), cos(pitch) cos(yaw)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from .errors import FormatError

LABEL_LENGTH = 25
DEFAULT_RADIUS = 2.7
DEFAULT_FOV_DEGREES = 18.837  # EG3D's FFHQ field of view: focal 4.2647 image widths

Matrix3 = list[list[float]]
Matrix4 = list[list[float]]
Vector3 = tuple[float, float, float]

# Rows map Blender world axes to head-space axes: head = BLENDER_TO_HEAD @ blender.
BLENDER_TO_HEAD: Matrix3 = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]
# Blender camera axes (x right, y up, -z forward) -> OpenCV camera axes (x right, y down, z forward).
BLENDER_CAMERA_TO_OPENCV: Matrix3 = [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]]


@dataclass(frozen=True)
class HeadFrame:
    """Where the head sits in the Blender scene: its centre, and the length in Blender units that
    becomes 1.0 in head space (the edge of the box [-0.5, 0.5]^3)."""

    center: Vector3 = (0.0, 0.0, 0.0)
    size: float = 1.0

    def __post_init__(self) -> None:
        if not (isinstance(self.size, (int, float)) and self.size > 0 and math.isfinite(self.size)):
            raise FormatError("head_frame.size", f"must be a positive number, got {self.size!r}")

    def to_json(self) -> dict:
        return {"center": list(self.center), "size": self.size}

    @classmethod
    def from_json(cls, value: dict, field: str = "head_frame") -> "HeadFrame":
        try:
            center = tuple(float(x) for x in value["center"])
            size = float(value["size"])
        except (KeyError, TypeError, ValueError, OverflowError) as error:
            raise FormatError(field, f"needs 'center' (3 numbers) and 'size' (a number): {error}") from None
        if len(center) != 3:
            raise FormatError(f"{field}.center", f"needs 3 numbers, got {len(center)}")
        if not all(math.isfinite(x) for x in (*center, size)) or size <= 0:
            raise FormatError(field, "needs finite numbers and a positive 'size'")
        return cls(center=center, size=size)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ViewClassThresholds:
    """|yaw| <= front_max_degrees is a front view, |yaw| >= back_min_degrees a back view, else side."""

    front_max_degrees: float = 45.0
    back_min_degrees: float = 135.0


VIEW_CLASSES = ("front", "side", "back")


def matmul3(a: Matrix3, b: Matrix3) -> Matrix3:
    return [[sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)] for i in range(3)]


def matvec3(a: Matrix3, v: Sequence[float]) -> Vector3:
    return tuple(sum(a[i][k] * v[k] for k in range(3)) for i in range(3))  # type: ignore[return-value]


def transpose3(a: Matrix3) -> Matrix3:
    return [[a[j][i] for j in range(3)] for i in range(3)]


def _normalize(v: Sequence[float]) -> Vector3:
    length = math.sqrt(sum(x * x for x in v))
    if length == 0:
        raise ValueError("cannot normalise a zero vector")
    return (v[0] / length, v[1] / length, v[2] / length)


def _cross(a: Sequence[float], b: Sequence[float]) -> Vector3:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def split_matrix4(matrix: Sequence[Sequence[float]]) -> tuple[Matrix3, Vector3]:
    rotation = [[float(matrix[i][j]) for j in range(3)] for i in range(3)]
    translation = (float(matrix[0][3]), float(matrix[1][3]), float(matrix[2][3]))
    return rotation, translation


def join_matrix4(rotation: Matrix3, translation: Sequence[float]) -> Matrix4:
    return [
        [rotation[0][0], rotation[0][1], rotation[0][2], translation[0]],
        [rotation[1][0], rotation[1][1], rotation[1][2], translation[1]],
        [rotation[2][0], rotation[2][1], rotation[2][2], translation[2]],
        [0.0, 0.0, 0.0, 1.0],
    ]


def blender_point_to_head(point: Sequence[float], frame: HeadFrame) -> Vector3:
    shifted = [(point[i] - frame.center[i]) / frame.size for i in range(3)]
    return matvec3(BLENDER_TO_HEAD, shifted)


def head_point_to_blender(point: Sequence[float], frame: HeadFrame) -> Vector3:
    blender = matvec3(transpose3(BLENDER_TO_HEAD), point)
    return tuple(blender[i] * frame.size + frame.center[i] for i in range(3))  # type: ignore[return-value]


def intrinsics(fov_x_radians: float, width: int, height: int) -> Matrix3:
    """Normalised pinhole intrinsics for a horizontal field of view and square pixels."""
    if not 0 < fov_x_radians < math.pi:
        raise FormatError("fov", f"horizontal field of view must lie in (0, 180) degrees, got {math.degrees(fov_x_radians):.3f}")
    focal_in_widths = 1.0 / (2.0 * math.tan(fov_x_radians / 2.0))
    focal_in_heights = focal_in_widths * width / height
    return [[focal_in_widths, 0.0, 0.5], [0.0, focal_in_heights, 0.5], [0.0, 0.0, 1.0]]


def make_label(cam2world: Matrix4, intrinsics_matrix: Matrix3) -> list[float]:
    return [float(x) for row in cam2world for x in row] + [float(x) for row in intrinsics_matrix for x in row]


def parse_label(label: Sequence[float], field: str = "label") -> tuple[Matrix4, Matrix3]:
    """Split a 25-number label into its cam2world and intrinsics, checking its shape."""
    values = validate_label(label, field)
    cam2world = [values[4 * i: 4 * i + 4] for i in range(4)]
    intrinsics_matrix = [values[16 + 3 * i: 16 + 3 * i + 3] for i in range(3)]
    return cam2world, intrinsics_matrix


def validate_label(label: Sequence[float], field: str = "label") -> list[float]:
    try:
        values = [float(x) for x in label]
    except (TypeError, ValueError, OverflowError):
        raise FormatError(field, "must be a list of 25 numbers (EG3D camera label)") from None
    if len(values) != LABEL_LENGTH:
        raise FormatError(field, f"must hold {LABEL_LENGTH} numbers (16 cam2world + 9 intrinsics), got {len(values)}")
    if not all(math.isfinite(x) for x in values):
        raise FormatError(field, "holds a NaN or infinite number")
    if abs(values[15] - 1.0) > 1e-4 or abs(values[24] - 1.0) > 1e-4:
        raise FormatError(field, "is not a homogeneous camera: label[15] and label[24] must be 1")
    return values


def blender_camera_to_label(
    matrix_world: Sequence[Sequence[float]],
    fov_x_radians: float,
    width: int,
    height: int,
    frame: HeadFrame,
) -> list[float]:
    """The EG3D label of a Blender camera (``matrix_world`` without scale, horizontal FOV, resolution).

    The inverse is :func:`label_to_blender_camera`.
    """
    rotation, position = split_matrix4(matrix_world)
    rotation_head = matmul3(matmul3(BLENDER_TO_HEAD, rotation), BLENDER_CAMERA_TO_OPENCV)
    position_head = blender_point_to_head(position, frame)
    return make_label(join_matrix4(rotation_head, position_head), intrinsics(fov_x_radians, width, height))


def label_to_blender_camera(label: Sequence[float], frame: HeadFrame) -> tuple[Matrix4, float, float]:
    """Inverse of :func:`blender_camera_to_label`: (matrix_world, horizontal FOV in radians, width/height)."""
    cam2world, intrinsics_matrix = parse_label(label)
    rotation_head, position_head = split_matrix4(cam2world)
    # BLENDER_CAMERA_TO_OPENCV is its own inverse.
    rotation = matmul3(matmul3(transpose3(BLENDER_TO_HEAD), rotation_head), BLENDER_CAMERA_TO_OPENCV)
    position = head_point_to_blender(position_head, frame)
    focal_in_widths = intrinsics_matrix[0][0]
    fov_x = 2.0 * math.atan(1.0 / (2.0 * focal_in_widths))
    aspect = intrinsics_matrix[1][1] / focal_in_widths
    return join_matrix4(rotation, position), fov_x, aspect


def look_at_cam2world(position: Sequence[float], target: Sequence[float] = (0.0, 0.0, 0.0)) -> Matrix4:
    """OpenCV cam2world in head space for a camera at ``position`` looking at ``target``, head-space +y up."""
    forward = _normalize([target[i] - position[i] for i in range(3)])
    up_hint = (0.0, 1.0, 0.0)
    if abs(sum(forward[i] * up_hint[i] for i in range(3))) > 1 - 1e-9:
        up_hint = (0.0, 0.0, -1.0 if forward[1] > 0 else 1.0)
    right = _normalize(_cross(forward, up_hint))
    down = _cross(forward, right)
    rotation = [[right[i], down[i], forward[i]] for i in range(3)]
    return join_matrix4(rotation, position)


def orbit_position(yaw_degrees: float, pitch_degrees: float, radius: float = DEFAULT_RADIUS) -> Vector3:
    yaw, pitch = math.radians(yaw_degrees), math.radians(pitch_degrees)
    return (radius * math.cos(pitch) * math.sin(yaw), radius * math.sin(pitch), radius * math.cos(pitch) * math.cos(yaw))


def orbit_label(
    yaw_degrees: float,
    pitch_degrees: float,
    radius: float = DEFAULT_RADIUS,
    fov_degrees: float = DEFAULT_FOV_DEGREES,
    width: int = 1,
    height: int = 1,
) -> list[float]:
    """Label of a camera on the orbit around the head's centre, looking at it."""
    cam2world = look_at_cam2world(orbit_position(yaw_degrees, pitch_degrees, radius))
    return make_label(cam2world, intrinsics(math.radians(fov_degrees), width, height))


def yaw_pitch_from_label(label: Sequence[float]) -> tuple[float, float]:
    """Orbit angles (degrees) of the camera's position, as defined in this module's docstring."""
    cam2world, _ = parse_label(label)
    x, y, z = cam2world[0][3], cam2world[1][3], cam2world[2][3]
    yaw = math.degrees(math.atan2(x, z))
    pitch = math.degrees(math.atan2(y, math.hypot(x, z)))
    return yaw, pitch


def wrap_degrees(angle: float) -> float:
    """Map an angle to [-180, 180)."""
    return (angle + 180.0) % 360.0 - 180.0


def view_class(yaw_degrees: float, thresholds: ViewClassThresholds = ViewClassThresholds()) -> str:
    magnitude = abs(wrap_degrees(yaw_degrees))
    if magnitude <= thresholds.front_max_degrees:
        return "front"
    if magnitude >= thresholds.back_min_degrees:
        return "back"
    return "side"


# Mirroring across the head's x = 0 plane: applied on both sides of cam2world it mirrors the
# world and flips the camera's x axis, so the label matches a horizontally flipped image.
_MIRROR_X: Matrix3 = [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


def mirror_label(label: Sequence[float]) -> list[float]:
    """Label of the horizontally flipped image (yaw -> -yaw). Principal point and skew flip too."""
    cam2world, intrinsics_matrix = parse_label(label)
    rotation, position = split_matrix4(cam2world)
    mirrored_rotation = matmul3(matmul3(_MIRROR_X, rotation), _MIRROR_X)
    mirrored_position = matvec3(_MIRROR_X, position)
    mirrored_intrinsics = [row[:] for row in intrinsics_matrix]
    mirrored_intrinsics[0][1] = -intrinsics_matrix[0][1]
    mirrored_intrinsics[0][2] = 1.0 - intrinsics_matrix[0][2]
    return make_label(join_matrix4(mirrored_rotation, mirrored_position), mirrored_intrinsics)
