"""Server-sent events for one job: ``data: <job json>`` on every stored change, until a final state.

Waiting happens in a thread on the store's change condition (no polling); a comment line is sent
when nothing changed for a while, which also notices clients that went away.
"""

from __future__ import annotations

import json
from typing import AsyncIterator

import anyio

from .job_store import JobStore

KEEPALIVE_SECONDS = 15.0


def sse_message(payload: dict) -> str:
    return f"data: {json.dumps(payload)}\n\n"


async def job_events(store: JobStore, job_id: str, keepalive_seconds: float = KEEPALIVE_SECONDS) -> AsyncIterator[str]:
    seen = store.change_count
    last_sent: dict | None = None
    while True:
        job = store.get(job_id)
        if job is None:
            return
        payload = job.to_json()
        if payload != last_sent:
            yield sse_message(payload)
            last_sent = payload
        if job.finished:
            return
        changed = await anyio.to_thread.run_sync(store.wait_for_change, seen, keepalive_seconds, abandon_on_cancel=True)
        if changed == seen:
            yield ": keep-alive\n\n"
        seen = changed
