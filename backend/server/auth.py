"""Who may talk to the backend: loopback Host and Origin only, and the bearer token.

The Origin check stops web pages in the user's browser from driving the backend (CSRF); the Host
check stops DNS rebinding (a hostile name resolving to 127.0.0.1). Both run before the token check,
and apply to every path, including unknown ones. A request with two Origin or Host headers is
refused (a browser never sends two; a second one would only hide the first from the check), and so
is one whose forwarding headers (``X-Forwarded-Host``, ``Forwarded``) name a non-loopback host: no
proxy stands in front of a loopback backend, so such a name can only be a rebinding attempt. The
server itself never acts on forwarding headers (uvicorn runs with ``proxy_headers=False``).
"""

from __future__ import annotations

import ipaddress
import secrets
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from blender_addon.formats import protocol

from ..errors import AvatarFoundryError
from .error_mapping import error_response

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class Unauthorized(AvatarFoundryError):
    code = protocol.UNAUTHORIZED
    http_status = 401


class ForbiddenOrigin(AvatarFoundryError):
    code = protocol.FORBIDDEN_ORIGIN
    http_status = 403


def is_loopback_name(hostname: str | None) -> bool:
    if not hostname:
        return False
    hostname = hostname.strip("[]").lower()
    if hostname in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def host_header_name(host: str) -> str | None:
    """The host name of a Host header ('127.0.0.1:8765', '[::1]:80', 'localhost')."""
    try:
        return urlsplit(f"//{host}").hostname
    except ValueError:
        return None


def forwarded_hosts(headers: Headers) -> list[str]:
    """The host names that ``X-Forwarded-Host`` and ``Forwarded: host=...`` claim."""
    names = [part.strip() for value in headers.getlist("x-forwarded-host") for part in value.split(",")]
    for value in headers.getlist("forwarded"):
        for element in value.replace(",", ";").split(";"):
            key, _, name = element.strip().partition("=")
            if key.lower() == "host":
                names.append(name.strip().strip('"'))
    return [name for name in names if name]


def _duplicated_header(headers: Headers) -> str | None:
    for name in ("origin", "host"):
        if len(headers.getlist(name)) > 1:
            return name
    return None


def check_request(headers: Headers, token: str, allow_remote: bool) -> AvatarFoundryError | None:
    """The error refusing this request, or None when it may go ahead."""
    duplicated = _duplicated_header(headers)
    if duplicated is not None:
        return ForbiddenOrigin(f"the request has more than one {duplicated.title()} header",
                               f"send exactly one {duplicated.title()} header")
    origin = headers.get("origin")
    if origin is not None and not is_loopback_name(urlsplit(origin).hostname):
        return ForbiddenOrigin(f"requests from the web origin {origin!r} are refused",
                               "only programs on this computer (the Blender add-on, the CLI) may call the backend")
    if not allow_remote and not is_loopback_name(host_header_name(headers.get("host", ""))):
        return ForbiddenOrigin(f"requests for host {headers.get('host')!r} are refused",
                               "connect through 127.0.0.1 or localhost (or start the server with --allow-remote)")
    if not allow_remote:
        rebound = [name for name in forwarded_hosts(headers) if not is_loopback_name(host_header_name(name))]
        if rebound:
            return ForbiddenOrigin(f"requests forwarded for host {rebound[0][:200]!r} are refused",
                                   "call the backend directly on 127.0.0.1 or localhost, without a proxy")
    scheme, _, presented = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(presented.strip().encode(), token.encode()):
        return Unauthorized("a valid 'Authorization: Bearer <token>' header is required",
                            "the token is in the file 'token' in the backend's data dir (see 'avatar-foundry doctor')")
    return None


class AccessGuard:
    """ASGI middleware applying ``check_request`` to every HTTP request."""

    def __init__(self, app: ASGIApp, token: str, allow_remote: bool = False) -> None:
        self._app = app
        self._token = token
        self._allow_remote = allow_remote

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = check_request(Headers(scope=scope), self._token, self._allow_remote)
            if refusal is not None:
                headers = {"WWW-Authenticate": "Bearer"} if refusal.http_status == 401 else None
                await error_response(refusal, headers)(scope, receive, send)
                return
        await self._app(scope, receive, send)
