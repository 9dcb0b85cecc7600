"""A new snapshot's first requests find their answers made: the app's own scan bodies are
answered in the background when the snapshot arrives, the same bytes a request would make."""

from __future__ import annotations

import gzip
import time
import uuid
from pathlib import Path

import httpx

from pipeline import snapshots
from pipeline.config import Settings
from pipeline.scan import run_scan
from service.routes.scan import APP_BODIES
from service.schemas import ScanFilter
from tests.service.server import serve


def test_the_apps_bodies_are_answered_before_anyone_asks(
    redis_server, demo_store: Path, tmp_path: Path
) -> None:
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
