"""Redis down, dying mid-scan or mid-publish: scans finish, snapshots wait, nothing is lost.

Each test owns a real ``redis-server`` that it stops and starts itself, with an append-only
file fsynced on every write in the test's directory, so what Redis had survives a restart the
way it does in production. Snapshots that cannot reach Redis wait in
``<data_dir>/snapshots/pending`` and go out with the next publish or ``push``.
"""

from __future__ import annotations

import json
import logging
import uuid

import pytest
import redis

from pipeline import snapshots
from pipeline.config import Settings
from pipeline.errors import TechnicError
from pipeline.scan import ScanResult, run_scan
from pipeline.snapshots import Published, redis_store
from tests.pipeline.snapshots import RedisProcess, keys_matching

DATES = ("2026-10-16", "2026-11-06", "2026-11-20")


@pytest.fixture
def server(tmp_path):
    """A stopped redis-server with its own port and persistence directory."""
    proc = RedisProcess(persist=tmp_path / "redis")
    yield proc
    proc.stop()


@pytest.fixture
def settings(server, tmp_path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        redis_url=server.url,
        redis_prefix=f"technic-{uuid.uuid4().hex[:8]}:v1",
        redis_timeout=1.0,
        use_redis=True,
        dashboard_address=":0",
        max_workers="2",
    )


@pytest.fixture(scope="module")
def scans(demo_store, tmp_path_factory) -> dict[str, ScanResult]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("scans"),
        use_redis=False,
        dashboard_address=":0",
        max_workers="2",
    )
    return {d: run_scan(demo_store, as_of=d, settings=settings) for d in DATES}


def sid_of(result: ScanResult) -> str:
    return result.snapshot["snapshot_id"]


def history_ids(settings: Settings) -> list[str]:
    return [m["snapshot_id"] for m in snapshots.history(settings=settings)]


def pending_dir(settings: Settings):
    return settings.data_dir / "snapshots" / "pending"


def warnings_of(caplog) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("pipeline")
    ]


def test_down_at_start_queues_the_snapshot_and_warns(scans, server, settings, caplog):
    caplog.set_level(logging.WARNING)
    result = scans[DATES[0]]
    sid = sid_of(result)

    published = snapshots.publish(result, settings=settings)

    assert published == Published(sid, False, 1, ())
    assert snapshots.pending_paths(settings) == [pending_dir(settings) / f"{sid}.json"]
    assert (pending_dir(settings) / f"{sid}.json").read_bytes() == result.to_json()
    assert (pending_dir(settings) / f"{sid}.arrow").stat().st_size > 0
    messages = [r.getMessage() for r in warnings_of(caplog)]
    assert any(str(pending_dir(settings)) in m and "Redis" in m for m in messages), messages
    assert snapshots.latest(settings=settings) is None  # no Redis: nothing to read, no error
    assert snapshots.history(settings=settings) == []
    with pytest.raises(TechnicError):
        snapshots.push(settings=settings)
    assert len(snapshots.pending_paths(settings)) == 1  # a failed push keeps the queue


def test_down_at_start_logs_one_warning(scans, server, settings, caplog):
    caplog.set_level(logging.WARNING)
    snapshots.publish(scans[DATES[0]], settings=settings)
    assert len(warnings_of(caplog)) == 1, [r.getMessage() for r in warnings_of(caplog)]


def test_next_publish_pushes_the_queued_snapshot_first(scans, server, settings):
    first, second = scans[DATES[0]], scans[DATES[1]]
    assert not snapshots.publish(first, settings=settings).published
    server.start()

    published = snapshots.publish(second, settings=settings)

    assert published == Published(sid_of(second), True, 0, (sid_of(first),), latest=True)
    assert history_ids(settings) == [sid_of(second), sid_of(first)]
    assert [m["as_of"] for m in snapshots.history(settings=settings)] == [DATES[1], DATES[0]]
    assert snapshots.pending_paths(settings) == []
    assert list(pending_dir(settings).iterdir()) == []
    assert snapshots.latest(settings=settings) == json.loads(second.to_json())
    assert snapshots.get(sid_of(first), settings=settings) == json.loads(first.to_json())
    ticker = first.table.index[0]
    (row,) = [r for r in snapshots.history(ticker, settings=settings) if r["as_of"] == DATES[0]]
    assert row["rank"] == int(first.table.loc[ticker, "rank"])
    assert row["tier"] == first.table.loc[ticker, "Tier"]
    assert row["signals"] == list(first.table.loc[ticker, "signals"])


