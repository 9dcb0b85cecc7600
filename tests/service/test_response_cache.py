"""The in-process response cache: repeats are answered from memory, per snapshot and request,
never across a new snapshot, never past the read keys, and still counted in /metrics."""

from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest

from pipeline import snapshots
from pipeline.config import Settings
from pipeline.scan import run_scan
from service.response_cache import ResponseCache
from tests.service.server import serve

POLL = 0.3


@pytest.fixture(scope="module")
def setup(redis_server, demo_store, tmp_path_factory):
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("rc"),
        store=demo_store,
        use_redis=True,
        redis_url=redis_server.url,
        redis_prefix=f"rc-{uuid.uuid4().hex[:8]}:v1",
        cache_ttl=0,
        snapshot_poll_interval=POLL,
    )
    older = run_scan(demo_store, as_of="2026-11-13", settings=settings)
    assert snapshots.publish(older, settings=settings).published
    server, thread, base = serve(settings)
    with httpx.Client(base_url=base, timeout=30) as client:
        yield settings, client, server, older
    server.should_exit = True
    thread.join(10)


def cache_of(server) -> ResponseCache:
    app = server.config.loaded_app
    while not isinstance(app, ResponseCache):
        app = getattr(app, "app", None) or app.middleware_stack
    return app


def count(metrics: str, route: str) -> float:
    labels = f'method="GET",route="{route}",status="200"'
    pattern = rf"technic_http_requests_total{{{re.escape(labels)}}} (\S+)"
    found = re.search(pattern, metrics)
    return float(found.group(1)) if found else 0.0


def test_repeats_come_from_memory_per_snapshot(setup, demo_store) -> None:
    settings, api, server, older = setup
    cache = cache_of(server)
    first = api.get("/v1/scans/latest", params={"limit": 5})
    assert first.status_code == 200
    assert first.json()["snapshot_id"] == older.snapshot["snapshot_id"]
    before = count(api.get("/metrics").text, "/v1/scans/latest")
    hits = [api.get("/v1/scans/latest", params={"limit": 5}) for _ in range(5)]
    assert all(h.content == first.content for h in hits)
    assert len(cache.entries) >= 1 and cache.snapshot_id == older.snapshot["snapshot_id"]
    # every hit is still counted under its route
    assert count(api.get("/metrics").text, "/v1/scans/latest") == before + 5

    # different requests, different answers
    other = api.get("/v1/scans/latest", params={"limit": 5, "sort": "-close"})
    assert other.json()["results"] != first.json()["results"]
    plain = api.post("/v1/scan", json={"max_symbols": 3}, headers={"Accept-Encoding": "identity"})
    zipped = api.post("/v1/scan", json={"max_symbols": 3}, headers={"Accept-Encoding": "gzip"})
    assert plain.json() == zipped.json() and len(plain.json()["results"]) == 3
    four = api.post("/v1/scan", json={"max_symbols": 4}).json()
    assert len(four["results"]) == 4
    bad = api.post("/v1/scan", json={"max_symbols": 0})
    assert bad.status_code == 422  # errors are never kept
    assert api.post("/v1/scan", json={"max_symbols": 0}).status_code == 422

    # a new snapshot is served once the pointer is due a check, and the old answers go
    newer = run_scan(demo_store, settings=settings)
    assert snapshots.publish(newer, settings=settings).published
    time.sleep(POLL * 2)
    fresh = api.get("/v1/scans/latest", params={"limit": 5}).json()
    assert fresh["snapshot_id"] == newer.snapshot["snapshot_id"]
    again = api.get("/v1/scans/latest", params={"limit": 5}).json()
    assert again == fresh
    assert cache.snapshot_id == newer.snapshot["snapshot_id"]  # the old answers are gone


def test_read_keys_turn_the_cache_off(tmp_path, demo_store, redis_server, setup) -> None:
    settings = Settings(
        data_dir=tmp_path,
        store=demo_store,
        use_redis=True,
        redis_url=redis_server.url,
        redis_prefix=setup[0].redis_prefix,
        read_api_keys=["k1"],
        snapshot_poll_interval=POLL,
    )
    server, thread, base = serve(settings)
    try:
        with httpx.Client(base_url=base) as client:
            assert client.get("/v1/universe_stats", headers={"X-API-Key": "k1"}).is_success
            assert client.get("/v1/universe_stats", headers={"X-API-Key": "k1"}).is_success
            assert client.get("/v1/universe_stats").status_code == 401
    finally:
        server.should_exit = True
        thread.join(10)
