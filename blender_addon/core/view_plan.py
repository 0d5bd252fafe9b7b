"""Where the condition cameras go: orbit views around the head, as bundle ``View`` records."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..formats.cameras import DEFAULT_FOV_DEGREES, DEFAULT_RADIUS, ViewClassThresholds, orbit_label, view_class, wrap_degrees
from ..formats.condition_bundle import View
from ..formats.errors import FormatError


@dataclass(frozen=True)
class OrbitSettings:
    """N views evenly over a yaw range, pitch spread over its range, optional seeded jitter.

    Defaults follow StyleAvatar3D: the head centre at a fixed radius, yaw over [-180, 180),
    pitch over [-30, 30], yaw = pitch = 0 the frontal view.
    """

    views: int = 8
    yaw_min: float = -180.0
    yaw_max: float = 180.0
    pitch_min: float = -30.0
    pitch_max: float = 30.0
    radius: float = DEFAULT_RADIUS
    fov_degrees: float = DEFAULT_FOV_DEGREES
    jitter_degrees: float = 0.0
    seed: int = 0
    thresholds: ViewClassThresholds = ViewClassThresholds()

    def validate(self) -> None:
        if not 1 <= self.views <= 4096:
            raise FormatError("views", f"must lie in [1, 4096], got {self.views}")
        if self.yaw_max < self.yaw_min:
            raise FormatError("yaw_max", f"{self.yaw_max} is below yaw_min {self.yaw_min}", "swap the two")
        if self.pitch_max < self.pitch_min or not -89.0 <= self.pitch_min <= self.pitch_max <= 89.0:
            raise FormatError("pitch_min", "pitch range must be ordered and inside [-89, 89] degrees")
        if self.radius <= 0:
            raise FormatError("radius", f"must be positive, got {self.radius}")
        if not 0 < self.fov_degrees < 180:
            raise FormatError("fov_degrees", f"must lie in (0, 180), got {self.fov_degrees}")
        if self.jitter_degrees < 0:
            raise FormatError("jitter_degrees", "must not be negative")


def _spread(count: int, low: float, high: float, full_circle: bool) -> list[float]:
    """``count`` values over [low, high]; a full circle leaves out ``high`` (it equals ``low``)."""
    if count == 1:
        return [0.0 if low <= 0.0 <= high else (low + high) / 2.0]
    steps = count if full_circle else count - 1
    return [low + (high - low) * i / steps for i in range(count)]


def orbit_angles(settings: OrbitSettings) -> list[tuple[float, float]]:
    """(yaw, pitch) per view, in degrees. Pitch follows a zig-zag over its range so that
    neighbouring yaws see the head from different heights."""
    settings.validate()
    full_circle = settings.yaw_max - settings.yaw_min >= 360.0 - 1e-9
    yaws = _spread(settings.views, settings.yaw_min, settings.yaw_max, full_circle)
    pitch_levels = _spread(min(settings.views, 3), settings.pitch_min, settings.pitch_max, False)
    rng = random.Random(settings.seed)
    angles = []
    for index, yaw in enumerate(yaws):
        pitch = pitch_levels[(index * 2) % len(pitch_levels)] if settings.views > 1 else pitch_levels[0]
        if settings.jitter_degrees:
            yaw += rng.uniform(-settings.jitter_degrees, settings.jitter_degrees)
            pitch += rng.uniform(-settings.jitter_degrees, settings.jitter_degrees)
        angles.append((wrap_degrees(yaw), max(settings.pitch_min, min(settings.pitch_max, pitch))))
    return angles


def plan_orbit_views(settings: OrbitSettings, width: int, height: int) -> list[View]:
    """Bundle views (label, angles, view class) for the orbit; ids are ``view_000``, ``view_001``..."""
    return [
        View(
            id=f"view_{index:03d}",
            label=orbit_label(yaw, pitch, settings.radius, settings.fov_degrees, width, height),
            yaw=yaw,
            pitch=pitch,
            view_class=view_class(yaw, settings.thresholds),
        )
        for index, (yaw, pitch) in enumerate(orbit_angles(settings))
    ]
