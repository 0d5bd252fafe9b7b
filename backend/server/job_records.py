"""The copy of each job's record kept in its own folder: ``jobs/<id>/job.json``.

The job database is the source of truth while it lives; this copy (written when a job is queued,
starts and ends) is what lets a lost or damaged database be rebuilt from the job folders: kind,
params, state, error and times, beside the job's inputs and outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

from blender_addon.formats.files import atomic_write_text

from ..data_dir import DataDir
from .job_store import Job, strict_json

RECORD_FILE_NAME = "job.json"


def record_path(data_dir: DataDir, job_id: str) -> Path:
    return data_dir.job_dir(job_id) / RECORD_FILE_NAME


def write_job_record(data_dir: DataDir, job: Job) -> None:
    """Write (atomically) the job's record into its folder, creating the folder if needed."""
    atomic_write_text(record_path(data_dir, job.id), strict_json(job.record_json()) + "\n")


def read_job_record(data_dir: DataDir, job_id: str) -> dict | None:
    """The record kept in the job's folder; None when it is missing or unreadable."""
    try:
        record = json.loads(record_path(data_dir, job_id).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("id") == job_id else None
