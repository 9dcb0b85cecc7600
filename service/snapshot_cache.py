"""The latest snapshot, held in process: bytes as published, parsed once per snapshot id.

Every request asks Redis only for the latest pointer (one GET, ~0.1 ms); the document is
fetched and parsed when the pointer moves. If Redis goes away, the last good snapshot keeps
being served.
"""

from __future__ import annotations

import gzip
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis

from pipeline import snapshots
from pipeline.config import TradeStyle
from pipeline.snapshots import redis_store

log = logging.getLogger(__name__)
MEMO_SIZE = 256  # derived responses kept per snapshot


@dataclass
class Current:
    """One snapshot as served: its id, JSON bytes, parsed document and lookups, plus what
    requests derive from it (gzip bytes, other trade styles, repeated queries), each made
    once per snapshot."""

    snapshot_id: str
    data: bytes
    document: dict[str, Any]
    by_ticker: dict[str, dict[str, Any]] = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.time)
    _memo: OrderedDict[Hashable, Any] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def memo(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """``make()``, computed once per key for this snapshot (the newest MEMO_SIZE kept)."""
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        value = make()
        with self._lock:
            self._memo[key] = value
            while len(self._memo) > MEMO_SIZE:
                self._memo.popitem(last=False)
        return value

    def gzipped(self, style: str | None = None, data: bytes | None = None) -> bytes:
        """The document's bytes (``data``: those of its ``style`` variant), gzip-compressed
        once."""
        payload = self.data if data is None else data
        return self.memo(("gzip", style), lambda: gzip.compress(payload, 6, mtime=0))


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

    def styled(self, current: Current, style: TradeStyle) -> tuple[dict[str, Any], bytes]:
        """The snapshot's document and bytes for another trade style, from its ranked table
        in Redis (scored once per snapshot and style)."""

        def make() -> tuple[dict[str, Any], bytes]:
            if self.conn is None:
                raise LookupError("no Redis connection")
            table = redis_store.get_table(self.conn, self.keys, current.snapshot_id)
            if table is None:
                raise LookupError(f"snapshot {current.snapshot_id} has no table in Redis")
            document = snapshots.restyle(table, current.document, style)
            return document, snapshots.to_json(document)

        return current.memo(("style", style), make)
