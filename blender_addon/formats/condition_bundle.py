"""The condition bundle: what the add-on renders from a rig and the backend consumes.

A bundle is a folder (or a zip of one) holding ``conditions.json`` and per-render pass files::

    conditions.json
    renders/<view id>/f<frame>/pose.png       RGB uint8: OpenPose-style skeleton on black
    renders/<view id>/f<frame>/depth.npy      float32 (H, W): camera-space z (OpenCV, along the
                                              viewing axis) in head-space units; 0 outside the mask
    renders/<view id>/f<frame>/normal.npy     float32 (H, W, 3): unit normals in camera space
                                              (OpenCV axes); 0 outside the mask
    renders/<view id>/f<frame>/canonical.npy  float32 (H, W, 3): rest-pose position of the surface
                                              point in head space, inside [-0.5, 0.5]^3; 0 outside
    renders/<view id>/f<frame>/mask.png       L uint8: 255 on the head, 0 elsewhere
    renders/<view id>/f<frame>/ambient.npy    float32 (H, W, A): optional, a neural-head proxy's ambient
                                              (NPHM "hyper") coordinates of the surface point; 0 outside
    renders/<view id>/f<frame>/target.png     RGB uint8: only in a *deferred dataset*: the detailed
                                              character rendered from the same camera and frame,
                                              the image the deferred renderer learns to produce

File names inside a render are free (each render lists its own); the layout above is what the
add-on writes. ``views`` are cameras (label, orbit angles, view class), ``frames`` are rig states
(expression code in the order ``expression_names``), ``renders`` pair a view with a frame.
A static multi-view bundle has one frame; an animation bundle has many frames and few views.
A deferred dataset is a bundle whose renders all carry a ``target`` pass.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from .cameras import VIEW_CLASSES, HeadFrame, validate_label
from .errors import FormatError
from .files import atomic_write_json, read_json_file

BUNDLE_VERSION = 1
MANIFEST_NAME = "conditions.json"
CONDITION_PASS_NAMES = ("pose", "depth", "normal", "canonical", "mask")
PASS_NAMES = CONDITION_PASS_NAMES + ("target", "ambient")
PASS_SUFFIXES = {"pose": ".png", "depth": ".npy", "normal": ".npy", "canonical": ".npy", "mask": ".png", "target": ".png", "ambient": ".npy"}
_VIEW_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_PATH_CHARACTERS = 1024
MAX_NAME_BYTES = 255
"""Longest relative path, and longest single name in it (what common file systems allow)."""
MAX_FRAME_INDEX = 10_000_000
_MAX_NAME_CHARACTERS = 128
_MAX_LANDMARKS = 1024


@dataclass
class View:
    id: str
    label: list[float]
    yaw: float
    pitch: float
    view_class: str


@dataclass
class Frame:
    index: int
    expression: list[float] = field(default_factory=list)


@dataclass
class Render:
    view: str
    frame: int
    passes: dict[str, str]
    landmarks: dict[str, list[float]] = field(default_factory=dict)
    """Landmark name -> [x, y, visible] in pixels (x right, y down), visible 1.0 or 0.0."""


@dataclass
class ConditionBundle:
    width: int
    height: int
    head_frame: HeadFrame
    views: list[View]
    frames: list[Frame]
    renders: list[Render]
    expression_names: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    version: int = BUNDLE_VERSION

    def view(self, view_id: str) -> View:
        for candidate in self.views:
            if candidate.id == view_id:
                return candidate
        raise KeyError(view_id)

    def frame(self, index: int) -> Frame:
        for candidate in self.frames:
            if candidate.index == index:
                return candidate
        raise KeyError(index)

    def renders_with(self, pass_name: str) -> list[Render]:
        return [render for render in self.renders if pass_name in render.passes]

    def require_pass(self, pass_name: str, hint: str = "") -> None:
        """Raise a FormatError unless every render carries ``pass_name``."""
        missing = [f"{render.view}/f{render.frame}" for render in self.renders if pass_name not in render.passes]
        if missing:
            raise FormatError(
                f"renders[].passes.{pass_name}",
                f"{len(missing)} of {len(self.renders)} renders have no '{pass_name}' pass (first: {missing[0]})",
                hint or f"render the conditions again with the '{pass_name}' pass enabled",
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "width": self.width,
            "height": self.height,
            "head_frame": self.head_frame.to_json(),
            "expression_names": list(self.expression_names),
            "views": [vars(view) for view in self.views],
            "frames": [vars(frame) for frame in self.frames],
            "renders": [vars(render) for render in self.renders],
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: Any) -> "ConditionBundle":
        """Parse and validate a ``conditions.json`` document; errors name the offending field."""
        if not isinstance(data, dict):
            raise FormatError(MANIFEST_NAME, "must hold a JSON object")
        version = _require(data, "version", int)
        if version != BUNDLE_VERSION:
            raise FormatError("version", f"bundle version {version} is not supported (this reads {BUNDLE_VERSION})",
                              "render the conditions again with this version of the add-on")
        width = _require(data, "width", int)
        height = _require(data, "height", int)
        for name, size in (("width", width), ("height", height)):
            if not 8 <= size <= 8192:
                raise FormatError(name, f"must lie in [8, 8192], got {size}")
        head_frame = HeadFrame.from_json(_require(data, "head_frame", dict))
        expression_names = _parse_names(_require(data, "expression_names", list), "expression_names")
        views = [_parse_view(item, f"views[{i}]") for i, item in enumerate(_require(data, "views", list))]
        if not views:
            raise FormatError("views", "the bundle has no views", "add at least one camera view")
        view_ids = [view.id for view in views]
        if len(set(view_ids)) != len(view_ids):
            raise FormatError("views", "view ids must be unique")
        frames = [_parse_frame(item, f"frames[{i}]", len(expression_names)) for i, item in enumerate(_require(data, "frames", list))]
        if not frames:
            raise FormatError("frames", "the bundle has no frames", "a still bundle has one frame with index 0")
        frame_indices = {frame.index for frame in frames}
        renders = [_parse_render(item, f"renders[{i}]", set(view_ids), frame_indices) for i, item in enumerate(_require(data, "renders", list))]
        if not renders:
            raise FormatError("renders", "the bundle has no renders")
        source = data.get("source", {})
        if not isinstance(source, dict):
            raise FormatError("source", "must be an object")
        return cls(width, height, head_frame, views, frames, renders, expression_names, source, version)


def _require(data: dict, key: str, kind: type, field_path: str | None = None) -> Any:
    path = field_path or key
    if key not in data:
        raise FormatError(path, "is missing")
    value = data[key]
    if kind is float:
        if not _is_number(value):
            raise FormatError(path, f"must be of type float, got {type(value).__name__}")
        finite = finite_float(value)
        if finite is None:
            raise FormatError(path, "must be a finite number")
        return finite
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FormatError(path, f"must be of type {kind.__name__}, got {type(value).__name__}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def finite_float(value: int | float) -> float | None:
    """``value`` as a float, or None when it is NaN, infinite or too large for a float."""
    try:
        result = float(value)
    except OverflowError:
        return None
    return result if math.isfinite(result) else None


def _parse_view(item: Any, path: str) -> View:
    if not isinstance(item, dict):
        raise FormatError(path, "must be an object")
    view_id = _require(item, "id", str, f"{path}.id")
    if not _VIEW_ID.match(view_id):
        raise FormatError(f"{path}.id", f"{view_id!r} must be 1-64 letters, digits, '_' or '-'")
    label = validate_label(_require(item, "label", list, f"{path}.label"), f"{path}.label")
    view_class = _require(item, "view_class", str, f"{path}.view_class")
    if view_class not in VIEW_CLASSES:
        raise FormatError(f"{path}.view_class", f"must be one of {', '.join(VIEW_CLASSES)}, got {view_class!r}")
    yaw = _require(item, "yaw", float, f"{path}.yaw")
    pitch = _require(item, "pitch", float, f"{path}.pitch")
    return View(view_id, label, yaw, pitch, view_class)


def _parse_frame(item: Any, path: str, code_length: int) -> Frame:
    if not isinstance(item, dict):
        raise FormatError(path, "must be an object")
    index = _require(item, "index", int, f"{path}.index")
    if not 0 <= index <= MAX_FRAME_INDEX:
        raise FormatError(f"{path}.index", f"must lie in [0, {MAX_FRAME_INDEX}], got {index}")
    expression = _require(item, "expression", list, f"{path}.expression")
    if len(expression) != code_length:
        raise FormatError(f"{path}.expression", f"has {len(expression)} numbers but expression_names has {code_length}")
    if not all(_is_number(x) for x in expression):
        raise FormatError(f"{path}.expression", "must hold numbers only")
    values = [finite_float(x) for x in expression]
    if None in values:
        raise FormatError(f"{path}.expression", "holds a NaN, infinite or too large number")
    return Frame(index, values)


def _parse_render(item: Any, path: str, view_ids: set[str], frame_indices: set[int]) -> Render:
    if not isinstance(item, dict):
        raise FormatError(path, "must be an object")
    view_id = _require(item, "view", str, f"{path}.view")
    if view_id not in view_ids:
        raise FormatError(f"{path}.view", f"names view {view_id!r}, which is not in 'views'")
    frame = _require(item, "frame", int, f"{path}.frame")
    if frame not in frame_indices:
        raise FormatError(f"{path}.frame", f"names frame {frame}, which is not in 'frames'")
    passes = _require(item, "passes", dict, f"{path}.passes")
    for name, relative in passes.items():
        if name not in PASS_NAMES:
            raise FormatError(f"{path}.passes.{name}", f"unknown pass; known passes: {', '.join(PASS_NAMES)}")
        check_relative_path(relative, f"{path}.passes.{name}")
        if not str(relative).endswith(PASS_SUFFIXES[name]):
            raise FormatError(f"{path}.passes.{name}", f"must be a {PASS_SUFFIXES[name]} file, got {relative!r}")
    return Render(view_id, frame, dict(passes), _parse_landmarks(item.get("landmarks", {}), f"{path}.landmarks"))


def _parse_names(names: list, field_path: str) -> list[str]:
    for index, name in enumerate(names):
        if not isinstance(name, str) or not 0 < len(name) <= _MAX_NAME_CHARACTERS:
            raise FormatError(f"{field_path}[{index}]", f"must be a name of 1-{_MAX_NAME_CHARACTERS} characters")
    return list(names)


def _parse_landmarks(landmarks: Any, field_path: str) -> dict[str, list[float]]:
    if not isinstance(landmarks, dict) or len(landmarks) > _MAX_LANDMARKS:
        raise FormatError(field_path, f"must map at most {_MAX_LANDMARKS} landmark names to [x, y, visible]")
    _parse_names(list(landmarks), field_path)
    parsed = {}
    for name, value in landmarks.items():
        numbers = [finite_float(x) for x in value] if isinstance(value, list) and all(_is_number(x) for x in value) else []
        if len(numbers) != 3 or None in numbers:
            raise FormatError(f"{field_path}.{name}", f"must be [x, y, visible] as three finite numbers, got {str(value)[:80]}")
        parsed[name] = numbers
    return parsed


def check_relative_path(relative: Any, field_path: str) -> PurePosixPath:
    """A path inside the bundle: relative, forward slashes, no '..', of a length file systems take;
    refuses anything else."""
    if not isinstance(relative, str) or not relative:
        raise FormatError(field_path, "must be a non-empty relative path")
    if len(relative) > MAX_PATH_CHARACTERS:
        raise FormatError(field_path, f"is a path of {len(relative)} characters (at most {MAX_PATH_CHARACTERS})",
                          "use shorter folder and file names")
    if "\x00" in relative:
        raise FormatError(field_path, f"{relative!r} holds a NUL character, which no file name may hold")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or "\\" in relative or any(part in ("..", "") for part in pure.parts) or ":" in relative:
        raise FormatError(field_path, f"{relative!r} must be a relative path inside the bundle, without '..'")
    long_name = next((part for part in pure.parts if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES), None)
    if long_name is not None:
        raise FormatError(field_path, f"holds a name of {len(long_name.encode('utf-8', 'surrogatepass'))} bytes "
                                      f"(at most {MAX_NAME_BYTES}): {long_name[:40]}...", "use shorter folder and file names")
    return pure


def render_directory(view_id: str, frame: int) -> str:
    return f"renders/{view_id}/f{frame:05d}"


def default_pass_paths(view_id: str, frame: int, pass_names: Iterable[str] = CONDITION_PASS_NAMES) -> dict[str, str]:
    base = render_directory(view_id, frame)
    return {name: f"{base}/{name}{PASS_SUFFIXES[name]}" for name in pass_names}


def read_bundle(root: str | Path, check_files: bool = True) -> ConditionBundle:
    """Load ``conditions.json`` from a bundle folder, validating it and (optionally) that every file exists."""
    root = Path(root)
    data = read_json_file(root / MANIFEST_NAME, "point at the folder the add-on wrote (it holds conditions.json)")
    bundle = ConditionBundle.from_json(data)
    if check_files:
        for index, render in enumerate(bundle.renders):
            for name, relative in render.passes.items():
                if not (root / relative).is_file():
                    raise FormatError(f"renders[{index}].passes.{name}", f"file {relative} is missing from the bundle")
    return bundle


def write_bundle_manifest(root: str | Path, bundle: ConditionBundle) -> Path:
    """Write ``conditions.json`` atomically (pass files are written first, by the renderer)."""
    ConditionBundle.from_json(bundle.to_json())
    return atomic_write_json(Path(root) / MANIFEST_NAME, bundle.to_json())
