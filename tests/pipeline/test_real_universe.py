"""The real, dirty 7,163-ticker US universe: import into a store and scan end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from pipeline.scan import run_scan
from pipeline.store import BarStore
from tests.conftest import shared_file


@pytest.mark.slow
def test_real_universe_imports_and_scans(tmp_path: Path, dask_client) -> None:
    raw = pd.read_parquet(shared_file("us_stocks_ohlcv.parquet"))
    store = BarStore(tmp_path / "us")
    summary = store.write(raw, sources=("us_stocks_ohlcv.parquet",))
    assert summary.rows == len(raw) == 4_957_150
    assert summary.tickers == 7_163
    assert summary.duplicate_dates == 0
    assert summary.files > 1
    del raw

    result = run_scan(store.url, client=dask_client)

    document = json.loads(result.to_json(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    hygiene = document["hygiene"]
    assert hygiene["rows_in"] == 4_957_150
    assert hygiene["non_positive_price"] == 1  # HLG 2017-08-10, low = -1.0
    assert hygiene["non_finite_price"] == hygiene["high_below_low"] == 0
    assert hygiene["tickers_in"] == 7_163
    # 186 tickers have fewer than 20 rows; many others end weeks before 2017-11-10
    assert hygiene["tickers_short_history"] > 186
    assert hygiene["tickers_stale"] > 0
    assert (
        hygiene["tickers_ok"]
        + hygiene["tickers_short_history"]
        + hygiene["tickers_stale"]
        + hygiene["tickers_no_clean_bars"]
    ) == 7_163  # no SPY in this file: every ticker is a stock
    assert document["as_of"] == "2017-11-10"
    assert document["universe_size"] == 7_163
    assert document["symbols_scanned"] == hygiene["tickers_ok"] > 3_000
    assert document["regime"] is None  # no benchmark in the store
    rows = document["results"]
    assert len(rows) == document["symbols_scanned"]
    assert all(0 <= row["TechRating"] <= 100 for row in rows)
    assert all(0 <= row["merit_score"] <= 100 and 0 <= row["ICS"] <= 100 for row in rows)
    assert "HLG" in result.statuses.index
    assert result.table["last_date"].min() >= pd.Timestamp("2017-10-31")
    assert all(math.isfinite(v) for v in result.timings.values())
