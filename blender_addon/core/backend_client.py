"""The add-on's HTTP client of the backend (urllib only): health, jobs, artifacts, unload.

Every failure becomes a ``BackendError`` with the server's code, message and hint, or a
connection message that says what to do; callers show ``str(error)`` to the user.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..formats import protocol
from ..formats.files import atomic_write_bytes
from .multipart import encode_multipart

DEFAULT_TIMEOUT_SECONDS = 30.0


class BackendError(Exception):
    def __init__(self, code: str, message: str, hint: str = "", field: str | None = None, status: int = 0) -> None:
        self.code, self.message, self.hint, self.field, self.status = code, message, hint, field, status
        super().__init__(message + (f" ({hint})" if hint else ""))


UNREACHABLE = "UNREACHABLE"


@dataclass
class BackendClient:
    url: str
    token: str
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    def _request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> bytes:
        request = urllib.request.Request(self.url.rstrip("/") + protocol.API_PREFIX + path, data=body, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            raise _error_from_response(error) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise BackendError(UNREACHABLE, f"cannot reach the backend at {self.url}: {reason}",
                               "start it (Backend panel > Start) or check the URL in the add-on preferences") from None

    def _json(self, method: str, path: str, payload: Any = None) -> Any:
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        return json.loads(self._request(method, path, body, "application/json" if body is not None else None))

    def health(self) -> dict:
        """The backend's health, refused when its protocol major version differs from ours."""
        health = self._json("GET", "/health")
        problem = protocol.compatibility_problem(protocol.PROTOCOL_VERSION, str(health.get("protocol_version", "0")))
        if problem:
            raise BackendError(protocol.PROTOCOL_MISMATCH, problem,
                               "install the add-on and the backend from the same Avatar Foundry release")
        return health

    def submit(self, kind: str, params: dict, bundle_zip: bytes | None = None) -> dict:
        request = {"kind": kind, "params": params}
        if bundle_zip is None:
            return self._json("POST", "/jobs", request)
        body, content_type = encode_multipart({"request": json.dumps(request)}, {"bundle": ("bundle.zip", bundle_zip, "application/zip")})
        return json.loads(self._request("POST", "/jobs", body, content_type))

    def job(self, job_id: str) -> dict:
        return self._json("GET", f"/jobs/{urllib.parse.quote(job_id)}")

    def jobs(self) -> list[dict]:
        return self._json("GET", "/jobs")["jobs"]

    def cancel(self, job_id: str) -> dict:
        return self._json("POST", f"/jobs/{urllib.parse.quote(job_id)}/cancel", {})

    def artifacts(self, job_id: str) -> list[dict]:
        return self._json("GET", f"/jobs/{urllib.parse.quote(job_id)}/artifacts")["artifacts"]

    def download(self, job_id: str, name: str, destination: Path) -> Path:
        data = self._request("GET", f"/jobs/{urllib.parse.quote(job_id)}/artifacts/{urllib.parse.quote(name)}")
        return atomic_write_bytes(destination, data)

    def download_all(self, job_id: str, folder: Path, wanted: Callable[[str], bool] = lambda name: True) -> list[Path]:
        """Every artifact of the job (that ``wanted`` accepts) under ``folder``, keeping their relative paths."""
        folder = Path(folder)
        paths = []
        for artifact in self.artifacts(job_id):
            name = artifact["name"]
            if not wanted(name):
                continue
            target = (folder / name).resolve()
            if folder.resolve() not in target.parents:
                raise BackendError(protocol.INVALID_INPUT, f"artifact name {name!r} points outside the download folder")
            paths.append(self.download(job_id, name, target))
        return paths

    def unload(self) -> int:
        return int(self._json("POST", "/unload", {})["unloaded"])

    def models(self) -> list[dict]:
        return self._json("GET", "/models")["models"]

    def scan_models(self, folder: str | Path) -> dict:
        """Register the models a local folder holds: {"added": [...], "skipped": [{"path", "reason"}]}."""
        return self._json("POST", "/models/scan", {"folder": str(folder)})


def _error_from_response(error: urllib.error.HTTPError) -> BackendError:
    try:
        detail = json.loads(error.read())["error"]
        return BackendError(detail.get("code", "HTTP"), detail.get("message", str(error)), detail.get("hint") or "", detail.get("field"), error.code)
    except (ValueError, KeyError, TypeError):
        if error.code == 401:
            return BackendError(protocol.UNAUTHORIZED, "the backend refused the token", "copy the token from the backend's data dir into the preferences", status=401)
        return BackendError("HTTP", f"HTTP {error.code} from the backend: {error.reason}", status=error.code)


def read_token(data_dir: str | Path) -> str:
    """The token the backend wrote into its data dir."""
    path = Path(data_dir).expanduser() / protocol.TOKEN_FILE_NAME
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise BackendError(protocol.UNAUTHORIZED, f"cannot read the backend token at {path}: {error.strerror}",
                           "start the backend once (it writes the token) or paste the token into the preferences") from None
