"""The latest snapshot, held in process: bytes as published, parsed once per snapshot id.

Requests are answered from memory; at most every ``snapshot_poll_interval`` seconds one of
them asks Redis for the latest pointer (one GET, in a worker thread), and the document is
fetched and parsed when the pointer has moved. If Redis goes away, the last good snapshot
keeps being served.
"""

from __future__ import annotations

import contextlib
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
# Answers derived from one snapshot kept in memory, by their _footprint. The app's working
# set on a 6,000-row snapshot is ~110 MB: three re-ranked documents (~27 MB each), the ranked
# table (~8 MB) and the presets' answers (~7 MB each, plain and gzip).
MEMO_BYTES = 128 * 2**20
ENTRY_BYTES = 256  # an entry's own overhead: dict slot, tuple, the key's objects


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
        size = _footprint(value) + ENTRY_BYTES + len(repr(key))
        with self._lock:
            if key not in self._memo:
                self._memo[key] = (value, size)
                self._memo_bytes += size
            while self._memo_bytes > MEMO_BYTES and len(self._memo) > 1:
                self._memo_bytes -= self._memo.popitem(last=False)[1][1]
        return value


def _footprint(value: Any) -> int:
    """Memory of a memoised answer: bytes as they are; a frame with its strings; a document
    parsed from JSON (with its bytes) at 5x the JSON (measured: the parsed objects take
    ~3.2x). Anything else is one of a few per-snapshot helpers under fixed keys (sector
    names, the symbol view, the copilot's context, the changes), counted at 1 KiB: there is
    one of each, not one per request."""
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, pd.DataFrame):
        return int(value.memory_usage(index=True, deep=True).sum())
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], bytes):
        return 5 * len(value[1])
    return 1024


class SnapshotCache:
    """Serves the latest snapshot from Redis, keeping the last good one in process.

    While Redis fails, it is asked again after a backoff (0.5 s doubling to 30 s), so a dead
    Redis costs one request a connect timeout now and then, not every request; the first
    answer after an outage runs ``on_reconnect`` (the service pushes queued snapshots), and
    each new snapshot ``on_snapshot`` (the service starts loading its chart bars). A
    snapshot whose document cannot be decoded is skipped for the newest good one, and
    ``problem`` says so.
    """

    def __init__(
        self,
        conn: redis.Redis | None,
        prefix: str,
        poll_interval: float = 0.0,
        on_reconnect: Callable[[], object] | None = None,
        on_snapshot: Callable[[Current], object] | None = None,
    ):
        self.conn = conn
        self.keys = redis_store.Keys(prefix)
        self.current: Current | None = None
        self.redis_ok = conn is not None
        self.poll_interval = poll_interval
        self.on_reconnect = on_reconnect
        self.on_snapshot = on_snapshot
        self.checked = -float("inf")  # monotonic time of the last pointer GET
        self.checking = False  # a request is asking Redis right now
        self.failures = 0  # Redis failures in a row
        self.retry_at = -float("inf")  # no Redis call before this monotonic time
        self.undecodable: dict[str, str] = {}  # snapshot id → why it cannot be served
        self.pointer: str | None = None  # the latest pointer as last read
        self._lock = threading.Lock()

    @property
    def problem(self) -> str | None:
        """Why the service is degraded, in words (None when it is not)."""
        if self.conn is not None and not self.redis_ok:
            return "Redis is unreachable: serving the last good snapshot held in memory"
        if self.pointer in self.undecodable:
            why = self.undecodable[self.pointer]
            return f"snapshot {self.pointer} cannot be decoded ({why}): serving the last good one"
        return None

    def due(self) -> bool:
        """Whether the next request should ask Redis for the pointer: no snapshot yet or the
        last check is ``poll_interval`` old, no other request is checking, and Redis is not
        in its backoff after a failure."""
        now = time.monotonic()
        if self.checking or now < self.retry_at:
            return False
        return self.current is None or now - self.checked >= self.poll_interval

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
        if self.conn is None or time.monotonic() < self.retry_at:
            return self.current
        try:
            found = redis_store.latest_bytes(self.conn, self.keys)
            self.pointer = found[0] if found is not None else None
            if self.pointer in self.undecodable:
                found = self._fallback(self.pointer)
        except redis.RedisError as exc:
            self._failed(exc)
            return self.current
        first = self.checked == -float("inf")
        self.checked = time.monotonic()
        if first or not self.redis_ok:
            self._recovered()
        if found is None:
            return self.current
        sid, data = found
        if self.current is None or self.current.snapshot_id != sid:
            with self._lock:
                if self.current is None or self.current.snapshot_id != sid:
                    self._load(sid, data)
        return self.current

    def _load(self, sid: str, data: bytes) -> None:
        """Parse and hold snapshot ``sid``; an undecodable one is remembered and skipped."""
        try:
            document = orjson.loads(data)
            rows = document["results"]
            by_ticker = {row["ticker"]: row for row in rows}
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            why = f"{type(exc).__name__}: {str(exc)[:80]}"
            log.error("[CACHE] snapshot %s cannot be decoded (%s): skipped", sid, why)
            self.undecodable[sid] = why
            found = self._fallback(sid) if self.current is None else None
            if found is not None:
                self._load(*found)
            return
        self.current = Current(sid, data, document, by_ticker)
        with contextlib.suppress(LookupError):  # the ranked table, so that re-ranking for
            self.table(self.current)  # another trade style needs no Redis later
        if self.on_snapshot is not None:
            self.on_snapshot(self.current)
        # The parsed snapshot (~10⁶ objects) lives until the next one: keep it out of the
        # cyclic collector's full passes, which otherwise pause every request for 100+ ms now
        # and then. Reference counting still frees it.
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    def _fallback(self, bad: str) -> tuple[str, bytes] | None:
        """The newest snapshot other than the undecodable ones that still has its document:
        the held one when there is one, else from Redis."""
        if self.current is not None:
            return self.current.snapshot_id, self.current.data
        skip = set(self.undecodable) | {bad}
        for sid in redis_store.full_ids_newest_first(self.conn, self.keys):
            if sid not in skip:
                data = redis_store.get_bytes(self.conn, self.keys, sid)
                if data is not None:
                    return sid, data
        return None

    def _failed(self, exc: redis.RedisError) -> None:
        self.failures += 1
        self.retry_at = time.monotonic() + min(30.0, 0.5 * 2 ** (self.failures - 1))
        if self.redis_ok:
            log.warning("[CACHE] Redis unreachable (%s): serving the last good snapshot", exc)
        self.redis_ok = False

    def _recovered(self) -> None:
        """Redis answered: first time, or after failures; run the reconnect hook."""
        if not self.redis_ok:
            log.info("[CACHE] Redis is back")
        self.redis_ok, self.failures, self.retry_at = True, 0, -float("inf")
        if self.on_reconnect is not None:
            try:
                self.on_reconnect()
            except Exception:  # a hook's failure must not fail the request that ran it
                log.exception("[CACHE] after Redis came back")

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