def test_push_publishes_the_queue_oldest_first(scans, server, settings):
    older, newer = scans[DATES[0]], scans[DATES[1]]
    assert not snapshots.publish(newer, settings=settings).published
    assert not snapshots.publish(older, settings=settings).published
    assert snapshots.pending_paths(settings) == [
        pending_dir(settings) / f"{sid_of(r)}.json" for r in (older, newer)
    ]
    server.start()

    assert snapshots.push(settings=settings) == (sid_of(older), sid_of(newer))

    assert snapshots.pending_paths(settings) == []
    assert snapshots.latest_bytes(settings=settings) == (sid_of(newer), newer.to_json())
    assert history_ids(settings) == [sid_of(newer), sid_of(older)]
    assert snapshots.get(DATES[0], settings=settings) == json.loads(older.to_json())
    assert snapshots.push(settings=settings) == ()


def test_redis_stopped_mid_scan(demo_store, scans, server, settings):
    earlier = scans[DATES[0]]
    server.start()
    assert snapshots.publish(earlier, settings=settings).published
    stages: list[str] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "indicators" and server.running:
            server.stop()
        stages.append(stage)

    result = run_scan(demo_store, as_of=DATES[2], settings=settings, progress=progress)

    assert not server.running and "indicators" in stages and "cross_section" in stages
    assert len(result.table) > 0
    assert result.snapshot["as_of"] == DATES[2]
    assert not snapshots.publish(result, settings=settings).published
    server.start()
    history = f"{settings.redis_prefix}:history"  # what Redis had survived the restart
    assert [i.decode() for i in server.client().zrange(history, 0, -1)] == [sid_of(earlier)]
    # the next snapshot command pushes what waited
    assert snapshots.latest(settings=settings) == json.loads(result.to_json())
    assert snapshots.pending_paths(settings) == []
    assert history_ids(settings) == [sid_of(result), sid_of(earlier)]
    assert snapshots.get(sid_of(earlier), settings=settings) == json.loads(earlier.to_json())
    assert snapshots.diff(DATES[0], "latest", settings=settings)["to"] == sid_of(result)


def test_redis_dies_between_connect_and_exec(scans, server, settings, monkeypatch):
    before, during = scans[DATES[0]], scans[DATES[1]]
    server.start()
    assert snapshots.publish(before, settings=settings).published
    execute = redis.client.Pipeline.execute
    stopped: list[bool] = []

    def die_then_execute(self, *args, **kwargs):
        if not stopped:  # the transaction is queued client-side: Redis goes away now
            server.stop()
            stopped.append(True)
        return execute(self, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", die_then_execute)
    published = snapshots.publish(during, settings=settings)
    monkeypatch.undo()

    assert stopped
    assert published == Published(sid_of(during), False, 1, ())
    server.start()
    inspect = server.client()
    prefix = settings.redis_prefix
    assert keys_matching(inspect, f"{prefix}:snap:{sid_of(during)}:*") == set()
    assert inspect.zscore(f"{prefix}:history", sid_of(during)) is None
    assert inspect.hget(f"{prefix}:by_date", DATES[1]) is None
    assert snapshots.push(settings=settings) == (sid_of(during),)
    assert snapshots.latest_bytes(settings=settings) == (sid_of(during), during.to_json())
    assert len(keys_matching(inspect, f"{prefix}:snap:{sid_of(during)}:*")) == len(
        redis_store.Keys(prefix).of(sid_of(during))
    )
    inspect.close()
