"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from .errors import FormatError


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(temp_path)`` for a temp file beside ``path``, then rename it over ``path``.

    ``write`` receives a path (not a handle) so that libraries that only write by file name
    (PIL, numpy, safetensors) work too. On any error the temp file is removed and ``path``
    keeps whatever it held before.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial" + target.suffix, dir=target.parent)
    os.close(descriptor)
    temp = Path(temp_name)
    try:
        write(temp)
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return target


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda temp: temp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, value: Any) -> Path:
    return atomic_write_text(path, json.dumps(value, indent=2, sort_keys=False) + "\n")


def read_json_file(path: str | os.PathLike, missing_hint: str) -> Any:
    """The JSON document at ``path``; a missing or unreadable file is a FormatError naming the file."""
    source = Path(path)
    if not source.is_file():
        raise FormatError(source.name, f"is missing from {source.parent}", missing_hint)
    try:
        return json.loads(source.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:  # ValueError: bad JSON, or an integer of thousands of digits
        raise FormatError(source.name, f"is not valid JSON: {error}") from None
    except RecursionError:
        raise FormatError(source.name, "nests arrays or objects too deeply to read") from None
