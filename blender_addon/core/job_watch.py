"""Backend jobs followed from background threads; results handed to Blender's main thread.

Threads only talk HTTP and put ``JobEvent``s into a queue; the main thread calls ``drain()``
from a ``bpy.app.timers`` callback and is the only one touching bpy data. ``JobBoard`` is the
main-thread view of the jobs (what the Jobs panel draws).

The board tells the truth within one poll: a job being sent shows as "submitting" and becomes the
backend's job or "not submitted" with the reason; a follower that loses the backend keeps its job
and says so ("backend not answering"), retries, and carries on when the backend answers again (at
once after Check); no exception ends a thread without an event naming it.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ..formats.errors import FormatError
from ..formats.protocol import FINAL_JOB_STATES, NOT_FOUND, PROTOCOL_MISMATCH
from .backend_client import UNREACHABLE, BackendClient, BackendError
from .job_requests import wanted_artifact

POLL_INTERVAL_SECONDS = 0.5
RETRY_INTERVAL_SECONDS = 2.0
"""How often a follower that lost the backend tries again (Check wakes it at once)."""
DOWNLOAD_ATTEMPTS = 3

SUBMITTING = "submitting"
NOT_SUBMITTED = "not submitted"
"""Board-only states of a job the backend has not accepted (yet)."""
UNKNOWN = "unknown"
"""Board-only state of a job whose follower stopped for good (the backend no longer knows it...);
Check follows it again."""
LOCAL_JOB_PREFIX = "local-"

HEALTH_TASK = "Check Backend"
"""The 'result' task of a health answer: payload {"health": ..., "models": [...] (when asked)}."""
GIVE_UP_CODES = (NOT_FOUND, PROTOCOL_MISMATCH)
"""Errors after which following a job cannot succeed by waiting (others are retried)."""


@dataclass
class JobEvent:
    kind: str
    """'submitting' (a job is being sent), 'update' (job changed), 'downloaded' (artifacts are on
    disk), 'unreachable' (a follower lost the backend and retries), 'error' (a request failed for
    good), 'result' (a background request finished: ``task`` names it, ``payload`` holds its answer)."""
    job: dict | None = None
    message: str = ""
    files: list[Path] = field(default_factory=list)
    folder: Path | None = None
    job_id: str | None = None
    """The job an 'error' or 'unreachable' event is about (None: about no job in particular)."""
    replaces: str | None = None
    """For the first 'update' of a submitted job: the board's 'submitting' entry it replaces."""
    task: str = ""
    payload: Any = None
    unreachable: bool = False
    """For 'error' and 'unreachable' events: the backend could not be reached at all."""


def describe(error: BaseException) -> str:
    """One line for the panel: our own errors by their message, anything else by its type too."""
    if isinstance(error, BackendError):
        return str(error)
    if isinstance(error, FormatError):
        return f"{error.field}: {error.message}" + (f" ({error.hint})" if error.hint else "")
    if isinstance(error, OSError):
        return f"{error.strerror or error}" + (f": {error.filename}" if error.filename else "")
    return f"unexpected {type(error).__name__}: {error}"


