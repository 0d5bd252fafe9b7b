"""A baked animation: what ``animate`` writes and the add-on imports as an image sequence.

A folder holding one PNG per render (view x frame) and ``frames.json``::

    frames/<view>_f<frame, 5 digits>.png     RGB, width x height
    frames.json   {"fps": 24.0, "width": 512, "height": 512,
                   "frames": [{"frame": 1, "view": "Front", "file": "frames/Front_f00001.png"}, ...]}

``frames.json`` is written last, so its presence marks a complete bake.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .condition_bundle import check_relative_path
from .errors import FormatError
from .files import atomic_write_json, read_json_file

FRAMES_MANIFEST = "frames.json"
DEFAULT_FPS = 24.0


def frame_file(view: str, frame: int) -> str:
    return f"frames/{view}_f{frame:05d}.png"


@dataclass
class AnimationFrame:
    frame: int
    view: str
    file: str
    """Path of the PNG inside the animation folder."""


@dataclass
class Animation:
    fps: float
    width: int
    height: int
    frames: list[AnimationFrame] = field(default_factory=list)

    def views(self) -> list[str]:
        return sorted({frame.view for frame in self.frames})

    def sequence(self, view: str) -> list[AnimationFrame]:
        return sorted((frame for frame in self.frames if frame.view == view), key=lambda frame: frame.frame)

    def to_json(self) -> dict[str, Any]:
        return {"fps": self.fps, "width": self.width, "height": self.height, "frames": [asdict(frame) for frame in self.frames]}

    @classmethod
    def from_json(cls, data: Any) -> "Animation":
        try:
            fps, width, height = float(data["fps"]), int(data["width"]), int(data["height"])
            entries = list(data["frames"])
        except (KeyError, TypeError, ValueError) as error:
            raise FormatError(FRAMES_MANIFEST, f"needs fps, width, height and frames: {error}") from None
        if not entries or not (math.isfinite(fps) and fps > 0):
            raise FormatError(FRAMES_MANIFEST, "has no frames or a non-positive fps")
        frames = []
        for index, entry in enumerate(entries):
            path = f"frames[{index}]"
            try:
                relative = check_relative_path(entry["file"], f"{path}.file")
                frames.append(AnimationFrame(int(entry["frame"]), str(entry["view"]), relative.as_posix()))
            except (KeyError, TypeError, ValueError) as error:
                raise FormatError(path, f"needs frame, view and file: {error}") from None
        return cls(fps, width, height, frames)


def write_animation_manifest(root: str | Path, animation: Animation) -> Path:
    """Write ``frames.json`` atomically, after every frame file is in place."""
    return atomic_write_json(Path(root) / FRAMES_MANIFEST, animation.to_json())


def read_animation(root: str | Path) -> Animation:
    """``frames.json`` of a folder, checked, with every frame file present."""
    root = Path(root)
    animation = Animation.from_json(read_json_file(root / FRAMES_MANIFEST, "download the job's artifacts again"))
    for index, frame in enumerate(animation.frames):
        if not (root / frame.file).is_file():
            raise FormatError(f"frames[{index}].file", f"{frame.file} is missing")
    return animation
