"""Connections the backend keeps open: capped in number, closed when they send no request.

uvicorn closes a keep-alive connection idle between requests (``timeout_keep_alive``) but not one
that never finishes sending its first request line and headers, and it accepts connections until
the process runs out of file descriptors (then the running job cannot open its files and the log
fills with accept errors). ``GuardedH11Protocol`` closes a connection whose next request has not
arrived within ``request_seconds`` (of its opening or of its last response) and drops connections past ``max_connections``; the cap is kept
well under the open-file limit, which ``raise_open_file_limit`` lifts to the hard limit.
"""

from __future__ import annotations

import asyncio
import logging
import time

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("avatar_foundry.server")
_REFUSAL_LOG_INTERVAL_SECONDS = 60.0


def raise_open_file_limit() -> int:
    """Lift the soft open-file limit to the hard one (where the OS has limits); returns the soft limit."""
    try:
        import resource
    except ImportError:  # Windows: no per-process descriptor limit of this kind
        return 1 << 16
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else 1 << 16


def connection_cap(requested: int, open_file_limit: int) -> int:
    """At most ``requested`` connections, and never more than a quarter of the open-file limit
    (jobs, models and the database need the rest)."""
    return max(8, min(requested, open_file_limit // 4))


def guarded_protocol(max_connections: int, request_seconds: float) -> type[H11Protocol]:
    """The uvicorn ``http`` protocol class with these limits."""

    class Guarded(GuardedH11Protocol):
        pass

    Guarded.max_connections = max_connections
    Guarded.request_seconds = request_seconds
    return Guarded


class GuardedH11Protocol(H11Protocol):
    max_connections = 256
    request_seconds = 30.0
    _last_refusal_log = float("-inf")

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._request_timer: asyncio.TimerHandle | None = None
        if len(self.connections) > self.max_connections:
            self._note_refusal()
            transport.abort()
            return
        self._arm_request_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_request_timer()

    def _arm_request_timer(self) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
        self._request_timer = self.loop.call_later(self.request_seconds, self._close_if_no_request)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None
        super().connection_lost(exc)

    def _close_if_no_request(self) -> None:
        """No (next) request line and headers arrived in time: an idle or deliberately slow client."""
        self._request_timer = None
        waiting = self.cycle is None or self.cycle.response_complete
        if waiting and not self.transport.is_closing():
            self.transport.close()

    def _note_refusal(self) -> None:
        now = time.monotonic()
        if now - GuardedH11Protocol._last_refusal_log >= _REFUSAL_LOG_INTERVAL_SECONDS:
            GuardedH11Protocol._last_refusal_log = now
            log.warning("%d connections are open, the most this backend keeps; new ones are closed at once",
                        self.max_connections)
