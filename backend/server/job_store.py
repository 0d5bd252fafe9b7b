"""Jobs persisted in SQLite (``<data dir>/jobs.sqlite3``): the server's one source of truth.

Every state change goes through this class, under one lock, counts in ``change_count`` and calls
every listener added with ``add_listener`` (the event streams wait on those).
The database file is private to the user (0600).

Another program holding the database's write lock makes a write wait at most ``busy_seconds`` and
then fail as SQLITE_BUSY (answered 503 BUSY); reads go on meanwhile (WAL). A row that cannot be
read (its params JSON cut short, say) is skipped wherever jobs are read, reported once in the log,
and its job marked failed with the reason, so one bad row never hides the others or stops the
worker. ``on_record`` receives every job whose state changed, so the job's folder can keep a copy
of its record (``job_records``) from which a lost database is rebuilt. The WAL is checkpointed when
a job ends, so finished jobs are in the main database file, not only in ``-wal``.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from blender_addon.formats import protocol

log = logging.getLogger("avatar_foundry.server")
APPLICATION_ID = 0x41564652
"""``PRAGMA application_id`` of a job database ('AVFR'): tells ours from another program's SQLite file."""
_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    stage TEXT NOT NULL DEFAULT '',
    eta_seconds REAL,
    error TEXT,
    params TEXT NOT NULL,
    has_inputs INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, seq);
"""

INTERRUPTED_MESSAGE = "interrupted (the backend stopped while it ran)"
DEFAULT_BUSY_SECONDS = 2.0
JOB_COLUMNS = ("seq", "id", "kind", "state", "progress", "stage", "eta_seconds", "error", "params", "has_inputs",
               "created_at", "started_at", "finished_at")


class DamagedRow(ValueError):
    """A job row whose fields cannot be read back."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def new_job_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass(frozen=True)
class Job:
    seq: int
    id: str
    kind: str
    state: str
    progress: float
    stage: str
    eta_seconds: float | None
    error: dict | None
    params: dict
    has_inputs: bool
    created_at: str
    started_at: str | None
    finished_at: str | None

    @property
    def finished(self) -> bool:
        return self.state in protocol.FINAL_JOB_STATES

    def to_json(self) -> dict[str, Any]:
        """The job object of the HTTP API."""
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "progress": self.progress,
            "stage": self.stage,
            "eta_seconds": self.eta_seconds,
            "error": self.error,
            "params": self.params,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }

    def summary_json(self) -> dict[str, Any]:
        """The job object without its params: what a job list carries (params come with GET /v1/jobs/{id})."""
        summary = self.to_json()
        del summary["params"]
        return summary

    def record_json(self) -> dict[str, Any]:
        """Everything needed to restore the job's row (the copy kept in its folder)."""
        return {**self.to_json(), "has_inputs": self.has_inputs}


