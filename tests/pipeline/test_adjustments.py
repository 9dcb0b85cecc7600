"""Split adjustment factors and the adjustments table."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipeline import adjustments


def splits(*rows: tuple[str, str, float, float]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["ticker", "execution_date", "split_from", "split_to"])
    return adjustments.conform(frame, applied_at="2024-12-31T00:00:00+00:00")


def test_factors_multiply_every_later_split_of_the_ticker() -> None:
    table = splits(("A", "2024-01-10", 1, 2), ("A", "2024-01-20", 1, 3), ("B", "2024-01-15", 5, 1))
    tickers = pd.Series(["A", "A", "A", "B", "B", "C"])
    dates = pd.to_datetime(
        ["2024-01-05", "2024-01-10", "2024-01-25", "2024-01-14", "2024-01-15", "2024-01-01"]
    ).to_series(index=range(6))
    np.testing.assert_allclose(
        adjustments.factors(tickers, dates, table), [1 / 6, 1 / 3, 1.0, 5.0, 1.0, 1.0]
    )


def test_apply_scales_prices_and_volume_inversely() -> None:
    bars = pd.DataFrame(
        {"date": pd.to_datetime(["2024-01-05", "2024-01-12"]), "open": 8.0, "high": 9.0,
         "low": 7.0, "close": 8.0, "volume": 100.0},
        index=pd.Index(["A", "A"], name="ticker"),
    )  # fmt: skip
    out, changed = adjustments.apply(bars, splits(("A", "2024-01-10", 1, 4)))
    assert changed == 1
    assert out["close"].tolist() == [2.0, 8.0] and out["volume"].tolist() == [400.0, 100.0]
    assert bars["close"].tolist() == [8.0, 8.0]  # the input is untouched


def test_conform_drops_unusable_ratios() -> None:
    table = splits(("A", "2024-01-10", 0, 2), ("B", "2024-01-10", 1, 2))
    assert table["ticker"].tolist() == ["B"] and table["price_factor"].tolist() == [0.5]


def test_new_splits_skip_recorded_and_warn_on_changed_ones(caplog) -> None:
    recorded = splits(("A", "2024-01-10", 1, 2))
    fetched = splits(("A", "2024-01-10", 1, 3), ("B", "2024-02-01", 1, 2))
    with caplog.at_level(logging.WARNING):
        new = adjustments.new_splits(recorded, fetched)
    assert new["ticker"].tolist() == ["B"]
    assert "changed at the provider" in caplog.text