class JobWatcher:
    def __init__(self, make_client: Callable[[], BackendClient], poll_interval: float = POLL_INTERVAL_SECONDS,
                 retry_interval: float = RETRY_INTERVAL_SECONDS) -> None:
        self._make_client = make_client
        self._poll_interval = poll_interval
        self._retry_interval = retry_interval
        self._events: queue.Queue[JobEvent] = queue.Queue()
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._following: dict[str, Path | None] = {}
        self._lock = threading.Lock()
        self._local_ids = itertools.count(1)

    def _start(self, target: Callable[[], None], what: str, job_id: str | None = None, task: str = "") -> None:
        thread = threading.Thread(target=self._guarded(target, what, job_id, task), daemon=True, name="avatar-foundry-job")
        with self._lock:  # followers are started from other watcher threads too
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _guarded(self, target: Callable[[], None], what: str, job_id: str | None, task: str) -> Callable[[], None]:
        """``target`` whose every exception becomes an 'error' event naming ``what`` failed."""
        def run() -> None:
            try:
                target()
            except Exception as error:  # noqa: BLE001 - a thread must never end without telling the board
                self._events.put(JobEvent("error", message=f"{what}: {describe(error)}", job_id=job_id, task=task,
                                          unreachable=isinstance(error, BackendError) and error.code == UNREACHABLE))
        return run

    def submit(self, kind: str, params: dict, upload: bytes | Callable[[], bytes] | None = None,
               download_to: Path | None = None, startup_grace: float = 0.0,
               start_backend: Callable[[], Any] | None = None) -> str:
        """Submit in the background, follow the job to its end, then download its artifacts.
        Returns the board id of the 'submitting' entry (replaced by the job once accepted).

        ``upload`` is the zip to send, or a function making it: zipping a large bundle then happens
        off Blender's main thread too. ``start_backend``: called once if the backend does not
        answer, after which it gets ``startup_grace`` seconds to come up."""
        local_id = f"{LOCAL_JOB_PREFIX}{next(self._local_ids)}"
        created = datetime.now(timezone.utc).isoformat()
        self._events.put(JobEvent("submitting", {"id": local_id, "kind": kind, "state": SUBMITTING, "created_at": created,
                                                 "stage": "sending to the backend", "progress": 0.0}))

        def work() -> None:
            bundle_zip = upload() if callable(upload) else upload
            client = self._make_client()
            self._wait_until_reachable(client, startup_grace, start_backend)
            job = client.submit(kind, params, bundle_zip)
            self._events.put(JobEvent("update", job, replaces=local_id))
            self.follow(job["id"], download_to)
        self._start(work, f"{kind} was not submitted", local_id, task="submit")
        return local_id

    def _wait_until_reachable(self, client: BackendClient, grace: float, start_backend: Callable[[], Any] | None) -> None:
        """Returns once the backend answers; an unreachable one is started (when ``start_backend``
        is given) and waited for ``grace`` seconds, else the error is raised at once."""
        deadline = None
        while True:
            try:
                client.health()
                return
            except BackendError as error:
                if error.code != UNREACHABLE or self._stop.is_set():
                    raise
                if deadline is None and start_backend is None or deadline is not None and time.monotonic() >= deadline:
                    raise
                if deadline is None:
                    start_backend()
                    deadline = time.monotonic() + grace
            self._stop.wait(self._poll_interval)

    def follow(self, job_id: str, download_to: Path | None = None) -> None:
        """Follow a job until it ends (at most one follower per job)."""
        with self._lock:
            if job_id in self._following:
                return
            self._following[job_id] = download_to
        self._start(lambda: self._follow(job_id, download_to), f"following job {job_id} stopped", job_id)

    def _follow(self, job_id: str, download_to: Path | None) -> None:
        try:
            self._follow_until_done(job_id, download_to)
        finally:
            with self._lock:
                self._following.pop(job_id, None)

    def _follow_until_done(self, job_id: str, download_to: Path | None) -> None:
        last, lost, download_failures = None, "", 0
        while not self._stop.is_set():
            try:
                client = self._make_client()
                job = client.job(job_id)
                if lost:
                    self._events.put(JobEvent("result", task=HEALTH_TASK, payload={"health": client.health()}))
                    lost = ""
                if job != last:
                    self._events.put(JobEvent("update", job))
                    last = job
                if job["state"] in FINAL_JOB_STATES:
                    if job["state"] == "succeeded" and download_to is not None:
                        self._events.put(JobEvent("update", {**job, "stage": "downloading the results"}))
                        folder = Path(download_to) / job_id
                        files = client.download_all(job_id, folder, wanted_artifact)
                        self._events.put(JobEvent("downloaded", job, files=files, folder=folder))
                    return
                self._stop.wait(self._poll_interval)
            except (BackendError, OSError) as error:
                download_failures += last is not None and last["state"] == "succeeded"
                if isinstance(error, BackendError) and error.code in GIVE_UP_CODES or download_failures >= DOWNLOAD_ATTEMPTS:
                    raise
                if describe(error) != lost:
                    lost = describe(error)
                    self._events.put(JobEvent("unreachable", message=lost, job_id=job_id))
                self._sleep_or_wake(self._retry_interval)

    def _sleep_or_wake(self, seconds: float) -> None:
        with self._wake:
            self._wake.wait(seconds)

    def resume(self, jobs: list[dict], download_to: Path | None) -> None:
        """The backend answers again (Check, Start): followers retry now, and every unfinished job
        of ``jobs`` that nobody follows any more gets a follower."""
        with self._wake:
            self._wake.notify_all()
        for job in jobs:
            if job["state"] not in FINAL_JOB_STATES and not job["id"].startswith(LOCAL_JOB_PREFIX):
                self.follow(job["id"], download_to)

    def following(self) -> list[str]:
        with self._lock:
            return list(self._following)

    def cancel(self, job_id: str) -> None:
        self._start(lambda: self._events.put(JobEvent("update", self._make_client().cancel(job_id))), f"cancelling job {job_id} failed")

    def run(self, task: str, request: Callable[[BackendClient], Any]) -> None:
        """Call the backend off the main thread; the answer comes back as a 'result' event named
        ``task`` (a failure as an 'error' event with that ``task``)."""
        self._start(lambda: self._events.put(JobEvent("result", task=task, payload=request(self._make_client()))),
                    f"{task} failed", task=task)

    def drain(self) -> list[JobEvent]:
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def busy(self) -> bool:
        with self._lock:
            return any(thread.is_alive() for thread in self._threads)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask every thread to end and wait for them (Blender must not exit with threads running)."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


