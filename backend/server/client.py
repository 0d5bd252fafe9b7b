"""A small client of the backend's HTTP API (standard library only), used by ``avatar-foundry jobs``.

It finds the backend the way the add-on does: the URL from ``<data dir>/server.json`` (written by a
running backend) unless given, and the token from ``<data dir>/token``.
"""

from __future__ import annotations

import json
import shutil
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


class BackendClient:
    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._timeout = timeout

    @classmethod
    def locate(cls, url: str | None, data_dir: str | Path | None, token: str | None) -> "BackendClient":
        """Explicit ``url``/``token`` win; otherwise they come from the data dir."""
        folder = DataDir.at(data_dir)
        token = token or folder.read_token()
        if not token:
            raise RemoteError(protocol.UNAUTHORIZED, f"no token in {folder.token_path}",
                              "start the backend once ('avatar-foundry serve'), or pass --token / --data-dir")
        return cls(url or _announced_url(folder) or f"http://{protocol.DEFAULT_HOST}:{protocol.DEFAULT_PORT}", token)

    def get(self, path: str) -> Any:
        return json.loads(self._send("GET", path))

    def post(self, path: str, body: dict | None = None) -> Any:
        return json.loads(self._send("POST", path, json.dumps(body or {}).encode("utf-8")))

    def post_multipart(self, path: str, fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> Any:
        from blender_addon.core.multipart import encode_multipart

        body, content_type = encode_multipart(fields, files)
        return json.loads(self._send("POST", path, body, content_type))

    def delete(self, path: str) -> Any:
        return json.loads(self._send("DELETE", path))

    def events(self, path: str) -> Iterator[Any]:
        """The ``data:`` payloads of a server-sent event stream, parsed, until the server ends it."""
        with self._open("GET", path) as response:
            for raw_line in response:
                line = raw_line.decode("utf-8").rstrip("\r\n")
                if line.startswith("data: "):
                    yield json.loads(line[len("data: "):])

    def download(self, path: str, destination: Path) -> Path:
        """Stream a file to ``destination`` atomically."""
        def write(temp: Path) -> None:
            with self._open("GET", path) as response, open(temp, "wb") as handle:
                shutil.copyfileobj(response, handle)

        return atomic_write(destination, write)

    def _send(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json") -> bytes:
        with self._open(method, path, body, content_type) as response:
            return response.read()

    def _open(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json"):
        request = urllib.request.Request(f"{self.url}{protocol.API_PREFIX}{path}", data=body, method=method,
                                         headers={"Authorization": f"Bearer {self._token}", "Content-Type": content_type})
        try:
            return urllib.request.urlopen(request, timeout=self._timeout)
        except urllib.error.HTTPError as error:
            raise _remote_error(error) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise RemoteError(protocol.NOT_FOUND, f"no backend answers at {self.url} ({reason})",
                              "start it with 'avatar-foundry serve', or pass --url") from None


def quote_name(name: str) -> str:
    return urllib.parse.quote(name, safe="/")


def _announced_url(folder: DataDir) -> str | None:
    try:
        return json.loads(folder.server_info_path.read_text(encoding="utf-8")).get("url")
    except (FileNotFoundError, json.JSONDecodeError, AttributeError):
        return None


def _remote_error(error: urllib.error.HTTPError) -> RemoteError:
    try:
        problem = json.loads(error.read())["error"]
        return RemoteError(problem["code"], problem["message"], problem.get("hint", ""), problem.get("field"), error.code)
    except (ValueError, KeyError, TypeError):
        return RemoteError(protocol.INTERNAL, f"HTTP {error.code} {error.reason}", http_status=error.code)
