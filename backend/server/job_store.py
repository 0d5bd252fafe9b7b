"""Jobs persisted in SQLite (``<data dir>/jobs.sqlite3``): the server's one source of truth.

Every state change goes through this class, under one lock, counts in ``change_count`` and calls
every listener added with ``add_listener`` (the event streams wait on those).
The database file is private to the user (0600).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from blender_addon.formats import protocol

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


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def new_job_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass(frozen=True)
class Job:
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


class JobStore:
    def __init__(self, path: Path, write_fault: Callable[[], None] | None = None) -> None:
        """``write_fault``: test-only fault injection run before every write (see ``faults``)."""
        _make_private(path)
        self._write_fault = write_fault
        self._listeners: list[Callable[[], None]] = []
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._connection.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        self._change_count = 0
        with self._lock:
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.executescript(_SCHEMA)
            self._connection.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    # Reads -----------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._connection.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job_from_row(row) if row else None

    def list(self, limit: int = 200) -> list[Job]:
        """Newest first."""
        with self._lock:
            rows = self._connection.execute("SELECT * FROM jobs ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()
        return [_job_from_row(row) for row in rows]

    def next_queued(self) -> Job | None:
        """The oldest queued job (jobs run in the order they were submitted)."""
        with self._lock:
            row = self._connection.execute("SELECT * FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1").fetchone()
        return _job_from_row(row) if row else None

    @property
    def change_count(self) -> int:
        with self._lock:
            return self._change_count

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (from the writing thread, so it must be quick) after every change."""
        with self._lock:
            self._listeners.append(listener)

    def job_ids(self) -> set[str]:
        with self._lock:
            return {row["id"] for row in self._connection.execute("SELECT id FROM jobs")}

    # Writes ----------------------------------------------------------------------------------

    def add(self, job_id: str, kind: str, params: dict, has_inputs: bool) -> Job:
        self._write(
            "INSERT INTO jobs (id, kind, state, params, has_inputs, created_at) VALUES (?, ?, 'queued', ?, ?, ?)",
            (job_id, kind, strict_json(params), int(has_inputs), now_iso()),
        )
        return self._require(job_id)

    def claim(self, job_id: str) -> bool:
        """queued -> running; False when the job was cancelled meanwhile."""
        return self._write(
            "UPDATE jobs SET state = 'running', started_at = ?, stage = 'starting' WHERE id = ? AND state = 'queued'",
            (now_iso(), job_id),
        ) == 1

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
        return self._require(job_id)

    def cancel_if_queued(self, job_id: str) -> bool:
        """Cancel a job that has not started; False when it is running or already over."""
        error = {"code": protocol.CANCELLED, "message": "cancelled by the user", "hint": "", "field": None}
        return self._write(
            "UPDATE jobs SET state = 'cancelled', stage = 'cancelled', error = ?, finished_at = ? WHERE id = ? AND state = 'queued'",
            (json.dumps(error), now_iso(), job_id),
        ) == 1

    def delete_finished(self, job_id: str) -> bool:
        """Remove a finished job's record; False when it is queued or running (or unknown)."""
        return self._write("DELETE FROM jobs WHERE id = ? AND state IN ('succeeded', 'failed', 'cancelled')", (job_id,)) == 1

    def mark_interrupted(self) -> int:
        """At start: jobs left 'running' by a backend that stopped become failed/INTERRUPTED."""
        error = {
            "code": protocol.INTERRUPTED,
            "message": INTERRUPTED_MESSAGE,
            "hint": "submit the job again; its partial files are kept in its folder",
            "field": None,
        }
        return self._write(
            "UPDATE jobs SET state = 'failed', stage = 'interrupted', error = ?, eta_seconds = NULL, finished_at = ? "
            "WHERE state = 'running'",
            (json.dumps(error), now_iso()),
        )

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


def _job_from_row(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        kind=row["kind"],
        state=row["state"],
        progress=float(row["progress"]),
        stage=row["stage"],
        eta_seconds=row["eta_seconds"],
        error=json.loads(row["error"]) if row["error"] else None,
        params=json.loads(row["params"]),
        has_inputs=bool(row["has_inputs"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )
