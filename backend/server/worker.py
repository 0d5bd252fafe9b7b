"""The one worker thread: runs queued jobs in submission order on the device, one at a time.

Cancelling a running job takes effect at its next ``progress.update`` (which raises Cancelled).
When the server shuts down, the running job is stopped the same way and recorded as interrupted.
A job's end that cannot be recorded (a full disk, a database locked by another program) is
retried until it can, so no job stays 'running' for ever while the server lives and a finished
result is never lost; a progress report the locked database refuses is skipped, not fatal. Any
failure of the store while picking the next job is logged and retried: the worker never dies.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any, Callable

from blender_addon.formats import protocol

from ..data_dir import DataDir
from ..errors import Cancelled
from ..jobs.registry import JobContext, get_kind
from ..model_cache import ModelCache
from ..progress import EtaEstimator
from .error_mapping import DatabaseLocked, to_foundry_error
from .job_store import INTERRUPTED_MESSAGE, Job, JobStore

log = logging.getLogger("avatar_foundry.server")

class Interrupted(Cancelled):
    """The backend is shutting down while the job runs."""

    code = protocol.INTERRUPTED

    def __init__(self) -> None:
        super().__init__(INTERRUPTED_MESSAGE, "submit the job again; its partial files are kept in its folder")


class JobProgress:
    """Progress of one job: cancel and shutdown checks at every update; writes to the store at
    most every ``min_interval`` seconds (the final state is written exactly by the worker)."""

    def __init__(self, job_id: str, store: JobStore, should_stop: Callable[[], str | None],
                 min_interval: float = 0.25, step_delay: float = 0.0) -> None:
        self._job_id = job_id
        self._store = store
        self._should_stop = should_stop
        self._min_interval = min_interval
        self._step_delay = step_delay
        self._eta = EtaEstimator()
        self._last_write = float("-inf")
        self.fraction = 0.0
        """The last reported fraction, written even when throttling skipped it."""

    def update(self, fraction: float, stage: str) -> None:
        if self._step_delay:
            time.sleep(self._step_delay)
        self._raise_if_stopping()
        fraction = min(max(float(fraction), 0.0), 1.0) if math.isfinite(fraction) else self.fraction
        self.fraction = fraction
        eta = self._eta.eta(fraction)
        now = time.monotonic()
        if now - self._last_write >= self._min_interval:
            self._write(fraction, stage, eta)
            self._last_write = now

    def _write(self, fraction: float, stage: str, eta: float | None) -> None:
        """Store the progress; while another program locks the database the report is skipped
        (the next one, or the job's end, is written once the lock is gone)."""
        try:
            self._store.report_progress(self._job_id, fraction, stage, None if eta is None else round(eta, 1))
        except Exception as error:
            if not isinstance(to_foundry_error(error), DatabaseLocked):
                raise

    def cancelled(self) -> bool:
        return self._should_stop() is not None

    def _raise_if_stopping(self) -> None:
        reason = self._should_stop()
        if reason == "shutdown":
            raise Interrupted()
        if reason == "cancel":
            raise Cancelled()


class JobWorker:
    def __init__(self, store: JobStore, data_dir: DataDir, models: ModelCache, device: Any,
                 resolve: Callable[[str], Any], step_delay: float = 0.0, idle_check_seconds: float = 5.0,
                 record_retry_seconds: float = 1.0) -> None:
        self._store = store
        self._data_dir = data_dir
        self._models = models
        self._device = device
        self._resolve = resolve
        self._step_delay = step_delay
        self._idle_check_seconds = idle_check_seconds
        self._record_retry_seconds = record_retry_seconds
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._cancel_requests: set[str] = set()
        self._cancel_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="avatar-foundry-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the running job's next progress update; a job that ignores it is left to the
        next start's interruption recovery."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)

    def wake(self) -> None:
        """A job was queued."""
        self._wake.set()

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued job now, or ask a running one to stop at its next step."""
        if not self._store.cancel_if_queued(job_id):
            job = self._store.get(job_id)
            if job is None or job.finished:
                return job
            with self._cancel_lock:
                self._cancel_requests.add(job_id)
        return self._store.get(job_id)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._run_next()
            except Exception as error:  # the store itself failed (a full disk, a lock): keep the worker alive
                log.warning("the job store failed (%s); the worker tries again in %.0f s",
                            to_foundry_error(error).message, self._idle_check_seconds)
                self._stopping.wait(self._idle_check_seconds)

    def _run_next(self) -> None:
        job = self._store.next_queued()
        if job is None:
            self._wake.wait(self._idle_check_seconds)
            self._wake.clear()
            self._models.clear_if_idle()
            return
        self._run(job)

    def _stop_reason(self, job_id: str) -> str | None:
        if self._stopping.is_set():
            return "shutdown"
        with self._cancel_lock:
            return "cancel" if job_id in self._cancel_requests else None

    def _run(self, job: Job) -> None:
        if not self._store.claim(job.id):
            return
        log.info("job %s (%s) started", job.id, job.kind)
        progress = JobProgress(job.id, self._store, lambda: self._stop_reason(job.id), step_delay=self._step_delay)
        try:
            kind = get_kind(job.kind)
            params = kind.params.model_validate(job.params)
            output_dir = self._data_dir.output_dir(job.id)
            output_dir.mkdir(parents=True, exist_ok=True)
            inputs_dir = self._data_dir.inputs_dir(job.id) if job.has_inputs else None
            context = JobContext(job.id, output_dir, inputs_dir, progress, self._models, self._resolve, self._device)
            kind.run(params, context)
        except Interrupted as error:
            self._finish(job, "failed", "interrupted", error.to_json(), progress.fraction)
        except Cancelled as error:
            self._finish(job, "cancelled", "cancelled", error.to_json(), progress.fraction)
        except Exception as error:  # every failure becomes the job's error, never a dead worker
            problem = to_foundry_error(error, field_prefix="params")
            if problem.code == protocol.OUT_OF_MEMORY:
                self._models.clear()  # the next job gets the whole device, not the leftovers
            self._finish(job, "failed", "failed", problem.to_json(), progress.fraction)
        else:
            self._finish(job, "succeeded", "done", None, 1.0)
        finally:
            self._models.touch()  # the idle time counts from the end of the job, not its start
            with self._cancel_lock:
                self._cancel_requests.discard(job.id)

    def _finish(self, job: Job, state: str, stage: str, error: dict | None, fraction: float) -> None:
        """Record the job's end, retrying while the store cannot be written (e.g. the disk is full);
        at shutdown the job is left 'running' for the next start to mark interrupted."""
        while True:
            try:
                self._store.finish(job.id, state, stage, error, progress=fraction)
                break
            except Exception as failure:
                problem = to_foundry_error(failure)
                log.warning("could not record the end of job %s (%s); retrying in %.0f s", job.id, problem.message,
                            self._record_retry_seconds)
                if self._stopping.wait(self._record_retry_seconds):
                    raise
        log.info("job %s (%s) %s%s", job.id, job.kind, state, f" [{error['code']}] {error['message']}" if error else "")
