"""A real uvicorn server in a thread, for the service tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn

from pipeline.config import Settings
from service.main import create_app


def serve(settings: Settings):
    """A real uvicorn server in a thread on a free loopback port; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    return server, thread, f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def running(settings: Settings) -> Iterator[str]:
    """:func:`serve` for the length of a ``with`` block (stopped, lifespan and all, after)."""
    server, thread, base = serve(settings)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(60)
