"""Geometry of the procedural demo head, as numpy arrays: identity parameters, the sculpted
mesh, expression shape-key offsets, landmark vertices and eye placement.

Blender axes (z up, the face looks along -y, +x is the character's left); lengths in metres.
The head is a sphere grid pushed into shape by smooth bumps, so every identity has the same
topology and the same landmark vertices: the shape keys and landmarks work for any identity.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields

import numpy as np

from ..formats.errors import FormatError
from ..formats.expression import DEMO_SHAPE_KEYS

SEGMENTS = 64
RINGS = 40


@dataclass(frozen=True)
class IdentityParams:
    """Proportions of a demo head; 1.0 (or 0.0 for offsets) is the average head."""

    head_width: float = 1.0
    head_height: float = 1.0
    head_depth: float = 1.0
    jaw_width: float = 1.0
    chin: float = 0.0
    nose_length: float = 1.0
    nose_width: float = 1.0
    eye_spacing: float = 1.0
    ear_size: float = 1.0
    brow_ridge: float = 1.0


IDENTITY_RANGES: dict[str, tuple[float, float]] = {
    "head_width": (0.85, 1.15), "head_height": (0.9, 1.1), "head_depth": (0.9, 1.1),
    "jaw_width": (0.75, 1.15), "chin": (-0.5, 1.0), "nose_length": (0.5, 1.6), "nose_width": (0.7, 1.4),
    "eye_spacing": (0.85, 1.15), "ear_size": (0.6, 1.4), "brow_ridge": (0.0, 1.6),
}


def check_identity(params: IdentityParams) -> None:
    for item in fields(params):
        low, high = IDENTITY_RANGES[item.name]
        value = getattr(params, item.name)
        if not low <= value <= high:
            raise FormatError(f"identity.{item.name}", f"must lie in [{low}, {high}], got {value}")


def sample_identity(seed: int) -> IdentityParams:
    """A random, plausible identity; the same seed gives the same head."""
    rng = random.Random(seed)
    return IdentityParams(**{name: round(rng.uniform(low, high), 4) for name, (low, high) in IDENTITY_RANGES.items()})


@dataclass(frozen=True)
class HeadMesh:
    vertices: np.ndarray  # (V, 3) float64
    faces: list[tuple[int, ...]]
    directions: np.ndarray  # (V, 3) unit directions on the source sphere
    shape_key_offsets: dict[str, np.ndarray]  # name -> (V, 3)
    landmark_vertices: dict[str, int]
    jaw_weights: np.ndarray  # (V,) weight of the jaw bone; the head bone takes the rest
    eye_centres: dict[str, np.ndarray]  # "eye_L"/"eye_R" -> (3,)
    eye_radius: float
    centre: np.ndarray


BASE_RADII = np.array([0.078, 0.095, 0.115])  # half width, half depth, half height (metres)


def sphere_grid(segments: int = SEGMENTS, rings: int = RINGS) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """Unit directions of a UV sphere (poles at +-z) and its quad/triangle faces, outward normals."""
    directions = [(0.0, 0.0, 1.0)]
    for ring in range(1, rings):
        polar = np.pi * ring / rings
        for segment in range(segments):
            azimuth = 2 * np.pi * segment / segments
            directions.append((np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)))
    directions.append((0.0, 0.0, -1.0))
    bottom = len(directions) - 1

    def ring_vertex(ring: int, segment: int) -> int:
        return 1 + (ring - 1) * segments + segment % segments

    faces: list[tuple[int, ...]] = [(0, ring_vertex(1, s), ring_vertex(1, s + 1)) for s in range(segments)]
    for ring in range(1, rings - 1):
        for s in range(segments):
            faces.append((ring_vertex(ring, s), ring_vertex(ring + 1, s), ring_vertex(ring + 1, s + 1), ring_vertex(ring, s + 1)))
    faces += [(bottom, ring_vertex(rings - 1, s + 1), ring_vertex(rings - 1, s)) for s in range(segments)]
    return np.array(directions), faces


def _bump(directions: np.ndarray, centre: tuple[float, float, float], width: float) -> np.ndarray:
    """Smooth 0..1 weight around a unit direction, falling off with angular distance ``width``."""
    target = np.asarray(centre, dtype=np.float64)
    target = target / np.linalg.norm(target)
    distance_squared = np.sum((directions - target) ** 2, axis=1)
    return np.exp(-distance_squared / (width * width))


EYE_HEIGHT = 0.12
MOUTH_HEIGHT = -0.42
MOUTH_HALF_WIDTH = 0.3


def _eye_direction(side: float, params: IdentityParams) -> tuple[float, float, float]:
    return (side * 0.36 * params.eye_spacing, -0.9, EYE_HEIGHT)


def sculpt(directions: np.ndarray, params: IdentityParams) -> np.ndarray:
    """Rest-pose vertex positions (centred at the origin) of the identity."""
    x, y, z = directions[:, 0], directions[:, 1], directions[:, 2]
    radii = BASE_RADII * np.array([params.head_width, params.head_depth, params.head_height])
    lower = np.clip(-z, 0.0, 1.0)
    jaw_taper = 1.0 + (params.jaw_width - 1.0) * lower - 0.25 * lower**2
    points = np.stack([x * radii[0] * jaw_taper, y * radii[1], z * radii[2]], axis=1)
    front = np.clip(-y, 0.0, 1.0)
    forward = np.zeros_like(points)
    forward[:, 1] = -1.0
    points += forward * (0.012 * params.chin * _bump(directions, (0, -0.55, -0.85), 0.35) * front)[:, None]
    nose = np.exp(-((x / (0.11 * params.nose_width)) ** 2) - ((z + 0.12) / 0.2) ** 2) * front**4
    points += forward * (0.028 * params.nose_length * nose)[:, None]
    brow = np.exp(-((z - 0.3) / 0.08) ** 2) * np.exp(-((np.abs(x) - 0.3) / 0.25) ** 2) * front**2
    points += forward * (0.007 * params.brow_ridge * brow)[:, None]
    for side in (-1.0, 1.0):
        socket = _bump(directions, _eye_direction(side, params), 0.16)
        points -= forward * (0.008 * socket)[:, None]
        ear = _bump(directions, (side, 0.1, 0.0), 0.17)
        points[:, 0] += side * 0.022 * params.ear_size * ear
    return points


def _expression_offsets(directions: np.ndarray, rest: np.ndarray, params: IdentityParams) -> dict[str, np.ndarray]:
    """Offsets (V, 3) of each shape key in DEMO_SHAPE_KEYS."""
    x, y, z = directions[:, 0], directions[:, 1], directions[:, 2]
    front = np.clip(-y, 0.0, 1.0)
    size = float(BASE_RADII[2] * params.head_height)
    offsets: dict[str, np.ndarray] = {}
    below_mouth = np.clip((MOUTH_HEIGHT - z) / 0.25, 0.0, 1.0) * np.clip(-y + 0.2, 0.0, 1.0)
    jaw = np.zeros_like(rest)
    jaw[:, 2] = -0.16 * size * below_mouth
    jaw[:, 1] = 0.04 * size * below_mouth
    offsets["jaw_open"] = jaw
    for name, side in (("smile_L", 1.0), ("smile_R", -1.0)):
        corner = _bump(directions, (side * MOUTH_HALF_WIDTH, -0.9, MOUTH_HEIGHT), 0.22)
        smile = np.zeros_like(rest)
        smile[:, 0] = side * 0.05 * size * corner
        smile[:, 2] = 0.07 * size * corner
        offsets[name] = smile
    for name, side in (("blink_L", 1.0), ("blink_R", -1.0)):
        eye_x, eye_y, eye_z = _eye_direction(side, params)
        lid = _bump(directions, (eye_x, eye_y, eye_z + 0.12), 0.12)
        blink = np.zeros_like(rest)
        blink[:, 2] = -0.09 * size * lid
        blink[:, 1] = -0.02 * size * lid
        offsets[name] = blink
    brow = np.exp(-((z - 0.3) / 0.12) ** 2) * front**2
    for name, sign in (("brow_up", 1.0), ("brow_down", -1.0)):
        move = np.zeros_like(rest)
        move[:, 2] = sign * 0.06 * size * brow
        offsets[name] = move
    lips = _bump(directions, (0.0, -0.9, MOUTH_HEIGHT), 0.25)
    pucker = np.zeros_like(rest)
    pucker[:, 1] = -0.1 * size * lips
    pucker[:, 0] = -x * 0.3 * size * lips
    offsets["pucker"] = pucker
    missing = set(DEMO_SHAPE_KEYS) - set(offsets)
    assert not missing, f"demo head lacks shape keys {missing}"
    return offsets


def _nearest_vertex(directions: np.ndarray, target: tuple[float, float, float]) -> int:
    unit = np.asarray(target, dtype=np.float64) / np.linalg.norm(target)
    return int(np.argmax(directions @ unit))


def _landmarks(directions: np.ndarray, rest: np.ndarray) -> dict[str, int]:
    """Landmark vertices of the head mesh; the eye landmarks sit on the eyeballs (separate meshes)."""
    nose = int(np.argmin(rest[:, 1] + 10.0 * np.abs(directions[:, 0])))
    landmarks = {
        "nose_tip": nose,
        "neck": _nearest_vertex(directions, (0.0, 0.35, -1.0)),
        "ear_L": _nearest_vertex(directions, (1.0, 0.1, 0.0)),
        "ear_R": _nearest_vertex(directions, (-1.0, 0.1, 0.0)),
        "brow_L": _nearest_vertex(directions, (0.3, -0.9, 0.3)),
        "brow_R": _nearest_vertex(directions, (-0.3, -0.9, 0.3)),
        "mouth_L": _nearest_vertex(directions, (MOUTH_HALF_WIDTH, -0.9, MOUTH_HEIGHT)),
        "mouth_R": _nearest_vertex(directions, (-MOUTH_HALF_WIDTH, -0.9, MOUTH_HEIGHT)),
        "chin": _nearest_vertex(directions, (0.0, -0.55, -0.85)),
    }
    return landmarks


def build_head(params: IdentityParams, centre: tuple[float, float, float] = (0.0, 0.0, 1.6)) -> HeadMesh:
    """The whole demo head for ``params``, its rest pose centred at ``centre``."""
    check_identity(params)
    directions, faces = sphere_grid()
    rest = sculpt(directions, params)
    offsets = _expression_offsets(directions, rest, params)
    eye_radius = 0.016
    eye_centres = {}
    for name, side in (("eye_L", 1.0), ("eye_R", -1.0)):
        surface = rest[_nearest_vertex(directions, _eye_direction(side, params))]
        eye_centres[name] = surface + np.array([0.0, 0.55 * eye_radius, 0.0]) + np.asarray(centre)
    jaw_weights = np.clip((MOUTH_HEIGHT - directions[:, 2]) / 0.2, 0.0, 1.0) * np.clip(-directions[:, 1] + 0.3, 0.0, 1.0)
    return HeadMesh(
        vertices=rest + np.asarray(centre),
        faces=faces,
        directions=directions,
        shape_key_offsets=offsets,
        landmark_vertices=_landmarks(directions, rest),
        jaw_weights=np.clip(jaw_weights, 0.0, 1.0),
        eye_centres=eye_centres,
        eye_radius=eye_radius,
        centre=np.asarray(centre, dtype=np.float64),
    )
