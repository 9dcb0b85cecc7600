"""Snapshots in a real Redis: atomic publish, latest/get/history/diff, retention, concurrency.

One real ``redis-server`` serves the module (the session's ``redis_server`` fixture when
tests/conftest.py has one, else a subprocess started here); every test writes under its own
key prefix and data directory. Three real scans of the demo store (three as-of dates, the last
one filtered by price so tickers enter and leave) are shared by the module.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import orjson
import pandas as pd
import pytest
import redis

from pipeline import snapshots
from pipeline.config import Settings
from pipeline.scan import ScanResult, run_scan
from pipeline.snapshots import Published, SnapshotNotFound, redis_store
from tests.conftest import REPO
from tests.pipeline.snapshots import RedisProcess, keys_matching, variant

DATES = ("2026-09-18", "2026-10-16", "2026-11-20")  # as-of dates of the three module scans
PARTS = ("json", "arrow", "meta", "members")


@pytest.fixture(scope="module")
def redis_url(request):
    """URL of a real Redis for this module: the session fixture's, or one started here."""
    try:
        target = request.getfixturevalue("redis_server")
    except pytest.FixtureLookupError:
        target = None
    if target is not None:
        yield target.url
        return
    server = RedisProcess().start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def inspect(redis_url):
    """A client of our own for looking at keys directly."""
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


@pytest.fixture
def make_settings(redis_url, tmp_path):
    """Settings for this test's own key prefix and data directory (``**overrides`` on top)."""
    prefix = f"technic-{uuid.uuid4().hex[:8]}:v1"

    def make(**overrides) -> Settings:
        values = {
            "data_dir": tmp_path / "data",
            "redis_url": redis_url,
            "redis_prefix": prefix,
            "use_redis": True,
            "dashboard_address": ":0",
            "max_workers": "2",
            **overrides,
        }
        return Settings(**values)

    return make


