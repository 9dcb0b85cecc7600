"""Redis failing under a real uvicorn server: never a 500, and back by itself.

Each test owns a real ``redis-server`` that it starts, kills and restarts (with an append-only
file, so data survives a restart as in production). The service must answer every endpoint
from memory or with 503 ``redis_unavailable`` while Redis is gone, pick Redis up when it
comes (even if it was down at start), push snapshots queued meanwhile, and skip a snapshot
whose document cannot be decoded for the last good one.
"""

from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest
import redis

from pipeline import snapshots
from pipeline.config import Settings
from pipeline.scan import ScanResult, run_scan
from tests.pipeline.snapshots import RedisProcess
from tests.service.server import running

KEY = "outage-write-key"
DATES = ("2026-11-13", "2026-11-20")


@pytest.fixture(scope="module")
def scans(demo_store, tmp_path_factory) -> dict[str, ScanResult]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("outage"), use_redis=False, cluster="sync")
    return {d: run_scan(demo_store, as_of=d, settings=settings) for d in DATES}


@pytest.fixture
def server(tmp_path):
    proc = RedisProcess(persist=tmp_path / "redis")
    yield proc
    proc.stop()


@pytest.fixture
def settings(server, tmp_path, demo_store) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        store=demo_store,
        use_redis=True,
        redis_url=server.url,
        redis_prefix=f"outage-{uuid.uuid4().hex[:8]}:v1",
        redis_timeout=0.5,
        snapshot_poll_interval=0.0,
        cache_ttl=0,
        api_key=KEY,
        cluster="sync",
    )


def eventually(check, timeout: float = 20.0):
    """Poll ``check`` until it returns something truthy (the service's Redis backoff is at
    most a few seconds in these tests)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def every_request(app: httpx.Client, ticker: str) -> list[tuple[str, str, dict]]:
    """One request per operation of the OpenAPI document, path parameters filled in."""
    spec = app.get("/openapi.json").json()
    values = {
        "job_id": "0123456789abcdef",
        "sub_id": "0123456789abcdef",
        "symbol": ticker,
        "ticker": ticker,
    }
    out = []
    for path, operations in spec["paths"].items():
        url = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
        for method in operations:
            body = {}
            if (method, path) == ("post", "/v1/scan"):
                body = {"trade_style": "Position", "min_tech_rating": 5}
            elif (method, path) == ("post", "/v1/copilot"):
                body = {"question": f"Why is {ticker} rated this way?"}
            elif path == "/v1/scans/diff":
                url += f"?from={DATES[0]}&to=latest"
            out.append((method.upper(), url, body))
    return out


def test_redis_killed_mid_serve_never_gives_a_500(scans, server, settings) -> None:
    server.start()
    for as_of in DATES:
        assert snapshots.publish(scans[as_of], settings=settings).published
    ticker = scans[DATES[1]].table.index[0]
    with running(settings) as base, httpx.Client(base_url=base, timeout=30) as app:
        assert app.get("/v1/scans/latest").status_code == 200
        server.stop()
        answers = {}
        for method, url, body in every_request(app, ticker):
            kwargs = {"json": body} if method in ("POST", "PUT") else {}
            if url.endswith(("/events", "/stream")):
                with app.stream(method, url, headers={"X-API-Key": KEY}) as response:
                    answers[(method, url)] = (response.status_code, response.read())
                continue
            response = app.request(method, url, headers={"X-API-Key": KEY}, **kwargs)
            answers[(method, url)] = (response.status_code, response.content)
        errors = {
            k: v for k, v in answers.items() if v[0] >= 500 and b"redis_unavailable" not in v[1]
        }
        assert not errors, errors
        assert answers[("GET", "/v1/scans/latest")][0] == 200  # from memory
        assert answers[("GET", f"/v1/symbol/{ticker}")][0] == 200
        assert answers[("GET", "/v1/scans")][0] == 503
        assert answers[("POST", "/v1/scans")][0] == 503
        health = app.get("/health").json()
        assert health["status"] == "degraded" and "Redis is unreachable" in health["reason"]
        server.start()
        back = eventually(lambda: app.get("/v1/scans").status_code == 200)
        assert back, "the service did not pick Redis up again"
        assert eventually(lambda: app.get("/health").json()["status"] == "ok")


def test_down_at_start_then_up_serves_the_snapshot(scans, server, settings) -> None:
    with running(settings) as base, httpx.Client(base_url=base, timeout=30) as app:
        first = app.get("/v1/scans/latest")
        assert first.status_code == 503 and first.json()["error"] == "redis_unavailable"
        assert app.get("/health").json()["status"] == "unavailable"
        server.start()
        assert snapshots.publish(scans[DATES[1]], settings=settings).published
        served = eventually(lambda: app.get("/v1/scans/latest").status_code == 200)
        assert served, "the service never picked up Redis after starting without it"
        assert app.get("/v1/scans/latest").json()["as_of"] == DATES[1]


def test_the_service_pushes_a_snapshot_queued_while_redis_was_down(scans, server, settings) -> None:
    assert not snapshots.publish(scans[DATES[1]], settings=settings).published
    assert len(snapshots.pending_paths(settings)) == 1
    with running(settings) as base, httpx.Client(base_url=base, timeout=30) as app:
        server.start()
        served = eventually(lambda: app.get("/v1/scans/latest").status_code == 200)
        assert served and app.get("/v1/scans/latest").json()["as_of"] == DATES[1]
    assert snapshots.pending_paths(settings) == []


def corrupt_latest(settings: Settings, url: str) -> str:
    """A snapshot whose JSON is garbage, published as the latest: a bad write or a bit flip."""
    conn = redis.Redis.from_url(url)
    prefix, sid = settings.redis_prefix, "20991231-000000-bad000"
    conn.set(f"{prefix}:snap:{sid}:json", b'{"results": [{"ticker": "AA')
    conn.set(
        f"{prefix}:snap:{sid}:meta", b'{"snapshot_id": "%s", "as_of": "2026-11-21"}' % sid.encode()
    )
    conn.zadd(f"{prefix}:history", {sid: time.time()})
    conn.set(f"{prefix}:latest", sid)
    conn.set(f"{prefix}:latest_as_of", "2026-11-21")
    return sid


@pytest.mark.parametrize("when", ["while serving", "before start"])
def test_an_undecodable_snapshot_is_skipped_for_the_last_good_one(
    scans, server, settings, when
) -> None:
    server.start()
    for as_of in DATES:
        snapshots.publish(scans[as_of], settings=settings)
    good = scans[DATES[1]].snapshot["snapshot_id"]
    if when == "before start":
        bad = corrupt_latest(settings, server.url)
    with running(settings) as base, httpx.Client(base_url=base, timeout=30) as app:
        if when == "while serving":
            assert app.get("/v1/scans/latest").json()["snapshot_id"] == good
            bad = corrupt_latest(settings, server.url)
        for path in (
            "/v1/scans/latest",
            "/v1/scan",
            f"/v1/symbol/{scans[DATES[1]].table.index[0]}",
        ):
            assert app.get(path).status_code == 200, path
        assert app.get("/v1/scans/latest").json()["snapshot_id"] == good
        health = app.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "degraded" and bad in health.json()["reason"]
        snapshots.delete(bad, settings=settings)
        assert eventually(lambda: app.get("/health").json()["status"] == "ok")
