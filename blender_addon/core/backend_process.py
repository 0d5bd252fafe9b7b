"""Start, stop and find the backend subprocess (``<python> -m backend.cli serve``).

The pid goes into a file in the add-on's writable folder, with the process's start time and
command line, so that a backend left running by a crashed Blender session is found and ended at
the next start instead of holding the port, and an unrelated process that later got the same pid
is never signalled. Stopping returns at once: the process is ended on a background thread.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..formats.files import atomic_write_text
from .process_exit import ExitReport, describe_exit, oom_kill_count
from .process_identity import ProcessIdentity, identity_of, is_backend_command

PID_FILE_NAME = "backend.pid"
LOG_FILE_NAME = "backend.log"
STOP_TIMEOUT_SECONDS = 10.0


@dataclass
class BackendLaunch:
    python: str
    port: int
    data_dir: Path
    working_dir: Path | None = None
    """Where ``backend`` is importable from (the repository) when it is not installed in ``python``;
    without it the backend runs in its data folder (never wherever Blender was started)."""

    def command(self) -> list[str]:
        return [self.python, "-m", "backend.cli", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE_NAME


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
        self.launch: BackendLaunch | None = None
        self._oom_kills_at_start: int | None = None
        self._stopping: threading.Thread | None = None
        self._exit_reported = False

    def recorded(self) -> tuple[int, ProcessIdentity | None] | None:
        """The pid in the pid file and the identity recorded with it (None for an old plain-pid file)."""
        try:
            text = self.pid_file.read_text().strip()
        except OSError:
            return None
        try:
            record = json.loads(text)
        except ValueError:
            return None
        if isinstance(record, int):
            return record, None
        if not isinstance(record, dict) or not isinstance(record.get("pid"), int):
            return None
        return record["pid"], ProcessIdentity(record.get("start_time"), tuple(record.get("command") or ()))

    def clean_orphan(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """End a backend an earlier session started and never stopped; returns its pid. A pid
        that now names another process (its start time or command line differ) is left alone."""
        recorded = self.recorded()
        if recorded is None or (self.process is not None and self.process.pid == recorded[0]):
            return None
        pid, identity = recorded
        self.pid_file.unlink(missing_ok=True)
        if not _alive(pid) or not is_our_backend(pid, identity):
            return None
        _terminate(pid, timeout)
        return pid

    def start(self, launch: BackendLaunch) -> int:
        self.wait_until_stopped()
        self.clean_orphan()
        if self.running():
            return self.process.pid  # type: ignore[union-attr]
        launch.data_dir.mkdir(parents=True, exist_ok=True)
        self._oom_kills_at_start = oom_kill_count()
        with open(launch.log_path, "ab") as log:
            log.write(f"\n=== started by the Blender add-on: {' '.join(launch.command())}\n".encode())
            log.flush()
            self.process = subprocess.Popen(launch.command(), cwd=launch.working_dir or launch.data_dir, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.launch, self._exit_reported = launch, False
        identity = identity_of(self.process.pid)
        atomic_write_text(self.pid_file, json.dumps({
            "pid": self.process.pid, "start_time": identity.start_time if identity else None, "command": launch.command()}))
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_report(self) -> ExitReport | None:
        """Once, when the backend this session started has ended without being asked to stop:
        how it ended (exit code, signal, the kernel's out-of-memory killer) and its log's last lines."""
        if self.process is None or self._exit_reported or self.process.poll() is None:
            return None
        self._exit_reported = True
        log_path = self.launch.log_path if self.launch else None
        return describe_exit(self.process.returncode, log_path, self._oom_kills_at_start, oom_kill_count())

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """End the backend and wait for it (Blender quitting, scripts)."""
        self.stop_in_background(timeout)
        self.wait_until_stopped()

    def stop_in_background(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Ask the backend to end and return at once: SIGTERM, then SIGKILL after ``timeout`` on a
        background thread. A Start meanwhile waits for it to be gone (it holds the port and folder)."""
        process, self.process = self.process, None
        self.pid_file.unlink(missing_ok=True)
        if process is None:
            return

        def end() -> None:
            _terminate(process.pid, timeout)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass

        self._stopping = threading.Thread(target=end, daemon=True, name="avatar-foundry-stop")
        self._stopping.start()

    def stopping(self) -> bool:
        return self._stopping is not None and self._stopping.is_alive()

    def wait_until_stopped(self) -> None:
        if self._stopping is not None:
            self._stopping.join()
            self._stopping = None


def is_our_backend(pid: int, recorded: ProcessIdentity | None) -> bool:
    """Whether ``pid`` is still the backend the pid file recorded: its command line is a backend's
    (``backend.cli serve``), and its start time is the recorded one where both are known."""
    current = identity_of(pid)
    if current is None:
        return False  # nothing can be told about it (no /proc, no ps): never signal an unknown process
    if not is_backend_command(current.command):
        return False
    if recorded is not None and recorded.start_time is not None and current.start_time is not None:
        return recorded.start_time == current.start_time
    return True
