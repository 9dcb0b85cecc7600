"""The symbol chart on real, dirty bars (../shared/data): the service draws what the scan
trusted, never a null, zero, negative or high-below-low bar, and volumes are integers."""

from __future__ import annotations

import uuid

import httpx
import numpy as np
import pandas as pd
import pytest

from pipeline import hygiene, snapshots
from pipeline.config import Settings
from pipeline.scan import run_scan
from pipeline.schema import conform_bars
from pipeline.store import BarStore
from tests.conftest import shared_file
from tests.service import app_rules
from tests.service.server import running

# (ticker, file, a date whose bar is bad in the source, what is wrong with it)
BAD_BARS = (
    ("AOS", "sp500_5yr_ohlcv.parquet", "2014-05-19", "high below low"),
    ("BHF", "sp500_5yr_ohlcv.parquet", "2017-07-26", "open, high and low are null"),
    ("DHR", "sp500_5yr_ohlcv.parquet", "2016-01-12", "null prices and zero volume"),
    ("UA", "sp500_5yr_ohlcv.parquet", "2016-04-07", "null prices and zero volume"),
    ("HLG", "us_stocks_ohlcv.parquet", "2017-08-10", "low of -1.0"),
)


def _bars(file: str, tickers: list[str]) -> pd.DataFrame:
    frame = pd.read_parquet(shared_file(file), filters=[("ticker", "in", tickers)])
    return conform_bars(frame)


@pytest.fixture(scope="module")
def served(redis_server, tmp_path_factory):
    home = tmp_path_factory.mktemp("real-history")
    by_file: dict[str, list[str]] = {}
    for ticker, file, _, _ in BAD_BARS:
        by_file.setdefault(file, []).append(ticker)
    parts = [_bars(file, tickers) for file, tickers in by_file.items()]
    parts.append(_bars("benchmarks_ohlcv.parquet", ["SPY"]))
    raw = pd.concat(parts, ignore_index=True)
    store = home / "store"
    BarStore(store).write(raw)
    settings = Settings(
        data_dir=home,
        use_redis=True,
        redis_url=redis_server.url,
        redis_prefix=f"real-{uuid.uuid4().hex[:8]}:v1",
        cache_ttl=0,
        cluster="sync",
    )
    result = run_scan(store, as_of="2017-11-10", settings=settings)
    assert snapshots.publish(result, settings=settings).published
    with running(settings) as base:
        yield base, raw


@pytest.mark.parametrize(("ticker", "file", "day", "problem"), BAD_BARS)
def test_the_chart_skips_the_bars_the_scan_rejects(served, ticker, file, day, problem) -> None:
    base, raw = served
    response = httpx.get(f"{base}/v1/symbol/{ticker}", params={"days": 3650}, timeout=30)
    assert response.status_code == 200, response.text
    detail = app_rules.symbol_detail(response.json(), old_app=True)
    history = detail["history"]
    dates = [bar["date"] for bar in history]
    assert day not in dates, f"{ticker} {day} ({problem}) is drawn"
    assert dates == sorted(dates) and dates[-1] <= "2017-11-10"
    for bar in history:
        assert 0 < bar["Low"] <= bar["High"] and bar["Open"] > 0 and bar["Close"] > 0
        assert isinstance(bar["Volume"], int) and bar["Volume"] >= 0
    # exactly the scan's hygiene: the same rows, nothing else dropped
    own = raw[(raw["ticker"] == ticker) & (raw["date"] <= "2017-11-10")].set_index("ticker")
    trusted = hygiene.trusted(own)
    assert dates == list(trusted["date"].dt.strftime("%Y-%m-%d"))
    assert np.array_equal([b["Close"] for b in history], trusted["close"].to_numpy())
    assert len(history) < len(own)
