"""The backend's data folder: where the token, the job database, job folders and models live.

    <data dir>/
      token               the bearer token (mode 0600), created on first start and reused
      server.json         {"url", "pid", "protocol_version"} while a backend runs on this folder
      server.lock         Windows only: held by the running backend, so two cannot share one folder
                          (elsewhere the folder itself is locked: no file to delete defeats it)
      jobs.sqlite3        the job store
      jobs/<id>/inputs/   the job's uploaded condition bundle, extracted
      jobs/<id>/output/   everything the job wrote: its artifacts
      models/             the model store (``backend.models.store``)
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from blender_addon.formats import protocol
from blender_addon.formats.files import atomic_write

from .errors import AvatarFoundryError, DataDirUnwritable, InvalidInput

log = logging.getLogger("avatar_foundry.server")
_JOB_ID = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class DataDir:
    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike | None) -> "DataDir":
        """The data dir at ``root``, or the per-user default when ``root`` is None."""
        return cls(Path(root).expanduser().resolve() if root else protocol.default_data_dir().resolve())

    @property
    def token_path(self) -> Path:
        return self.root / protocol.TOKEN_FILE_NAME

    @property
    def server_info_path(self) -> Path:
        return self.root / protocol.SERVER_INFO_FILE_NAME

    @property
    def lock_path(self) -> Path:
        return self.root / "server.lock"

    @property
    def database_path(self) -> Path:
        return self.root / "jobs.sqlite3"

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def inputs_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "inputs"

    def output_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "output"

    def create(self) -> None:
        """Make the folder tree (idempotent) and check that it can be written. The root is private
        to the user (0700; an existing root readable by others is tightened)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.jobs_dir.mkdir(exist_ok=True)
            self.models_dir.mkdir(exist_ok=True)
        except OSError as error:
            raise InvalidInput(f"cannot create the data dir {self.root}: {error.strerror}",
                               "pass --data-dir pointing at a folder you can write to", field="data_dir") from None
        for folder in (self.root, self.jobs_dir, self.models_dir):
            try:
                with tempfile.TemporaryFile(dir=folder):
                    pass
            except OSError as error:
                raise DataDirUnwritable(f"cannot write to the data dir folder {folder}: {error.strerror}",
                                        "make it writable for the user running the backend, or pass another --data-dir",
                                        field="data_dir") from None
        for path in (self.token_path, self.database_path):
            if path.exists() and not os.access(path, os.R_OK | os.W_OK):
                raise DataDirUnwritable(f"cannot read and write {path}", "give it back to the user running the backend",
                                        field="data_dir")
        if os.name != "nt" and self.root.stat().st_mode & 0o077:
            self.root.chmod(0o700)

    def remove_job_folder(self, job_id: str) -> list[str]:
        """Remove ``jobs/<id>/`` as far as possible; returns 'path: reason' for what could not be removed."""
        failures: list[str] = []

        def note(function, path, exc_info) -> None:
            error = exc_info[1]
            failures.append(f"{path}: {getattr(error, 'strerror', None) or error}")

        folder = self.job_dir(job_id)
        if folder.exists():
            shutil.rmtree(folder, onerror=note)
        return failures

    def remove_orphan_job_folders(self, known_ids: set[str]) -> int:
        """Remove the folders of uploads that never became jobs (a backend killed while it unpacked
        one leaves a job folder with no record and no output); returns how many were removed. A
        folder with output but no record (a lost database) is kept: it may hold a trained run."""
        removed = 0
        for folder in self.jobs_dir.iterdir():
            orphan = folder.is_dir() and _JOB_ID.match(folder.name) and folder.name not in known_ids
            if orphan and not self.output_dir(folder.name).exists():
                failures = self.remove_job_folder(folder.name)
                if failures:
                    log.warning("could not remove the orphaned job folder %s (%s)", folder, failures[0])
                else:
                    removed += 1
        return removed

    def read_token(self) -> str | None:
        """The stored token, or None when there is none yet."""
        try:
            token = self.token_path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return token or None

    def ensure_token(self) -> str:
        """The stored token (made private again if its mode was loosened); a new random one
        (file mode 0600) on first start."""
        token = self.read_token()
        if token is not None:
            if os.name != "nt" and self.token_path.stat().st_mode & 0o077:
                self.token_path.chmod(0o600)  # a copied or restored file may have become readable by others
            return token
        token = secrets.token_urlsafe(32)

        def write_private(temp: Path) -> None:
            temp.chmod(0o600)
            temp.write_text(token + "\n", encoding="utf-8")

        atomic_write(self.token_path, write_private)
        return token


class DataDirInUse(AvatarFoundryError):
    code = protocol.CONFLICT
    http_status = 409


class ServerLock:
    """An exclusive lock on the data dir held for the life of a backend process.

    The OS drops it when the process dies, so a crashed backend never leaves a stale lock; that is
    what makes marking 'running' jobs as interrupted at start safe. On POSIX the data dir folder
    itself is locked (flock), so deleting a file cannot let a second backend in; Windows locks
    ``server.lock``, which it does not let anyone delete while the backend holds it open.
    """

    def __init__(self, data_dir: DataDir) -> None:
        self._data_dir = data_dir
        self._descriptor: int | None = None

    def acquire(self) -> None:
        descriptor = _open_lock_target(self._data_dir)
        try:
            _lock_exclusively(descriptor)
        except OSError:
            os.close(descriptor)
            raise DataDirInUse(f"another backend is already running on {self._data_dir.root}",
                               "stop it, or start this one with another --data-dir") from None
        self._descriptor = descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None


def _open_lock_target(data_dir: DataDir) -> int:
    if os.name == "nt":
        return os.open(data_dir.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    return os.open(data_dir.root, os.O_RDONLY)


def _lock_exclusively(descriptor: int) -> None:
    if os.name == "nt":
        import msvcrt

        msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
