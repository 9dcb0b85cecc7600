"""The feature panel: causal (no bar after t moves a feature at t), unit-free, segment-safe,
and the scan's last-row path gives exactly the panel's numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline import hygiene
from pipeline.alpha import panel
from pipeline.features import compute_indicators
from pipeline.schema import TICKER
from pipeline.segments import Tails


@pytest.fixture(scope="module")
def bars(demo_universe) -> pd.DataFrame:
    """Forty demo tickers (mess included), ticker-indexed like a partition."""
    frame = demo_universe.bars
    keep = frame["ticker"].isin(frame["ticker"].drop_duplicates().iloc[:40])
    return frame[keep].set_index(TICKER)


def features_of(frame: pd.DataFrame) -> pd.DataFrame:
    return panel.panel_partition(frame).reset_index().set_index([TICKER, "date"])


def test_features_at_t_ignore_every_bar_after_t(bars: pd.DataFrame) -> None:
    cut = bars["date"].sort_values().unique()[200]
    later = (bars["date"] > cut).to_numpy()
    rng = np.random.default_rng(0)
    moved = bars.copy()
    factor = rng.uniform(0.5, 2.0, later.sum())
    for col in ("open", "high", "low", "close"):
        moved.loc[later, col] = moved.loc[later, col].to_numpy() * factor
    moved.loc[later, "volume"] = rng.uniform(1, 1e7, later.sum()).round()
    base, after = features_of(bars), features_of(moved)
    upto = base.index.get_level_values("date") <= cut
    assert upto.sum() > 5000 and (~upto).sum() > 2000
    pd.testing.assert_frame_equal(base[upto], after.loc[base.index[upto]])
    # and the perturbation did reach the later rows
    assert not np.allclose(
        base[~upto]["ma20"], after.loc[base.index[~upto]]["ma20"], equal_nan=True
    )
    truncated = features_of(bars[bars["date"] <= cut])
    pd.testing.assert_frame_equal(base[upto], truncated)


def test_no_feature_is_a_price_level(bars: pd.DataFrame) -> None:
    scaled = bars.copy()
    for col in ("open", "high", "low", "close"):
        scaled[col] *= 37.0
    base, other = features_of(bars), features_of(scaled)
    cols = list(panel.FEATURES)
    np.testing.assert_allclose(
        other[cols].to_numpy(np.float64), base[cols].to_numpy(np.float64), rtol=2e-5, atol=2e-6
    )


def test_volume_enters_only_as_ratios(bars: pd.DataFrame) -> None:
    scaled = bars.copy()
    scaled["volume"] *= 10.0
    base, other = features_of(bars), features_of(scaled)
    # log1p(10 v) − log1p(v) ≈ log 10: correlations, ratios and shares do not change
    cols = [f for f in panel.FEATURES if not f.startswith("vma")]
    np.testing.assert_allclose(
        other[cols].to_numpy(np.float64), base[cols].to_numpy(np.float64), rtol=1e-3, atol=1e-3
    )


def test_tickers_in_one_partition_equal_each_alone(bars: pd.DataFrame) -> None:
    tickers = bars.index.unique()[:3]
    together = features_of(bars.loc[tickers])
    alone = pd.concat([features_of(bars.loc[[t]]) for t in tickers])
    pd.testing.assert_frame_equal(together, alone)


def test_scan_path_at_last_rows_equals_the_panel(bars: pd.DataFrame) -> None:
    cleaned = hygiene.clean(bars)
    ind = compute_indicators(cleaned.arrays, cleaned.bounds)
    last = Tails.from_bounds(cleaned.bounds).last
    at_end = panel.alpha_features(cleaned.arrays, cleaned.bounds, ind, last)
    full = panel.panel_partition(bars)
    rows = full.iloc[last]
    np.testing.assert_array_equal(panel.matrix(at_end), panel.matrix(rows))
    np.testing.assert_array_equal(at_end["eligible"], rows["eligible"].to_numpy())


def test_windows_need_their_history(bars: pd.DataFrame) -> None:
    full = panel.panel_partition(bars)
    bars_so_far = full["bars"].to_numpy()
    assert np.isnan(full["ma60"].to_numpy()[bars_so_far < 60]).all()
    assert np.isfinite(full["ma60"].to_numpy()[bars_so_far >= 60]).all()
    assert np.isnan(full["vol60"].to_numpy()[bars_so_far < 61]).all()
    assert not full["eligible"].to_numpy()[bars_so_far < panel.LOOKBACK].any()
