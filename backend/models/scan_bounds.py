"""Bounds on a models-folder scan: how deep, how many entries, how long.

A scan pointed at the wrong folder (``/``, a home folder, ``/usr``) used to walk everything below
it, for minutes and past a gigabyte of memory. ``check_scan_bounds`` walks the folder first, as the
scan will (following folder links once, never round a loop), counting entries and depth, reporting
progress and honouring a cancel; past a bound it stops at once and refuses the folder, naming the
bound and the fix. Only then does ``discovery.scan_folder`` look at the (now known to be small) tree.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInput
from ..progress import Progress, SilentProgress


@dataclass(frozen=True)
class ScanLimits:
    max_depth: int = 8
    """Folder levels below the scanned folder (a Hugging Face cache entry's files sit 4 deep)."""
    max_entries: int = 20_000
    """Files and folders in all (a large A1111/ComfyUI models folder holds a few thousand)."""
    max_seconds: float = 60.0


def check_scan_bounds(folder: str | Path, limits: ScanLimits = ScanLimits(),
                      progress: Progress | None = None) -> int:
    """The number of entries under ``folder``; InvalidInput (field ``folder``) past a bound."""
    progress = progress or SilentProgress()
    root = Path(folder).expanduser()
    if not root.is_dir():
        return 0  # the scan itself refuses it, naming the folder
    started = time.monotonic()
    count = 0
    seen: set[tuple[int, int]] = set()
    pending: list[tuple[Path, int]] = [(root, 0)]
    while pending:
        directory, depth = pending.pop()
        if not _first_visit(directory, seen):
            continue
        for entry in _entries(directory):
            count += 1
            if count > limits.max_entries:
                raise _too_large(root, f"holds more than {limits.max_entries} files and folders")
            if count % 500 == 0:
                progress.update(min(count / limits.max_entries, 1.0) * 0.5, f"looking through {root}: {count} entries")
                if time.monotonic() - started > limits.max_seconds:
                    raise _too_large(root, f"takes more than {limits.max_seconds:.0f} s to look through")
            if _is_folder(entry):
                if depth + 1 > limits.max_depth:
                    raise _too_large(root, f"nests folders more than {limits.max_depth} levels deep ({entry.path})")
                pending.append((Path(entry.path), depth + 1))
    return count


def _entries(directory: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(directory) as listing:
            return [entry for entry in listing if not entry.name.startswith(".")]
    except OSError:
        return []  # unreadable: the scan reports what it can read


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _first_visit(directory: Path, seen: set[tuple[int, int]]) -> bool:
    """False for a folder already walked (a link loop, or two links to one folder)."""
    try:
        status = directory.stat()
    except OSError:
        return False
    key = (status.st_dev, status.st_ino)
    if key in seen:
        return False
    seen.add(key)
    return True


def _too_large(root: Path, what: str) -> InvalidInput:
    return InvalidInput(f"{root} {what}, more than a models folder does",
                        "point at the folder that holds your model folders and .safetensors files", field="folder")
