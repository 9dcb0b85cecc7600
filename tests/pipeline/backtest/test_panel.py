"""The backtest's panel against the scan itself: a date's rows are ``technic scan --as-of``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.backtest import backtest
from pipeline.backtest.panel import EXITS
from pipeline.config import Settings
from pipeline.scan import run_scan
from pipeline.schema import DATE, TICKER
from pipeline.store import BarStore

HORIZONS = (1, 5, 21)
SCORES = ("TechRating", "ICS", "merit_score", "composite_score")
LABELS = {"signal": "Signal", "Tier": "Tier", "merit_band": "merit_band", "Sector": "Sector"}


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("backtest-home"), cluster="sync")


SPIKES = {"ABX": "2026-06-10", "AJNC": "2026-09-15"}  # (ticker, date) of planted bad prints
START = "2026-05-01"


def with_spikes(bars: pd.DataFrame) -> pd.DataFrame:
    """``bars`` with a close 500× off both neighbours on each of :data:`SPIKES` (open, high
    and low with it, so only the neighbours betray it): the one check of the hygiene that
    looks ahead, as a scan as of that date cannot see the next bar."""
    bars = bars.copy()
    for ticker, day in SPIKES.items():
        row = (bars["ticker"] == ticker) & (bars[DATE] == pd.Timestamp(day))
        assert row.sum() == 1
        for column in ("open", "high", "low", "close"):
            bars.loc[row, column] *= 500.0
    return bars


@pytest.fixture(scope="module")
def store(demo_universe, tmp_path_factory):
    path = tmp_path_factory.mktemp("spiked") / "store"
    bars = with_spikes(demo_universe.bars)
    BarStore(path).write(bars, demo_universe.universe, rows_per_file=20_000)
    return path


@pytest.fixture(scope="module")
def result(store, settings):
    return backtest(store, start=START, horizons=HORIZONS, settings=settings)


def test_each_date_is_the_scan_as_of_that_date(store, result, settings):
    days = result.dates
    spiked = [pd.Timestamp(d) for d in SPIKES.values()]
    after = [days[days.searchsorted(d) + 1] for d in spiked]
    for day in [days[0], days[len(days) // 2], days[-1], *spiked, *after]:
        scan = run_scan(store, as_of=day, settings=settings).table.sort_index()
        rows = result.panel[result.panel[DATE] == day].set_index(TICKER).sort_index()
        assert list(rows.index.astype(str)) == list(scan.index.astype(str)), day
        for column in SCORES:
            np.testing.assert_array_equal(
                rows[column].to_numpy(), scan[column].to_numpy(), err_msg=f"{column} {day}"
            )
        for column, theirs in LABELS.items():
            assert rows[column].astype(str).tolist() == scan[theirs].astype(str).tolist()
        np.testing.assert_array_equal(rows["close"].to_numpy(), scan["close"].to_numpy())


def test_bars_after_a_date_change_nothing_for_it(demo_universe, result, settings, tmp_path):
    cut = result.dates[len(result.dates) // 2]
    bars = with_spikes(demo_universe.bars)
    later = bars[DATE] > cut
    rng = np.random.default_rng(5)
    shock = rng.uniform(0.5, 1.5, int(later.sum()))
    for column in ("open", "high", "low", "close"):
        bars.loc[later, column] = bars.loc[later, column] * shock
    changed = tmp_path / "store"
    BarStore(changed).write(bars, demo_universe.universe, rows_per_file=20_000)
    other = backtest(changed, start=result.dates[0], end=cut, horizons=HORIZONS, settings=settings)
    mine = result.panel[result.panel[DATE] <= cut]
    columns = ["date", "ticker", *SCORES, "signal", "Tier", "merit_band"]
    as_text = dict.fromkeys(["ticker", "signal", "Tier", "merit_band"], str)
    pd.testing.assert_frame_equal(
        mine[columns].reset_index(drop=True).astype(as_text),
        other.panel[columns].astype(as_text),
    )


def test_forward_returns_enter_at_the_next_open_and_exit_at_the_close(demo_universe, result):
    bars = demo_universe.bars.set_index("ticker")
    row = result.panel[result.panel["exit_5d"] == "held"].iloc[100]
    mine = bars.loc[row["ticker"]].sort_values(DATE)
    after = mine[mine[DATE] > row[DATE]]
    days = result.dates
    exit_day = pd.DatetimeIndex(np.sort(demo_universe.bars[DATE].unique()))
    target = exit_day[exit_day.searchsorted(row[DATE]) + 5]
    exit_close = mine[mine[DATE] <= target]["close"].iloc[-1]
    assert row["fwd_5d"] == exit_close / after["open"].iloc[0] - 1.0
    assert len(days) > 0


def test_a_ticker_that_ends_inside_the_horizon_is_kept_and_flagged(result):
    panel = result.panel
    flagged = panel[panel["exit_21d"] == "delisted"]
    assert len(flagged) > 0, "the demo universe delists tickers"
    assert flagged["fwd_21d"].notna().all()
    # the same rows have their shorter horizons
    assert set(panel["exit_21d"].cat.categories) == set(EXITS)


def test_rows_without_a_future_have_no_return(result):
    panel = result.panel
    last = panel[panel[DATE] == result.dates[-1]]
    assert (last["exit_1d"] == "no_future").all() and last["fwd_1d"].isna().all()


def test_a_bad_print_is_the_newest_bar_on_its_own_date_only(result, demo_universe):
    bars = demo_universe.bars
    for ticker, day in SPIKES.items():
        day = pd.Timestamp(day)
        mine = result.panel[result.panel[TICKER] == ticker].set_index(DATE)["close"]
        raw = bars[(bars["ticker"] == ticker)].set_index(DATE)["close"]
        assert mine[day] == raw[day] * 500.0  # as of its date, nothing says it is wrong
        after = result.dates[result.dates.searchsorted(day) + 1]
        assert mine[after] == raw[after]  # the next bar exposes it


def test_a_shuffled_score_has_an_ic_inside_its_noise_band(result):
    """No skill, no signal: TechRating shuffled among each date's tickers has a mean rank IC
    within 1.96 Newey–West standard errors of zero (for 5 seeds, at most one outside, as
    chance allows), while the summary's IC of the real score is computed the same way."""
    from pipeline.alpha.evaluate import newey_west_se, rank_ic
    from pipeline.cross_section import Dates

    panel = result.panel
    dates = Dates.of(panel[DATE].to_numpy())
    ret = panel["fwd_5d"].to_numpy()
    outside = 0
    for seed in range(5):
        rng = np.random.default_rng(seed)
        shuffled = panel["TechRating"].to_numpy().copy()
        for lo, hi in zip(dates.starts[:-1], dates.starts[1:], strict=True):
            rows = dates.order[lo:hi]
            shuffled[rows] = rng.permutation(shuffled[rows])
        ic = rank_ic(dates, shuffled, ret)
        band = 1.96 * newey_west_se(ic.to_numpy(), 4)
        outside += abs(ic.mean()) > band
    assert outside <= 1
