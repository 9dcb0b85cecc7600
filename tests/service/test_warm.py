"""A new snapshot's first requests find their answers made: the app's own scan bodies are
answered in the background when the snapshot arrives, the same bytes a request would make,
and sent through the service once (:mod:`service.first_pass`), so the response cache holds
them and the metrics do not count them."""

from __future__ import annotations

import gzip
import time
import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from pipeline import snapshots
from pipeline.config import Settings
from pipeline.scan import run_scan
from service.response_cache import ResponseCache
from service.routes.scan import APP_BODIES
from service.schemas import ScanFilter
from tests.service.server import serve


@pytest.fixture
def settings(redis_server, demo_store: Path, tmp_path: Path) -> Settings:
    settings = Settings(
        data_dir=tmp_path,
        store=demo_store,
        use_redis=True,
        redis_url=redis_server.url,
        redis_prefix=f"warm-{uuid.uuid4().hex[:8]}:v1",
        cache_ttl=0,
        cluster="sync",
    )
    assert snapshots.publish(run_scan(demo_store, settings=settings), settings=settings).published
    return settings


def _wait_warm(base: str) -> None:
    deadline = time.monotonic() + 60
    while not httpx.get(f"{base}/health", timeout=30).json()["snapshot"]["warm"]:
        assert time.monotonic() < deadline, "the snapshot's warm-up never finished"
        time.sleep(0.3)  # quiet moments: the warm-up yields to requests (service.quiet)


def _response_cache(app) -> ResponseCache:
    layer = app.middleware_stack
    while not isinstance(layer, ResponseCache):
        layer = layer.app
    return layer


def test_the_apps_bodies_are_answered_before_anyone_asks(settings: Settings) -> None:
    server, thread, base = serve(settings)
    try:
        app = server.config.app
        assert httpx.get(f"{base}/health", timeout=30).status_code == 200  # loads the snapshot
        snapshot = app.state.snapshots.current
        keys = [("scan", ScanFilter(**body).query(), zipped) for body in APP_BODIES
                for zipped in (True, False)]  # fmt: skip
        deadline = time.monotonic() + 60
        while not all(key in snapshot._memo for key in keys):
            assert time.monotonic() < deadline, "the app's answers were never made"
            time.sleep(0.02)
        for body in APP_BODIES:
            zipped = httpx.post(
                f"{base}/v1/scan", json=body, headers={"Accept-Encoding": "gzip"}, timeout=30
            )
            plain = httpx.post(
                f"{base}/v1/scan", json=body, headers={"Accept-Encoding": "identity"}, timeout=30
            )
            assert zipped.status_code == plain.status_code == 200
            made = snapshot._memo[("scan", ScanFilter(**body).query(), True)][0]
            assert gzip.decompress(made) == plain.content  # the request got what was made
            assert zipped.json() == plain.json() and plain.json()["results"]
    finally:
        server.should_exit = True
        thread.join(30)


def test_the_apps_own_requests_fill_the_response_cache_unseen_by_metrics(
    settings: Settings,
) -> None:
    server, thread, base = serve(settings)
    try:
        app = server.config.app
        _wait_warm(base)
        cache = _response_cache(app)
        for body in APP_BODIES:
            sent = httpx.Request("POST", f"{base}/v1/scan", json=body).content
            assert sent == orjson.dumps(body)  # the bytes a JSON client sends: compact, in order
            for zipped in (True, False):
                assert ("POST", "/v1/scan", b"", sent, zipped) in cache.entries
        metrics = httpx.get(f"{base}/metrics", timeout=30).text
        assert 'route="/v1/scan"' not in metrics  # the service's own requests are not counted
        answer = httpx.post(f"{base}/v1/scan", json=APP_BODIES[0], timeout=30)
        assert answer.status_code == 200 and answer.json()["results"]
        metrics = httpx.get(f"{base}/metrics", timeout=30).text
        assert 'technic_http_requests_total{method="POST",route="/v1/scan",status="200"} 1.0' in (
            metrics
        )
    finally:
        server.should_exit = True
        thread.join(30)
