"""Raw-bar cache in Redis: one value per store file, the file's own Parquet bytes.

Buckets are the bar store's files (whole tickers each, the natural ticker bucket). A value is
the file exactly as the store holds it, so a hit stands in for the store read byte for byte
and :func:`pipeline.store.read_file` parses it with the same ticker and date filters, page
checksums verified. No codec of our own: the store's Parquet already is a compact, checked
encoding of the bars.

Keys::

    {prefix}:bars:{data_version}:{file name}:{store hash}

``data_version`` changes on every store write (a generation's files have new names too), so
a new generation never sees an old value. The store hash covers the store's URL and its
manifest's write time, so two stores that happen to share a ``data_version`` do not share
values. One value serves every as-of date and ticker selection of that file.

Whether it pays depends on where the store is (``python -m bench.cache``, BENCHMARKS.md): a
read from a local disk's page cache beats a round trip to Redis (a hit read was 1.6× slower
than the store read for the 6,000 × 504 demo store), while for an ``s3://`` store one Redis
GET replaces one object-storage GET per file (1.3× faster even with S3 on loopback). So the
scan uses the cache for remote stores only.

Bounds: a value lives ``ttl`` seconds (``CACHE_TTL``, ``SET ... EX``; hits do not extend it);
there is one value per store file, as large as the file, and values over ``MAX_VALUE_BYTES``
are not cached. A rewritten store's old values stay until their TTL ends; a server that must
stay under a hard cap should set ``maxmemory`` with ``maxmemory-policy volatile-lru`` (bar
values all carry a TTL, so only cache values are evicted).

Failure is a miss: Redis down, timing out or refusing all return None, and a value that does
not parse (corrupt or foreign bytes) is read from the store instead and overwritten; each
kind is logged once per process and cache. After a connection failure the process skips
Redis for ``RETRY_AFTER`` seconds, so a scan with Redis down costs one failed connect per
worker, not one per partition.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from pipeline import redis_conn
from pipeline.redis_conn import RedisTarget

if TYPE_CHECKING:
    import redis

    from pipeline.config import Settings

log = logging.getLogger(__name__)

MAX_VALUE_BYTES = 128 * 2**20
RETRY_AFTER = 10.0  # seconds a process skips Redis after a connection failure
OUTCOME = "bar_cache"  # the frame attrs key that says how a partition was read
OUTCOMES = ("hit", "miss", "off")


@dataclass(frozen=True)
class BarCache:
    """The raw-bar cache on ``target`` under ``prefix``; values live ``ttl`` seconds.

    Plain data, so Dask ships it to workers, each of which connects lazily through
    :func:`pipeline.redis_conn.client` (one pool per process). With ``ttl == 0`` or a
    disabled target the cache is off: :meth:`get` misses and :meth:`put` does nothing.
    """

    target: RedisTarget
    prefix: str
    ttl: int

    @classmethod
    def from_settings(cls, settings: Settings, where: RedisTarget | None = None) -> BarCache:
        """The cache the settings describe (``CACHE_TTL``, the key prefix, their Redis)."""
        where = where if where is not None else redis_conn.target(settings)
        return cls(where, settings.redis_prefix, settings.cache_ttl)

    @property
    def enabled(self) -> bool:
        return self.target.enabled and self.ttl > 0

    def key(self, data_version: str, file_name: str, *, store: str = "") -> str:
        """The key of one store file (see the module docstring)."""
        digest = hashlib.sha256(store.encode()).hexdigest()[:16]
        return f"{self.prefix}:bars:{data_version}:{file_name}:{digest}"

    def get_bytes(self, key: str) -> bytes | None:
        """The raw value under ``key`` (e.g. a provider's JSON), or None on a miss or trouble."""
        conn = self._client()
        if conn is None:
            return None
        import redis  # imported already: the client above made it

        try:
            return conn.get(key)
        except (redis.RedisError, OSError) as exc:
            self._failed("get", exc)
            return None

    def put_bytes(self, key: str, value: bytes) -> bool:
        """Keep ``value`` under ``key`` for ``ttl`` seconds; False when it was not kept."""
        conn = self._client()
        if conn is None:
            return False
        if len(value) > MAX_VALUE_BYTES:
            self._warn_once(
                "too_large",
                "[CACHE] bar cache value %s is %d bytes, over the %d-byte cap: not cached "
                "(write the store with fewer rows per file)",
                key,
                len(value),
                MAX_VALUE_BYTES,
            )
            return False
        import redis

        try:
            conn.set(key, value, ex=self.ttl)
        except (redis.RedisError, OSError) as exc:
            self._failed("put", exc)
            return False
        return True

    # -- failure handling ------------------------------------------------------------------

    def _client(self) -> redis.Redis | None:
        if not self.enabled:
            return None
        if _down_until.get(self.target, 0.0) > time.monotonic():
            return None
        import redis

        try:
            return redis_conn.client(self.target)
        except (ValueError, redis.RedisError) as exc:  # e.g. a malformed REDIS_URL
            self._failed("connect", exc)
            return None

    def _failed(self, action: str, exc: Exception) -> None:
        import redis

        # Only a failed connection marks the server down; a slow reply is one miss, not an outage.
        down = isinstance(exc, redis.ConnectionError | OSError | ValueError) and not isinstance(
            exc, redis.TimeoutError
        )
        if down:
            _down_until[self.target] = time.monotonic() + RETRY_AFTER
        self._warn_once(
            "down" if down else "error",
            "[CACHE] bar cache %s failed on Redis %s (%s: %s): bars are read from the store "
            "while it fails",
            action,
            self.target.description,
            type(exc).__name__,
            exc,
        )

    def undecodable(self, key: str, exc: Exception) -> None:
        """Note that the value under ``key`` did not parse (it is read from the store and
        overwritten)."""
        self._warn_once(
            "undecodable",
            "[CACHE] bar cache value %s does not parse (%s): read from the store and overwritten",
            key,
            exc,
        )

    def _warn_once(self, kind: str, message: str, *args: object) -> None:
        with _lock:
            seen = (kind, self.target, self.prefix)
            if seen in _warned:
                return
            _warned.add(seen)
        log.warning(message, *args)


_lock = threading.Lock()
_warned: set[tuple[str, RedisTarget, str]] = set()  # (kind, target, prefix) already logged
_down_until: dict[RedisTarget, float] = {}


def count_outcomes(frames: Iterable[pd.DataFrame]) -> dict[str, int]:
    """``{"hit": n, "miss": n, "off": n}`` over partitions read by :func:`load_bars`."""
    counts = Counter(frame.attrs.get(OUTCOME, "off") for frame in frames)
    return {outcome: counts.get(outcome, 0) for outcome in OUTCOMES}
