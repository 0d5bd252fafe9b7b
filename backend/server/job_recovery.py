"""Opening the job database whatever state the disk left it in.

On open the file is checked (a folder in its place, not an SQLite file, cut short, a damaged page
found by ``PRAGMA quick_check``, another program's SQLite database): a damaged file is set aside
under a dated name (``jobs.sqlite3.damaged-20260101T120000Z``, with its ``-wal``/``-shm``), never
modified, and a new database is started. Then every job folder whose job has no row (a new
database, or rows lost with a deleted ``-wal``) gets its row back from the record kept in the
folder (``job_records``); a folder with outputs but no record comes back as a failed job of
unknown kind, so its files stay listed and downloadable. One log line says what happened.

A database locked by another program is waited for a while (saying so), then refused in one line.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from blender_addon.formats import protocol

from ..data_dir import DataDir
from .error_mapping import DatabaseLocked
from .job_records import read_job_record, record_path, write_job_record
from .job_store import APPLICATION_ID, JOB_COLUMNS, DamagedRow, JobStore, now_iso

log = logging.getLogger("avatar_foundry.server")
_SQLITE_HEADER = b"SQLite format 3\x00"
_JOB_ID = re.compile(r"^[0-9a-f]{16}$")
_OWN_TABLES = {"jobs", "sqlite_sequence"}
LOCK_WAIT_SECONDS = 30.0


def open_job_store(data_dir: DataDir, write_fault: Callable[[], None] | None = None,
                   lock_wait_seconds: float = LOCK_WAIT_SECONDS) -> JobStore:
    """The job store of ``data_dir``: checked, set aside and rebuilt when damaged, completed from
    the job folders, and every job's folder holding its record."""
    path = data_dir.database_path
    problem = _wait_for_lock(lambda: database_problem(path), path, lock_wait_seconds)
    aside = set_aside(path) if problem else None
    store = _wait_for_lock(
        lambda: JobStore(path, write_fault=write_fault, on_record=lambda job: write_job_record(data_dir, job)),
        path, lock_wait_seconds)
    restored = restore_missing_jobs(store, data_dir)
    write_missing_records(store, data_dir)
    if aside is not None:
        log.warning("the job database %s was damaged (%s): moved it to %s and rebuilt %d job record(s) from the job folders",
                    path, problem, aside.name, restored)
    elif restored:
        log.warning("restored %d job record(s) missing from the job database from their job folders", restored)
    return store


def database_problem(path: Path) -> str | None:
    """Why the file at ``path`` cannot serve as the job database; None when it can (or is absent
    or empty, which makes a new one). Raises DatabaseLocked while another program locks it."""
    if not path.exists() and not path.is_symlink():
        return None
    if not path.is_file():
        return "a folder (or other non-file) is in its place"
    with open(path, "rb") as handle:
        header = handle.read(len(_SQLITE_HEADER))
    if not header:
        return None
    if header != _SQLITE_HEADER:
        return "it is not an SQLite database"
    try:
        connection = sqlite3.connect(path, timeout=0.5)
    except sqlite3.Error as error:
        return f"SQLite cannot open it ({error})"
    try:
        return _content_problem(connection)
    except sqlite3.OperationalError as error:
        if _is_locked(error):
            raise _locked(path) from None
        return f"SQLite cannot read it ({error})"
    except sqlite3.DatabaseError as error:
        return f"SQLite cannot read it ({error})"
    finally:
        connection.close()


def _content_problem(connection: sqlite3.Connection) -> str | None:
    findings = [row[0] for row in connection.execute("PRAGMA quick_check").fetchall()]
    if findings != ["ok"]:
        return f"PRAGMA quick_check found damage: {findings[0][:160]}"
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    application_id = connection.execute("PRAGMA application_id").fetchone()[0]
    if tables - _OWN_TABLES or application_id not in (0, APPLICATION_ID):
        return f"it is another program's SQLite database (tables: {', '.join(sorted(tables))[:160]})"
    if "jobs" in tables:
        columns = {row[1] for row in connection.execute("PRAGMA table_info(jobs)")}
        missing = [name for name in JOB_COLUMNS if name not in columns]
        if missing:
            return f"its jobs table lacks the column(s) {', '.join(missing)}"
    return None


def set_aside(path: Path) -> Path:
    """Rename the database (and its -wal/-shm) to a dated name beside it; returns the new path."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    counter = 1
    while aside.exists():
        counter += 1
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{counter}")
    for suffix in ("-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.rename(aside.with_name(aside.name + suffix))
    path.rename(aside)
    return aside


def restore_missing_jobs(store: JobStore, data_dir: DataDir) -> int:
    """Give every job folder without a row its row back; returns how many were restored."""
    known = store.job_ids()
    restored = 0
    for folder in sorted(data_dir.jobs_dir.iterdir(), key=_created_order):
        if not folder.is_dir() or not _JOB_ID.match(folder.name) or folder.name in known:
            continue
        record = read_job_record(data_dir, folder.name) or _record_of_unknown_job(data_dir, folder.name)
        if record is None:
            continue  # an upload the backend never queued: left to the orphan cleanup
        try:
            store.restore(record)
        except (DamagedRow, sqlite3.IntegrityError, TypeError, ValueError) as error:
            log.warning("could not restore job %s from its folder (%s)", folder.name, error)
            continue
        restored += 1
    return restored


def write_missing_records(store: JobStore, data_dir: DataDir) -> None:
    """Jobs recorded before job folders kept their records get theirs now."""
    for job in store.all_jobs():
        if not record_path(data_dir, job.id).exists():
            try:
                write_job_record(data_dir, job)
            except OSError as error:
                log.warning("could not write the record of job %s into its folder (%s)", job.id, error)
                return


def _record_of_unknown_job(data_dir: DataDir, job_id: str) -> dict | None:
    """A failed job of unknown kind for a folder holding outputs but no record."""
    if not data_dir.output_dir(job_id).is_dir():
        return None
    stamp = datetime.fromtimestamp(data_dir.job_dir(job_id).stat().st_mtime, timezone.utc).isoformat(timespec="milliseconds")
    error = {"code": protocol.INTERRUPTED, "message": "restored from its folder after the job database was lost; "
             "its kind and params are unknown", "hint": "its files are kept: list them with GET /v1/jobs/{id}/artifacts",
             "field": None}
    return {"id": job_id, "kind": "unknown", "state": "failed", "progress": 0.0, "stage": "restored", "error": error,
            "params": {}, "has_inputs": data_dir.inputs_dir(job_id).is_dir(), "created_at": stamp, "started_at": None,
            "finished_at": now_iso()}


def _created_order(folder: Path) -> tuple[str, str]:
    record = read_job_record(DataDir(folder.parent.parent), folder.name) if folder.is_dir() else None
    created = record.get("created_at") if record else None
    return (created if isinstance(created, str) else "", folder.name)


def _wait_for_lock(open_once, path: Path, seconds: float):
    """``open_once()``, retried while another program locks the database, at most ``seconds``."""
    deadline = time.monotonic() + seconds
    announced = False
    while True:
        try:
            return open_once()
        except (DatabaseLocked, sqlite3.OperationalError) as error:
            if isinstance(error, sqlite3.OperationalError) and not _is_locked(error):
                raise
            if time.monotonic() >= deadline:
                raise _locked(path) from None
            if not announced:
                log.warning("the job database %s is locked by another program; waiting up to %.0f s for it", path, seconds)
                announced = True
            time.sleep(0.5)


def _is_locked(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(error)


def _locked(path: Path) -> DatabaseLocked:
    return DatabaseLocked(f"the job database {path} is locked by another program")
