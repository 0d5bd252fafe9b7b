"""The add-on's HTTP client of the backend (urllib only): health, jobs, artifacts, unload.

Every failure becomes a ``BackendError`` with the server's code, message and hint, or a
connection message that says what to do; callers show ``str(error)`` to the user. Answers are
checked before use: a page that is not JSON (another program on the port), a list where an object
belongs, a job without its keys or a body cut short is a ``BAD_ANSWER`` naming the request.
Downloads go to a temporary name and are renamed only once their length is checked.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..formats import protocol
from ..formats.condition_bundle import check_relative_path
from ..formats.errors import FormatError
from ..formats.files import atomic_write
from .multipart import encode_multipart

DEFAULT_TIMEOUT_SECONDS = 30.0
DOWNLOAD_CHUNK_BYTES = 1 << 20


class BackendError(Exception):
    def __init__(self, code: str, message: str, hint: str = "", field: str | None = None, status: int = 0) -> None:
        self.code, self.message, self.hint, self.field, self.status = code, message, hint, field, status
        super().__init__(message + (f" ({hint})" if hint else ""))


UNREACHABLE = "UNREACHABLE"
BAD_ANSWER = "BAD_ANSWER"
CHECK_URL_HINT = "check that the Backend URL in the add-on preferences points at an Avatar Foundry backend"
CUT_SHORT_HINT = "the backend may have stopped mid-answer: press Check, then try again"


@dataclass
class BackendClient:
    url: str
    token: str
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    def _open(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None):
        """The open HTTP response (a context manager); every failure to get one is a BackendError."""
        request = urllib.request.Request(self.url.rstrip("/") + protocol.API_PREFIX + path, data=body, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            raise _error_from_response(error) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", error)
            raise BackendError(UNREACHABLE, f"cannot reach the backend at {self.url}: {reason}",
                               "start it (Backend panel > Start) or check the URL in the add-on preferences") from None

    def _request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> bytes:
        with self._open(method, path, body, content_type) as response:
            try:
                return response.read()
            except http.client.IncompleteRead as error:
                raise BackendError(BAD_ANSWER, f"the backend's answer to {method} {path} was cut short "
                                               f"({len(error.partial)} bytes arrived)", CUT_SHORT_HINT) from None
            except (http.client.HTTPException, OSError) as error:
                raise BackendError(BAD_ANSWER, f"the backend's answer to {method} {path} broke off: {error}", CUT_SHORT_HINT) from None

    def _json(self, method: str, path: str, payload: Any = None) -> dict:
        """The answer's JSON object (refused when it is not JSON or not an object)."""
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        return _json_object(self._request(method, path, body, "application/json" if body is not None else None), f"{method} {path}")

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
            return _job_object(self._json("POST", "/jobs", request), "POST /jobs")
        body, content_type = encode_multipart({"request": json.dumps(request)}, {"bundle": ("bundle.zip", bundle_zip, "application/zip")})
        return _job_object(_json_object(self._request("POST", "/jobs", body, content_type), "POST /jobs"), "POST /jobs")

    def job(self, job_id: str) -> dict:
        path = f"/jobs/{urllib.parse.quote(job_id)}"
        return _job_object(self._json("GET", path), f"GET {path}")

    def jobs(self) -> list[dict]:
        return [_job_object(job, "GET /jobs") for job in _list_field(self._json("GET", "/jobs"), "jobs", "GET /jobs")]

    def cancel(self, job_id: str) -> dict:
        path = f"/jobs/{urllib.parse.quote(job_id)}/cancel"
        return _job_object(self._json("POST", path, {}), f"POST {path}")

    def artifacts(self, job_id: str) -> list[dict]:
        path = f"/jobs/{urllib.parse.quote(job_id)}/artifacts"
        artifacts = _list_field(self._json("GET", path), "artifacts", f"GET {path}")
        for artifact in artifacts:
            if not isinstance(artifact, dict) or not isinstance(artifact.get("name"), str):
                raise BackendError(BAD_ANSWER, f"the backend's answer to GET {path} lists an artifact without a name: {str(artifact)[:80]}", CHECK_URL_HINT)
        return artifacts

    def download(self, job_id: str, name: str, destination: Path, listed_size: int | None = None) -> Path:
        """One artifact, written under a temporary name and renamed to ``destination`` only when
        all the bytes the backend announced (Content-Length, else the size the artifact list gave)
        have arrived: a cut download leaves nothing behind."""
        path = f"/jobs/{urllib.parse.quote(job_id)}/artifacts/{urllib.parse.quote(name)}"
        with self._open("GET", path) as response:
            announced = response.headers.get("Content-Length")
            expected = int(announced) if announced and announced.isdigit() else listed_size
            return atomic_write(destination, lambda temp: _receive(response, temp, name, expected))

    def download_all(self, job_id: str, folder: Path, wanted: Callable[[str], bool] = lambda name: True) -> list[Path]:
        """Every artifact of the job (that ``wanted`` accepts) under ``folder``, keeping their relative paths."""
        folder = Path(folder)
        paths = []
        for artifact in self.artifacts(job_id):
            name = artifact["name"]
            if not wanted(name):
                continue
            try:
                relative = check_relative_path(name, "artifact name")
            except FormatError as error:
                raise BackendError(BAD_ANSWER, f"the backend named an artifact {name!r} that cannot be a file in the "
                                               f"download folder: {error.message}", CHECK_URL_HINT) from None
            size = artifact.get("size")
            paths.append(self.download(job_id, name, folder.joinpath(*relative.parts), size if isinstance(size, int) else None))
        return paths

    def unload(self) -> int:
        unloaded = self._json("POST", "/unload", {}).get("unloaded")
        if not isinstance(unloaded, int):
            raise BackendError(BAD_ANSWER, f"the backend's answer to POST /unload has no count of unloaded models: {unloaded!r}", CHECK_URL_HINT)
        return unloaded

    def models(self) -> list[dict]:
        return [model for model in _list_field(self._json("GET", "/models"), "models", "GET /models") if isinstance(model, dict) and "name" in model]

    def scan_models(self, folder: str | Path) -> dict:
        """Register the models a local folder holds: {"added": [...], "skipped": [{"path", "reason"}]}."""
        report = self._json("POST", "/models/scan", {"folder": str(folder)})
        _list_field(report, "added", "POST /models/scan")
        skipped = _list_field(report, "skipped", "POST /models/scan")
        report["skipped"] = [item for item in skipped if isinstance(item, dict) and {"path", "reason"} <= set(item)]
        return report


