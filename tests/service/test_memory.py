"""A stream of unique request bodies defeats every answer cache; the service's memory must still
plateau (answers are kept within byte bounds, the oldest go first), measured as the real
uvicorn server's RSS."""

from __future__ import annotations

import time
import uuid

import httpx
import psutil

from pipeline import snapshots
from pipeline.config import Settings
from pipeline.scan import run_scan
from tests.service.server import running

BODIES = 3000
GROWTH_BOUND = 200 * 2**20  # the caps hold 128 MiB (memo) + 32 MiB (responses)
STYLES = ("Day", "Swing", "Position", None)


def _body(i: int) -> dict:
    """The i-th unique body: the Rating varied by tiny amounts, with styles and lookbacks."""
    return {
        "min_tech_rating": round(i * 1e-4, 4),
        "trade_style": STYLES[i % len(STYLES)],
        "lookback_days": 30 + i % 300,
    }


def test_unique_bodies_keep_memory_bounded(redis_server, many_partitions, tmp_path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        store=many_partitions,
        use_redis=True,
        redis_url=redis_server.url,
        redis_prefix=f"mem-{uuid.uuid4().hex[:8]}:v1",
        cluster="sync",
    )
    result = run_scan(many_partitions, settings=settings)
    assert snapshots.publish(result, settings=settings).published
    server = psutil.Process()  # uvicorn runs in a thread of this process
    headers = {"Accept-Encoding": "identity"}
    with running(settings) as base, httpx.Client(base_url=base, timeout=60) as api:
        for style in STYLES:  # the snapshot, its table and re-ranked documents are loaded
            assert api.post("/v1/scan", json={"trade_style": style}).status_code == 200
        deadline = time.monotonic() + 60  # and its warm-up (charts' bars) is done
        while not api.get("/health").json()["snapshot"]["warm"]:
            assert time.monotonic() < deadline, "the snapshot's warm-up did not finish"
            time.sleep(0.3)
        before = server.memory_info().rss
        tic = time.monotonic()
        sizes = []
        for i in range(1, BODIES + 1):
            response = api.post("/v1/scan", json=_body(i), headers=headers)
            assert response.status_code == 200, response.text[:300]
            sizes.append(len(response.content))
        grown = server.memory_info().rss - before
        seconds = time.monotonic() - tic
    answered = sum(sizes)
    print(
        f"{BODIES} unique bodies, {answered / 2**20:.0f} MB of answers in {seconds:.0f} s: "
        f"RSS grew by {grown / 2**20:.0f} MB"
    )
    assert answered > 4 * GROWTH_BOUND, "the answers were too small to test the bound"
    assert grown < GROWTH_BOUND, f"RSS grew by {grown / 2**20:.0f} MB"
