"""The live loop against a local server speaking Polygon's snapshot format, replaying a
session minute by minute (429s, a truncated body, a halted ticker, a ticker with no trade
yet, a crossed bar): each live snapshot's rows equal ``technic scan`` of a store with those
day bars appended; it is served as the latest while it extends the daily snapshot, the
session's last one stays after the close, and the next daily snapshot takes over."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from pipeline import redis_conn, snapshots
from pipeline.config import Settings
from pipeline.live.loop import LiveLoop
from pipeline.scan import run_scan
from pipeline.schema import DATE, TICKER
from pipeline.snapshots import redis_store
from pipeline.sources.polygon import PolygonClient
from pipeline.store import BarStore
from tests.fake_polygon import KEY, FakePolygon, snapshot_body

NEW_YORK = "America/New_York"


def _loop(settings: Settings, store: Path, fake: FakePolygon) -> LiveLoop:
    def client() -> PolygonClient:
        return PolygonClient(KEY, base_url=fake.url, rpm=0, attempts=3, backoff=0.01,
                             backoff_max=0.02, timeout=2.0)  # fmt: skip

    return LiveLoop(settings, str(store), client=client)


def _minute(today: pd.DataFrame, share: float) -> pd.DataFrame:
    """The forming bars after ``share`` of the session: the day's open, a close part way
    from the open, the range so far, the volume so far."""
    close = today["open"] + share * (today["close"] - today["open"])
    return today.assign(
        close=close,
        high=np.maximum(today["open"], close) * (1 + 0.002 * share),
        low=np.minimum(today["open"], close) * (1 - 0.002 * share),
        volume=(today["volume"] * share).round(),
    )


def _scan_with(root: Path, history: pd.DataFrame, day: pd.DataFrame, universe, settings):
    """``technic scan`` of a store with ``day``'s bars appended."""
    path = root / f"appended-{uuid.uuid4().hex[:6]}"
    bars = pd.concat([history, day.reset_index()]).sort_values([TICKER, DATE], kind="stable")
    BarStore(path).write(bars, universe, rows_per_file=20_000)
    return run_scan(path, settings=settings)


def _same_rows(live, full) -> None:
    assert list(live.table.index) == list(full.table.index)
    shared = [c for c in full.table.columns if c in live.table.columns]
    for column in shared:
        pd.testing.assert_series_equal(live.table[column], full.table[column], obj=column)


def test_a_session_replayed_minute_by_minute(held_back, fake_polygon, redis_server) -> None:
    polygon = fake_polygon
    root, history, today, day, universe = (
        held_back.store.parent,
        held_back.history,
        held_back.today,
        held_back.day,
        held_back.universe,
    )
    settings = held_back.settings(redis_server)
    daily = run_scan(held_back.store, settings=settings)
    assert snapshots.publish(daily, settings=settings).latest
    loop = _loop(settings, held_back.store, polygon)
    stamp = day.tz_localize(NEW_YORK) + pd.Timedelta(hours=10, minutes=32)
    halted, quiet, crossed = (t for t in today.index[10:13])
    keys = redis_store.Keys(settings.redis_prefix)
    conn = redis_conn.connect(settings)
    for minute, share in enumerate((0.3, 0.6, 1.0)):
        forming = _minute(today, share)
        forming.loc[crossed, "low"] = forming.loc[crossed, "high"] * 1.5  # hygiene drops it
        polygon.reset()
        polygon.snapshot = snapshot_body(
            forming, stamp + pd.Timedelta(minutes=minute), not_traded=(halted, quiet)
        )
        if minute == 1:  # a 429, then a truncated body: both retried
            polygon.fault("snapshot", "status", (429, {"Retry-After": "0"}))
            polygon.fault("snapshot", "truncate")
        update = loop.once()
        assert not update.stale and update.published, update.error
        assert polygon.count("snapshot") == (3 if minute == 1 else 1)
        expected_bars = forming.drop([halted, quiet])  # the crossed bar: read, then dropped
        full = _scan_with(root, history, expected_bars, universe, settings)
        _same_rows(update.result, full)
        document = update.result.snapshot
        assert document["live"] is True and document["delayed_minutes"] == 15
        assert document["base_snapshot"] == daily.snapshot["snapshot_id"]
        assert "live, 15 min delayed, 10:3" in document["log"]
        sid, _ = redis_store.latest_bytes(conn, keys)
        assert sid == document["snapshot_id"]  # the app gets the live snapshot
    assert conn.zscore(keys.history, sid) is None  # live snapshots join no history
    assert snapshots.publish(full, settings=settings).latest  # the nightly scan of that day
    assert redis_store.latest_bytes(conn, keys)[0] == full.snapshot["snapshot_id"]


