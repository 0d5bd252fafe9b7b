"""Long add-on work (installing the backend, waiting for it to start) on a worker thread.

The worker writes its stage, progress, log lines and outcome into a ``BackgroundTask``; Blender's
main thread only reads them (the panel draws them) and may ask for cancellation. Subprocesses the
worker runs are registered so that ``cancel`` can end them at once instead of waiting for a step.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import threading
from typing import Callable

LOG_LINES_KEPT = 200


class TaskCancelled(Exception):
    """Raised inside the worker when the artist pressed Cancel."""


class TaskFailed(Exception):
    """Raised inside the worker with the one-line message the panel shows (cause and fix)."""


class BackgroundTask:
    def __init__(self, title: str) -> None:
        self.title = title
        self.state = "idle"
        """'idle', 'running', 'succeeded', 'failed' or 'cancelled'."""
        self.stage = ""
        self.progress = 0.0
        self.message = ""
        """The outcome in one line: what succeeded, or the cause of the failure and its fix."""
        self.log: collections.deque[str] = collections.deque(maxlen=LOG_LINES_KEPT)
        self.report: list[str] = []
        """Lines the finished work wants shown (the install's doctor checks)."""
        self.result: object = None
        """What the finished work hands back beyond its message (the backend's health)."""
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._process: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, work: Callable[["BackgroundTask"], str]) -> None:
        """Run ``work(self)`` on a thread; it returns its success message, or raises TaskFailed."""
        if self.running():
            raise TaskFailed(f"{self.title} is already running")
        self.state, self.stage, self.progress, self.message = "running", "starting", 0.0, ""
        self.report, self.result = [], None
        self.log.clear()
        self._cancel.clear()
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True, name=f"avatar-foundry-{self.title}")
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """True once the work has ended (scripts and tests; the UI never waits)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running()

    def _run(self, work: Callable[["BackgroundTask"], str]) -> None:
        try:
            message = work(self)
            self.state, self.message, self.progress = "succeeded", message, 1.0
        except TaskCancelled:
            self.state, self.message = "cancelled", f"{self.title} cancelled"
        except TaskFailed as error:
            self.state, self.message = "failed", str(error)
        except Exception as error:  # the panel must learn of any failure; a silent dead thread would read "running"
            self.state, self.message = "failed", f"{self.title} failed: {type(error).__name__}: {error}"
        self.stage = self.state

    def set_stage(self, stage: str, progress: float) -> None:
        self.check_cancelled()
        self.stage, self.progress = stage, max(0.0, min(1.0, progress))

    def add_line(self, line: str) -> None:
        self.log.append(line.rstrip())

    def last_lines(self, count: int) -> list[str]:
        return list(self.log)[-count:]

    def cancel(self) -> None:
        """Ask the work to stop; a subprocess it is waiting on is ended at once."""
        self._cancel.set()
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            _end_process_tree(process)

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise TaskCancelled()

    def run_command(self, command: list[str], on_line: Callable[[str], None] | None = None,
                    env: dict[str, str] | None = None) -> int:
        """Run ``command``, feeding its output into the log line by line; its exit code.

        It runs in its own process group, so that Cancel ends pip together with the build
        processes it started."""
        self.check_cancelled()
        self.add_line("$ " + " ".join(command))
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   text=True, errors="replace", env=env, **_own_process_group())
        with self._lock:
            self._process = process
        try:
            assert process.stdout is not None
            for line in process.stdout:
                self.add_line(line)
                if on_line is not None:
                    on_line(line)
            code = process.wait()
        finally:
            with self._lock:
                self._process = None
        self.check_cancelled()
        return code


def _own_process_group() -> dict:
    if os.name == "nt":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def _end_process_tree(process: subprocess.Popen) -> None:
    try:
        if os.name == "nt":
            process.kill()
        else:
            os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
