"""Deterministic synthetic demo universe: realistic daily bars with deliberately planted mess.

Prices follow a one-factor-plus-sector model: daily log return = alpha + beta * market + sector +
idiosyncratic, where market and idiosyncratic shocks are Student-t (fat tails) with GARCH(1,1)
volatility clustering. The benchmark *is* the market factor. On top of the clean bars the
generator plants the mess real feeds have (late IPOs, delistings, halts, zero-volume days and
bad prints) and counts every planted item in :attr:`SyntheticUniverse.mess`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError
from pipeline.schema import DATE, DATE_DTYPE, TICKER, TICKER_DTYPE

TRADING_DAYS = 252
MIN_DAYS = 100
SHORT_HISTORY_ROWS = 60  # a "short history" has fewer rows than this
CAP_RANGE = (5e7, 2e12)  # market cap bounds, USD
MARKET_CAP_MEDIAN = 1.5e9
T_DF = 4  # Student-t degrees of freedom of the shocks
MAX_SHOCK = 8.0  # unit-variance shocks are clipped here ...
MAX_VARIANCE = 6.25  # ... and conditional variance here, so paths stay plausible

MARKET_DRIFT = np.log(1.08) / TRADING_DAYS
MARKET_VOL = 0.16 / np.sqrt(TRADING_DAYS)
SECTOR_VOL = 0.10 / np.sqrt(TRADING_DAYS)
MARKET_GARCH = (0.10, 0.88)  # (alpha, beta)
IDIO_GARCH = (0.06, 0.92)

BENCHMARK_START_PRICE = 450.0
BENCHMARK_TURNOVER = 0.06  # about 70M shares a day
BENCHMARK_MARKET_CAP = 6e11

IPO_SHARE = 0.08  # of stock tickers; includes the short histories
SHORT_HISTORY_SHARE = 0.03
DELISTED_SHARE = 0.03
HALTED_SHARE = 0.02
ZERO_VOLUME_RATE = 1e-4  # zero-volume rows per stock cell of the grid
BAD_PRINT_KINDS = (
    "non_positive_price",
    "non_finite_price",
    "high_below_low",
    "spike",
    "duplicate_date",
)


class Sector(NamedTuple):
    """A GICS sector: share of listed companies, volatility multiplier, industries."""

    name: str
    weight: float
    vol: float
    industries: tuple[str, ...]


SECTORS: tuple[Sector, ...] = (
    Sector(
        "Health Care",
        0.20,
        1.25,
        (
            "Biotechnology",
            "Pharmaceuticals",
            "Health Care Equipment & Supplies",
            "Health Care Providers & Services",
        ),
    ),
    Sector(
        "Financials", 0.17, 0.85, ("Banks", "Capital Markets", "Insurance", "Financial Services")
    ),
    Sector(
        "Information Technology",
        0.14,
        1.15,
        (
            "Software",
            "Semiconductors & Semiconductor Equipment",
            "IT Services",
            "Technology Hardware, Storage & Peripherals",
        ),
    ),
    Sector(
        "Industrials",
        0.13,
        0.90,
        ("Machinery", "Aerospace & Defense", "Ground Transportation", "Professional Services"),
    ),
    Sector(
        "Consumer Discretionary",
        0.11,
        1.10,
        (
            "Specialty Retail",
            "Hotels, Restaurants & Leisure",
            "Automobile Components",
            "Textiles, Apparel & Luxury Goods",
        ),
    ),
    Sector(
        "Real Estate",
        0.05,
        0.80,
        ("Residential REITs", "Industrial REITs", "Real Estate Management & Development"),
    ),
    Sector("Energy", 0.05, 1.15, ("Oil, Gas & Consumable Fuels", "Energy Equipment & Services")),
    Sector("Materials", 0.04, 1.00, ("Chemicals", "Metals & Mining", "Containers & Packaging")),
    Sector(
        "Communication Services",
        0.04,
        1.05,
        ("Media", "Entertainment", "Interactive Media & Services"),
    ),
    Sector("Consumer Staples", 0.04, 0.70, ("Food Products", "Beverages", "Household Products")),
    Sector("Utilities", 0.03, 0.60, ("Electric Utilities", "Multi-Utilities", "Water Utilities")),
)
BENCHMARK_SECTOR = ("ETF", "Index Fund")

_TICKER_LENGTH_P = (0.002, 0.02, 0.33, 0.55, 0.098)  # P(1..5 letters)
# fmt: off
_NAME_PREFIXES = (
    "American", "Atlantic", "Blue", "Central", "First", "Global", "Golden", "Great", "National",
    "New", "Northern", "Pacific", "Pinnacle", "Prime", "Royal", "Silver", "Southern", "Summit",
    "United", "Western",
)
_NAME_ROOTS = (
    "Acme", "Apex", "Arbor", "Beacon", "Cascade", "Cedar", "Crest", "Delta", "Eagle", "Falcon",
    "Frontier", "Granite", "Harbor", "Horizon", "Keystone", "Liberty", "Meridian", "Nova", "Orion",
    "Peak", "Pioneer", "Quantum", "Redwood", "Ridge", "River", "Sterling", "Titan", "Vertex",
    "Vista", "Zenith",
)
_NAME_SUFFIXES = (
    "Holdings", "Group", "Corp", "Inc", "Industries", "Technologies", "Partners", "Systems",
    "Brands", "Therapeutics", "Resources", "Capital",
)
# fmt: on


@dataclass(frozen=True)
class SyntheticUniverse:
    """A generated demo universe.

    Attributes
    ----------
    bars : long-format bars ``ticker, date, open, high, low, close, volume`` sorted by
        (ticker, date), dtypes per :mod:`pipeline.schema`.
    universe : one row per ticker: ``ticker, name, sector, industry, market_cap, is_benchmark``.
    mess : how many items of each kind of mess were planted.
    """

    bars: pd.DataFrame
    universe: pd.DataFrame
    mess: dict[str, int]


def generate_universe(
    n_tickers: int = 6000,
    n_days: int = 504,
    seed: int = 7,
    end: str | pd.Timestamp = "2026-11-20",
    benchmark: str = "SPY",
) -> SyntheticUniverse:
    """Generate ``n_tickers`` stocks plus ``benchmark`` over ``n_days`` business days.

    Parameters
    ----------
    n_tickers : number of stock tickers (the benchmark comes on top).
    n_days : business days of history, at least ``MIN_DAYS``.
    seed : seed of the generator; the same arguments always give identical frames.
    end : last business day of the history (a weekend rolls back to the Friday before; the
        time of day and time zone are dropped).
    benchmark : ticker of the benchmark index fund, which has the full history and no mess.

    Mess is planted at fixed rates (see the ``*_SHARE`` and ``*_RATE`` constants); bad prints
    each take a full-history stock of their own, so a universe of only a few dozen stocks
    may get fewer of them than the usual 2 to 12 per kind.

    Returns
    -------
    SyntheticUniverse
    """
    if isinstance(n_tickers, bool) or not isinstance(n_tickers, int) or n_tickers < 1:
        raise ConfigError(f"n_tickers must be a positive integer, got {n_tickers!r}")
    if isinstance(n_days, bool) or not isinstance(n_days, int) or n_days < MIN_DAYS:
        raise ConfigError(f"n_days must be an integer of at least {MIN_DAYS}, got {n_days!r}")
    if not benchmark:
        raise ConfigError("benchmark must be a non-empty ticker, e.g. 'SPY'")
    try:
        last = pd.Timestamp(end).tz_localize(None).normalize()
        dates = pd.bdate_range(end=last, periods=n_days)
    except (ValueError, TypeError):
        raise ConfigError(f"end must be a date such as '2026-11-20', got {end!r}") from None

    rng = np.random.default_rng(seed)
    tickers = np.sort(np.append(_tickers(rng, n_tickers, benchmark), benchmark))
    bench = int(np.searchsorted(tickers, benchmark))
    universe, params = _companies(rng, tickers, bench)
    prices = _prices(rng, params, n_days)
    present, lifecycle = _plant_lifecycle(rng, tickers.size, bench, n_days)
    bad_rows, duplicates = _plant_bad_rows(rng, prices, present, params.cap, bench)
    bars = _bars(prices, present, duplicates, dates, tickers)
    return SyntheticUniverse(bars, universe, lifecycle | bad_rows)


class _Params(NamedTuple):
    """Per-ticker model parameters, arrays in ticker order, rates per day."""

    cap: np.ndarray
    sector: np.ndarray  # index into SECTORS; len(SECTORS) for the benchmark
    vol: np.ndarray  # target total volatility
    idio_vol: np.ndarray
    beta: np.ndarray
    alpha: np.ndarray
    start: np.ndarray  # price before the first day
    dollar_volume: np.ndarray  # typical traded value per day, USD


class _Duplicates(NamedTuple):
    """Near-copies to add after the (ticker, day) cells they copy, with their values."""

    ticker: np.ndarray
    day: np.ndarray
    values: dict[str, np.ndarray]


def _tickers(rng: np.random.Generator, n: int, benchmark: str) -> np.ndarray:
    """``n`` unique symbols of 1–5 uppercase letters, none equal to ``benchmark``."""
    found = np.empty(0, dtype=object)
    while found.size < n:
        m = 2 * n + 64
        lengths = rng.choice(5, size=m, p=_TICKER_LENGTH_P) + 1
        letters = rng.integers(ord("A"), ord("Z") + 1, size=(m, 5), dtype=np.uint8)
        letters[np.arange(5) >= lengths[:, None]] = 0  # NUL padding drops out of "S5"
        drawn = letters.view("S5").ravel().astype(str)
        found = pd.unique(np.concatenate([found, drawn[drawn != benchmark]]))
    return found[:n].astype(str)


def _companies(
    rng: np.random.Generator, tickers: np.ndarray, bench: int
) -> tuple[pd.DataFrame, _Params]:
    """The universe frame and the model parameters of every ticker, in ``tickers`` order."""
    n = tickers.size
    weights = np.array([s.weight for s in SECTORS])
    sector = rng.choice(len(SECTORS), size=n, p=weights / weights.sum())
    n_industries = np.array([len(s.industries) for s in SECTORS])
    industries = np.array([i for s in SECTORS for i in s.industries], dtype=object)
    industry = (np.cumsum(n_industries) - n_industries)[sector]
    industry += (rng.random(n) * n_industries[sector]).astype(industry.dtype)
    name = (
        rng.choice(_NAME_PREFIXES, n)
        + " "
        + rng.choice(_NAME_ROOTS, n)
        + " "
        + rng.choice(_NAME_SUFFIXES, n)
    ).astype(object)
    cap = _market_caps(rng, n)
    size = np.log(cap / CAP_RANGE[0]) / np.log(CAP_RANGE[1] / CAP_RANGE[0])  # 0 small .. 1 mega
    annual_vol = (0.75 - 0.5 * size) * np.array([s.vol for s in SECTORS])[sector]
    vol = np.clip(annual_vol * rng.lognormal(0.0, 0.2, n), 0.15, 0.90) / np.sqrt(TRADING_DAYS)
    beta = np.clip(rng.normal(1.0, 0.3, n), 0.3, 1.8)
    alpha = rng.normal(0.0, 0.06, n) / TRADING_DAYS
    start = np.exp(rng.uniform(np.log(2.0), np.log(500.0), n))
    turnover = rng.lognormal(np.log(0.006), 0.5, n)  # share of shares outstanding per day

    # the benchmark is the market factor itself: no sector factor, no idiosyncratic risk
    sector_name = np.array([s.name for s in SECTORS], dtype=object)[sector]
    industry_name = industries[industry]
    name[bench] = f"{tickers[bench]} {BENCHMARK_SECTOR[1]}"
    sector_name[bench], industry_name[bench] = BENCHMARK_SECTOR
    sector[bench] = len(SECTORS)
    cap[bench], vol[bench], beta[bench], alpha[bench] = BENCHMARK_MARKET_CAP, MARKET_VOL, 1.0, 0.0
    start[bench] = BENCHMARK_START_PRICE
    idio_vol = np.sqrt(
        np.maximum(vol**2 - (beta * MARKET_VOL) ** 2 - SECTOR_VOL**2, (0.35 * vol) ** 2)
    )
    idio_vol[bench] = 0.0
    universe = pd.DataFrame(
        {
            TICKER: pd.array(tickers, dtype=TICKER_DTYPE),
            "name": pd.array(name, dtype="str"),
            "sector": pd.array(sector_name, dtype="str"),
            "industry": pd.array(industry_name, dtype="str"),
            "market_cap": cap,
            "is_benchmark": np.arange(n) == bench,
        }
    )
    turnover[bench] = BENCHMARK_TURNOVER
    return universe, _Params(cap, sector, vol, idio_vol, beta, alpha, start, cap * turnover)


def _market_caps(rng: np.random.Generator, n: int) -> np.ndarray:
    """Log-normal market caps truncated to ``CAP_RANGE`` (by rejection, so no pile-up)."""
    caps = np.empty(0)
    while caps.size < n:
        draw = rng.lognormal(np.log(MARKET_CAP_MEDIAN), 1.6, n)
        caps = np.concatenate([caps, draw[(draw >= CAP_RANGE[0]) & (draw <= CAP_RANGE[1])]])
    return caps[:n]


def _shocks(rng: np.random.Generator, n_days: int, n_series: int) -> np.ndarray:
    """Unit-variance Student-t shocks, days × series, clipped at ``MAX_SHOCK``."""
    z = rng.standard_t(T_DF, size=(n_days, n_series))
    z *= np.sqrt((T_DF - 2) / T_DF)
    return np.clip(z, -MAX_SHOCK, MAX_SHOCK, out=z)


def _garch(shocks: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Scale unit-variance shocks (days × series) in place into GARCH(1,1) innovations.

    The innovations keep (about) unit unconditional variance; the conditional variance is
    capped at ``MAX_VARIANCE``. The loop runs over days, each step vectorized over all series.
    """
    omega = 1.0 - alpha - beta
    var = np.ones(shocks.shape[1])
    for t in range(1, shocks.shape[0]):
        var = np.minimum(omega + alpha * np.square(shocks[t - 1]) + beta * var, MAX_VARIANCE)
        shocks[t] *= np.sqrt(var)
    return shocks


