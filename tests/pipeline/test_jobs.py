"""Scan jobs in Redis: one at a time across processes, a crashed runner, progress and ETA."""

from __future__ import annotations

import uuid

import orjson
import pytest
import redis

from pipeline.config import Settings
from pipeline.jobs import DEFAULT_SHARES, JobKeys, ScanJobs, eta, progress
from pipeline.scan import prepare


@pytest.fixture
def settings(tmp_path, redis_server, demo_store) -> Settings:
    return Settings(
        data_dir=tmp_path,
        store=demo_store,
        redis_url=redis_server.url,
        redis_prefix=f"jobs-{uuid.uuid4().hex[:8]}:v1",
        cache_ttl=0,
        cluster="sync",
    )


@pytest.fixture
def conn(redis_server) -> redis.Redis:
    return redis.Redis.from_url(redis_server.url)


def test_progress_and_eta() -> None:
    shares = {"read": 1.0, "indicators": 2.0, "alpha": 0.5, "cross_section": 0.5}
    assert progress("read", 0, 10, shares) == 0.0
    assert progress("read", 5, 10, shares) == pytest.approx(0.5 / 4)
    assert progress("indicators", 10, 10, shares) == pytest.approx(3 / 4)
    assert progress("cross_section", 1, 1, shares) == pytest.approx(1.0)
    assert progress("starting", 0, 0, shares) == 0.0
    assert progress("alpha", 0, 0, shares) == pytest.approx(3 / 4)  # no total yet
    assert eta(10.0, 0.25) == 30.0 and eta(1.0, 0.01) is None and eta(5.0, 1.0) == 0.0
    assert set(DEFAULT_SHARES) == {"read", "indicators", "alpha", "cross_section"}


def test_one_scan_at_a_time_across_processes(settings, conn) -> None:
    """Two runners on one Redis namespace (two service processes): the second gets the
    first's job back while it runs, and starts its own once it has finished."""
    first, second = (ScanJobs(conn, settings, lambda: None) for _ in range(2))
    request = prepare(settings.store, settings=settings)
    job, started = first.submit(request, {})
    assert started
    again, started_again = second.submit(request, {})
    assert not started_again and again["id"] == job["id"]
    first.join(120)
    done = second.get(job["id"])
    assert done["status"] == "succeeded" and done["snapshot_id"]
    assert conn.get(JobKeys(settings.redis_prefix).active) is None
    own, started_own = second.submit(request, {})
    assert started_own and own["id"] != job["id"]
    second.join(120)
    assert first.get(own["id"])["status"] == "succeeded"


def test_a_job_whose_process_died_reads_as_failed(settings, conn) -> None:
    """A runner that stopped mid-scan leaves a running state and (after its lease) no active
    slot: readers say it failed instead of waiting forever."""
    jobs = ScanJobs(conn, settings, lambda: None)
    keys = JobKeys(settings.redis_prefix)
    state = {"id": "00000000000000aa", "status": "running", "stage": "indicators",
             "created_at": "2026-11-24T00:00:00.000+00:00"}  # fmt: skip
    conn.set(keys.state(state["id"]), orjson.dumps(state))
    conn.set(keys.active, state["id"])
    assert jobs.get(state["id"])["status"] == "running"  # its process still holds the slot
    conn.delete(keys.active)  # the lease ran out
    lost = jobs.get(state["id"])
    assert lost["status"] == "failed" and "stopped before it finished" in lost["error"]
    assert jobs.cancel(state["id"])["status"] == "failed"
    assert not jobs.cancelled(state["id"])
    assert jobs.get("ffffffffffffffff") is None
