"""The backend's log (``backend.log`` in its data folder) read back for the panel: its last lines,
and the cause of a failed start in one line that names the fix."""

from __future__ import annotations

import re
from pathlib import Path

TAIL_BYTES = 16384
TAIL_LINES = 12
MISSING_MODULE = re.compile(r"No module named '([\w.]+)'")
BACKEND_ERROR = re.compile(r"^error(?: \[\w+\])?: (.+)$")


def read_tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` non-empty lines of the log (only its end is read)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - TAIL_BYTES))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def explain_log(tail: list[str]) -> str:
    """The cause the log's last lines name, with its fix; else the last line itself."""
    for index in range(len(tail) - 1, -1, -1):
        line = tail[index].strip()
        if missing := MISSING_MODULE.search(line):
            return _missing_module(missing.group(1))
        if found := BACKEND_ERROR.match(line):
            hint = tail[index + 1].strip() if index + 1 < len(tail) and tail[index + 1].strip().startswith("hint:") else ""
            return found.group(1) + (f" ({hint[len('hint:'):].strip()})" if hint else "")
    return tail[-1].strip() if tail else "it wrote nothing to its log"


def _missing_module(module: str) -> str:
    top = module.split(".")[0]
    if top == "backend":
        return ("this Python has no backend (No module named 'backend'): press Install Backend in the add-on's preferences, "
                "or pick a Backend Python that has it")
    return (f"the backend's environment lacks the package {top!r} (No module named '{module}'): press Install Backend "
            "to repair it")
