"""The raw-bar cache against a real redis-server (the ``redis_server`` fixture)."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shutil
import socket
import time
import uuid
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
import redis

from pipeline import cache as bar_cache
from pipeline.cache import OUTCOME, BarCache, UndecodableValue, count_outcomes, decode, encode
from pipeline.config import Settings
from pipeline.errors import StoreError
from pipeline.frame import load_bars
from pipeline.redis_conn import RedisTarget
from pipeline.schema import BAR_DTYPES, TICKER_DTYPE, empty_bars
from pipeline.store import BarStore, read_file

LOGGER = "pipeline.cache"


@pytest.fixture
def prefix(request) -> str:
    """A key prefix of this test's own, so tests never see each other's values."""
    name = re.sub(r"[^A-Za-z0-9_]+", "_", request.node.name)
    return f"test:{name}:{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cache(redis_server: RedisTarget, prefix: str) -> BarCache:
    # a generous socket timeout: multi-MB values on a loaded 2-core CI box must not time out
    return BarCache(dataclasses.replace(redis_server, timeout=30.0), prefix, ttl=120)


@pytest.fixture
def conn(redis_server: RedisTarget) -> redis.Redis:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def store_copy(demo_store: Path, tmp_path: Path) -> Path:
    """A private copy of the demo store (tests that rewrite or hide its files use this)."""
    return Path(shutil.copytree(demo_store, tmp_path / "store"))


def read(frame) -> list[pd.DataFrame]:
    """Every partition of a load_bars frame, read in this process (attrs intact)."""
    return list(dask.compute(*frame.to_delayed(), scheduler="sync"))


def outcomes(parts: list[pd.DataFrame]) -> set[str]:
    return {part.attrs[OUTCOME] for part in parts}


def parquet_parts(path: Path, **scope) -> list[pd.DataFrame]:
    return read(load_bars(path, **scope))


def assert_same_bars(got: list[pd.DataFrame], expected: list[pd.DataFrame]) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        assert a.index.dtype == b.index.dtype == TICKER_DTYPE
        assert a.index.name == b.index.name
        assert a.dtypes.to_dict() == b.dtypes.to_dict() == BAR_DTYPES


def cache_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- the value format ---------------------------------------------------------------------


def test_encode_decode_is_bitwise_exact_for_awkward_values() -> None:
    words = np.array(
        [0x7FF8_0000_0000_1234, 0x8000_0000_0000_0000, 0x0000_0000_0000_0001], dtype=np.uint64
    )  # a NaN with a payload, -0.0, the smallest subnormal
    odd = words.view(np.float64)
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(
                ["2024-01-02 16:00", "2024-01-01", "1970-01-01", "2024-01-03", "2262-04-11"],
                format="ISO8601",
            ).astype("datetime64[ns]"),
            "open": [1.5, np.inf, -np.inf, odd[0], 3.0],
            "high": [odd[1], 2.0, np.nan, 1e300, 4.0],
            "low": [odd[2], -1.0, 0.0, 5e-324, 2.0],
            "close": [100.123456789, 1e-300, np.nan, -0.0, 3.5],
            "volume": [0.0, 12345.0, np.nan, 1.5, 2.0**60],
        },
        index=pd.Index(pd.array(["B", "A", "A", "ZZZZ", "B"], dtype=TICKER_DTYPE), name="ticker"),
    )
    back = decode(encode(frame))
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    for column in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(
            back[column].to_numpy().view(np.uint64), frame[column].to_numpy().view(np.uint64)
        )
    empty = decode(encode(empty_bars()))
    pd.testing.assert_frame_equal(empty, empty_bars())


def test_encode_refuses_frames_outside_the_contract(demo_store: Path) -> None:
    part = read_file(BarStore.open(demo_store).files[0].path)
    with pytest.raises(ValueError, match="volume"):
        encode(part.astype({"volume": "int64"}))
    with pytest.raises(ValueError, match="not a bars frame"):
        encode(part.reset_index())


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"not arrow at all",
        json.dumps({"ticker": "AAPL", "close": 1.0}).encode(),
        b"a foreign text value",
    ],
)
def test_decode_rejects_foreign_bytes(value: bytes) -> None:
    with pytest.raises(UndecodableValue):
        decode(value)


def test_decode_rejects_other_arrow_streams_and_truncation(demo_store: Path) -> None:
    sink = pa.BufferOutputStream()
    table = pa.table({"ticker": ["A"], "close": [1.0]})
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    with pytest.raises(UndecodableValue, match="another layout"):
        decode(sink.getvalue().to_pybytes())
    value = encode(read_file(BarStore.open(demo_store).files[0].path))
    with pytest.raises(UndecodableValue):
        decode(value[: len(value) // 2])


# --- keys ----------------------------------------------------------------------------------


def test_key_names_version_file_and_scope(cache: BarCache, prefix: str) -> None:
    key = cache.key("g3-abc", "g000003-00001.parquet", None, None, "2024-06-28")
    assert re.fullmatch(
        rf"{re.escape(prefix)}:bars:g3-abc:g000003-00001\.parquet:[0-9a-f]{{16}}", key
    )
    same = cache.key("g3-abc", "g000003-00001.parquet", None, None, pd.Timestamp("2024-06-28"))
    assert same == key
    others = {
        cache.key("g4-def", "g000003-00001.parquet", None, None, "2024-06-28"),
        cache.key("g3-abc", "g000003-00002.parquet", None, None, "2024-06-28"),
        cache.key("g3-abc", "g000003-00001.parquet", None, None, "2024-06-27"),
        cache.key("g3-abc", "g000003-00001.parquet", None, "2024-01-02", "2024-06-28"),
        cache.key("g3-abc", "g000003-00001.parquet", ("AAA",), None, "2024-06-28"),
        cache.key("g3-abc", "g000003-00001.parquet", ("AAA", "AAB"), None, "2024-06-28"),
        cache.key("g3-abc", "g000003-00001.parquet", None, None, None),
        cache.key("g3-abc", "g000003-00001.parquet", None, None, "2024-06-28", store="/other"),
    }
    assert key not in others and len(others) == 8


# --- hits and misses through load_bars ------------------------------------------------------


def test_miss_then_hit_returns_exactly_the_parquet_bars(
    demo_store: Path, cache: BarCache, conn: redis.Redis, prefix: str
) -> None:
    expected = parquet_parts(demo_store)
    assert outcomes(expected) == {"off"}
    first = read(load_bars(demo_store, cache=cache))
    assert outcomes(first) == {"miss"}
    assert len(conn.keys(f"{prefix}:bars:*")) == len(expected)
    second = read(load_bars(demo_store, cache=cache))
    assert outcomes(second) == {"hit"}
    assert_same_bars(first, expected)
    assert_same_bars(second, expected)
    whole = load_bars(demo_store, cache=cache).compute(scheduler="sync")
    pd.testing.assert_frame_equal(whole, pd.concat(expected), check_exact=True)


def test_a_repeat_read_reads_no_parquet(store_copy: Path, cache: BarCache) -> None:
    expected = parquet_parts(store_copy)
    assert outcomes(read(load_bars(store_copy, cache=cache))) == {"miss"}
    (store_copy / "bars").rename(store_copy / "bars-hidden")  # no Parquet file left to read
    with pytest.raises(StoreError, match="is missing though manifest"):
        read(load_bars(store_copy))
    cached = read(load_bars(store_copy, cache=cache))
    assert outcomes(cached) == {"hit"}
    assert_same_bars(cached, expected)


def test_values_expire_after_the_ttl(
    demo_store: Path, redis_server: RedisTarget, prefix: str, conn: redis.Redis
) -> None:
    short = BarCache(redis_server, prefix, ttl=1)
    assert outcomes(read(load_bars(demo_store, cache=short))) == {"miss"}
    keys = conn.keys(f"{prefix}:bars:*")
    assert keys and all(0 < conn.pttl(k) <= 1000 for k in keys)
    assert outcomes(read(load_bars(demo_store, cache=short))) == {"hit"}
    time.sleep(1.2)
    assert outcomes(read(load_bars(demo_store, cache=short))) == {"miss"}


def test_values_carry_the_configured_ttl(demo_store: Path, cache: BarCache, conn) -> None:
    read(load_bars(demo_store, cache=cache))
    ttls = [conn.ttl(k) for k in conn.keys(f"{cache.prefix}:bars:*")]
    assert ttls and all(100 < t <= 120 for t in ttls)


def test_a_new_store_generation_is_a_miss(store_copy: Path, cache: BarCache) -> None:
    read(load_bars(store_copy, cache=cache))
    assert outcomes(read(load_bars(store_copy, cache=cache))) == {"hit"}
    store = BarStore.open(store_copy)
    bars = store.read()
    bars["close"] = bars["close"] * 2  # same files, tickers and rows: only the values change
    before = store.data_version
    store.write(bars, merge=False, rows_per_file=20_000)
    assert store.data_version != before
    fresh = read(load_bars(store_copy, cache=cache))
    assert outcomes(fresh) == {"miss"}
    assert_same_bars(fresh, parquet_parts(store_copy))
    assert outcomes(read(load_bars(store_copy, cache=cache))) == {"hit"}


def test_another_as_of_or_selection_is_another_key(demo_store: Path, cache: BarCache) -> None:
    tickers = BarStore.open(demo_store).tickers
    read(load_bars(demo_store, cache=cache))
    scopes = [
        {"end": "2024-03-01"},
        {"start": "2024-02-01"},
        {"start": "2024-02-01", "end": "2024-03-01"},
        {"tickers": [tickers[0], tickers[-1]]},
        {"tickers": [tickers[0]], "end": "2024-03-01"},
    ]
    for scope in scopes:
        first = read(load_bars(demo_store, cache=cache, **scope))
        assert outcomes(first) == {"miss"}, scope
        again = read(load_bars(demo_store, cache=cache, **scope))
        assert outcomes(again) == {"hit"}, scope
        assert_same_bars(again, parquet_parts(demo_store, **scope))


def test_an_empty_read_scope_is_cached_too(demo_store: Path, cache: BarCache) -> None:
    scope = {"end": "1990-01-01"}  # before every bar
    assert outcomes(read(load_bars(demo_store, cache=cache, **scope))) == {"miss"}
    again = read(load_bars(demo_store, cache=cache, **scope))
    assert outcomes(again) == {"hit"} and all(len(p) == 0 for p in again)
    assert_same_bars(again, parquet_parts(demo_store, **scope))


# --- bad values and a missing Redis ----------------------------------------------------------


def test_corrupt_and_foreign_values_are_misses_logged_once_then_overwritten(
    demo_store: Path, cache: BarCache, conn: redis.Redis, prefix: str, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    expected = parquet_parts(demo_store)
    read(load_bars(demo_store, cache=cache))
    keys = sorted(k.decode() for k in conn.keys(f"{prefix}:bars:*"))
    assert len(keys) == len(expected) >= 3
    good = conn.get(keys[0])
    conn.set(keys[0], good[: len(good) // 3])  # truncated
    conn.set(keys[1], json.dumps({"ticker": "AAPL", "close": 1.0}))  # another app's JSON
    conn.set(keys[2], bytes(reversed(good)))  # garbage of the right size
    for key in keys[:3]:
        assert cache.get(key) is None
    warnings = cache_warnings(caplog)
    assert len(warnings) == 1
    assert keys[0] in warnings[0].getMessage() and "does not decode" in warnings[0].getMessage()

    mixed = read(load_bars(demo_store, cache=cache))  # the bad ones are read and put again
    assert count_outcomes(mixed) == {"hit": len(keys) - 3, "miss": 3, "off": 0}
    assert_same_bars(mixed, expected)
    healed = read(load_bars(demo_store, cache=cache))
    assert outcomes(healed) == {"hit"}
    assert_same_bars(healed, expected)
    assert len(cache_warnings(caplog)) == 1


def test_a_value_of_another_redis_type_is_a_miss_and_replaced(
    demo_store: Path, cache: BarCache, conn: redis.Redis, prefix: str, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    read(load_bars(demo_store, cache=cache))
    key = sorted(k.decode() for k in conn.keys(f"{prefix}:bars:*"))[0]
    conn.delete(key)
    conn.rpush(key, "a", "list")  # WRONGTYPE for GET
    parts = read(load_bars(demo_store, cache=cache))
    assert count_outcomes(parts)["miss"] == 1
    assert conn.type(key) == b"string"
    assert outcomes(read(load_bars(demo_store, cache=cache))) == {"hit"}
    assert len(cache_warnings(caplog)) == 1


def test_redis_down_reads_the_store_and_warns_once(demo_store: Path, prefix: str, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    port = closed_port()
    down = BarCache(
        RedisTarget(f"redis://127.0.0.1:{port}/0", f"nothing on {port}", 0.5), prefix, 60
    )
    expected = parquet_parts(demo_store)
    tic = time.perf_counter()
    for _ in range(3):
        parts = read(load_bars(demo_store, cache=down))
        assert outcomes(parts) == {"miss"}
        assert_same_bars(parts, expected)
    assert time.perf_counter() - tic < 10
    assert down.get("any") is None and down.put("any", expected[0]) is False
    warnings = cache_warnings(caplog)
    assert len(warnings) == 1
    assert f"nothing on {port}" in warnings[0].getMessage()


def test_a_malformed_redis_url_is_a_miss_not_an_error(demo_store: Path, prefix: str, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    bad = BarCache(RedisTarget("nosuchscheme://host:1", "a malformed URL"), prefix, 60)
    assert bad.enabled
    parts = read(load_bars(demo_store, cache=bad))
    assert outcomes(parts) == {"miss"}
    assert_same_bars(parts, parquet_parts(demo_store))
    assert len(cache_warnings(caplog)) == 1


def test_ttl_zero_or_redis_off_means_no_cache(
    demo_store: Path, redis_server: RedisTarget, prefix: str, conn: redis.Redis
) -> None:
    expected = parquet_parts(demo_store)
    for off in (BarCache(redis_server, prefix, 0), BarCache(RedisTarget(None, "off"), prefix, 60)):
        assert not off.enabled
        parts = read(load_bars(demo_store, cache=off))
        assert outcomes(parts) == {"off"}
        assert_same_bars(parts, expected)
        assert off.put("k", expected[0]) is False and off.get("k") is None
    assert conn.keys(f"{prefix}*") == []


def test_from_settings_uses_cache_ttl_and_prefix(redis_server: RedisTarget, tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, cache_ttl=0, redis_prefix="acme:v2")
    made = BarCache.from_settings(settings, redis_server)
    assert (made.target, made.prefix, made.ttl, made.enabled) == (redis_server, "acme:v2", 0, False)
    on = BarCache.from_settings(Settings(data_dir=tmp_path), redis_server)
    assert on.ttl == 3600 and on.prefix == "technic:v1" and on.enabled


def test_count_outcomes() -> None:
    parts = [pd.DataFrame() for _ in range(4)]
    for part, outcome in zip(parts, ("hit", "hit", "miss"), strict=False):
        part.attrs[OUTCOME] = outcome
    assert count_outcomes(parts) == {"hit": 2, "miss": 1, "off": 1}


# --- Dask workers -----------------------------------------------------------------------------


def test_dask_workers_use_the_cache_themselves(demo_store: Path, cache: BarCache, dask_client):
    expected = parquet_parts(demo_store)

    def run() -> list[pd.DataFrame]:
        futures = dask_client.compute(load_bars(demo_store, cache=cache).to_delayed())
        parts = dask_client.gather(futures)
        keys = [future.key for future in futures]
        # Released, not cancelled: the scheduler reports a cancellation to the client later,
        # and a late report would cancel the next run's futures of the same keys.
        del futures
        forget_on_scheduler(dask_client, keys)
        return parts

    first = run()
    assert count_outcomes(first) == {"hit": 0, "miss": len(expected), "off": 0}
    second = run()
    assert count_outcomes(second) == {"hit": len(expected), "miss": 0, "off": 0}
    assert_same_bars(second, expected)
    # a step mapped over the partitions sees the outcome too (what a scan tallies)
    tagged = load_bars(demo_store, cache=cache).map_partitions(
        lambda part: pd.DataFrame({"rows": [len(part)], OUTCOME: [part.attrs.get(OUTCOME)]}),
        meta={"rows": "int64", OUTCOME: "object"},
    )
    tally = tagged.compute()
    assert set(tally[OUTCOME]) == {"hit"} and tally["rows"].sum() == sum(map(len, expected))


def forget_on_scheduler(client, keys: list, timeout: float = 30.0) -> None:
    """Wait until the scheduler has dropped ``keys``.

    Releasing futures is asynchronous: a graph resubmitted with the same keys before the release
    lands gets the results still held in memory (tagged with the first run's outcome) instead of
    being recomputed."""

    def held(dask_scheduler, keys=keys) -> int:
        return sum(key in dask_scheduler.tasks for key in keys)

    deadline = time.monotonic() + timeout
    while client.run_on_scheduler(held):
        assert time.monotonic() < deadline, "the scheduler kept the first run's results"
        time.sleep(0.05)


# --- memory -------------------------------------------------------------------------------------


def test_redis_memory_follows_the_payload(demo_store: Path, cache: BarCache, conn) -> None:
    store = BarStore.open(demo_store)
    frames = [read_file(f.path) for f in store.files]
    payload = [len(encode(f)) for f in frames]
    rows = sum(map(len, frames))
    assert sum(payload) / rows < 34  # bytes per bar: ~29 on random-walk prices (48 raw)
    keys = [f"{cache.prefix}:mem:{i}" for i in range(len(frames))]
    for key, frame in zip(keys, frames, strict=True):
        assert cache.put(key, frame)
    # per key, not the server's used_memory: other tests' keys come and go on the shared server
    for key, size in zip(keys, payload, strict=True):
        assert size <= conn.memory_usage(key) < 1.3 * size + 4096
    conn.delete(*keys)
    assert max(payload) < bar_cache.MAX_VALUE_BYTES