def test_when_polygon_keeps_failing_the_last_snapshot_is_marked_stale(
    held_back, fake_polygon, redis_server
) -> None:
    polygon = fake_polygon
    today, day = held_back.today, held_back.day
    settings = held_back.settings(redis_server)
    loop = _loop(settings, held_back.store, polygon)
    polygon.reset()
    stamp = day.tz_localize(NEW_YORK) + pd.Timedelta(hours=11)
    polygon.snapshot = snapshot_body(_minute(today, 0.5), stamp)
    fresh = loop.once()
    assert not fresh.stale
    polygon.fault("snapshot", "status", 503, times=3)  # every try of the next update
    stale = loop.once()
    assert stale.stale and "failed after 3 tries" in stale.error
    assert KEY not in stale.error
    document = stale.result.snapshot
    assert document["stale"] is True and document["stale_seconds"] >= 0
    assert document["snapshot_id"] != fresh.result.snapshot["snapshot_id"]
    assert "stale" in document["log"]
    conn = redis_conn.connect(settings)
    sid, _ = redis_store.latest_bytes(conn, redis_store.Keys(settings.redis_prefix)) or (None, 0)
    assert sid is None  # no daily snapshot was published here: live needs a base to extend
    assert stale.published
    polygon.reset()
    again = loop.once()  # Polygon is back: fresh again
    assert not again.stale and "stale" not in again.result.snapshot


def test_with_redis_away_the_loop_goes_on_and_publishes_when_it_is_back(
    held_back, fake_polygon, tmp_path
) -> None:
    from tests.pipeline.snapshots import RedisProcess

    polygon = fake_polygon
    server = RedisProcess(persist=tmp_path / "redis")
    try:
        settings = held_back.settings(server, redis_timeout=0.5)
        loop = _loop(settings, held_back.store, polygon)
        polygon.reset()
        stamp = held_back.day.tz_localize(NEW_YORK) + pd.Timedelta(hours=12)
        polygon.snapshot = snapshot_body(_minute(held_back.today, 0.5), stamp)
        server.stop()
        away = loop.once()
        assert away.result is not None and not away.published  # scored, not published
        server.start()
        back = loop.once()
        assert back.published
        conn = redis_conn.connect(settings)
        keys = redis_store.Keys(settings.redis_prefix)
        assert conn.get(keys.live).decode() == back.result.snapshot["snapshot_id"]
    finally:
        server.stop()


