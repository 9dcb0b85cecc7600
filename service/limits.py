"""A request body limit: bodies over :data:`MAX_BODY` bytes are answered ``413
payload_too_large`` and never buffered.

A pure ASGI middleware: a declared ``Content-Length`` over the limit is refused before the app
runs; otherwise the bytes of ``http.request`` messages are counted as they stream in and the
read that crosses the limit raises :class:`PayloadTooLarge`. That is an ``HTTPException``, so
FastAPI's body parsing lets it through to the service's JSON error handler; a read outside
the router (the response cache keys on bodies) is answered here. FastAPI's own
``max_body_size`` answers those reads in plain text, not with the service's error body.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_response

MAX_BODY = 2**20  # bytes; the app's largest body is a few hundred
TOO_LARGE = f"`payload_too_large`: the request body is over {MAX_BODY:,} bytes"


class PayloadTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"request body over the limit of {limit:,} bytes")


class BodyLimit:
    """The middleware; ``limit`` in bytes."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise PayloadTooLarge(self.limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except PayloadTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        exc = PayloadTooLarge(self.limit)
        await error_response(exc.status_code, "payload_too_large", exc.detail)(scope, receive, send)
