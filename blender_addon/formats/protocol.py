"""Constants of the HTTP protocol between the add-on and the backend."""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROTOCOL_VERSION = "1.0"
"""Major.minor. A client refuses a backend whose major version differs from its own."""

API_PREFIX = "/v1"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
TOKEN_FILE_NAME = "token"
SERVER_INFO_FILE_NAME = "server.json"
"""Written by a running backend into its data dir: {"url", "pid", "protocol_version"}."""
DATA_DIR_ENV = "AVATAR_FOUNDRY_HOME"


def default_data_dir() -> Path:
    """The per-user data folder shared by the add-on and the backend.

    $AVATAR_FOUNDRY_HOME if set, else the platform's per-user data folder + "avatar-foundry":
    $XDG_DATA_HOME or ~/.local/share on Linux, ~/Library/Application Support on macOS, %APPDATA% on Windows.
    """
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "avatar-foundry"

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_JOB_STATES = ("succeeded", "failed", "cancelled")

# Stable error codes; every error response is {"error": {"code", "message", "hint", "field"}}.
INVALID_INPUT = "INVALID_INPUT"
UNAUTHORIZED = "UNAUTHORIZED"
FORBIDDEN_ORIGIN = "FORBIDDEN_ORIGIN"
NOT_FOUND = "NOT_FOUND"
MODEL_MISSING = "MODEL_MISSING"
OUT_OF_MEMORY = "OUT_OF_MEMORY"
DISK_FULL = "DISK_FULL"
DATA_DIR_UNWRITABLE = "DATA_DIR_UNWRITABLE"
BUSY = "BUSY"
PROTOCOL_MISMATCH = "PROTOCOL_MISMATCH"
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
CONFLICT = "CONFLICT"
INTERRUPTED = "INTERRUPTED"
CANCELLED = "CANCELLED"
INTERNAL = "INTERNAL"


def major(version: str) -> int | None:
    """The major number of 'MAJOR.MINOR', or None for a version that is not one."""
    head = str(version).split(".", 1)[0]
    return int(head) if head.isdigit() else None


def compatibility_problem(client_version: str, server_version: str) -> str | None:
    """None when the two can talk, else a sentence saying which side to update."""
    client, server = major(client_version), major(server_version)
    if server is None:
        return f"the backend reports no usable protocol version ({server_version!r}): it is not an Avatar Foundry backend, or a very old one"
    if client == server:
        return None
    older = "add-on" if client is not None and client < server else "backend"
    return (
        f"the add-on speaks protocol {client_version} but the backend speaks {server_version}: "
        f"update the {older} so both have the same major version"
    )
