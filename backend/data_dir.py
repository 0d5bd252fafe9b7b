"""The backend's data folder: where the token, the job database, job folders and models live.

    <data dir>/
      token               the bearer token (mode 0600), created on first start and reused
      server.json         {"url", "pid", "protocol_version"} while a backend runs on this folder
      server.lock         held (flock) by the running backend, so two cannot share one folder
      jobs.sqlite3        the job store
      jobs/<id>/inputs/   the job's uploaded condition bundle, extracted
      jobs/<id>/output/   everything the job wrote: its artifacts
      models/             the model store (``backend.models.store``)
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from blender_addon.formats import protocol
from blender_addon.formats.files import atomic_write

from .errors import AvatarFoundryError, InvalidInput


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
        """Make the folder tree (idempotent). The root is private to the user (0700)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.jobs_dir.mkdir(exist_ok=True)
            self.models_dir.mkdir(exist_ok=True)
        except OSError as error:
            raise InvalidInput(f"cannot create the data dir {self.root}: {error.strerror}",
                               "pass --data-dir pointing at a folder you can write to", field="data_dir") from None

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
    what makes marking 'running' jobs as interrupted at start safe.
    """

    def __init__(self, data_dir: DataDir) -> None:
        self._path = data_dir.lock_path
        self._handle = None

    def acquire(self) -> None:
        handle = open(self._path, "a+")
        try:
            _lock_exclusively(handle)
        except OSError:
            handle.close()
            raise DataDirInUse(f"another backend is already running on {self._path.parent}",
                               "stop it, or start this one with another --data-dir") from None
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _lock_exclusively(handle) -> None:
    if os.name == "nt":
        import msvcrt

        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
