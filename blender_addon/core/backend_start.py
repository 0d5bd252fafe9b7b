"""Start Backend as the artist sees it: check the Python, launch the backend, and wait until its
health answers. Success is only reported once seen; a backend that exits, or does not answer in
time, fails with the cause its log names and the fix."""

from __future__ import annotations

import time
from typing import Callable

from ..formats import protocol
from .background_task import BackgroundTask, TaskFailed
from .backend_client import BackendClient, BackendError
from .backend_log import explain_log, read_tail
from .backend_process import BackendLaunch, BackendProcess
from .backend_python import backend_python_problem

HEALTH_TIMEOUT_SECONDS = 180.0
"""The first start of a fresh environment imports PyTorch from a cold disk cache."""
POLL_SECONDS = 0.5


def start_and_wait(task: BackgroundTask, backend: BackendProcess, launch: BackendLaunch,
                   make_client: Callable[[], BackendClient], timeout: float = HEALTH_TIMEOUT_SECONDS,
                   progress_from: float = 0.0) -> str:
    """Run in ``task``'s worker thread; returns the success line, raises TaskFailed otherwise.
    Its progress fills the bar from ``progress_from`` (the install's steps came before it)."""
    task.set_stage(f"checking {launch.python}", progress_from)
    problem = backend_python_problem(launch.python, launch.working_dir)
    if problem:
        raise TaskFailed(problem)
    if backend.stopping():
        task.set_stage("waiting for the previous backend to end", progress_from)
    pid = backend.start(launch)
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        task.set_stage(f"waiting for the backend (pid {pid}) to answer: {elapsed:.0f} s", progress_from + (1.0 - progress_from) * min(0.95, elapsed / timeout))
        if not backend.running():
            report = backend.exit_report()
            raise TaskFailed(report.message if report else "the backend ended before it answered")
        health = _health(make_client)
        if health is not None:
            task.result = health
            return f"backend {health.get('version')} ready on {health.get('device_name', health.get('device'))} (pid {pid})"
        if elapsed > timeout:
            tail = read_tail(launch.log_path)
            raise TaskFailed(f"the backend (pid {pid}) did not answer within {timeout:.0f} s; it is still running: "
                             f"press Check later, or see {launch.log_path} (last line: {explain_log(tail)})")
        time.sleep(POLL_SECONDS)


def _health(make_client: Callable[[], BackendClient]) -> dict | None:
    """The health once the backend answers; None while it is still starting (no token written
    yet, port not open). A refused token or another protocol is final."""
    try:
        return make_client().health()
    except BackendError as error:
        if error.status == 401 or error.code == protocol.PROTOCOL_MISMATCH:
            raise TaskFailed(str(error)) from None
        return None
