"""The latest snapshot, held in process: bytes as published, parsed once per snapshot id.

Requests are answered from memory; at most every ``snapshot_poll_interval`` seconds one of
them asks Redis for the latest pointer (one GET, in a worker thread), and the document is
fetched and parsed when the pointer has moved. If Redis goes away, the last good snapshot
keeps being served.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import orjson
import pandas as pd
import redis

from pipeline import snapshots
from pipeline.config import TradeStyle
from pipeline.snapshots import redis_store

log = logging.getLogger(__name__)
MEMO_BYTES = 256 * 2**20  # answers derived from one snapshot kept in memory, roughly


@dataclass
class Current:
    """One snapshot as served: its id, JSON bytes, parsed document and lookups, plus the
    answers requests derive from it (gzip bytes, other trade styles, repeated queries), each
    made once per snapshot."""

    snapshot_id: str
    data: bytes
    document: dict[str, Any]
    by_ticker: dict[str, dict[str, Any]] = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.time)
    _memo: OrderedDict[Hashable, tuple[Any, int]] = field(default_factory=OrderedDict, repr=False)
    _memo_bytes: int = field(default=0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def sector_names(self) -> frozenset[str]:
        """The universe's own sector names, as the snapshot's rows spell them."""
        rows = self.document.get("results", [])
        return self.memo(
            ("sectors",), lambda: frozenset(r["Sector"] for r in rows if r.get("Sector"))
        )

    async def amemo(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """:meth:`memo` for async routes: a hit costs a dict lookup, a miss runs ``make`` in a
        worker thread, off the event loop."""
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key][0]
        return await anyio.to_thread.run_sync(self.memo, key, make)

    def memo(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """``make()``, computed once per key for this snapshot; the least recently used
        answers go once they hold more than MEMO_BYTES."""
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key][0]
        value = make()
        size = _footprint(value)
        with self._lock:
            if key not in self._memo:
                self._memo[key] = (value, size)
                self._memo_bytes += size
            while self._memo_bytes > MEMO_BYTES and len(self._memo) > 1:
                self._memo_bytes -= self._memo.popitem(last=False)[1][1]
        return value


def _footprint(value: Any) -> int:
    """Rough memory of a memoised answer: bytes as they are; a parsed document (with its
    bytes) at ~8x its JSON size."""
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, pd.DataFrame):
        return int(value.memory_usage(index=True).sum())
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], bytes):
        return 9 * len(value[1])
    return 1024


class SnapshotCache:
    """Serves the latest snapshot from Redis, keeping the last good one in process."""

    def __init__(self, conn: redis.Redis | None, prefix: str, poll_interval: float = 0.0):
        self.conn = conn
        self.keys = redis_store.Keys(prefix)
        self.current: Current | None = None
        self.redis_ok = conn is not None
        self.poll_interval = poll_interval
        self.checked = -float("inf")  # monotonic time of the last pointer GET
        self.checking = False  # a request is asking Redis right now
        self._lock = threading.Lock()

    def due(self) -> bool:
        """Whether the next request should ask Redis for the pointer: there is no snapshot
        yet, or the last check is ``poll_interval`` old and no other request is checking."""
        if self.current is None:
            return True
        return time.monotonic() - self.checked >= self.poll_interval and not self.checking

    async def latest(self) -> Current | None:
        """:meth:`get`, asking Redis at most every ``poll_interval`` seconds. One request
        checks (in a worker thread); the others go on with the snapshot in hand meanwhile,
        so a check never holds up a burst of requests."""
        if not self.due():
            return self.current
        self.checking = True
        try:
            return await anyio.to_thread.run_sync(self.get)
        finally:
            self.checking = False

    def get(self) -> Current | None:
        """The latest snapshot, or the last good one while Redis is unreachable."""
        if self.conn is None:
            return self.current
        try:
            found = redis_store.latest_bytes(self.conn, self.keys)
            self.checked = time.monotonic()
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
                    # The parsed snapshot (~10⁶ objects) lives until the next one: keep it out
                    # of the cyclic collector's full passes, which otherwise pause every
                    # request for 100+ ms now and then. Reference counting still frees it.
                    gc.unfreeze()
                    gc.collect()
                    gc.freeze()
            current = self.current
        return current

    def table(self, current: Current) -> pd.DataFrame:
        """The snapshot's ranked table from Redis (fetched once per snapshot); raises
        LookupError when there is no Redis connection or no table."""

        def make() -> pd.DataFrame:
            if self.conn is None:
                raise LookupError("no Redis connection")
            try:
                table = redis_store.get_table(self.conn, self.keys, current.snapshot_id)
            except redis.RedisError as exc:
                raise LookupError(f"Redis failed: {exc}") from None
            if table is None:
                raise LookupError(f"snapshot {current.snapshot_id} has no table in Redis")
            return table

        return current.memo(("table",), make)

    def styled(self, current: Current, style: TradeStyle) -> tuple[dict[str, Any], bytes]:
        """The snapshot's document and bytes for another trade style, from its ranked table
        in Redis (scored once per snapshot and style); raises LookupError without the table."""

        def make() -> tuple[dict[str, Any], bytes]:
            document = snapshots.restyle(self.table(current), current.document, style)
            return document, snapshots.to_json(document)

        return current.memo(("style", style), make)

    def changes(self, current: Current) -> dict[str, Any] | None:
        """What changed from the snapshot before ``current`` to it (see
        :func:`pipeline.snapshots.diff`), once per snapshot; None when there is no earlier
        snapshot. Raises LookupError while Redis cannot answer."""

        def make() -> dict[str, Any] | None:
            if self.conn is None:
                raise LookupError("no Redis connection")
            sid = current.snapshot_id
            try:
                before = redis_store.previous(
                    self.conn, self.keys, sid, current.document.get("as_of", "")
                )
                if before is None:
                    return None
                tables = [redis_store.members(self.conn, self.keys, s) for s in (before, sid)]
            except redis.RedisError as exc:
                raise LookupError(f"Redis failed: {exc}") from None
            if tables[0] is None or tables[1] is None:
                return None
            return {"from": before, "to": sid, **redis_store.compare(*tables)}

        return current.memo(("changes",), make)
