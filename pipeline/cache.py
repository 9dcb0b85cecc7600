"""Raw-bar cache in Redis: one compressed Arrow IPC value per store file and read scope.

Buckets are the bar store's files (whole tickers each, the natural ticker bucket). A value is
what :func:`pipeline.store.read_file` returns for one file and one read scope (ticker
selection, start, end), so a cache hit stands in for that Parquet read exactly: same rows,
values, dtypes and index.

Keys::

    {prefix}:bars:{data_version}:{file name}:{scope hash}

``data_version`` changes on every store write, so a new generation never sees an old value.
The scope hash covers the ticker selection, ``start``, ``end`` and the store's identity (its
path and manifest write time, so two stores that happen to share a ``data_version`` string
do not share values): a different as-of date or selection is a different key.

Values are Arrow IPC streams, never Python object serialization. Store prices are full
float64 random walks that general-purpose compressors barely shrink: for the 6,000 × 504 demo
store (2.84M bars, 136 MB raw) plain IPC keeps 99 MB with zstd (117 MB with lz4), and even a
dictionary ticker with date32 keeps 96 MB, over the 100 MB budget once Redis rounds each value
up to its allocator size class. So the value uses a lossless layout that puts the compressible
bits together (``FORMAT``):

- ``ticker`` dictionary-encoded (one entry per ticker, int32 codes);
- ``date`` as int64 differences from the previous row (mostly one day; modular arithmetic,
  exact for any datetime64[ns] including NaT);
- each price XORed with a neighbour that shares its leading bits: ``close`` with the previous
  row's close, ``open``/``high``/``low`` with the same row's close (``volume`` as is);
- each of those 64-bit words split into byte 7, byte 6, bytes 4–5 and bytes 0–3 columns, so
  sign, exponent and leading mantissa bits (mostly zeros after the XOR) compress apart from
  the noise-like low mantissa bytes;
- IPC body compression ``CODEC``: zstd level 1 (lz4 decodes a few ms faster per bucket but
  keeps 5% more on the demo store and 11% more on the real US universe).

Every transform is bitwise reversible, NaN payloads and -0.0 included. Measured on the demo
store (8 buckets of ~355k bars): 80.8 MB of values, 28.5 bytes per bar; Redis ``used_memory``
89–90 MB once settled (each ~11.4 MB value occupies a 12 MiB allocation). While values are
being written Redis briefly also holds a query buffer as large as each value in flight (about
12 MB per writing worker, released within seconds).

Bounds: a value lives ``ttl`` seconds (``CACHE_TTL``, ``SET ... EX``; hits do not extend it);
there is one value per store file and read scope, about 29 bytes per bar, and values over
``MAX_VALUE_BYTES`` are not cached. Scans of several as-of dates within one TTL keep one set
each, and a rewritten store's old values stay until their TTL ends; a server that must stay
under a hard cap should set ``maxmemory`` with ``maxmemory-policy volatile-lru`` (bar values
all carry a TTL, so only cache values are evicted).

Failure is a miss: Redis down, timing out or refusing, and a value that does not decode
(corrupt or foreign bytes), all return None; each kind is logged once per process and cache,
and an undecodable value is overwritten by the next :meth:`BarCache.put`. After a connection
failure the process skips Redis for ``RETRY_AFTER`` seconds, so a scan with Redis down costs
one failed connect per worker, not one per partition.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import redis

from pipeline import redis_conn
from pipeline.redis_conn import RedisTarget
from pipeline.schema import BAR_COLUMNS, BAR_DTYPES, DATE, TICKER, TICKER_DTYPE

if TYPE_CHECKING:
    from pipeline.config import Settings

log = logging.getLogger(__name__)

FORMAT = "technic-bars-ipc/1"  # bump when the layout changes: old values become misses
CODEC = "zstd"
CODEC_LEVEL = 1
MAX_VALUE_BYTES = 128 * 2**20
RETRY_AFTER = 10.0  # seconds a process skips Redis after a connection failure
OUTCOME = "bar_cache"  # the frame attrs key that says how a partition was read
OUTCOMES = ("hit", "miss", "off")

_U64 = np.uint64
_VALUES = BAR_COLUMNS[1:]  # open, high, low, close, volume
_CLOSE = _VALUES.index("close")
# (byte offset, width in bytes) of each piece a 64-bit word is split into, most significant
# first: the leading bytes compress well, the trailing ones are mostly noise.
_PIECES = ((7, 1), (6, 1), (4, 2), (0, 4))
_PIECE_TYPES = {1: np.uint8, 2: np.uint16, 4: np.uint32}


def _schema() -> pa.Schema:
    fields = [
        pa.field(TICKER, pa.dictionary(pa.int32(), pa.large_string())),
        pa.field(DATE, pa.uint64()),
    ]
    for column in _VALUES:
        for offset, width in _PIECES:
            fields.append(pa.field(f"{column}.{offset}", pa.from_numpy_dtype(_PIECE_TYPES[width])))
    return pa.schema(fields, metadata={"format": FORMAT, "byteorder": sys.byteorder})


_SCHEMA = _schema()


class UndecodableValue(ValueError):
    """A cached value that is not a bar frame in :data:`FORMAT`."""


# -- encoding ------------------------------------------------------------------------------


def encode(frame: pd.DataFrame) -> bytes:
    """A bars frame (ticker index, the contract's columns and dtypes) as IPC stream bytes.

    Raises ValueError for a frame outside the contract (such a frame is not cached).
    """
    if frame.index.name != TICKER or list(frame.columns) != list(BAR_COLUMNS):
        raise ValueError(f"not a bars frame: index {frame.index.name!r}, {list(frame.columns)}")
    for column, dtype in BAR_DTYPES.items():
        if frame[column].dtype != dtype:
            raise ValueError(f"bar column {column!r} is {frame[column].dtype}, not {dtype}")
    if frame.index.dtype != TICKER_DTYPE or frame.index.hasnans:
        raise ValueError(f"ticker index is {frame.index.dtype} with nulls {frame.index.hasnans}")
    n = len(frame)
    tickers = pa.array(frame.index.array)
    if isinstance(tickers, pa.ChunkedArray):
        tickers = tickers.combine_chunks()
    tickers = pc.cast(tickers, pa.large_string()).dictionary_encode()
    arrays: list[pa.Array] = [tickers]
    dates = frame[DATE].to_numpy().view(_U64)
    delta = dates.copy()
    delta[1:] -= dates[:-1]  # wraps modulo 2**64, undone exactly by a wrapping cumsum
    arrays.append(pa.array(delta))
    words = np.empty((len(_VALUES), n), _U64)
    for k, column in enumerate(_VALUES):
        words[k] = frame[column].to_numpy().view(_U64)
    close = words[_CLOSE].copy()
    words[_CLOSE, 1:] ^= close[:-1]
    for k, column in enumerate(_VALUES):
        if column not in ("close", "volume"):
            words[k] ^= close
    for k in range(len(_VALUES)):
        for offset, width in _PIECES:
            arrays.append(pa.array(_piece(words[k], offset, width)))
    table = pa.Table.from_arrays(arrays, schema=_SCHEMA)
    sink = pa.BufferOutputStream()
    options = ipc.IpcWriteOptions(compression=pa.Codec(CODEC, CODEC_LEVEL))
    with ipc.new_stream(sink, _SCHEMA, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode(value: bytes) -> pd.DataFrame:
    """The bars frame that :func:`encode` wrote; raises :class:`UndecodableValue` otherwise."""
    try:
        table = ipc.open_stream(pa.py_buffer(value)).read_all()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise UndecodableValue(f"not an Arrow IPC stream ({exc})") from None
    meta = table.schema.metadata or {}
    if meta != _SCHEMA.metadata or not table.schema.equals(_SCHEMA):
        found = meta.get(b"format", b"no format tag").decode(errors="replace")
        raise UndecodableValue(f"an IPC stream of another layout ({found})")
    try:
        return _frame(table)
    except (pa.ArrowException, ValueError, IndexError) as exc:
        raise UndecodableValue(f"bad bar columns ({exc})") from None


def _frame(table: pa.Table) -> pd.DataFrame:
    n = table.num_rows
    words = np.empty((len(_VALUES), n), _U64)
    for k, column in enumerate(_VALUES):
        row = words[k]
        for offset, width in _PIECES:
            piece = table.column(f"{column}.{offset}").combine_chunks()
            if piece.null_count:
                raise ValueError(f"nulls in {column}.{offset}")
            # each piece goes straight into its bytes of the little-endian 64-bit words
            row.view(_PIECE_TYPES[width]).reshape(n, 8 // width)[:, offset // width] = (
                piece.to_numpy()
            )
    close = words[_CLOSE]
    np.bitwise_xor.accumulate(close, out=close)
    for k, column in enumerate(_VALUES):
        if column not in ("close", "volume"):
            words[k] ^= close
    ticker = table.column(TICKER).combine_chunks()
    names = ticker.dictionary.take(ticker.indices)  # raises on out-of-range codes
    if names.null_count:
        raise ValueError("null tickers")
    index = pd.Index(pd.array(names, dtype=TICKER_DTYPE), name=TICKER)
    frame = pd.DataFrame(words.view(np.float64).T, index=index, columns=list(_VALUES), copy=False)
    delta = table.column(DATE).combine_chunks().to_numpy()
    frame.insert(0, DATE, np.cumsum(delta, dtype=_U64).view(BAR_DTYPES[DATE]))
    return frame


def _piece(words: np.ndarray, offset: int, width: int) -> np.ndarray:
    n = len(words)
    return np.ascontiguousarray(
        words.view(_PIECE_TYPES[width]).reshape(n, 8 // width)[:, offset // width]
    )


# -- the cache -----------------------------------------------------------------------------


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

    def key(
        self,
        data_version: str,
        file_name: str,
        tickers: Iterable[str] | None = None,
        start: pd.Timestamp | str | None = None,
        end: pd.Timestamp | str | None = None,
        *,
        store: str = "",
    ) -> str:
        """The key of one store file read with one scope (see the module docstring)."""
        scope = [
            store,
            None if tickers is None else list(tickers),
            None if start is None else pd.Timestamp(start).isoformat(),
            None if end is None else pd.Timestamp(end).isoformat(),
        ]
        digest = hashlib.sha256(json.dumps(scope).encode()).hexdigest()[:16]
        return f"{self.prefix}:bars:{data_version}:{file_name}:{digest}"

    def get(self, key: str) -> pd.DataFrame | None:
        """The cached frame under ``key``, or None (a miss, Redis trouble, a bad value)."""
        value = self.get_bytes(key)
        if value is None:
            return None
        try:
            return decode(value)
        except Exception as exc:  # any value that does not decode is a miss, never an error
            self._warn_once(
                "undecodable",
                "[CACHE] bar cache value %s does not decode (%s): treated as a miss and "
                "overwritten",
                key,
                exc,
            )
            return None

    def put(self, key: str, frame: pd.DataFrame) -> bool:
        """Cache ``frame`` under ``key`` for ``ttl`` seconds; False when it was not cached."""
        conn = self._client()
        if conn is None:
            return False
        try:
            value = encode(frame)
        except (ValueError, TypeError, pa.ArrowException) as exc:
            log.debug("[CACHE] not caching %s: %s", key, exc)
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
        try:
            conn.set(key, value, ex=self.ttl)
        except (redis.RedisError, OSError) as exc:
            self._failed("put", exc)
            return False
        return True

    def get_bytes(self, key: str) -> bytes | None:
        """The raw value under ``key`` (e.g. a provider's JSON), or None on a miss or trouble."""
        conn = self._client()
        if conn is None:
            return None
        try:
            return conn.get(key)
        except (redis.RedisError, OSError) as exc:
            self._failed("get", exc)
            return None

    def put_bytes(self, key: str, value: bytes) -> bool:
        """Keep ``value`` under ``key`` for ``ttl`` seconds; False when it was not kept."""
        conn = self._client()
        if conn is None or len(value) > MAX_VALUE_BYTES:
            return False
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
        try:
            return redis_conn.client(self.target)
        except (ValueError, redis.RedisError) as exc:  # e.g. a malformed REDIS_URL
            self._failed("connect", exc)
            return None

    def _failed(self, action: str, exc: Exception) -> None:
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
