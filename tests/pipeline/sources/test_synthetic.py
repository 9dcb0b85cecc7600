"""Tests of the synthetic demo universe generator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import ConfigError
from pipeline.schema import BAR_COLUMNS, BAR_DTYPES, TICKER, TICKER_DTYPE, validate_bars
from pipeline.sources.synthetic import (
    BAD_PRINT_KINDS,
    CAP_RANGE,
    SECTORS,
    SHORT_HISTORY_ROWS,
    SyntheticUniverse,
    generate_universe,
)

GICS_SECTORS = {
    "Information Technology",
    "Health Care",
    "Financials",
    "Consumer Discretionary",
    "Communication Services",
    "Industrials",
    "Consumer Staples",
    "Energy",
    "Utilities",
    "Real Estate",
    "Materials",
}
PRICES = ["open", "high", "low", "close"]
N_DAYS = 300
END = pd.Timestamp("2026-11-20")


@pytest.fixture(scope="module")
def small() -> SyntheticUniverse:
    return generate_universe(n_tickers=200, n_days=N_DAYS, seed=11)


@pytest.fixture(scope="module")
def long() -> SyntheticUniverse:
    """Few tickers, ten years: enough days for the statistics of the return process."""
    return generate_universe(n_tickers=40, n_days=2520, seed=3)


def bad_print_rows(bars: pd.DataFrame) -> pd.Series:
    """Rows with a non-positive or missing price, or high below low."""
    prices = bars[PRICES]
    return (prices <= 0).any(axis=1) | prices.isna().any(axis=1) | (bars.high < bars.low)


def spike_rows(bars: pd.DataFrame) -> pd.Series:
    """Rows whose close jumps more than fourfold and falls back below a quarter the next day."""
    close = bars.close.where(~bad_print_rows(bars) & ~bars.duplicated([TICKER, "date"]))
    by_ticker = close.groupby(bars.ticker)
    return (close / by_ticker.shift(1) > 4) & (by_ticker.shift(-1) / close < 0.25)


def log_returns(bars: pd.DataFrame, ticker: str) -> pd.Series:
    return np.log(bars.loc[bars.ticker == ticker, "close"]).diff().dropna()


def clean_tickers(u: SyntheticUniverse) -> list[str]:
    """Stocks with a full history and no bad prints, spikes or zero-volume days."""
    bars = u.bars
    messy = bad_print_rows(bars) | spike_rows(bars) | bars.duplicated([TICKER, "date"])
    dirty = set(bars.ticker[messy | (bars.volume == 0)])
    rows = bars.groupby(TICKER).size()
    full = set(rows.index[rows == bars.date.nunique()])
    stocks = u.universe.ticker[~u.universe.is_benchmark]
    return [t for t in stocks if t in full and t not in dirty]


# --- determinism -----------------------------------------------------------------------------


def test_same_arguments_give_identical_frames(small: SyntheticUniverse) -> None:
    again = generate_universe(n_tickers=200, n_days=N_DAYS, seed=11)
    pd.testing.assert_frame_equal(again.bars, small.bars)
    pd.testing.assert_frame_equal(again.universe, small.universe)
    assert again.mess == small.mess


def test_another_seed_gives_other_data(small: SyntheticUniverse) -> None:
    other = generate_universe(n_tickers=200, n_days=N_DAYS, seed=12)
    assert set(other.universe.ticker) != set(small.universe.ticker)
    spy = [u.bars.loc[u.bars.ticker == "SPY", "close"].to_numpy() for u in (small, other)]
    assert not np.allclose(*spy)


# --- the frame contract ----------------------------------------------------------------------


def test_bars_follow_the_contract(small: SyntheticUniverse) -> None:
    bars = small.bars
    assert list(bars.columns) == [TICKER, *BAR_COLUMNS]
    assert bars[TICKER].dtype == TICKER_DTYPE
    assert bars.dtypes.drop(TICKER).to_dict() == BAR_DTYPES
    assert pd.MultiIndex.from_frame(bars[[TICKER, "date"]]).is_monotonic_increasing
    validate_bars(bars.set_index(TICKER))


def test_dates_are_business_days_ending_at_end(small: SyntheticUniverse) -> None:
    expected = pd.bdate_range(end=END, periods=N_DAYS)
    assert set(small.bars.date) == set(expected)
    assert small.bars.date.max() == END


def test_end_is_normalized() -> None:
    u = generate_universe(n_tickers=5, n_days=120, end="2024-03-15 15:30")
    assert u.bars.date.max() == pd.Timestamp("2024-03-15")


def test_volume_is_whole_non_negative_shares(small: SyntheticUniverse) -> None:
    volume = small.bars.volume
    assert (volume >= 0).all()
    assert (volume == np.round(volume)).all()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_tickers": 0},
        {"n_tickers": 2.5},
        {"n_days": 10},
        {"end": "not a date"},
        {"benchmark": ""},
    ],
)
def test_bad_arguments_raise_config_error(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        generate_universe(**{"n_tickers": 5, "n_days": 120, **kwargs})


# --- tickers and the universe ----------------------------------------------------------------


def test_tickers_are_unique_short_uppercase_symbols(small: SyntheticUniverse) -> None:
    tickers = small.universe.ticker
    assert len(small.universe) == 201
    assert tickers.is_unique
    assert tickers.str.fullmatch(r"[A-Z]{1,5}").all()
    assert (tickers == "SPY").sum() == 1
    assert list(tickers) == sorted(tickers)
    assert list(tickers) == list(small.bars.ticker.unique())


def test_benchmark_name_never_drawn_for_a_stock() -> None:
    taken = generate_universe(n_tickers=50, n_days=120, seed=1).universe.ticker.iloc[0]
    u = generate_universe(n_tickers=50, n_days=120, seed=1, benchmark=taken)
    assert len(u.universe) == 51
    assert (u.universe.ticker == taken).sum() == 1
    assert u.universe.loc[u.universe.ticker == taken, "is_benchmark"].item()


def test_universe_columns(small: SyntheticUniverse) -> None:
    universe = small.universe
    assert list(universe.columns) == [
        "ticker",
        "name",
        "sector",
        "industry",
        "market_cap",
        "is_benchmark",
    ]
    assert universe.ticker.dtype == TICKER_DTYPE
    assert universe.market_cap.dtype == np.float64
    assert universe.is_benchmark.dtype == bool
    assert universe.name.str.len().gt(0).all()


def test_sectors_and_industries_are_gics() -> None:
    universe = generate_universe(n_tickers=3000, n_days=120).universe
    stocks = universe[~universe.is_benchmark]
    shares = stocks.sector.value_counts(normalize=True)
    assert set(shares.index) == GICS_SECTORS
    assert shares.max() > 3 * shares.min()  # realistic, unequal weights
    industries = {s.name: set(s.industries) for s in SECTORS}
    for sector, group in stocks.groupby("sector"):
        assert set(group.industry) == industries[sector]
        assert 2 <= len(industries[sector]) <= 4
    spy = universe[universe.is_benchmark].iloc[0]
    assert (spy.ticker, spy.sector, spy.industry) == ("SPY", "ETF", "Index Fund")


def test_market_caps_are_log_normal_in_range() -> None:
    universe = generate_universe(n_tickers=3000, n_days=120).universe
    caps = universe.market_cap[~universe.is_benchmark]
    assert caps.between(*CAP_RANGE).all()
    assert 1e9 <= caps.median() <= 2e9
    assert caps.max() > 1e11 and caps.min() < 2e8


# --- the benchmark ---------------------------------------------------------------------------


def test_benchmark_has_full_clean_history(small: SyntheticUniverse) -> None:
    spy = small.bars[small.bars.ticker == "SPY"]
    assert list(spy.date) == list(pd.bdate_range(end=END, periods=N_DAYS))
    assert not bad_print_rows(spy).any()
    assert (spy.low <= spy[["open", "close"]].min(axis=1)).all()
    assert (spy.high >= spy[["open", "close"]].max(axis=1)).all()
    assert spy.volume.median() > 2e7 and spy.volume.min() > 1e6
    assert np.log(spy.close).diff().abs().max() < 0.25  # no spikes


def test_benchmark_drift_and_volatility_are_index_like(long: SyntheticUniverse) -> None:
    r = log_returns(long.bars, "SPY")
    assert 0.10 < r.std() * np.sqrt(252) < 0.22
    assert -0.05 < r.mean() * 252 < 0.20


# --- the mess --------------------------------------------------------------------------------


def test_every_kind_of_mess_is_planted(small: SyntheticUniverse) -> None:
    assert set(small.mess) == {
        "ipo_tickers",
        "short_history_tickers",
        "delisted_tickers",
        "halted_tickers",
        "zero_volume_rows",
        *BAD_PRINT_KINDS,
    }
    assert all(isinstance(n, int) and n > 0 for n in small.mess.values()), small.mess


def test_default_sized_mess_counts() -> None:
    mess = generate_universe(n_tickers=6000, n_days=120).mess
    assert mess["ipo_tickers"] == 480 and mess["delisted_tickers"] == 180
    assert 20 <= sum(mess[k] for k in BAD_PRINT_KINDS) <= 60  # a few dozen bad prints


def test_planted_bad_prints_are_in_the_bars(small: SyntheticUniverse) -> None:
    bars, mess = small.bars, small.mess
    prices = bars[PRICES]
    assert (prices <= 0).any(axis=1).sum() == mess["non_positive_price"]
    assert prices.isna().any(axis=1).sum() == mess["non_finite_price"]
    assert (bars.high < bars.low).sum() == mess["high_below_low"]
    assert bars.duplicated([TICKER, "date"]).sum() == mess["duplicate_date"]
    assert (bars.volume == 0).sum() == mess["zero_volume_rows"]


def test_zero_volume_days_are_flat_bars(small: SyntheticUniverse) -> None:
    flat = small.bars[small.bars.volume == 0]
    assert (flat[PRICES].nunique(axis=1) == 1).all()


def test_spikes_revert_the_next_day(small: SyntheticUniverse) -> None:
    spikes = small.bars[spike_rows(small.bars)]
    assert len(spikes) == small.mess["spike"]
    assert spikes.ticker.is_unique
    assert (spikes.high >= spikes.low).all() and (spikes[PRICES] > 0).all().all()


def test_rows_without_bad_prints_are_consistent(small: SyntheticUniverse) -> None:
    bars = small.bars
    bad = bad_print_rows(bars)
    kinds = ("non_positive_price", "non_finite_price", "high_below_low")
    assert bad.sum() == sum(small.mess[k] for k in kinds)
    good = bars[~bad]
    body_low = good[["open", "close"]].min(axis=1)
    body_high = good[["open", "close"]].max(axis=1)
    assert (good[PRICES] > 0).all().all()
    assert (good.low <= body_low).all() and (body_high <= good.high).all()


def test_lifecycle_mess_shapes_the_histories(small: SyntheticUniverse) -> None:
    dates = pd.bdate_range(end=END, periods=N_DAYS)
    spans = (
        small.bars.drop_duplicates([TICKER, "date"])
        .groupby(TICKER)
        .date.agg(["min", "max", "size"])
    )
    mess = small.mess
    assert (spans["min"] > dates[0]).sum() == mess["ipo_tickers"]
    assert (spans["size"] < SHORT_HISTORY_ROWS).sum() == mess["short_history_tickers"]
    assert (spans["max"] < dates[-1]).sum() == mess["delisted_tickers"]
    expected = spans.apply(lambda s: len(dates[(dates >= s["min"]) & (dates <= s["max"])]), axis=1)
    missing = expected - spans["size"]
    halted = missing[missing > 0]
    assert len(halted) == mess["halted_tickers"]
    assert halted.between(3, 15).all()
    assert mess["short_history_tickers"] < mess["ipo_tickers"]


# --- the return process ----------------------------------------------------------------------


def test_stock_volatility_is_realistic_and_falls_with_size() -> None:
    u = generate_universe(n_tickers=400, n_days=504, seed=5)
    tickers = clean_tickers(u)
    vol = pd.Series({t: log_returns(u.bars, t).std() * np.sqrt(252) for t in tickers})
    assert vol.between(0.10, 2.0).all()
    assert vol.quantile(0.05) > 0.15 and vol.quantile(0.95) < 1.0
    caps = u.universe.set_index(TICKER).market_cap[vol.index]
    assert np.corrcoef(np.log(caps), vol)[0, 1] < -0.2


def test_market_volatility_clusters(long: SyntheticUniverse) -> None:
    r = log_returns(long.bars, "SPY")
    squared, absolute = r**2, r.abs()
    assert np.mean([squared.autocorr(lag) for lag in range(1, 11)]) > 0
    assert np.mean([absolute.autocorr(lag) for lag in range(1, 11)]) > 0.05
    shuffled = absolute.sample(frac=1.0, random_state=0).reset_index(drop=True)
    assert abs(np.mean([shuffled.autocorr(lag) for lag in range(1, 11)])) < 0.03


def test_idiosyncratic_returns_have_fat_tails(long: SyntheticUniverse) -> None:
    market = log_returns(long.bars, "SPY").to_numpy()
    kurtosis = []
    for ticker in clean_tickers(long):  # full histories: aligned day by day with the market
        r = log_returns(long.bars, ticker).to_numpy()
        beta = np.cov(r, market)[0, 1] / market.var(ddof=1)
        kurtosis.append(pd.Series(r - beta * market).kurt())
    assert len(kurtosis) >= 10
    assert np.median(kurtosis) > 1


def test_volume_rises_with_absolute_return(small: SyntheticUniverse) -> None:
    bars = small.bars[small.bars.ticker.isin(clean_tickers(small))]
    abs_ret = np.log(bars.close).groupby(bars.ticker).diff().abs()
    log_volume = np.log(bars.volume)
    corr = (
        pd.DataFrame({"r": abs_ret, "v": log_volume, "t": bars.ticker})
        .dropna()
        .groupby("t")
        .apply(lambda g: g.r.corr(g.v))
    )
    assert corr.median() > 0.1
