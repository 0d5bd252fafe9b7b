"""Server-sent events for one job: ``data: <job json>`` on every stored change, until a final state.

Streams wait on the event loop, not in threads: the store calls ``StoreChanges`` from the writing
thread, which wakes the waiting streams through the loop. So open streams never take the threads
that serve other requests, and their number is capped (``--max-event-streams``): past the cap a
stream is refused with 503 BUSY. A comment line is sent when nothing changed for a while, which
also notices clients that went away (and frees their place). The job is read from the store in the
API's own threads, never on the loop. When the backend stops, every stream sends the job's state
as the worker left it (a running job recorded as interrupted) and a ``: backend stopping`` comment,
then ends, so a client can tell a stop from a lost connection.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Callable

import anyio

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..errors import ServerBusy
from .job_store import JobStore, strict_json

KEEPALIVE_SECONDS = 15.0
STOPPING_COMMENT = ": backend stopping\n\n"


def sse_message(payload: dict) -> str:
    return f"data: {strict_json(payload)}\n\n"


class StoreChanges:
    """Lets coroutines on ``loop`` wait for the next change of ``store``, whichever thread makes it."""

    def __init__(self, store: JobStore, loop: asyncio.AbstractEventLoop) -> None:
        self._store = store
        self._loop = loop
        self._waiting: set[asyncio.Event] = set()
        self.stopping = False
        store.add_listener(self._changed)

    def stop(self) -> None:
        """From the loop: the backend is stopping; wake every stream to send its last state."""
        self.stopping = True
        self._wake_all()

    def _changed(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._wake_all)
        except RuntimeError:  # the loop has closed: the server is stopping
            pass

    def _wake_all(self) -> None:
        for event in self._waiting:
            event.set()

    async def wait(self, seen: int, timeout: float) -> int:
        """The store's change count once it passes ``seen``, or after ``timeout`` seconds."""
        event = asyncio.Event()
        self._waiting.add(event)
        try:
            if self._store.change_count == seen and not self.stopping:
                await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            self._waiting.discard(event)
        return self._store.change_count


async def job_events(store: JobStore, changes: StoreChanges, job_id: str, limiter: anyio.CapacityLimiter,
                     keepalive_seconds: float = KEEPALIVE_SECONDS) -> AsyncIterator[str]:
    seen = store.change_count
    last_sent: dict | None = None
    while True:
        job = await anyio.to_thread.run_sync(store.get, job_id, limiter=limiter)
        if job is None:
            return
        payload = job.to_json()
        if payload != last_sent:
            yield sse_message(payload)
            last_sent = payload
        if job.finished:
            return
        if changes.stopping:
            yield STOPPING_COMMENT
            return
        changed = await changes.wait(seen, keepalive_seconds)
        if changed == seen:
            yield ": keep-alive\n\n"
        seen = changed


class EventStreams:
    """The open event streams, at most ``limit`` at a time."""

    def __init__(self, store: JobStore, changes: StoreChanges, limit: int, limiter: anyio.CapacityLimiter) -> None:
        self._store = store
        self._changes = changes
        self._limit = limit
        self._limiter = limiter
        self.open_count = 0

    def open(self, job_id: str) -> StreamingResponse:
        """The stream of ``job_id``; ServerBusy (503) when ``limit`` streams are open already."""
        if self.open_count >= self._limit:
            raise ServerBusy(f"{self._limit} event streams are open already, the most this backend serves at once",
                             "close streams you no longer follow, poll GET /v1/jobs/{id} instead, or start the backend "
                             "with a larger --max-event-streams")
        self.open_count += 1
        return _EventStreamResponse(job_events(self._store, self._changes, job_id, self._limiter), self._close_one)

    def stop(self) -> None:
        """The backend is stopping: each stream sends its job's last state and ends."""
        self._changes.stop()

    def _close_one(self) -> None:
        self.open_count -= 1


class _EventStreamResponse(StreamingResponse):
    """A text/event-stream response that gives its place back however it ends (done, client gone,
    server stopping)."""

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None]) -> None:
        super().__init__(content, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()