def test_technic_live_once_json_prints_the_live_snapshot(held_back, fake_polygon, tmp_path) -> None:
    polygon = fake_polygon
    from tests.conftest import run_cli

    today, day = held_back.today, held_back.day
    polygon.reset()
    polygon.snapshot = snapshot_body(
        _minute(today, 0.8), day.tz_localize(NEW_YORK) + pd.Timedelta(hours=14, minutes=5)
    )
    env = {
        "POLYGON_API_KEY": KEY,
        "POLYGON_BASE_URL": polygon.url,
        "TECHNIC_USE_REDIS": "0",
        "TECHNIC_POLYGON_DELAY": "0",
        "TECHNIC_POLYGON_RPM": "0",
    }
    done = run_cli("live", "--once", "--json", "--store", str(held_back.store),
                   data_dir=tmp_path, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = orjson.loads(done.stdout)
    assert document["live"] is True and document["delayed_minutes"] == 0
    assert document["as_of"] == f"{day:%Y-%m-%d}" and document["results"]
    assert document["log"].startswith("live, real time, 14:05 ET")
    wrong = run_cli("live", "--json", data_dir=tmp_path, env=env)
    assert wrong.returncode != 0 and "--json needs --once" in wrong.stderr


def test_the_loop_updates_in_the_session_and_its_last_snapshot_stays_till_the_daily(
    held_back, fake_polygon, redis_server
) -> None:
    polygon = fake_polygon
    today, day = held_back.today, held_back.day
    settings = held_back.settings(redis_server, live_interval=0.01)
    daily = run_scan(held_back.store, settings=settings)
    snapshots.publish(daily, settings=settings)
    loop = _loop(settings, held_back.store, polygon)
    polygon.reset()
    local = day.tz_localize(NEW_YORK)
    polygon.snapshot = snapshot_body(_minute(today, 0.5), local + pd.Timedelta(hours=11))
    times = iter([
        local + pd.Timedelta(hours=8),  # before the open: idle
        local + pd.Timedelta(hours=11),  # in the session: an update
        local + pd.Timedelta(hours=16, minutes=30),  # after the close (+15 min): hold
    ])  # fmt: skip
    stop = threading.Event()
    seen: list[str | None] = []
    conn = redis_conn.connect(settings)
    keys = redis_store.Keys(settings.redis_prefix)

    def clock():
        seen.append(redis_store.latest_bytes(conn, keys)[0])
        try:
            return next(times).to_pydatetime()
        except StopIteration:
            stop.set()
            return (local + pd.Timedelta(hours=20)).to_pydatetime()

    loop.run(stop, now=clock)
    daily_id = daily.snapshot["snapshot_id"]
    assert seen[0] == seen[1] == daily_id  # idle before the open
    assert seen[2] != daily_id  # the live snapshot after the session's update
    assert seen[3] == seen[2]  # after the close the session's last one stays...
    assert conn.ttl(keys.live) > 3600  # ...beyond the usual expiry
    assert polygon.count("snapshot") == 1
    nightly = run_scan(held_back.store, settings=settings)
    assert snapshots.publish(nightly, settings=settings).latest
    assert redis_store.latest_bytes(conn, keys)[0] == nightly.snapshot["snapshot_id"]


def test_a_store_behind_the_session_is_a_clear_error(held_back, fake_polygon, tmp_path) -> None:
    from tests.conftest import run_cli

    polygon = fake_polygon
    polygon.reset()
    later = held_back.day + pd.offsets.BDay(1)  # the store lacks the held-back session
    polygon.snapshot = snapshot_body(
        _minute(held_back.today, 0.5), later.tz_localize(NEW_YORK) + pd.Timedelta(hours=11)
    )
    env = {
        "POLYGON_API_KEY": KEY,
        "POLYGON_BASE_URL": polygon.url,
        "TECHNIC_USE_REDIS": "0",
        "TECHNIC_POLYGON_RPM": "0",
    }
    done = run_cli("live", "--once", "--store", str(held_back.store), data_dir=tmp_path, env=env)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the store ends") and "sync it first" in last, done.stderr
    assert f"{held_back.day:%Y-%m-%d}" in last and "Traceback" not in done.stderr
    assert "[LIVE] state" not in done.stderr  # checked before the state is built


def test_without_a_polygon_key_live_scans_say_so_in_one_line(held_back, tmp_path) -> None:
    from tests.conftest import run_cli

    env = {"POLYGON_API_KEY": "", "TECHNIC_USE_REDIS": "0"}
    done = run_cli("live", "--once", "--store", str(held_back.store), data_dir=tmp_path, env=env)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "error: POLYGON_API_KEY is not set: get a key at polygon.io and export it"
    ], done.stderr
