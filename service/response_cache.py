"""Whole responses of the snapshot reads, answered before FastAPI routing.

Snapshots are immutable, so a read's response is a pure function of the snapshot id and the
request (method, path, query string, body, Accept-Encoding). This pure ASGI middleware keeps
the 200 responses of :data:`CACHEABLE` routes per snapshot and answers a repeat from memory,
skipping routing, validation and dependency injection: what a reverse-proxy micro-cache would
do, without the proxy. It steps aside when reads need a key (TECHNIC_READ_API_KEYS), for
conditional requests, and whenever the snapshot pointer is due a check (the app then refreshes
it). Metrics still count every request: the middleware sits inside them and names the route.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CACHEABLE = {
    ("POST", "/v1/scan"),
    ("GET", "/v1/scan"),
    ("GET", "/v1/scans/latest"),
    ("GET", "/v1/universe_stats"),
    ("GET", "/v1/symbol"),
}
MAX_BYTES = 32 * 2**20  # entries kept per process (the current snapshot's only), by _cost
MAX_BODY = 64 * 2**10  # larger request bodies are not cached
ENTRY_BYTES = 1024  # an entry's own overhead: its start message, headers and key tuple


@dataclass(frozen=True)
class _Entry:
    start: Message
    body: bytes
    route: Any
    cost: int  # bytes this entry holds: the answer, the request body and query it is keyed on


class ResponseCache:
    """The middleware; ``app_state`` is the FastAPI app's ``state`` (settings, snapshots)."""

    def __init__(self, app: ASGIApp, app_state: Any):
        self.app = app
        self.state = app_state
        self.entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self.size = 0
        self.snapshot_id: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) not in CACHEABLE:
            await self.app(scope, receive, send)
            return
        snapshots = getattr(self.state, "snapshots", None)
        settings = getattr(self.state, "settings", None)
        headers = dict(scope["headers"])
        if (
            snapshots is None
            or settings is None
            or settings.read_api_keys
            or b"if-none-match" in headers
        ):
            await self.app(scope, receive, send)
            return
        body, receive = await _buffer(receive)
        if body is None:
            await self.app(scope, receive, send)
            return
        gzip = b"gzip" in headers.get(b"accept-encoding", b"")
        key = (scope["method"], scope["path"], scope["query_string"], body, gzip)
        current = snapshots.current
        fresh = current is not None and not snapshots.due()
        if fresh and current.snapshot_id == self.snapshot_id and key in self.entries:
            entry = self.entries[key]
            self.entries.move_to_end(key)
            scope["route"] = entry.route
            await send(entry.start)
            await send({"type": "http.response.body", "body": entry.body})
            return
        await self._through(scope, receive, send, key)

    async def _through(self, scope: Scope, receive: Receive, send: Send, key: tuple) -> None:
        """Run the app and keep its answer if it is a whole 200 for one unchanged snapshot."""
        snapshots = self.state.snapshots
        before = snapshots.current
        start: Message | None = None
        chunks: list[bytes] = []

        async def keep(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, keep)
        after = snapshots.current
        if (
            start is None
            or start["status"] != 200
            or after is None
            or (before is not None and before.snapshot_id != after.snapshot_id)
        ):
            return
        if after.snapshot_id != self.snapshot_id:
            self.entries.clear()
            self.size = 0
            self.snapshot_id = after.snapshot_id
        body = b"".join(chunks)
        cost = len(body) + len(key[2]) + len(key[3]) + ENTRY_BYTES
        if key in self.entries:  # two requests raced to make the same answer
            return
        self.entries[key] = _Entry(start, body, scope.get("route"), cost)
        self.size += cost
        while self.size > MAX_BYTES and self.entries:
            self.size -= self.entries.popitem(last=False)[1].cost


async def _buffer(receive: Receive) -> tuple[bytes | None, Receive]:
    """The request body (None when it is too large to key on) and a ``receive`` that replays
    what was read."""
    messages: list[Message] = []
    body = b""
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        if not message.get("more_body", False) or len(body) > MAX_BODY:
            break
    pending = iter(messages)

    async def replay() -> Message:
        for message in pending:
            return message
        return await receive()

    too_large = len(body) > MAX_BODY or messages[-1].get("more_body", False)
    return (None if too_large else body), replay
