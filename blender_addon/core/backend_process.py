"""Start, stop and find the backend subprocess (``<python> -m backend.cli serve``).

The pid goes into a file in the add-on's writable folder, so that a backend left running by a
crashed Blender session is found and ended at the next start instead of holding the port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..formats.files import atomic_write_text

PID_FILE_NAME = "backend.pid"


@dataclass
class BackendLaunch:
    python: str
    port: int
    data_dir: Path
    working_dir: Path | None = None
    """Where ``backend`` is importable from (the repository) when it is not installed in ``python``."""

    def command(self) -> list[str]:
        return [self.python, "-m", "backend.cli", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate(pid: int, timeout: float) -> None:
    if not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:  # reap our own child so that it does not linger as a zombie
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        if not _alive(pid):
            return
        time.sleep(0.05)
    if hasattr(signal, "SIGKILL"):
        os.kill(pid, signal.SIGKILL)


class BackendProcess:
    def __init__(self, state_dir: Path) -> None:
        self.pid_file = Path(state_dir) / PID_FILE_NAME
        self.process: subprocess.Popen | None = None

    def recorded_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def clean_orphan(self, timeout: float = 10.0) -> int | None:
        """End a backend an earlier session started and never stopped; returns its pid."""
        pid = self.recorded_pid()
        if pid is None or (self.process is not None and self.process.pid == pid):
            return None
        self.pid_file.unlink(missing_ok=True)
        if _alive(pid):
            _terminate(pid, timeout)
            return pid
        return None

    def start(self, launch: BackendLaunch) -> int:
        self.clean_orphan()
        if self.running():
            return self.process.pid  # type: ignore[union-attr]
        launch.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(launch.data_dir / "backend.log", "ab")
        self.process = subprocess.Popen(launch.command(), cwd=launch.working_dir, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        atomic_write_text(self.pid_file, str(self.process.pid))
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            _terminate(self.process.pid, timeout)
            self.process.wait(timeout)
            self.process = None
        self.pid_file.unlink(missing_ok=True)


def default_python() -> str:
    return sys.executable
