"""The app's price chart from a bar store in a bucket: answered from the snapshot's
generation, held in memory (:class:`RecentBars`), exactly the bars a store read gives."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pandas as pd
import pytest

from pipeline import snapshots
from pipeline.config import Settings
from pipeline.price_history import RecentBars, trusted_bars
from pipeline.scan import run_scan
from pipeline.sources.synthetic import generate_universe
from pipeline.store import BarStore
from service.deps import history_key
from tests.service import app_rules
from tests.service.server import serve


@pytest.fixture(scope="module")
def demo():
    return generate_universe(120, 320, seed=11)


@pytest.mark.parametrize("as_of", [None, "2026-06-01"])
def test_recent_bars_equal_a_store_read(demo, tmp_path: Path, as_of: str | None) -> None:
    store = BarStore(tmp_path / "store")
    store.write(demo.bars, demo.universe)
    generation = store.current()
    recent = RecentBars.load(generation, as_of, sessions=100)
    held = 0
    for ticker in generation.tickers:
        full = trusted_bars(generation, ticker, as_of)
        for days in (1, 20, 90, 100, 400):
            got = recent.bars(ticker, days)
            if got is None:  # not in the window (e.g. delisted before it): read the store
                continue
            held += days == 90
            pd.testing.assert_frame_equal(got, full.tail(days))
    assert held >= 0.8 * len(generation.tickers)  # most tickers answer days=90 from memory


def test_a_gap_across_the_window_start_is_not_mistaken_for_a_whole_history(tmp_path) -> None:
    """A ticker halted across the window's first session has older bars: the window cannot
    answer more days than it holds of it, and says so (None) instead of a short chart."""
    dates = pd.bdate_range("2024-01-01", periods=300)
    frames = []
    for ticker, keep in (("FULL", dates), ("GAP", dates[:180].append(dates[200:]))):
        n = len(keep)
        frames.append(
            pd.DataFrame(
                {"ticker": ticker, "date": keep, "open": 10.0, "high": 11.0, "low": 9.0,
                 "close": 10.0 + (pd.RangeIndex(n) % 7), "volume": 1000.0}
            )
        )  # fmt: skip
    store = BarStore(tmp_path / "gap")
    store.write(pd.concat(frames, ignore_index=True))
    generation = store.current()
    recent = RecentBars.load(generation, None, sessions=110)  # window starts in the gap
    full = trusted_bars(generation, "GAP", None)
    assert recent.bars("GAP", 150) is None  # older bars exist before the gap
    pd.testing.assert_frame_equal(recent.bars("GAP", 90), full.tail(90))
    pd.testing.assert_frame_equal(
        recent.bars("FULL", 100), trusted_bars(generation, "FULL", None).tail(100)
    )


@pytest.fixture
def served(demo, s3_bucket: str, redis_server, tmp_path: Path):
    url = f"{s3_bucket}/store"
    store = BarStore(url)
    store.write(demo.bars, demo.universe)
    settings = Settings(
        data_dir=tmp_path,
        use_redis=True,
        redis_url=redis_server.url,
        redis_prefix=f"hist-{uuid.uuid4().hex[:8]}:v1",
        cache_ttl=0,
        cluster="sync",
    )
    result = run_scan(url, settings=settings)
    assert snapshots.publish(result, settings=settings).published
    # the store moves on after the snapshot: charts still draw the snapshot's generation
    last = demo.bars[demo.bars["date"] == demo.bars["date"].max()].copy()
    last["date"] = last["date"] + pd.offsets.BDay(1)
    store.update(last)
    server, thread, base = serve(settings)
    try:
        yield server.config.app, base, url, result
    finally:
        server.should_exit = True
        thread.join(60)


def test_the_chart_comes_from_memory_and_the_snapshots_generation(served) -> None:
    app, base, url, result = served
    ticker = result.table.index[0]
    first = httpx.get(f"{base}/v1/symbol/{ticker}", params={"days": 90}, timeout=30)
    assert first.status_code == 200, first.text
    snapshot = app.state.snapshots.current
    key = history_key(app.state.settings, snapshot)
    deadline = time.monotonic() + 60
    while app.state.history.get(key) is None:
        assert time.monotonic() < deadline, "the recent bars never loaded"
        time.sleep(0.05)
    recent = app.state.history.get(key)
    assert recent.data_version == result.snapshot["store"]["data_version"]
    generation = BarStore(url).generation(recent.data_version)
    assert generation is not None and generation.data_version != BarStore(url).data_version
    for symbol in result.table.index[:25]:
        answer = httpx.get(f"{base}/v1/symbol/{symbol}", params={"days": 90}, timeout=30)
        assert answer.status_code == 200, answer.text
        detail = app_rules.symbol_detail(answer.json())
        want = trusted_bars(generation, symbol, result.snapshot["as_of"]).tail(90)
        assert [b["date"] for b in detail["history"]] == list(want["date"].dt.strftime("%Y-%m-%d"))
        assert [b["Close"] for b in detail["history"]] == want["close"].tolist()
        assert detail["history"][-1]["date"] == result.snapshot["as_of"]  # not the newer day
    assert (
        first.json()["history"]
        == httpx.get(f"{base}/v1/symbol/{ticker}", params={"days": 90}, timeout=30).json()[
            "history"
        ]
    )
