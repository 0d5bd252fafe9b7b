"""Reading what backend jobs return: ``dataset.json`` image lists and ``avatar.json`` of a generated
avatar, each checked before the importer touches Blender (animations: ``formats.animation``)."""

from __future__ import annotations

from pathlib import Path

from ..formats.condition_bundle import check_relative_path
from ..formats.errors import FormatError
from ..formats.files import read_json_file

DOWNLOAD_AGAIN = "download the job's artifacts again"


def read_gallery(folder: str | Path) -> list[tuple[Path, dict]]:
    """(image, its dataset entry) of a multiview job's ``dataset.json`` + ``images/*.png``."""
    root = Path(folder)
    data = read_json_file(root / "dataset.json", DOWNLOAD_AGAIN)
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
    data = read_json_file(root / "avatar.json", DOWNLOAD_AGAIN)
    if not isinstance(data, dict):
        raise FormatError("avatar.json", "must hold an object")
    return data
