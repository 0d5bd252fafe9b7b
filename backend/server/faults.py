"""Fault injection for tests only, switched on by environment variables; never set them in normal use.

``AVATAR_FOUNDRY_TEST_STEP_DELAY``: seconds to sleep in every progress update, so that a real job
runs slowly enough to be cancelled or killed midway.

``AVATAR_FOUNDRY_TEST_DISK_FULL_FLAG``: a file path; while that file exists, every write to the job
store fails as SQLite fails on a full disk (``SQLITE_FULL``), so a test can fill and free the
"disk" of a running server by creating and removing one file.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Callable

STEP_DELAY_ENV = "AVATAR_FOUNDRY_TEST_STEP_DELAY"
DISK_FULL_FLAG_ENV = "AVATAR_FOUNDRY_TEST_DISK_FULL_FLAG"


def step_delay_from_environment() -> float:
    value = os.environ.get(STEP_DELAY_ENV, "")
    return float(value) if value else 0.0


def full_disk_error() -> sqlite3.OperationalError:
    """The error sqlite3 raises when the disk is full, with its error code set as SQLite sets it."""
    error = sqlite3.OperationalError("database or disk is full")
    error.sqlite_errorcode = sqlite3.SQLITE_FULL
    error.sqlite_errorname = "SQLITE_FULL"
    return error


def write_fault_from_environment() -> Callable[[], None] | None:
    """The check the job store runs before each write, or None when no fault is injected."""
    flag = os.environ.get(DISK_FULL_FLAG_ENV, "")
    if not flag:
        return None
    path = Path(flag)

    def fail_while_flagged() -> None:
        if path.exists():
            raise full_disk_error()

    return fail_while_flagged
