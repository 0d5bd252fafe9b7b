"""A cap on request bodies (``--max-upload-mb``), enforced before anything is stored.

A declared Content-Length over the cap is refused at once; a body without one (chunked) is
counted while it is read and refused as soon as it passes the cap.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .error_mapping import PayloadTooLarge, error_response


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is larger than the server's cap of {limit // (1 << 20)} MiB",
                           "upload fewer views or a smaller resolution, or start the server with a larger --max-upload-mb",
                           field="bundle")


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_bytes:
            await error_response(too_large(self._max_bytes))(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max_bytes:
                    raise too_large(self._max_bytes)
            return message

        await self._app(scope, counting_receive, send)