@pytest.fixture(scope="module")
def scans(demo_store, demo_universe, tmp_path_factory) -> dict[str, ScanResult]:
    """Scans as of DATES; the last keeps only tickers at or above the median close."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("scans"),
        use_redis=False,
        dashboard_address=":0",
        max_workers="2",
    )
    bars = demo_universe.bars
    last = bars[bars["date"] <= DATES[-1]].groupby("ticker")["close"].last()
    min_price = float(last.median())
    out = {d: run_scan(demo_store, as_of=d, settings=settings) for d in DATES[:-1]}
    out[DATES[-1]] = run_scan(demo_store, as_of=DATES[-1], min_price=min_price, settings=settings)
    return out


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ids(entries: list[dict]) -> list[str]:
    return [e["snapshot_id"] for e in entries]


# --- publish and read back -------------------------------------------------------------------


def test_publish_then_latest_is_the_document(scans, make_settings):
    settings = make_settings()
    result = scans[DATES[-1]]
    sid = result.snapshot["snapshot_id"]
    assert snapshots.latest(settings=settings) is None
    assert snapshots.latest_bytes(settings=settings) is None

    published = snapshots.publish(result, settings=settings)

    assert published == Published(sid, True, 0, (), latest=True)
    assert snapshots.latest(settings=settings) == json.loads(result.to_json())
    assert snapshots.latest(settings=settings) == json.loads(result.to_json())  # cached parse
    assert snapshots.latest_bytes(settings=settings) == (sid, result.to_json())
    assert snapshots.pending_paths(settings) == []


def test_get_by_id_date_and_latest(scans, make_settings):
    settings = make_settings()
    first, second = scans[DATES[0]], scans[DATES[1]]
    snapshots.publish(first, settings=settings)
    snapshots.publish(second, settings=settings)
    doc1, doc2 = json.loads(first.to_json()), json.loads(second.to_json())

    assert snapshots.get(first.snapshot["snapshot_id"], settings=settings) == doc1
    assert snapshots.get(DATES[0], settings=settings) == doc1
    assert snapshots.get(DATES[1], settings=settings) == doc2
    assert snapshots.get("latest", settings=settings) == doc2
    assert snapshots.get("20990101-000000-abcdef", settings=settings) is None
    assert snapshots.get("2001-01-01", settings=settings) is None
    assert snapshots.get("no such thing", settings=settings) is None


def test_publishing_an_older_as_of_keeps_the_newest_latest(scans, make_settings):
    settings = make_settings()
    newest, backfill = scans[DATES[-1]], scans[DATES[0]]
    snapshots.publish(newest, settings=settings)

    assert snapshots.publish(backfill, settings=settings).published

    assert snapshots.get(DATES[0], settings=settings) == json.loads(backfill.to_json())
    assert snapshots.latest_bytes(settings=settings) == (
        newest.snapshot["snapshot_id"],
        newest.to_json(),
    )


def test_keys_are_namespaced_versioned_and_never_pickle(scans, make_settings, inspect):
    settings = make_settings()
    prefix = settings.redis_prefix
    assert Settings.model_fields["redis_prefix"].default == "technic:v1"
    before = keys_matching(inspect, "*")
    result = scans[DATES[0]]
    sid = result.snapshot["snapshot_id"]

    snapshots.publish(result, settings=settings)

    new = keys_matching(inspect, "*") - before
    snap = {f"{prefix}:snap:{sid}:{part}" for part in PARTS}
    assert new == snap | {f"{prefix}:{k}" for k in ("latest", "latest_as_of", "history", "by_date")}
    assert all(re.match(r"^[\w-]+:v\d+:", k) for k in new)
    assert keys_matching(inspect, f"{prefix}:*") == new
    assert inspect.type(f"{prefix}:history") == b"zset"
    assert inspect.type(f"{prefix}:by_date") == b"hash"
    assert inspect.get(f"{prefix}:latest") == sid.encode()
    values = {part: inspect.get(f"{prefix}:snap:{sid}:{part}") for part in PARTS}
    assert values["json"] == result.to_json()
    assert orjson.loads(values["meta"])["snapshot_id"] == sid
    for part in ("arrow", "members"):  # Arrow IPC streams start with a continuation marker
        assert values[part][:4] == b"\xff\xff\xff\xff", part
    assert not any(v.startswith(b"\x80") for v in values.values())  # a pickle's first byte


def test_meta_describes_the_scan(scans, make_settings):
    settings = make_settings()
    result = scans[DATES[1]]
    doc = result.snapshot
    tic = time.time()
    snapshots.publish(result, settings=settings)

    (meta,) = snapshots.history(settings=settings)

    for key in ("snapshot_id", "as_of", "generated_at", "model", "universe_size"):
        assert meta[key] == doc[key], key
    assert meta["symbols_scanned"] == doc["symbols_scanned"] == len(result.table)
    assert meta["timings"] == json.loads(orjson.dumps(doc["timings"]))
    assert {"read", "indicators", "alpha", "cross_section", "total"} <= set(meta["timings"])
    assert tic - 1 <= meta["published_at"] <= time.time() + 1
    assert meta["as_of"] == DATES[1]


def test_arrow_table_round_trips_the_ranked_table(scans, make_settings, inspect):
    settings = make_settings()
    result = scans[DATES[0]]
    sid = result.snapshot["snapshot_id"]
    snapshots.publish(result, settings=settings)
    keys = redis_store.Keys(settings.redis_prefix)

    table = redis_store.read_arrow(inspect.get(keys.of(sid)["arrow"])).to_pandas()
    table = table.set_index("ticker")

    expected = result.table
    assert table.index.tolist() == expected.index.tolist()
    assert set(table.columns) == set(expected.columns)
    assert table["rank"].tolist() == expected["rank"].tolist()
    np.testing.assert_array_equal(table["TechRating"].to_numpy(), expected["TechRating"])
    for column in ("Tier", "Signal", "merit_band"):
        assert table[column].tolist() == expected[column].tolist(), column
    assert [list(s) for s in table["signals"]] == [list(s) for s in expected["signals"]]


# --- history and diff --------------------------------------------------------------------------


def test_history_newest_first_and_per_ticker(scans, make_settings):
    settings = make_settings()
    for date in DATES:
        snapshots.publish(scans[date], settings=settings)
    sids = [scans[d].snapshot["snapshot_id"] for d in DATES]

    listing = snapshots.history(settings=settings)
    assert ids(listing) == sids[::-1]
    assert [m["as_of"] for m in listing] == list(DATES[::-1])

    tables = [scans[d].table for d in DATES]
    everywhere = sorted(set.intersection(*(set(t.index) for t in tables)))
    dropped = sorted((set(tables[0].index) & set(tables[1].index)) - set(tables[2].index))
    assert everywhere and dropped
    for ticker in (everywhere[0], everywhere[-1]):
        rows = snapshots.history(ticker, settings=settings)
        assert ids(rows) == sids[::-1]
        for row, date in zip(rows, DATES[::-1], strict=True):
            expected = scans[date].table.loc[ticker]
            assert row["as_of"] == date
            assert row["rank"] == int(expected["rank"])
            assert row["tier"] == expected["Tier"]
            assert row["signal"] == expected["Signal"]
            assert row["merit_band"] == expected["merit_band"]
            assert row["signals"] == list(expected["signals"])
    assert snapshots.history(f" {everywhere[0].lower()} ", settings=settings) == (
        snapshots.history(everywhere[0], settings=settings)
    )
    assert ids(snapshots.history(dropped[0], settings=settings)) == sids[1::-1]
    assert snapshots.history("NOSUCHTICKER", settings=settings) == []


def expected_diff(old: pd.DataFrame, new: pd.DataFrame) -> dict:
    """entered / left / moved and per-tier changes, computed here from the two ranked tables."""
    old_rank, new_rank = old["rank"].to_dict(), new["rank"].to_dict()
    old_tier, new_tier = old["Tier"].to_dict(), new["Tier"].to_dict()
    moved = [
        {
            "ticker": t,
            "from_rank": int(old_rank[t]),
            "to_rank": int(new_rank[t]),
            "from_tier": old_tier[t],
            "to_tier": new_tier[t],
        }
        for t in sorted(old_rank.keys() & new_rank.keys())
        if old_rank[t] != new_rank[t] or old_tier[t] != new_tier[t]
    ]
    tiers = {}
    for tier in ("CORE", "SATELLITE", "WATCH"):
        was = {t for t, v in old_tier.items() if v == tier}
        now = {t for t, v in new_tier.items() if v == tier}
        tiers[tier] = {"entered": sorted(now - was), "left": sorted(was - now)}
    return {
        "entered": sorted(new_rank.keys() - old_rank.keys()),
        "left": sorted(old_rank.keys() - new_rank.keys()),
        "moved": moved,
        "tiers": tiers,
    }


def test_diff_matches_the_two_tables(scans, make_settings):
    settings = make_settings()
    for date in DATES:
        snapshots.publish(scans[date], settings=settings)
    sid = {d: scans[d].snapshot["snapshot_id"] for d in DATES}
    cases = [
        ((sid[DATES[0]], sid[DATES[1]]), (DATES[0], DATES[1])),
        ((DATES[1], "latest"), (DATES[1], DATES[2])),
        ((sid[DATES[2]], DATES[0]), (DATES[2], DATES[0])),
    ]
    changes = Counter()
    for (a, b), (da, db) in cases:
        got = snapshots.diff(a, b, settings=settings)
        want = expected_diff(scans[da].table, scans[db].table)
        assert (got["from"], got["to"]) == (sid[da], sid[db])
        assert got["entered"] == want["entered"]
        assert got["left"] == want["left"]
        assert sorted(got["moved"], key=lambda m: m["ticker"]) == want["moved"]
        to_ranks = [m["to_rank"] for m in got["moved"]]
        assert to_ranks == sorted(to_ranks)
        assert got["tiers"] == want["tiers"]
        changes.update(
            entered=len(want["entered"]),
            left=len(want["left"]),
            moved=len(want["moved"]),
            core=len(want["tiers"]["CORE"]["entered"]) + len(want["tiers"]["CORE"]["left"]),
        )
    assert all(changes[k] > 0 for k in ("entered", "left", "moved", "core")), changes
    same = snapshots.diff(DATES[0], DATES[0], settings=settings)
    assert same["entered"] == same["left"] == same["moved"] == []


def test_diff_of_an_unknown_snapshot_raises(scans, make_settings):
    settings = make_settings()
    with pytest.raises(SnapshotNotFound):
        snapshots.diff("2001-01-01", settings=settings)  # nothing published yet
    snapshots.publish(scans[DATES[0]], settings=settings)
    with pytest.raises(SnapshotNotFound, match="no-such-id"):
        snapshots.diff("no-such-id", "latest", settings=settings)
    with pytest.raises(LookupError):
        snapshots.diff("latest", "1999-12-31", settings=settings)


# --- retention ---------------------------------------------------------------------------------


def test_retention_days_drops_old_snapshots(scans, make_settings, inspect, monkeypatch):
    settings = make_settings(snapshot_retention_days=1)
    prefix = settings.redis_prefix
    old, new = scans[DATES[0]], scans[DATES[1]]
    old_id, new_id = old.snapshot["snapshot_id"], new.snapshot["snapshot_id"]
    three_days_ago = time.time() - 3 * 86_400
    monkeypatch.setattr(redis_store, "time", SimpleNamespace(time=lambda: three_days_ago))
    snapshots.publish(old, settings=settings)
    monkeypatch.setattr(redis_store, "time", time)
    assert ids(snapshots.history(days=5, settings=settings)) == [old_id]
    assert snapshots.history(days=1, settings=settings) == []

    snapshots.publish(new, settings=settings)

    assert keys_matching(inspect, f"{prefix}:snap:{old_id}:*") == set()
    assert len(keys_matching(inspect, f"{prefix}:snap:{new_id}:*")) == len(PARTS)
    assert ids(snapshots.history(days=30, settings=settings)) == [new_id]
    assert inspect.hgetall(f"{prefix}:by_date") == {DATES[1].encode(): new_id.encode()}
    assert snapshots.get(old_id, settings=settings) is None
    assert snapshots.get(DATES[0], settings=settings) is None
    assert snapshots.latest_bytes(settings=settings) == (new_id, new.to_json())


def test_retention_count_keeps_max_snapshots(scans, make_settings, inspect, monkeypatch):
    monkeypatch.setattr(redis_store, "MAX_SNAPSHOTS", 3)
    settings = make_settings()
    prefix = settings.redis_prefix
    base = scans[DATES[0]]
    dates = [f"2027-02-0{i}" for i in range(1, 6)]
    results = [variant(base, f"max-{i}-{uuid.uuid4().hex[:6]}", d) for i, d in enumerate(dates)]
    sids = [r.snapshot["snapshot_id"] for r in results]

    for result in results:
        assert snapshots.publish(result, settings=settings).published
        assert snapshots.latest_bytes(settings=settings) == (
            result.snapshot["snapshot_id"],
            result.to_json(),
        )

    assert ids(snapshots.history(settings=settings)) == sids[:1:-1]
    for sid in sids[:2]:
        assert keys_matching(inspect, f"{prefix}:snap:{sid}:*") == set()
        assert snapshots.get(sid, settings=settings) is None
    assert {k.decode() for k in inspect.hkeys(f"{prefix}:by_date")} == set(dates[2:])
    assert snapshots.get(dates[0], settings=settings) is None
    assert snapshots.get(dates[3], settings=settings)["snapshot_id"] == sids[3]
    assert len(keys_matching(inspect, f"{prefix}:*")) == 3 * len(PARTS) + 4


def test_older_snapshots_keep_membership_only(scans, make_settings, inspect):
    settings = make_settings(snapshot_full_keep=2)
    prefix = settings.redis_prefix
    sids = [scans[d].snapshot["snapshot_id"] for d in DATES]
    extra = variant(scans[DATES[-1]], f"extra-{uuid.uuid4().hex[:6]}", "2026-11-27")
    for result in [*(scans[d] for d in DATES), extra]:
        snapshots.publish(result, settings=settings)
    sids.append(extra.snapshot["snapshot_id"])

    for sid in sids[:2]:
        assert keys_matching(inspect, f"{prefix}:snap:{sid}:*") == {
            f"{prefix}:snap:{sid}:meta",
            f"{prefix}:snap:{sid}:members",
        }
        assert snapshots.get(sid, settings=settings) is None
    assert snapshots.get(sids[2], settings=settings) == json.loads(scans[DATES[2]].to_json())
    assert snapshots.get("latest", settings=settings) == json.loads(extra.to_json())
    assert ids(snapshots.history(settings=settings)) == sids[::-1]
    ticker = scans[DATES[0]].table.index[0]
    assert DATES[0] in [row["as_of"] for row in snapshots.history(ticker, settings=settings)]
    got = snapshots.diff(DATES[0], DATES[1], settings=settings)
    want = expected_diff(scans[DATES[0]].table, scans[DATES[1]].table)
    assert got["tiers"] == want["tiers"]


# --- concurrency -------------------------------------------------------------------------------


def test_readers_never_see_a_partial_or_mixed_snapshot(scans, make_settings):
    settings = make_settings()
    base = scans[DATES[-1]]
    assert snapshots.to_json(orjson.loads(base.to_json())) == base.to_json()  # parse round-trips
    tag = uuid.uuid4().hex[:6]
    dates = pd.date_range("2027-01-01", periods=51).strftime("%Y-%m-%d")
    results = []
    for i, date in enumerate(dates):
        result = variant(base, f"conc-{i:02d}-{tag}", date)
        result.snapshot["log"] = f"variant {i}"
        results.append(result)
    published_hash = {r.snapshot["snapshot_id"]: sha(r.to_json()) for r in results}
    assert snapshots.publish(results[0], settings=settings).published  # readers never see None

    stop = threading.Event()
    errors: list[str] = []
    seen: Counter[str] = Counter()

    def read(parsed: bool) -> None:
        while not stop.is_set():
            try:
                if parsed:
                    doc = snapshots.latest(settings=settings)
                    sid = doc["snapshot_id"]
                    data = snapshots.to_json(doc)
                else:
                    sid, data = snapshots.latest_bytes(settings=settings)
                    doc = orjson.loads(data)
                if doc["snapshot_id"] != sid:
                    errors.append(f"mixed: pointer {sid}, document {doc['snapshot_id']}")
                elif sha(data) != published_hash.get(sid):
                    errors.append(f"content of {sid} differs from what was published")
                seen[sid] += 1
            except Exception as exc:  # a torn read, a None, a decode error: all failures
                errors.append(f"{type(exc).__name__}: {exc}")

    readers = [threading.Thread(target=read, args=(i % 2 == 0,)) for i in range(4)]
    for thread in readers:
        thread.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            outcomes = list(
                pool.map(lambda r: snapshots.publish(r, settings=settings), results[1:])
            )
        time.sleep(0.05)
    finally:
        stop.set()
        for thread in readers:
            thread.join()

    assert errors == []
    assert [o.snapshot_id for o in outcomes] == [r.snapshot["snapshot_id"] for r in results[1:]]
    assert all(o.published and o.pushed == () for o in outcomes)
    assert sum(seen.values()) >= 50
    assert len(seen) >= 2  # the readers really ran while snapshots were being swapped
    history = ids(snapshots.history(settings=settings))
    assert sorted(history) == sorted(published_hash)
    conn = redis.Redis.from_url(settings.redis_url)
    keys = redis_store.Keys(settings.redis_prefix)
    stored = dict(zip(history, conn.mget([keys.of(sid)["json"] for sid in history]), strict=True))
    conn.close()
    # Older documents may be slimmed to metadata + membership, never replaced by other content;
    # the newest (snapshot_full_keep - 1) can never have been slimmed, whatever the interleaving.
    assert {sid for sid, data in stored.items() if data is not None} >= set(
        history[: settings.snapshot_full_keep - 1]
    )
    for sid, data in stored.items():
        assert data is None or sha(data) == published_hash[sid], sid
    sid, data = snapshots.latest_bytes(settings=settings)
    assert sha(data) == published_hash[sid]


# --- no pickle ---------------------------------------------------------------------------------

PICKLE = re.compile(
    r"^\s*(import|from)\s+(c?pickle|cloudpickle|dill)\b|\bpickle\.\w|\bcloudpickle\b",
    re.MULTILINE,
)


def test_no_pickle_in_the_code():
    sources = [p for d in ("pipeline", "service") for p in (REPO / d).rglob("*.py")]
    assert len(sources) > 10
    offenders = [
        f"{path.relative_to(REPO)}:{text[: m.start()].count(chr(10)) + 1}: {m.group(0).strip()}"
        for path in sources
        for text in [path.read_text()]
        for m in PICKLE.finditer(text)
    ]
    assert offenders == []
