"""A small client of the backend's HTTP API (standard library only), used by ``avatar-foundry jobs``.

It finds the backend the way the add-on does: the URL from ``<data dir>/server.json`` (written by a
running backend) unless given, and the token from ``<data dir>/token`` (or ``AVATAR_FOUNDRY_TOKEN``,
or a token file named on the command line).

Whatever answers, the caller gets either the JSON object it asked for or a ``RemoteError`` with one
line saying what was wrong: no backend, an HTML page or a JSON list where an object belongs, a job
object without its keys, a body or download cut short, an event stream line that is not JSON.
A connection lost mid-stream is ``BackendGone``.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator

from blender_addon.formats import protocol
from blender_addon.formats.files import atomic_write

from ..data_dir import DataDir
from ..errors import AvatarFoundryError


class RemoteError(AvatarFoundryError):
    """An error the backend answered with (its code, message, hint and field), or no answer at all."""

    def __init__(self, code: str, message: str, hint: str = "", field: str | None = None, http_status: int = 0) -> None:
        super().__init__(message, hint, field)
        self.code = code
        self.http_status = http_status


TOKEN_ENV = "AVATAR_FOUNDRY_TOKEN"
JOB_KEYS = {"id": str, "kind": str, "state": str, "progress": (int, float), "stage": str}
_NOT_OURS_HINT = "check that --url (or <data dir>/server.json) points at the Avatar Foundry backend"
_CHUNK = 1 << 20


class BackendGone(RemoteError):
    """The connection to the backend was lost (it stopped or died)."""


class BackendClient:
    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._timeout = timeout

    @classmethod
    def locate(cls, url: str | None, data_dir: str | Path | None, token: str | None,
               token_file: Path | None = None) -> "BackendClient":
        """The token: ``token``, else the ``token_file``, else ``AVATAR_FOUNDRY_TOKEN``, else the data
        dir's; the URL: ``url``, else the data dir's server.json, else the default."""
        folder = DataDir.at(data_dir)
        token = token or _token_from_file(token_file) or os.environ.get(TOKEN_ENV, "").strip() or _stored_token(folder)
        if not token:
            raise RemoteError(protocol.UNAUTHORIZED, f"no token in {folder.token_path}",
                              f"start the backend once ('avatar-foundry serve'), or pass --token-file / --data-dir, or set {TOKEN_ENV}")
        return cls(url or _announced_url(folder) or f"http://{protocol.DEFAULT_HOST}:{protocol.DEFAULT_PORT}", token)

    def get(self, path: str) -> dict:
        return self._object(path, self._send("GET", path))

    def post(self, path: str, body: dict | None = None) -> dict:
        return self._object(path, self._send("POST", path, json.dumps(body or {}).encode("utf-8")))

    def post_multipart(self, path: str, fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> dict:
        from blender_addon.core.multipart import encode_multipart

        body, content_type = encode_multipart(fields, files)
        return self._object(path, self._send("POST", path, body, content_type))

    def delete(self, path: str) -> dict:
        return self._object(path, self._send("DELETE", path))

    def job(self, path: str, answer: Any) -> dict:
        """``answer`` checked to be a job object (the keys the CLI shows, of their types)."""
        if not isinstance(answer, dict):
            raise self.malformed(path, f"a JSON {type(answer).__name__} where a job object belongs")
        for key, kind in JOB_KEYS.items():
            if not isinstance(answer.get(key), kind):
                raise self.malformed(path, f"a job object without a valid {key!r}")
        eta = answer.get("eta_seconds")
        if eta is not None and (not isinstance(eta, (int, float)) or isinstance(eta, bool)):
            raise self.malformed(path, "a job object whose 'eta_seconds' is not a number")
        error = answer.get("error")
        if error is not None and not (isinstance(error, dict) and isinstance(error.get("code"), str)
                                      and isinstance(error.get("message"), str)):
            raise self.malformed(path, "a job object whose 'error' is not an error object")
        return answer

    def events(self, path: str) -> Iterator[dict]:
        """The job objects of a server-sent event stream, until the server ends it; a stream cut
        off (the backend stopped or died) raises BackendGone."""
        response = self._open("GET", path)
        with response:
            try:
                for raw_line in response:
                    line = _stream_line(raw_line, self.url)
                    if line.startswith("data: "):
                        yield self.job(path, _parse_json(line[len("data: "):], f"an event of {path}", self.url))
            except (http.client.HTTPException, OSError) as error:
                raise BackendGone(protocol.NOT_FOUND, f"the backend at {self.url} went away ({_reason(error)})",
                                  "start it again ('avatar-foundry serve'), then follow the job again") from None

    def download(self, path: str, destination: Path, expected_size: int | None = None) -> Path:
        """Stream a file to ``destination``: into a temp file, renamed only once it holds every byte
        the backend announced (Content-Length and ``expected_size``); nothing is left otherwise."""
        def write(temp: Path) -> None:
            with self._open("GET", path) as response, open(temp, "wb") as handle:
                announced = response.headers.get("Content-Length")
                received = _copy_body(response, handle, self.url)
            wanted = [int(value) for value in (announced, expected_size) if value is not None and str(value).isdigit()]
            if any(received != size for size in wanted):
                raise RemoteError(protocol.INTERNAL, f"the download of {destination.name} was cut short: "
                                  f"{received} of {max(wanted)} bytes arrived", "fetch it again")

        return atomic_write(destination, write)

    def _send(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json") -> tuple[bytes, str]:
        with self._open(method, path, body, content_type) as response:
            try:
                return response.read(), response.headers.get("Content-Type", "")
            except (http.client.HTTPException, OSError) as error:
                raise BackendGone(protocol.NOT_FOUND, f"the answer of the backend at {self.url} was cut short ({_reason(error)})",
                                  "try again; if it repeats, see the backend's log") from None

    def _object(self, path: str, answer: tuple[bytes, str]) -> dict:
        body, content_type = answer
        value = _parse_json(body, f"the answer to {path}", self.url, content_type)
        if not isinstance(value, dict):
            raise self.malformed(path, f"a JSON {type(value).__name__} where an object belongs")
        return value

    def malformed(self, path: str, what: str) -> RemoteError:
        return RemoteError(protocol.INTERNAL, f"the backend at {self.url} answered {path} with {what}", _NOT_OURS_HINT)

    def _open(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json"):
        request = urllib.request.Request(f"{self.url}{protocol.API_PREFIX}{path}", data=body, method=method,
                                         headers={"Authorization": f"Bearer {self._token}", "Content-Type": content_type})
        try:
            return urllib.request.urlopen(request, timeout=self._timeout)
        except urllib.error.HTTPError as error:
            raise _remote_error(error) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
            raise BackendGone(protocol.NOT_FOUND, f"no backend answers at {self.url} ({_reason(error)})",
                              "start it with 'avatar-foundry serve', or pass --url") from None


def quote_name(name: str) -> str:
    return urllib.parse.quote(name, safe="/")


def _announced_url(folder: DataDir) -> str | None:
    """The URL a running backend wrote into server.json; None when there is no such file."""
    path = folder.server_info_path
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise _bad_server_info(path, f"cannot be read as JSON ({_reason(error)})") from None
    url = info.get("url") if isinstance(info, dict) else None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise _bad_server_info(path, "has no 'url' of the form http://host:port")
    return url


def _bad_server_info(path: Path, what: str) -> RemoteError:
    return RemoteError(protocol.INVALID_INPUT, f"{path} {what}",
                       "delete it (a running backend writes it again), or pass --url")


def _stored_token(folder: DataDir) -> str | None:
    try:
        return folder.read_token()
    except (OSError, UnicodeDecodeError) as error:
        raise RemoteError(protocol.UNAUTHORIZED, f"cannot read the token file {folder.token_path} ({_reason(error)})",
                          "start the backend once to write it, or pass --token-file") from None


def _token_from_file(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise RemoteError(protocol.UNAUTHORIZED, f"cannot read the token file {path} ({_reason(error)})",
                          "name the file that holds the token (<data dir>/token)") from None
    if not token:
        raise RemoteError(protocol.UNAUTHORIZED, f"the token file {path} is empty", "name the file that holds the token (<data dir>/token)")
    return token


def _parse_json(text: bytes | str, what: str, url: str, content_type: str = "") -> Any:
    try:
        return json.loads(text)
    except (UnicodeDecodeError, ValueError):
        shown = text[:60].decode("utf-8", "replace") if isinstance(text, bytes) else text[:60]
        kind = f" ({content_type.split(';')[0]})" if content_type else ""
        raise RemoteError(protocol.INTERNAL, f"the backend at {url} sent {what} that is not JSON{kind}: {shown!r}",
                          _NOT_OURS_HINT) from None


def _stream_line(raw_line: bytes, url: str) -> str:
    try:
        return raw_line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise RemoteError(protocol.INTERNAL, f"the backend at {url} sent an event line that is not UTF-8: {raw_line[:60]!r}",
                          _NOT_OURS_HINT) from None


def _copy_body(response, handle, url: str) -> int:
    received = 0
    try:
        while chunk := response.read(_CHUNK):
            handle.write(chunk)
            received += len(chunk)
    except http.client.IncompleteRead as error:
        handle.write(error.partial)
        received += len(error.partial)
    except (http.client.HTTPException, ConnectionError, TimeoutError) as error:
        raise BackendGone(protocol.NOT_FOUND, f"the download from {url} broke off ({_reason(error)})", "fetch it again") from None
    return received


def _reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or str(error) or type(error).__name__
    return str(reason)[:200]


def _remote_error(error: urllib.error.HTTPError) -> RemoteError:
    try:
        problem = json.loads(error.read())["error"]
        return RemoteError(str(problem["code"]), str(problem["message"]), str(problem.get("hint") or ""),
                           problem.get("field") if isinstance(problem.get("field"), str) else None, error.code)
    except (ValueError, KeyError, TypeError, OSError, http.client.HTTPException):
        return RemoteError(protocol.INTERNAL, f"the backend answered HTTP {error.code} {error.reason} without an error object",
                           _NOT_OURS_HINT, http_status=error.code)
