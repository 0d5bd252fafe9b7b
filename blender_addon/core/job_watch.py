"""Backend jobs followed from background threads; results handed to Blender's main thread.

Threads only talk HTTP and put ``JobEvent``s into a queue; the main thread calls ``drain()``
from a ``bpy.app.timers`` callback and is the only one touching bpy data. ``JobBoard`` is the
main-thread view of the jobs (what the Jobs panel draws).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..formats.errors import FormatError
from ..formats.protocol import FINAL_JOB_STATES
from .backend_client import UNREACHABLE, BackendClient, BackendError
from .job_requests import wanted_artifact

POLL_INTERVAL_SECONDS = 0.5


@dataclass
class JobEvent:
    kind: str
    """'update' (job changed), 'downloaded' (artifacts are on disk), 'error' (a request failed)."""
    job: dict | None = None
    message: str = ""
    files: list[Path] = field(default_factory=list)
    folder: Path | None = None


class JobWatcher:
    def __init__(self, make_client: Callable[[], BackendClient], poll_interval: float = POLL_INTERVAL_SECONDS) -> None:
        self._make_client = make_client
        self._poll_interval = poll_interval
        self._events: queue.Queue[JobEvent] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _start(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=self._guarded(target), daemon=True, name="avatar-foundry-job")
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _guarded(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BackendError as error:
                self._events.put(JobEvent("error", message=str(error)))
            except FormatError as error:
                self._events.put(JobEvent("error", message=f"{error.field}: {error.message}" + (f" ({error.hint})" if error.hint else "")))
            except OSError as error:
                self._events.put(JobEvent("error", message=f"could not prepare the upload: {error}"))
        return run

    def submit(self, kind: str, params: dict, upload: bytes | Callable[[], bytes] | None = None,
               download_to: Path | None = None, startup_grace: float = 0.0) -> None:
        """Submit in the background, follow the job to its end, then download its artifacts.

        ``upload`` is the zip to send, or a function making it: zipping a large bundle then happens
        off Blender's main thread too. ``startup_grace``: seconds to wait for a backend that was
        just started to answer."""
        def work() -> None:
            bundle_zip = upload() if callable(upload) else upload
            client = self._make_client()
            self._wait_until_reachable(client, startup_grace)
            job = client.submit(kind, params, bundle_zip)
            self._events.put(JobEvent("update", job))
            self._follow(job["id"], download_to)
        self._start(work)

    def _wait_until_reachable(self, client: BackendClient, grace: float) -> None:
        deadline = time.monotonic() + grace
        while True:
            try:
                client.health()
                return
            except BackendError as error:
                if error.code != UNREACHABLE or time.monotonic() >= deadline or self._stop.is_set():
                    raise
            self._stop.wait(self._poll_interval)

    def follow(self, job_id: str, download_to: Path | None = None) -> None:
        self._start(lambda: self._follow(job_id, download_to))

    def _follow(self, job_id: str, download_to: Path | None) -> None:
        client = self._make_client()
        last = None
        while not self._stop.is_set():
            job = client.job(job_id)
            if job != last:
                self._events.put(JobEvent("update", job))
                last = job
            if job["state"] in FINAL_JOB_STATES:
                if job["state"] == "succeeded" and download_to is not None:
                    folder = Path(download_to) / job_id
                    files = client.download_all(job_id, folder, wanted_artifact)
                    self._events.put(JobEvent("downloaded", job, files=files, folder=folder))
                return
            self._stop.wait(self._poll_interval)

    def cancel(self, job_id: str) -> None:
        self._start(lambda: self._events.put(JobEvent("update", self._make_client().cancel(job_id))))

    def drain(self) -> list[JobEvent]:
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def busy(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask every thread to end and wait for them (Blender must not exit with threads running)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


@dataclass
class JobBoard:
    """Latest state of each job this session knows, newest first, and the last error message."""

    jobs: dict[str, dict] = field(default_factory=dict)
    last_error: str = ""

    def apply(self, event: JobEvent) -> None:
        if event.kind == "error":
            self.last_error = event.message
        elif event.job is not None:
            self.jobs[event.job["id"]] = event.job
            if event.job.get("state") == "failed" and event.job.get("error"):
                error = event.job["error"]
                self.last_error = f"{event.job['kind']} failed: {error.get('message', '')}" + (f" ({error['hint']})" if error.get("hint") else "")

    def ordered(self) -> list[dict]:
        return sorted(self.jobs.values(), key=lambda job: job.get("created_at") or "", reverse=True)

    def active(self) -> list[dict]:
        return [job for job in self.ordered() if job["state"] not in FINAL_JOB_STATES]
