"""``notices.json``: what a finished job tells the artist beside its results (a prompt CLIP cut
short, an input it skipped), written by backend jobs and shown by the add-on's Jobs panel.

    {"notices": ["3 of 24 prompts are longer than CLIP's 77 tokens; cut after: '... red hair'"]}
"""

from __future__ import annotations

import json
from pathlib import Path

from .files import atomic_write_json

NOTICES_FILE = "notices.json"


def write_notices(folder: str | Path, notices: list[str]) -> Path:
    return atomic_write_json(Path(folder) / NOTICES_FILE, {"notices": [str(notice) for notice in notices]})


def read_notices(folder: str | Path) -> list[str]:
    """The notices of a result folder ([] when it has none); an unreadable file is itself a notice."""
    path = Path(folder) / NOTICES_FILE
    if not path.is_file():
        return []
    try:
        notices = json.loads(path.read_text(encoding="utf-8")).get("notices")
    except (OSError, ValueError, AttributeError) as error:
        return [f"{NOTICES_FILE} could not be read: {error}"]
    if not isinstance(notices, list):
        return [f"{NOTICES_FILE} holds no 'notices' list"]
    return [str(notice) for notice in notices]