@dataclass
class JobBoard:
    """Latest state of each job this session knows, newest first, and the last error message.

    ``last_error`` is the Backend panel's error box: a lost connection clears as soon as the
    backend answers again; other errors stay until a Check succeeds or a job is accepted."""

    jobs: dict[str, dict] = field(default_factory=dict)
    last_error: str = ""
    lost_contact: dict[str, str] = field(default_factory=dict)
    """Job id -> why its follower cannot reach the backend right now (it keeps retrying)."""
    connection_error: bool = False
    """Whether ``last_error`` is about reaching the backend (cleared by the next answer)."""

    def apply(self, event: JobEvent) -> None:
        if event.kind == "submitting" and event.job is not None:
            self.jobs[event.job["id"]] = event.job
        elif event.kind == "unreachable":
            self.lost_contact[event.job_id or ""] = event.message
            self.last_error, self.connection_error = f"backend not answering: {event.message}", True
        elif event.kind == "error":
            self._record_failure(event)
        elif event.kind == "result":
            self.backend_answers(clear_all=event.task == HEALTH_TASK)
        elif event.job is not None:
            self._record_job(event)

    def _record_job(self, event: JobEvent) -> None:
        job = event.job
        if event.replaces is not None:
            self.jobs.pop(event.replaces, None)
            self.backend_answers(clear_all=True)
        self.lost_contact.pop(job["id"], None)
        if self.connection_error:
            self.backend_answers()
        self.jobs[job["id"]] = job
        if job.get("state") == "failed" and isinstance(job.get("error"), dict):
            error = job["error"]
            self.last_error = f"{job['kind']} failed: {error.get('message', '')}" + (f" ({error['hint']})" if error.get("hint") else "")
            self.connection_error = False

    def _record_failure(self, event: JobEvent) -> None:
        self.last_error, self.connection_error = event.message, False
        job = self.jobs.get(event.job_id or "")
        if job is None:
            return
        self.lost_contact.pop(job["id"], None)
        updated = {**job, "error": {"message": event.message}}
        if job["state"] == SUBMITTING:
            updated.update(state=NOT_SUBMITTED, stage="")
        elif job["state"] not in FINAL_JOB_STATES:
            updated.update(state=UNKNOWN, eta_seconds=None)
        self.jobs[job["id"]] = updated

    def backend_answers(self, clear_all: bool = False) -> None:
        """The backend answered: a connection error is history (any error with ``clear_all``)."""
        if self.connection_error or clear_all:
            self.last_error, self.connection_error = "", False
        if clear_all:
            self.lost_contact.clear()

    def ordered(self) -> list[dict]:
        return sorted(self.jobs.values(), key=lambda job: job.get("created_at") or "", reverse=True)

    def active(self) -> list[dict]:
        return [job for job in self.ordered() if job["state"] not in FINAL_JOB_STATES + (NOT_SUBMITTED,)]
