"""The latest pointer cannot be captured by a bad snapshot, and an operator can undo one.

A scan's as-of date is the store's last session on or before the date asked for, so no
snapshot is dated past its data (the CLI's tests check the warning that says so); a snapshot
with no rows is refused; ``repoint`` and ``delete`` move the pointer by hand. Real scans of
the demo store (its last session is 2026-11-20, a Friday) and a real ``redis-server``.
"""

from __future__ import annotations

import copy
import dataclasses
import uuid

import pandas as pd
import pytest
import redis

from pipeline import snapshots
from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.scan import ScanResult, prepare, run_scan
from pipeline.snapshots import SnapshotNotFound, SnapshotRefused

LAST_SESSION = "2026-11-20"


@pytest.fixture(scope="module")
def scan_settings(tmp_path_factory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("pointer"), use_redis=False, cluster="sync")


@pytest.fixture(scope="module")
def scans(demo_store, scan_settings) -> dict[str, ScanResult]:
    """Scans asked for 2026-11-13, 2026-11-20 and 2099-01-01 (which scans 2026-11-20)."""
    return {
        d: run_scan(demo_store, as_of=d, settings=scan_settings)
        for d in ("2026-11-13", LAST_SESSION, "2099-01-01")
    }


@pytest.fixture
def settings(redis_server, tmp_path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        use_redis=True,
        redis_url=redis_server.url,
        redis_prefix=f"pointer-{uuid.uuid4().hex[:8]}:v1",
    )


def latest_id(settings: Settings) -> str | None:
    document = snapshots.latest(settings=settings)
    return document["snapshot_id"] if document else None


@pytest.mark.parametrize(
    ("asked", "scanned"),
    [
        ("2099-01-01", LAST_SESSION),  # far future: the store's last session
        ("2026-11-23", LAST_SESSION),  # a Monday after the last bar
        ("2026-11-22", LAST_SESSION),  # a Sunday
        ("2026-11-15", "2026-11-13"),  # a Sunday inside the data: the Friday before
        ("2026-11-13", "2026-11-13"),  # a session: itself
    ],
)
def test_as_of_is_the_last_session_on_or_before_the_date(
    demo_store, scan_settings, asked, scanned
) -> None:
    request = prepare(demo_store, as_of=asked, settings=scan_settings)
    assert request.as_of == pd.Timestamp(scanned)


def test_a_date_before_the_first_bar_is_refused(demo_store, scan_settings) -> None:
    with pytest.raises(ConfigError, match="before the store's first bar"):
        prepare(demo_store, as_of="1999-01-04", settings=scan_settings)


@pytest.mark.parametrize("account", [float("inf"), float("nan"), -1.0])
def test_account_size_must_be_finite(demo_store, scan_settings, account) -> None:
    with pytest.raises(ConfigError, match="account size must be a finite number"):
        prepare(demo_store, account_size=account, settings=scan_settings)


def test_a_future_scan_is_dated_by_its_data(scans) -> None:
    future = scans["2099-01-01"].snapshot
    assert future["as_of"] == future["data_through"] == LAST_SESSION
    assert future["rows"] == scans[LAST_SESSION].snapshot["rows"] > 0


def test_a_future_publish_does_not_capture_the_pointer(scans, settings) -> None:
    assert snapshots.publish(scans["2099-01-01"], settings=settings).latest
    assert snapshots.latest(settings=settings)["as_of"] == LAST_SESSION
    later = snapshots.publish(scans[LAST_SESSION], settings=settings)
    assert later.latest and latest_id(settings) == later.snapshot_id


def test_a_backfill_is_published_but_not_latest(scans, settings) -> None:
    snapshots.publish(scans[LAST_SESSION], settings=settings)
    backfill = snapshots.publish(scans["2026-11-13"], settings=settings)
    assert backfill.published and not backfill.latest
    assert latest_id(settings) == scans[LAST_SESSION].snapshot["snapshot_id"]


def test_a_snapshot_without_rows_is_never_published(demo_store, scan_settings, settings) -> None:
    good = run_scan(demo_store, settings=scan_settings)
    snapshots.publish(good, settings=settings)
    empty = run_scan(demo_store, min_price=1e12, settings=scan_settings)
    assert empty.snapshot["rows"] == 0
    with pytest.raises(SnapshotRefused, match="has no rows: not published"):
        snapshots.publish(empty, settings=settings)
    assert latest_id(settings) == good.snapshot["snapshot_id"]
    assert not snapshots.pending_paths(settings)


def test_a_snapshot_dated_past_its_data_is_refused(scans, settings) -> None:
    result = scans[LAST_SESSION]
    forged = copy.deepcopy(result.snapshot)
    forged.update(as_of="2099-01-01", snapshot_id="forged")
    with pytest.raises(SnapshotRefused, match="after its last bar"):
        snapshots.publish(dataclasses.replace(result, snapshot=forged), settings=settings)
    assert latest_id(settings) is None


def test_delete_the_latest_moves_the_pointer_back(scans, settings) -> None:
    old = snapshots.publish(scans["2026-11-13"], settings=settings).snapshot_id
    new = snapshots.publish(scans[LAST_SESSION], settings=settings).snapshot_id
    assert snapshots.delete(LAST_SESSION, settings=settings) == (new, old)
    assert latest_id(settings) == old
    assert snapshots.get(LAST_SESSION, settings=settings) is None
    assert [m["snapshot_id"] for m in snapshots.history(settings=settings)] == [old]
    assert snapshots.delete(old, settings=settings) == (old, None)
    assert snapshots.latest(settings=settings) is None


def test_deleting_one_of_two_scans_of_a_date_keeps_the_other_by_date(scans, settings) -> None:
    first = snapshots.publish(scans[LAST_SESSION], settings=settings).snapshot_id
    second = snapshots.publish(scans["2099-01-01"], settings=settings).snapshot_id
    snapshots.delete(second, settings=settings)
    assert snapshots.get(LAST_SESSION, settings=settings)["snapshot_id"] == first
    assert latest_id(settings) == first


def test_repoint_serves_an_older_snapshot_until_a_newer_publish(scans, settings) -> None:
    old = snapshots.publish(scans["2026-11-13"], settings=settings).snapshot_id
    snapshots.publish(scans[LAST_SESSION], settings=settings)
    assert snapshots.repoint("2026-11-13", settings=settings) == old
    assert latest_id(settings) == old
    again = snapshots.publish(scans["2099-01-01"], settings=settings)
    assert again.latest and latest_id(settings) == again.snapshot_id


def test_unknown_snapshots_cannot_be_repointed_or_deleted(settings) -> None:
    with pytest.raises(SnapshotNotFound, match="no snapshot '1999-01-01'"):
        snapshots.repoint("1999-01-01", settings=settings)
    with pytest.raises(SnapshotNotFound):
        snapshots.delete("nope", settings=settings)


def test_a_slimmed_snapshot_cannot_become_latest(scans, settings) -> None:
    old = snapshots.publish(scans["2026-11-13"], settings=settings).snapshot_id
    snapshots.publish(scans[LAST_SESSION], settings=settings)
    conn = redis.Redis.from_url(settings.redis_url)
    conn.delete(f"{settings.redis_prefix}:snap:{old}:json")
    with pytest.raises(SnapshotNotFound, match="no full document"):
        snapshots.repoint(old, settings=settings)
