"""A local webhook receiver: a ThreadingHTTPServer on loopback that records every POST and
answers by a script (``fail`` → 503, ``slow`` → answers 200 after ``delay`` seconds, ``ok``).
Once the script runs out it answers 200. ``closed()`` gives an address where nobody listens."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    script: list[str] = field(default_factory=list)
    delay: float = 0.5
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    action = receiver.script.pop(0) if receiver.script else "ok"
                if action == "slow":
                    time.sleep(receiver.delay)
                status = 503 if action == "fail" else 200
                with receiver._lock:
                    receiver.received.append(Received(dict(self.headers), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/hook"

    def delivered(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.status == 200]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def closed() -> str:
    """A loopback address where nothing listens (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"