class JobStore:
    def __init__(self, path: Path, write_fault: Callable[[], None] | None = None,
                 on_record: Callable[[Job], None] | None = None, busy_seconds: float = DEFAULT_BUSY_SECONDS) -> None:
        """``write_fault``: test-only fault injection run before every write (see ``faults``)."""
        _make_private(path)
        self.path = path
        self._write_fault = write_fault
        self._on_record = on_record
        self._listeners: list[Callable[[], None]] = []
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=busy_seconds)
        self._connection.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        self._change_count = 0
        self._reported_rows: set[str] = set()
        try:
            with self._lock:
                self._connection.execute("PRAGMA journal_mode=WAL")
                self._connection.executescript(_SCHEMA)
                self._connection.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
                self._connection.execute(f"PRAGMA application_id={APPLICATION_ID}")
        except BaseException:
            self._connection.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    # Reads -----------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        jobs = self._read("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return jobs[0] if jobs else None

    def list(self, limit: int = 200, before: int | None = None) -> list[Job]:
        """Newest first; ``before`` (a ``seq``) continues a listing after its last job."""
        if before is None:
            return self._read("SELECT * FROM jobs ORDER BY seq DESC LIMIT ?", (limit,))
        return self._read("SELECT * FROM jobs WHERE seq < ? ORDER BY seq DESC LIMIT ?", (before, limit))

    def next_queued(self) -> Job | None:
        """The oldest readable queued job (jobs run in the order they were submitted)."""
        while True:
            with self._lock:
                rows = self._connection.execute("SELECT * FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1").fetchall()
            if not rows:
                return None
            jobs = self._jobs_from_rows(rows)
            if jobs:
                return jobs[0]

    @property
    def change_count(self) -> int:
        """Read without the lock (an int read is atomic), so the event loop never waits for a write."""
        return self._change_count

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (from the writing thread, so it must be quick) after every change."""
        with self._lock:
            self._listeners.append(listener)

    def job_ids(self) -> set[str]:
        with self._lock:
            return {row["id"] for row in self._connection.execute("SELECT id FROM jobs")}

    def all_jobs(self) -> list[Job]:
        """Every readable job, oldest first (damaged rows are marked failed on the way)."""
        return self._read("SELECT * FROM jobs ORDER BY seq", ())

    def _read(self, sql: str, arguments: tuple) -> list[Job]:
        with self._lock:
            rows = self._connection.execute(sql, arguments).fetchall()
        return self._jobs_from_rows(rows)

    def _jobs_from_rows(self, rows: list[sqlite3.Row]) -> list[Job]:
        """The jobs of ``rows``; a row that cannot be read is reported, marked failed and left out
        (it reads back, failed, the next time)."""
        jobs = []
        for row in rows:
            try:
                jobs.append(_job_from_row(row))
            except DamagedRow as damage:
                self._mark_damaged(row, str(damage))
        return jobs

    def _mark_damaged(self, row: sqlite3.Row, reason: str) -> None:
        job_id = str(row["id"])
        if job_id not in self._reported_rows:
            self._reported_rows.add(job_id)
            log.warning("the record of job %s in the job database is damaged (%s); the job is marked failed", job_id[:64], reason)
        error = {"code": protocol.INTERNAL, "message": f"the job's record was damaged ({reason})",
                 "hint": "submit the job again; files in its folder are kept", "field": None}
        self._write(
            "UPDATE jobs SET kind = CAST(kind AS TEXT), state = 'failed', stage = 'damaged', progress = 0, eta_seconds = NULL, "
            "error = ?, params = '{}', has_inputs = 0, created_at = COALESCE(CAST(created_at AS TEXT), ?), "
            "started_at = NULL, finished_at = ? WHERE seq = ?",
            (json.dumps(error), now_iso(), now_iso(), row["seq"]),
        )

    # Writes ----------------------------------------------------------------------------------

    def add(self, job_id: str, kind: str, params: dict, has_inputs: bool) -> Job:
        self._write(
            "INSERT INTO jobs (id, kind, state, params, has_inputs, created_at) VALUES (?, ?, 'queued', ?, ?, ?)",
            (job_id, kind, strict_json(params), int(has_inputs), now_iso()),
        )
        return self._recorded(job_id)

    def restore(self, record: dict) -> Job:
        """Insert a job from the copy of its record kept in its folder (a rebuilt database)."""
        job = job_from_record(record)
        self._write(
            "INSERT INTO jobs (id, kind, state, progress, stage, eta_seconds, error, params, has_inputs, created_at, "
            "started_at, finished_at) VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?)",
            (job.id, job.kind, job.state, job.progress, job.stage, strict_json(job.error) if job.error else None,
             strict_json(job.params), int(job.has_inputs), job.created_at, job.started_at, job.finished_at),
        )
        return self._require(job.id)

    def claim(self, job_id: str) -> bool:
        """queued -> running; False when the job was cancelled meanwhile."""
        claimed = self._write(
            "UPDATE jobs SET state = 'running', started_at = ?, stage = 'starting' WHERE id = ? AND state = 'queued'",
            (now_iso(), job_id),
        ) == 1
        if claimed:
            self._recorded(job_id)
        return claimed

    def report_progress(self, job_id: str, progress: float, stage: str, eta_seconds: float | None) -> None:
        self._write(
            "UPDATE jobs SET progress = ?, stage = ?, eta_seconds = ? WHERE id = ? AND state = 'running'",
            (progress, stage, eta_seconds, job_id),
        )

    def finish(self, job_id: str, state: str, stage: str, error: dict | None = None, progress: float | None = None) -> Job:
        """Move a running job to a final state; ``progress`` None keeps the last reported value."""
        if state not in protocol.FINAL_JOB_STATES:
            raise ValueError(f"{state!r} is not a final state")
        self._write(
            "UPDATE jobs SET state = ?, stage = ?, error = ?, progress = COALESCE(?, progress), eta_seconds = NULL, "
            "finished_at = ? WHERE id = ?",
            (state, stage, strict_json(error) if error else None, progress, now_iso(), job_id),
        )
        self.checkpoint()
        return self._recorded(job_id)

    def checkpoint(self) -> None:
        """Copy the WAL into the main database file (best effort: a reader may hold it back)."""
        try:
            with self._lock:
                self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as error:
            log.warning("could not checkpoint the job database (%s)", error)

    def cancel_if_queued(self, job_id: str) -> bool:
        """Cancel a job that has not started; False when it is running or already over."""
        error = {"code": protocol.CANCELLED, "message": "cancelled by the user", "hint": "", "field": None}
        cancelled = self._write(
            "UPDATE jobs SET state = 'cancelled', stage = 'cancelled', error = ?, finished_at = ? WHERE id = ? AND state = 'queued'",
            (json.dumps(error), now_iso(), job_id),
        ) == 1
        if cancelled:
            self._recorded(job_id)
        return cancelled

    def delete_finished(self, job_id: str) -> bool:
        """Remove a finished job's record; False when it is queued or running (or unknown)."""
        return self._write("DELETE FROM jobs WHERE id = ? AND state IN ('succeeded', 'failed', 'cancelled')", (job_id,)) == 1

    def mark_interrupted(self) -> int:
        """At start: jobs left 'running' by a backend that stopped become failed/INTERRUPTED."""
        running = [job.id for job in self._read("SELECT * FROM jobs WHERE state = 'running'", ())]
        error = {
            "code": protocol.INTERRUPTED,
            "message": INTERRUPTED_MESSAGE,
            "hint": "submit the job again; its partial files are kept in its folder",
            "field": None,
        }
        count = self._write(
            "UPDATE jobs SET state = 'failed', stage = 'interrupted', error = ?, eta_seconds = NULL, finished_at = ? "
            "WHERE state = 'running'",
            (json.dumps(error), now_iso()),
        )
        for job_id in running:
            self._recorded(job_id)
        return count

    def _write(self, sql: str, arguments: tuple) -> int:
        with self._lock:
            if self._write_fault is not None:
                self._write_fault()
            count = self._connection.execute(sql, arguments).rowcount
            if count:
                self._change_count += 1
                for listener in self._listeners:
                    listener()
            return count

    def _require(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def _recorded(self, job_id: str) -> Job:
        """The job as stored now, also handed to ``on_record`` (whose failure is only logged: the
        database stays the source of truth)."""
        job = self._require(job_id)
        if self._on_record is not None:
            try:
                self._on_record(job)
            except OSError as error:
                log.warning("could not write the record of job %s into its folder (%s)", job_id, error)
        return job


def strict_json(value: Any) -> str:
    """JSON text without NaN or Infinity, which strict JSON parsers (and the add-on) refuse."""
    return json.dumps(value, allow_nan=False)


def _make_private(path: Path) -> None:
    """Create the database file 0600 (SQLite gives its -wal and -shm files the same mode)."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    if os.name != "nt":
        for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if candidate.exists() and candidate.stat().st_mode & 0o077:
                candidate.chmod(0o600)


_TEXT_FIELDS = ("id", "kind", "state", "stage", "created_at")
_OPTIONAL_TEXT_FIELDS = ("started_at", "finished_at")


def _job_from_row(row: sqlite3.Row) -> Job:
    """The row as a Job; DamagedRow names the first field that cannot be read."""
    values = {name: row[name] for name in row.keys()}
    for name in ("error", "params"):
        values[name] = _json_field(values[name], name)
    return job_from_record(values, seq=row["seq"])


def _json_field(text: Any, name: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError) as error:
        raise DamagedRow(f"its {name} are not valid JSON: {error}") from None


def job_from_record(record: dict, seq: int = 0) -> Job:
    """A Job from decoded fields (a row's, or the record kept in a job's folder), checking each type."""
    for name in _TEXT_FIELDS:
        if not isinstance(record.get(name), str):
            raise DamagedRow(f"its {name} is not text")
    for name in _OPTIONAL_TEXT_FIELDS:
        if record.get(name) is not None and not isinstance(record[name], str):
            raise DamagedRow(f"its {name} is not text")
    if record["state"] not in protocol.JOB_STATES:
        raise DamagedRow(f"its state {record['state'][:40]!r} is unknown")
    if not isinstance(record.get("params"), dict):
        raise DamagedRow("its params are not a JSON object")
    error = record.get("error")
    if error is not None and not (isinstance(error, dict) and isinstance(error.get("message"), str)):
        raise DamagedRow("its error is not an error object")
    progress, eta = record.get("progress", 0.0), record.get("eta_seconds")
    if not isinstance(progress, (int, float)) or isinstance(progress, bool) or not 0.0 <= progress <= 1.0:
        raise DamagedRow("its progress is not a fraction")
    if eta is not None and (not isinstance(eta, (int, float)) or isinstance(eta, bool)):
        raise DamagedRow("its eta_seconds is not a number")
    return Job(seq=int(seq), id=record["id"], kind=record["kind"], state=record["state"], progress=float(progress),
               stage=record["stage"], eta_seconds=eta, error=error, params=record["params"],
               has_inputs=bool(record.get("has_inputs", False)), created_at=record["created_at"],
               started_at=record.get("started_at"), finished_at=record.get("finished_at"))
