"""The app's own requests, made through the whole service when a snapshot arrives.

A request's first pass through the app does lazy work that later ones skip: FastAPI reads
each endpoint's source lines on its first call (its error context, ~3 ms), the answer is
built, and the response cache (:mod:`service.response_cache`) keeps it only once a request has
gone through. Sending the app's own bodies (``app-contract.md``: compact JSON in the app's key
order, with and without gzip) through the stack once per snapshot leaves the first real request
nothing to do but the cache's lookup. These requests carry :data:`WARM_UP` in their ASGI scope:
the metrics and the quiet gate (:mod:`service.quiet`) leave them alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import orjson
from starlette.types import ASGIApp, Message, Scope

WARM_UP = "technic.warm_up"  # ASGI scope key of the service's own requests
ENCODINGS = (b"gzip", b"identity")


def is_warm_up(scope: Scope) -> bool:
    """Whether ``scope`` is one of the service's own requests."""
    return bool(scope.get(WARM_UP))


async def request(app: ASGIApp, method: str, path: str, body: bytes, encoding: bytes) -> int:
    """Send one request through ``app`` in process; its status."""
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"accept", b"application/json"),
            (b"accept-encoding", encoding),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
        "state": {},
        WARM_UP: True,
    }
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    status = 0

    async def receive() -> Message:
        return pending.pop() if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def post_bodies(app: ASGIApp, path: str, bodies: Iterable[dict]) -> list[int]:
    """``POST path`` with each body, gzip and plain, from a thread without an event loop
    (the snapshot's loader or the service's warm-up thread); the statuses."""

    async def run() -> list[int]:
        return [
            await request(app, "POST", path, orjson.dumps(body), encoding)
            for body in bodies
            for encoding in ENCODINGS
        ]

    return asyncio.run(run())
