"""What a pid is now: its start time and command line, from /proc (Linux) or ``ps`` (macOS).

A pid is reused once its process is gone; the start time tells a later process with the same pid
apart, and the command line tells whether it is a backend at all."""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

PS_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class ProcessIdentity:
    start_time: str | None
    """Opaque but stable for the life of the process: /proc's start tick, or ps's start date."""
    command: tuple[str, ...]


def identity_of(pid: int) -> ProcessIdentity | None:
    """The process's identity, or None when it is gone or nothing on this system can tell."""
    proc = Path("/proc") / str(pid)
    if Path("/proc/self/stat").exists():
        try:
            stat = (proc / "stat").read_text()
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        # Field 22 (start time in clock ticks after boot); the command name in field 2 may hold spaces.
        start_tick = stat.rsplit(")", 1)[1].split()[19]
        return ProcessIdentity(start_tick, tuple(part.decode(errors="replace") for part in command if part))
    return _identity_from_ps(pid)


def _identity_from_ps(pid: int) -> ProcessIdentity | None:
    try:
        result = subprocess.run(["ps", "-o", "lstart=", "-o", "command=", "-p", str(pid)], capture_output=True,
                                text=True, timeout=PS_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired):
        return None
    line = result.stdout.strip()
    if result.returncode != 0 or not line:
        return None
    parts = line.split()
    # lstart is five words ("Fri Dec  4 17:48:42 2026"); the command line follows
    return ProcessIdentity(" ".join(parts[:5]), tuple(shlex.split(" ".join(parts[5:]), posix=True)) if len(parts) > 5 else ())


def is_backend_command(command: tuple[str, ...]) -> bool:
    """``<python> -m backend.cli serve ...`` (or the ``avatar-foundry serve`` entry point)."""
    arguments = list(command[1:])
    runs_backend = "backend.cli" in arguments or (command and Path(command[0]).name.startswith("avatar-foundry"))
    return bool(runs_backend) and "serve" in arguments
