"""Reading what backend jobs return: ``frames.json`` of an animation, ``dataset.json`` image lists,
``avatar.json`` of a generated avatar; each checked before the importer touches Blender."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..formats.condition_bundle import check_relative_path
from ..formats.errors import FormatError


def _load_json(path: Path) -> object:
    if not path.is_file():
        raise FormatError(path.name, f"is missing from {path.parent}", "download the job's artifacts again")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FormatError(path.name, f"is not valid JSON: {error}") from None


@dataclass
class AnimationFrame:
    frame: int
    view: str
    file: Path


@dataclass
class Animation:
    fps: float
    width: int
    height: int
    frames: list[AnimationFrame]

    def views(self) -> list[str]:
        return sorted({frame.view for frame in self.frames})

    def sequence(self, view: str) -> list[AnimationFrame]:
        return sorted((frame for frame in self.frames if frame.view == view), key=lambda frame: frame.frame)


def read_animation(folder: str | Path) -> Animation:
    """``frames.json`` = {"fps", "width", "height", "frames": [{"frame", "view", "file"}]}."""
    root = Path(folder)
    data = _load_json(root / "frames.json")
    try:
        fps, width, height = float(data["fps"]), int(data["width"]), int(data["height"])
        entries = list(data["frames"])
    except (KeyError, TypeError, ValueError) as error:
        raise FormatError("frames.json", f"needs fps, width, height and frames: {error}") from None
    frames = []
    for index, entry in enumerate(entries):
        field = f"frames[{index}]"
        try:
            relative = check_relative_path(entry["file"], f"{field}.file")
            frames.append(AnimationFrame(int(entry["frame"]), str(entry["view"]), root / relative))
        except (KeyError, TypeError, ValueError) as error:
            raise FormatError(field, f"needs frame, view and file: {error}") from None
        if not frames[-1].file.is_file():
            raise FormatError(f"{field}.file", f"{relative} is missing")
    if not frames or fps <= 0:
        raise FormatError("frames.json", "has no frames or a non-positive fps")
    return Animation(fps, width, height, frames)


def read_gallery(folder: str | Path) -> list[tuple[Path, dict]]:
    """(image, its dataset entry) of a multiview job's ``dataset.json`` + ``images/*.png``."""
    root = Path(folder)
    data = _load_json(root / "dataset.json")
    entries = data.get("items") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise FormatError("dataset.json", "has no 'items' list")
    items = []
    for index, entry in enumerate(entries):
        relative = check_relative_path(entry.get("file") if isinstance(entry, dict) else None, f"items[{index}].file")
        if not (root / relative).is_file():
            raise FormatError(f"items[{index}].file", f"{relative} is missing")
        items.append((root / relative, entry))
    return items


def read_avatar_metadata(folder: str | Path) -> dict:
    """``avatar.json`` (seed, w, config...) beside ``avatar.glb``."""
    root = Path(folder)
    if not (root / "avatar.glb").is_file():
        raise FormatError("avatar.glb", f"is missing from {root}", "the job did not produce a mesh; check its log")
    data = _load_json(root / "avatar.json")
    if not isinstance(data, dict):
        raise FormatError("avatar.json", "must hold an object")
    return data