def _prices(rng: np.random.Generator, p: _Params, n_days: int) -> dict[str, np.ndarray]:
    """Clean OHLCV matrices, tickers × days, for every ticker including the benchmark."""
    n = p.cap.size
    vol = p.vol[:, None]
    market = MARKET_DRIFT + MARKET_VOL * _garch(_shocks(rng, n_days, 1), *MARKET_GARCH)[:, 0]
    sector = SECTOR_VOL * rng.standard_normal((len(SECTORS) + 1, n_days))
    sector[-1] = 0.0  # the benchmark's "sector": none

    ret = np.ascontiguousarray(_garch(_shocks(rng, n_days, n), *IDIO_GARCH).T)
    ret *= p.idio_vol[:, None]
    ret += p.beta[:, None] * market
    ret += sector[p.sector]
    ret += p.alpha[:, None]

    log_close = np.log(p.start)[:, None] + np.cumsum(ret, axis=1)
    gap = 0.25 * ret + 0.1 * vol * rng.standard_normal((n, n_days))  # overnight part of the move
    open_ = np.exp(log_close - ret + gap)
    close = np.exp(log_close)
    del log_close, gap
    reach = 0.6 * np.sqrt((vol**2 + ret**2) / 2)  # intraday excursion beyond open and close
    high = np.maximum(open_, close) * np.exp(reach * np.abs(rng.standard_normal((n, n_days))))
    low = np.minimum(open_, close) * np.exp(-reach * np.abs(rng.standard_normal((n, n_days))))
    del reach

    log_volume = 0.35 * rng.standard_normal((n, n_days)) + 0.25 * (np.abs(ret) / vol - 0.8)
    volume = p.dollar_volume[:, None] / close * np.exp(log_volume, out=log_volume)
    volume = np.maximum(np.rint(volume, out=volume), 100.0, out=volume)
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def _plant_lifecycle(
    rng: np.random.Generator, n: int, bench: int, n_days: int
) -> tuple[np.ndarray, dict[str, int]]:
    """Which (ticker, day) cells exist, with late IPOs, delistings and halts on disjoint stocks.

    Returns the tickers × days presence mask and the counts planted.
    """
    n_stocks = n - 1
    n_ipo, n_short, n_delisted, n_halted = (
        round(share * n_stocks)
        for share in (IPO_SHARE, SHORT_HISTORY_SHARE, DELISTED_SHARE, HALTED_SHARE)
    )
    n_short = min(n_short, n_ipo)
    stocks = rng.permutation(np.delete(np.arange(n), bench))
    ipo, delisted, halted, _ = np.split(stocks, np.cumsum([n_ipo, n_delisted, n_halted]))

    first = np.zeros(n, dtype=np.int64)
    first[ipo] = rng.integers(1, n_days - SHORT_HISTORY_ROWS + 1, ipo.size)
    first[ipo[:n_short]] = n_days - rng.integers(10, SHORT_HISTORY_ROWS, n_short)
    stop = np.full(n, n_days, dtype=np.int64)
    stop[delisted] = rng.integers(SHORT_HISTORY_ROWS, n_days, delisted.size)
    day = np.arange(n_days)
    present = (day >= first[:, None]) & (day < stop[:, None])
    halt_start = rng.integers(n_days // 4, 3 * n_days // 4, halted.size)[:, None]
    halt_stop = halt_start + rng.integers(3, 16, halted.size)[:, None]
    present[halted] &= (day < halt_start) | (day >= halt_stop)
    return present, {
        "ipo_tickers": int(ipo.size),
        "short_history_tickers": n_short,
        "delisted_tickers": int(delisted.size),
        "halted_tickers": int(halted.size),
    }


def _plant_bad_rows(
    rng: np.random.Generator,
    prices: dict[str, np.ndarray],
    present: np.ndarray,
    cap: np.ndarray,
    bench: int,
) -> tuple[dict[str, int], _Duplicates]:
    """Plant zero-volume days and bad prints in place on full-history stocks.

    Each bad print gets a stock of its own and a day with neighbours on both sides;
    zero-volume days go to the smallest third of the other stocks, so no two kinds of mess
    touch. Duplicate rows are returned for :func:`_bars` to insert.
    """
    n, n_days = present.shape
    candidates = np.flatnonzero(present.all(axis=1))
    candidates = rng.permutation(candidates[candidates != bench])
    per_kind = int(np.clip(round((n - 1) / 750), 2, 12))
    bad = candidates[: per_kind * len(BAD_PRINT_KINDS)]
    kind = np.arange(bad.size) % len(BAD_PRINT_KINDS)
    bad_day = rng.integers(1, n_days - 1, bad.size)
    cells = {k: (bad[kind == j], bad_day[kind == j]) for j, k in enumerate(BAD_PRINT_KINDS)}
    ohlc = [prices[c] for c in ("open", "high", "low", "close")]
    open_, high, low, close = ohlc

    close[cells["non_positive_price"]] = 0.0
    i, t = cells["non_finite_price"]
    column = rng.integers(0, len(ohlc), i.size)
    for c, values in enumerate(ohlc):
        values[i[column == c], t[column == c]] = np.nan
    i, t = cells["high_below_low"]
    high[i, t], low[i, t] = low[i, t], high[i, t]
    i, t = cells["spike"]
    factor = rng.uniform(5.0, 20.0, i.size)
    for values in ohlc:
        values[i, t] *= factor
    i, t = cells["duplicate_date"]
    nudge = 1.0 + rng.uniform(-0.005, 0.005, i.size)
    copies = {c: prices[c][i, t] * nudge for c in ("open", "high", "low", "close")}
    copies["volume"] = np.rint(prices["volume"][i, t] * rng.uniform(0.3, 1.0, i.size))

    others = candidates[bad.size :]
    small = others[np.argsort(cap[others], kind="stable")[: max(others.size // 3, 1)]]
    n_zero = min(max(round(ZERO_VOLUME_RATE * (n - 1) * n_days), 1), small.size * n_days)
    cell = rng.choice(small.size * n_days, size=n_zero, replace=False)
    i, t = small[cell // n_days], cell % n_days
    for values in (open_, high, low):  # nothing traded: a flat bar at the close
        values[i, t] = close[i, t]
    prices["volume"][i, t] = 0.0

    counts = {"zero_volume_rows": n_zero} | {k: int(v[0].size) for k, v in cells.items()}
    return counts, _Duplicates(*cells["duplicate_date"], copies)


def _bars(
    prices: dict[str, np.ndarray],
    present: np.ndarray,
    duplicates: _Duplicates,
    dates: pd.DatetimeIndex,
    tickers: np.ndarray,
) -> pd.DataFrame:
    """Flatten the matrices (emptying ``prices``) into long bars and insert the duplicates.

    Ticker-major flattening of tickers sorted by name gives bars sorted by (ticker, date); each
    duplicate goes right after the row it copies.
    """
    rows = present.sum(axis=1)
    row_start = np.cumsum(rows) - rows
    after = row_start[duplicates.ticker] + duplicates.day + 1  # duplicated cells have every day
    code = np.repeat(np.arange(tickers.size), rows)
    code = np.insert(code, after, code[after - 1])
    day = np.broadcast_to(np.arange(present.shape[1]), present.shape)[present]
    day = np.insert(day, after, day[after - 1])
    columns = {
        c: np.insert(prices.pop(c)[present], after, duplicates.values[c])
        for c in ("open", "high", "low", "close", "volume")
    }
    return pd.DataFrame(
        {
            TICKER: pd.Index(tickers, dtype=TICKER_DTYPE).take(code).array,
            DATE: dates.astype(DATE_DTYPE).take(day).array,
            **columns,
        },
        copy=False,
    )