def _json_object(body: bytes, request: str) -> dict:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):  # ValueError: not JSON, or not UTF-8
        start = body[:60].decode("utf-8", "replace").strip()
        raise BackendError(BAD_ANSWER, f"the backend answered {request} with something that is not JSON "
                                       f"(it starts {start!r})", CHECK_URL_HINT) from None
    if not isinstance(value, dict):
        raise BackendError(BAD_ANSWER, f"the backend answered {request} with a JSON {type(value).__name__} where an object belongs", CHECK_URL_HINT)
    return value


def _list_field(value: dict, key: str, request: str) -> list:
    items = value.get(key)
    if not isinstance(items, list):
        raise BackendError(BAD_ANSWER, f"the backend's answer to {request} has no {key!r} list", CHECK_URL_HINT)
    return items


def _job_object(job: Any, request: str) -> dict:
    """A job as the Jobs panel needs it: id, kind and a known state (refused otherwise)."""
    if not isinstance(job, dict):
        raise BackendError(BAD_ANSWER, f"the backend's answer to {request} holds a {type(job).__name__} where a job belongs", CHECK_URL_HINT)
    missing = [key for key in ("id", "kind", "state") if not isinstance(job.get(key), str)]
    if missing or job["state"] not in protocol.JOB_STATES:
        problem = f"lacks {', '.join(missing)}" if missing else f"has an unknown state {job['state']!r}"
        raise BackendError(BAD_ANSWER, f"the backend's answer to {request} is a job that {problem}", CHECK_URL_HINT)
    return job


def _receive(response, temp: Path, name: str, announced: int | None) -> None:
    """Copy the response body into ``temp``; refused when it breaks off or is shorter than announced."""
    received = 0
    with open(temp, "wb") as handle:
        while True:
            try:
                chunk = response.read(DOWNLOAD_CHUNK_BYTES)
            except http.client.IncompleteRead as error:
                received += len(error.partial)
                chunk = b""
            except (http.client.HTTPException, OSError) as error:
                raise BackendError(BAD_ANSWER, f"the download of {name} broke off after {received} bytes: {error}", CUT_SHORT_HINT) from None
            if not chunk:
                break
            handle.write(chunk)
            received += len(chunk)
    if announced is not None and received != announced:
        raise BackendError(BAD_ANSWER, f"the download of {name} was cut short: {received} of {announced} bytes arrived", CUT_SHORT_HINT)


def _error_from_response(error: urllib.error.HTTPError) -> BackendError:
    """The server's {"error": {code, message, hint, field}}, or what can be read of any other answer."""
    try:
        detail = json.loads(error.read()).get("error")
    except (ValueError, AttributeError, RecursionError, OSError, http.client.HTTPException):
        detail = None
    if isinstance(detail, dict) and isinstance(detail.get("message"), str):
        return BackendError(str(detail.get("code") or "HTTP"), detail["message"], str(detail.get("hint") or ""),
                            detail.get("field") if isinstance(detail.get("field"), str) else None, error.code)
    if error.code == 401:
        return BackendError(protocol.UNAUTHORIZED, "the backend refused the token", "copy the token from the backend's data dir into the preferences", status=401)
    if isinstance(detail, str) and detail.strip():
        return BackendError("HTTP", f"HTTP {error.code} from the backend: {detail.strip()[:300]}", status=error.code)
    return BackendError("HTTP", f"HTTP {error.code} from the backend: {error.reason}", CHECK_URL_HINT if error.code == 404 else "", status=error.code)


def read_token(data_dir: str | Path) -> str:
    """The token the backend wrote into its data dir."""
    path = Path(data_dir).expanduser() / protocol.TOKEN_FILE_NAME
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise BackendError(protocol.UNAUTHORIZED, f"cannot read the backend token at {path}: {error.strerror}",
                           "start the backend once (it writes the token) or paste the token into the preferences") from None
