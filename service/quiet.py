"""Background work that yields to requests.

A new snapshot's warm-up (its presets re-ranked, its charts' bars loaded) is CPU work in
Python threads, and threads share one interpreter lock: run while requests are being answered,
it makes them several times slower (measured: the first ``POST /v1/scan`` after start 60–130 ms
instead of 4–10 ms). :class:`Quiet` lets that work wait until no request has been in flight for
a moment; it never waits longer than ``most`` seconds, so steady traffic cannot starve it.
A pure ASGI middleware marks the requests.
"""

from __future__ import annotations

import threading
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from service.first_pass import is_warm_up

QUIET = 0.1  # seconds without a request in flight before background work runs
MOST = 5.0  # seconds background work waits at most


class Quiet:
    """Requests in flight, and when the last one ended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy = 0
        self._last = time.monotonic()

    def started(self) -> None:
        with self._lock:
            self._busy += 1

    def ended(self) -> None:
        with self._lock:
            self._busy -= 1
            self._last = time.monotonic()

    def wait(self, quiet: float = QUIET, most: float = MOST) -> None:
        """Return once no request has been in flight for ``quiet`` seconds, or after
        ``most`` seconds."""
        deadline = time.monotonic() + most
        while time.monotonic() < deadline:
            with self._lock:
                idle = self._busy == 0 and time.monotonic() - self._last >= quiet
            if idle:
                return
            time.sleep(quiet / 4)


class MarkRequests:
    """The middleware: every HTTP request is in flight from its start to its last byte."""

    def __init__(self, app: ASGIApp, quiet: Quiet) -> None:
        self.app, self.quiet = app, quiet

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_warm_up(scope):
            await self.app(scope, receive, send)
            return
        self.quiet.started()
        try:
            await self.app(scope, receive, send)
        finally:
            self.quiet.ended()
