"""Scan jobs over HTTP: API keys, one scan at a time, live progress as Server-Sent Events from
a real client while a real scan runs on a real Dask cluster, cancelling, /v1/cluster, CORS."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import orjson
import pytest

from pipeline.config import Settings
from tests.service.server import running

KEY = "test-write-key-7f3a"
READ_KEY = "reader-key-19c2"


def job_settings(tmp_path: Path, store: Path, redis_server, dask_client, **extra) -> Settings:
    return Settings(
        data_dir=tmp_path,
        store=store,
        use_redis=True,
        redis_url=redis_server.url,
        redis_prefix=f"jobs-{uuid.uuid4().hex[:8]}:v1",
        cache_ttl=0,
        cluster=dask_client.scheduler.address,
        **extra,
    )


@pytest.fixture
def api(tmp_path, many_partitions, redis_server, dask_client):
    settings = job_settings(tmp_path, many_partitions, redis_server, dask_client, api_key=KEY)
    with running(settings) as base, httpx.Client(base_url=base, timeout=60) as client:
        yield client


def wait_until_done(api: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = api.get(f"/v1/scans/{job_id}").json()
        if state["status"] in ("succeeded", "failed", "cancelled"):
            return state
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def sse(lines) -> list[dict]:
    """Parse a Server-Sent Events stream into events (skipping comments/pings)."""
    events, current = [], {}
    for line in lines:
        if line == "":
            if "data" in current:
                current["received"] = time.time()
                events.append(current)
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            current[name] = value[1:] if value.startswith(" ") else value
    return events


def test_writes_need_the_key(api) -> None:
    for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": KEY[:-1]}):
        for response in (
            api.post("/v1/scans", json={}, headers=headers),
            api.delete("/v1/scans/0123456789abcdef", headers=headers),
        ):
            assert response.status_code == 401
            assert response.json()["error"] == "unauthorized"
    assert api.get("/v1/scans/0123456789abcdef").json()["error"] == "unknown_job"  # reads open


def test_writes_are_refused_when_no_key_is_set(
    tmp_path, demo_store, redis_server, dask_client
) -> None:
    settings = job_settings(tmp_path, demo_store, redis_server, dask_client)
    with running(settings) as base:
        for key in (None, "", "anything"):
            headers = {"X-API-Key": key} if key is not None else {}
            response = httpx.post(f"{base}/v1/scans", json={}, headers=headers)
            assert response.status_code == 403
            assert response.json() == {
                "error": "writes_disabled",
                "detail": "this server takes no writes: TECHNIC_API_KEY is not set",
            }


def test_a_scan_job_streams_live_progress_and_publishes(api) -> None:
    assert api.get("/v1/scans/latest").status_code == 503  # nothing published yet
    started = api.post("/v1/scans", json={}, headers={"X-API-Key": KEY})
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["started"] is True and job["status"] in ("queued", "running")
    assert started.headers["location"] == f"/v1/scans/{job['id']}"

    # a second request while it runs gets the same job back
    again = api.post("/v1/scans", json={}, headers={"X-API-Key": KEY})
    assert again.status_code == 202
    assert again.json()["id"] == job["id"] and again.json()["started"] is False

    with api.stream("GET", f"/v1/scans/{job['id']}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = sse(stream.iter_lines())
    states = [orjson.loads(e["data"]) for e in events]
    assert [e["event"] for e in events[:-1]] == ["progress"] * (len(events) - 1)
    assert events[-1]["event"] == "end"
    final = states[-1]
    assert final["status"] == "succeeded", final
    assert final == api.get(f"/v1/scans/{job['id']}").json()

    # live: the client saw progress while the scan was still running
    finished = datetime.fromisoformat(final["finished_at"]).timestamp()
    during = [e for e, s in zip(events, states, strict=True) if s["stage"] == "indicators"]
    assert during and during[0]["received"] < finished

    # every partition is reported, in order, per stage; ETA appears once 5% is done
    stages = [s["stage"] for s in states]
    assert stages[0] == "queued" and "starting" in stages
    for stage in ("read", "indicators"):
        mine = [s for s in states if s["stage"] == stage]
        assert mine[-1]["done"] == mine[-1]["total"] >= 50
        assert [s["done"] for s in mine] == sorted(s["done"] for s in mine)
    elapsed = [s["elapsed"] for s in states]
    assert elapsed == sorted(elapsed) and elapsed[-1] > 0
    progress = [s["progress"] for s in states]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert any(s["eta"] is not None and s["eta"] >= 0 for s in states if s["status"] == "running")
    ids = [e["id"] for e in events]
    assert len(set(ids)) == len(ids)

    # a reconnecting client resumes after the last event it saw
    resumed = api.get(f"/v1/scans/{job['id']}/events", headers={"Last-Event-ID": ids[-2]})
    tail = sse([*resumed.text.splitlines(), ""])
    assert [e["id"] for e in tail] == ids[-1:]

    # the finished job published the snapshot the app now reads
    latest = api.get("/v1/scans/latest", params={"limit": 1}).json()
    assert latest["snapshot_id"] == final["snapshot_id"]
    assert final["rows"] == latest["total"] and final["as_of"] == latest["as_of"]
    assert set(final["timings"]) >= {"read", "indicators", "alpha", "cross_section", "total"}

    # a finished job cannot be cancelled; the next POST starts a new job
    gone = api.delete(f"/v1/scans/{job['id']}", headers={"X-API-Key": KEY})
    assert gone.status_code == 409 and gone.json()["error"] == "job_finished"
    second = api.post("/v1/scans", json={}, headers={"X-API-Key": KEY}).json()
    assert second["started"] is True and second["id"] != job["id"]
    assert wait_until_done(api, second["id"])["status"] == "succeeded"

    # the cluster the jobs ran on
    cluster = api.get("/v1/cluster").json()
    assert cluster["started"] is True and cluster["cluster"].startswith("tcp://")
    assert len(cluster["workers"]) == 2 and cluster["dashboard"].startswith("http")


def test_a_running_scan_can_be_cancelled(api) -> None:
    job = api.post("/v1/scans", json={}, headers={"X-API-Key": KEY}).json()
    response = api.delete(f"/v1/scans/{job['id']}", headers={"X-API-Key": KEY})
    assert response.status_code == 202 and response.json()["cancel_requested"] is True
    final = wait_until_done(api, job["id"])
    assert final["status"] == "cancelled"
    assert final["snapshot_id"] is None
    assert api.get("/v1/scans/latest").status_code == 503  # nothing half-published
    # the slot is free again
    assert api.post("/v1/scans", json={}, headers={"X-API-Key": KEY}).json()["started"] is True


def test_job_input_is_validated(api) -> None:
    cases = [
        ({"as_of": "2026-13-01"}, "as_of"),
        ({"trade_style": "Scalping"}, "trade_style"),
        ({"tickers": ["AAPL"]}, "tickers"),
    ]
    for body, field in cases:
        response = api.post("/v1/scans", json=body, headers={"X-API-Key": KEY})
        assert response.status_code == 422, response.text
        assert response.json()["field"] == field
    for path in ("/v1/scans/not-a-job", "/v1/scans/0123456789ABCDEF/events"):
        assert api.get(path).status_code == 422
    assert api.get("/v1/scans/0123456789abcdef/events").status_code == 404
    bad = api.post("/v1/scans", json={"as_of": "1990-01-02"}, headers={"X-API-Key": KEY})
    assert bad.status_code == 422 and "before the store's first bar" in bad.json()["detail"]


def test_a_future_date_scans_the_last_session_and_keeps_the_app_fed(api) -> None:
    started = api.post("/v1/scans", json={"as_of": "2099-01-01"}, headers={"X-API-Key": KEY})
    assert started.status_code == 202, started.text
    final = wait_until_done(api, started.json()["id"])
    assert final["status"] == "succeeded" and final["latest"], final
    latest = api.get("/v1/scans/latest").json()
    assert final["as_of"] == latest["as_of"] < "2099" and latest["total"] > 0


def test_read_keys_and_cors(tmp_path, demo_store, redis_server, dask_client) -> None:
    settings = job_settings(
        tmp_path,
        demo_store,
        redis_server,
        dask_client,
        api_key=KEY,
        read_api_keys=[READ_KEY],
        cors_origins=["https://app.example.com"],
    )
    with running(settings) as base, httpx.Client(base_url=base) as client:
        for path in ("/v1/universe_stats", "/v1/scans/latest", "/v1/cluster", "/metrics"):
            assert client.get(path).status_code == 401
            assert client.get(path, headers={"X-API-Key": "nope"}).status_code == 401
            # the key opens the read (no snapshot is published here, hence 503 for snapshots)
            assert client.get(path, headers={"X-API-Key": READ_KEY}).status_code in (200, 503)
            assert client.get(path, headers={"X-API-Key": KEY}).status_code in (200, 503)
        assert client.get("/health").status_code == 200  # health stays open
        assert client.get("/health/ready").status_code == 503  # nothing published here
        # a read key does not open writes
        assert client.post("/v1/scans", headers={"X-API-Key": READ_KEY}).status_code == 401
        preflight = client.options(
            "/v1/scan",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-api-key",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
        other = client.get("/health", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in other.headers


def test_cluster_before_any_job(tmp_path, demo_store, redis_server, dask_client) -> None:
    settings = job_settings(tmp_path, demo_store, redis_server, dask_client)
    with running(settings) as base:
        info = httpx.get(f"{base}/v1/cluster").json()
    assert info == {
        "cluster": dask_client.scheduler.address,
        "started": False,
        "workers": [],
        "dashboard": None,
    }
