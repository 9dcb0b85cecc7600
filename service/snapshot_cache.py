"""The latest snapshot, held in process: bytes as published, parsed once per snapshot id.

Every request asks Redis only for the latest pointer (one GET, ~0.1 ms); the document is
fetched and parsed when the pointer moves. If Redis goes away, the last good snapshot keeps
being served.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis

from pipeline.snapshots import redis_store

log = logging.getLogger(__name__)


@dataclass
class Current:
    """One snapshot as served: its id, JSON bytes, parsed document and lookups."""

    snapshot_id: str
    data: bytes
    document: dict[str, Any]
    by_ticker: dict[str, dict[str, Any]] = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.time)


class SnapshotCache:
    """Serves the latest snapshot from Redis, keeping the last good one in process."""

    def __init__(self, conn: redis.Redis | None, prefix: str):
        self.conn = conn
        self.keys = redis_store.Keys(prefix)
        self.current: Current | None = None
        self.redis_ok = conn is not None
        self._lock = threading.Lock()

    def get(self) -> Current | None:
        """The latest snapshot, or the last good one while Redis is unreachable."""
        if self.conn is None:
            return self.current
        try:
            found = redis_store.latest_bytes(self.conn, self.keys)
            self.redis_ok = True
        except redis.RedisError as exc:
            if self.redis_ok:
                log.warning("[CACHE] Redis unreachable (%s): serving the last good snapshot", exc)
            self.redis_ok = False
            return self.current
        if found is None:
            return self.current
        sid, data = found
        current = self.current
        if current is None or current.snapshot_id != sid:
            with self._lock:
                if self.current is None or self.current.snapshot_id != sid:
                    document = orjson.loads(data)
                    self.current = Current(
                        sid,
                        data,
                        document,
                        {row["ticker"]: row for row in document.get("results", [])},
                    )
            current = self.current
        return current
