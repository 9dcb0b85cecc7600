"""The app during the session: the live snapshot (published by the live loop, which
extends the daily one) answers POST /v1/scan and the symbol detail; the next daily snapshot
takes over when it is published. TECHNIC_LIVE=1 runs the loop inside the service."""

from __future__ import annotations

import threading
import time

import httpx
import pandas as pd
import pytest

from pipeline import snapshots
from pipeline.config import Settings
from pipeline.live.loop import LiveLoop
from pipeline.scan import run_scan
from pipeline.sources.polygon import PolygonClient
from service.routes.scan import APP_BODIES
from tests.fake_polygon import KEY, snapshot_body
from tests.service.server import running


def _settings(held_back, redis_server, polygon, **kw) -> Settings:
    polygon_settings = {"polygon_api_key": KEY, "polygon_base_url": polygon.url, "polygon_rpm": 0}
    return held_back.settings(redis_server, **(polygon_settings | kw))


def _post(base: str) -> dict:
    answer = httpx.post(f"{base}/v1/scan", json=APP_BODIES[0], timeout=30)
    assert answer.status_code == 200
    return answer.json()


def test_the_app_gets_the_live_snapshot_during_the_session(
    held_back, fake_polygon, redis_server
) -> None:
    today, day, polygon = held_back.today, held_back.day, fake_polygon
    settings = _settings(held_back, redis_server, polygon)
    daily = run_scan(held_back.store, settings=settings)
    assert snapshots.publish(daily, settings=settings).latest
    polygon.reset()
    moved = today.assign(close=today["close"] * 1.05, high=today["high"] * 1.05)
    polygon.snapshot = snapshot_body(
        moved, day.tz_localize("America/New_York") + pd.Timedelta(hours=10, minutes=32)
    )
    with running(settings) as base:
        before = _post(base)
        assert before["log"].startswith("Scanned")
        update = LiveLoop(settings, client=lambda: PolygonClient(KEY, base_url=polygon.url,
                                                                 rpm=0)).once()  # fmt: skip
        assert update.published
        answer = _post(base)
        assert answer["log"].startswith("live, 15 min delayed, 10:32 ET")
        assert answer["results"] and answer["movers"]
        health = httpx.get(f"{base}/health", timeout=30).json()["snapshot"]
        assert health["live"] is True and health["as_of_time"].endswith("10:32:00-05:00")
        live_rows = {r["ticker"]: r for r in update.result.snapshot["results"]}
        ticker = answer["results"][0]["ticker"]
        detail = httpx.get(f"{base}/v1/symbol/{ticker}?days=30", timeout=30).json()
        assert detail["last_price"] == pytest.approx(live_rows[ticker]["close"])
        assert len(detail["history"]) == 30  # the chart ends with today's bar so far
        bar = detail["history"][-1]
        assert bar["date"] == f"{day:%Y-%m-%d}" and isinstance(bar["Volume"], int)
        assert bar["Close"] == pytest.approx(moved.loc[ticker, "close"])
        assert detail["history"][-2]["date"] < bar["date"]
        assert detail["last_price"] != pytest.approx(
            {r["ticker"]: r for r in daily.snapshot["results"]}.get(ticker, {}).get("close", 0)
        )
        nightly = run_scan(held_back.store, settings=settings)  # the next daily snapshot
        assert snapshots.publish(nightly, settings=settings).latest
        assert _post(base)["log"].startswith(nightly.snapshot["log"])  # it takes over


def test_technic_live_runs_the_loop_inside_the_service(
    held_back, fake_polygon, redis_server
) -> None:
    settings = _settings(held_back, redis_server, fake_polygon, live=True, live_interval=30)
    with running(settings):
        deadline = time.monotonic() + 10
        while "live-loop" not in {t.name for t in threading.enumerate()}:
            assert time.monotonic() < deadline, "the live loop did not start"
            time.sleep(0.02)
    deadline = time.monotonic() + 10
    while "live-loop" in {t.name for t in threading.enumerate()}:
        assert time.monotonic() < deadline, "the live loop did not stop with the service"
        time.sleep(0.02)


def test_technic_live_without_a_polygon_key_leaves_the_service_up(
    held_back, fake_polygon, redis_server, caplog
) -> None:
    settings = _settings(held_back, redis_server, fake_polygon, live=True, polygon_api_key=None)
    with running(settings) as base:
        assert httpx.get(f"{base}/health", timeout=30).status_code == 200
        assert "live-loop" not in {t.name for t in threading.enumerate()}
    assert "live scans cannot start: POLYGON_API_KEY is not set" in caplog.text
