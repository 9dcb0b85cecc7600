"""The backtest: every past daily scan of a store as one panel, and what followed each.

For every session ``D`` from ``start`` to ``end`` the panel holds the rows ``technic scan
--as-of D`` publishes (same universe rules, hygiene, features and scores; computed from the
whole history at once, see :mod:`pipeline.backtest.panel`) and each row's forward returns.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipeline import hygiene, scoring
from pipeline.alpha.labels import calendar
from pipeline.backtest.panel import (
    EXITS,
    STATUSES,
    BarDays,
    Window,
    forward_returns,
    panel_rows,
)
from pipeline.config import Settings, TradeStyle, get_settings
from pipeline.cross_section import Dates
from pipeline.errors import ConfigError, StoreError
from pipeline.frame import plan_reads
from pipeline.schema import DATE, TICKER, parse_day
from pipeline.storage import Location
from pipeline.store import BarStore, Generation
from pipeline.vocabulary import TRADE_STYLES

Progress = Callable[[str, int, int], None]
HORIZONS: tuple[int, ...] = (1, 5, 10, 21)
STAGES = ("read", "panel", "scores")
# The panel's columns besides the forward returns (panel.parquet; the names).
COLUMNS: tuple[str, ...] = (
    DATE, TICKER, "Sector", "close", "TechRating", "signal", "Tier", "ICS", "merit_band",
    "merit_score", "composite_score", "AlphaScore",
)  # fmt: skip


@dataclass
class Backtest:
    """A finished backtest: the panel, the benchmark's forward returns per session, how many
    tickers each session left unscored and why, and the timings."""

    panel: pd.DataFrame
    benchmark: pd.DataFrame  # per session: fwd_{h}d of the benchmark (NaN when unknown)
    statuses: pd.DataFrame  # per session: tickers ok / short_history / stale
    horizons: tuple[int, ...]
    costs_bps: float
    trade_style: TradeStyle
    store: str
    data_version: str
    model: dict[str, Any] = field(default_factory=dict)  # as a snapshot's ``model`` entry
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def dates(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.statuses.index)


def backtest(
    store: str | os.PathLike[str] | None = None,
    *,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    horizons: tuple[int, ...] = HORIZONS,
    costs_bps: float = 10.0,
    trade_style: str | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> Backtest:
    """Every daily scan of ``store`` from ``start`` to ``end`` (default: the whole store) with
    its ``horizons``-session forward returns. Bad options raise a one-line error."""
    settings = settings or get_settings()
    report = progress or (lambda stage, done, total: None)
    style = TRADE_STYLES.parse(trade_style) if trade_style else settings.trade_style
    horizons = _horizons(horizons)
    if not (math.isfinite(costs_bps) and 0 <= costs_bps < 10_000):
        raise ConfigError(
            f"costs must be a number of basis points in [0, 10000), got {costs_bps!r}"
        )
    url = Location.parse(store).url if store is not None else settings.store_url
    generation = BarStore.open(url).current()
    if not generation.files:
        raise StoreError(f"the store at {url} holds no bars")
    from pipeline.scan import alpha_model, model_entry, read_benchmark

    model, why = alpha_model(settings, generation)  # the scan's rules
    alpha = None
    if model is not None:
        from pipeline.alpha.inference import LatestAlpha  # XGBoost: only with a model

        alpha = LatestAlpha.of(model)
    timings: dict[str, float] = {}

    tic = time.perf_counter()
    frames = _read(generation, report)
    timings["read"] = time.perf_counter() - tic

    tic = time.perf_counter()
    sessions = calendar(np.concatenate([f[DATE].to_numpy() for f in frames]))
    first, stop = _range(sessions, start, end)
    window = Window(
        sessions=sessions,
        start=first,
        stop=stop,
        horizons=horizons,
        min_history=settings.min_history,
        stale_days=settings.stale_days,
        benchmark=settings.benchmark,
        alpha=alpha,
    )
    closes = read_benchmark(generation, settings.benchmark, None, None)
    parts = _map(frames, lambda bars: panel_rows(bars, window, closes), report)
    rows = _concat([p for p, _ in parts], pd.Index(generation.tickers))
    counts = sum(c for _, c in parts)
    timings["panel"] = time.perf_counter() - tic

    tic = time.perf_counter()
    entry = model_entry(model, why, settings, generation)
    if model is not None:
        entry["in_sample"] = (
            model.card["data"]["last_date"] >= f"{pd.Timestamp(window.days[0]):%Y-%m-%d}"
        )
    panel = _scored(rows, generation, style, horizons, model, entry["alpha_weight"])
    report("scores", 1, 1)
    timings["scores"] = time.perf_counter() - tic
    return Backtest(
        panel=panel,
        benchmark=_benchmark_returns(frames, window),
        statuses=pd.DataFrame(
            counts, index=pd.DatetimeIndex(window.days, name=DATE), columns=STATUSES
        ),
        horizons=horizons,
        costs_bps=float(costs_bps),
        trade_style=style,
        store=url,
        data_version=generation.data_version,
        model=entry,
        timings={k: round(v, 3) for k, v in timings.items()},
    )


def _horizons(horizons: tuple[int, ...]) -> tuple[int, ...]:
    chosen = tuple(sorted({int(h) for h in horizons}))
    if not chosen or chosen[0] < 1 or chosen[-1] > 252:
        raise ConfigError(f"horizons must be sessions from 1 to 252, got {list(horizons)}")
    return chosen


def _range(sessions: np.ndarray, start, end) -> tuple[int, int]:
    """Indices of the first and one past the last session to scan."""
    if len(sessions) == 0:
        raise StoreError("the store has no sessions to backtest")
    lo = parse_day(start, "start date") if start is not None else pd.Timestamp(sessions[0])
    hi = parse_day(end, "end date") if end is not None else pd.Timestamp(sessions[-1])
    if hi < lo:
        raise ConfigError(f"the end {hi:%Y-%m-%d} is before the start {lo:%Y-%m-%d}")
    first = int(np.searchsorted(sessions, lo.to_datetime64(), side="left"))
    stop = int(np.searchsorted(sessions, hi.to_datetime64(), side="right"))
    if stop <= first:
        have = f"{pd.Timestamp(sessions[0]):%Y-%m-%d} to {pd.Timestamp(sessions[-1]):%Y-%m-%d}"
        raise ConfigError(
            f"no session from {lo:%Y-%m-%d} to {hi:%Y-%m-%d}; the store has sessions {have}"
        )
    return first, stop


def _read(generation: Generation, report: Progress) -> list[pd.DataFrame]:
    reads = plan_reads(generation)
    return _map(reads.specs, reads.read, report, stage="read")


def _map(items: list, work: Callable, report: Progress, stage: str = "panel") -> list:
    """``work`` over ``items`` on a thread per core (the kernels release the GIL), in order."""
    out: list = [None] * len(items)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        pending = {pool.submit(work, item): i for i, item in enumerate(items)}
        for done, future in enumerate(as_completed(pending), start=1):
            out[pending[future]] = future.result()
            report(stage, done, len(items))
    return out


def _concat(parts: list[pd.DataFrame], tickers: pd.Index) -> pd.DataFrame:
    """The partitions' rows as one frame, sorted by date then ticker, ``ticker`` a
    categorical of the store's tickers."""
    codes = np.concatenate(
        [tickers.get_indexer(p[TICKER].cat.categories)[p[TICKER].cat.codes] for p in parts]
    )
    rows = pd.concat([p.drop(columns=TICKER) for p in parts], ignore_index=True)
    order = np.lexsort((codes, rows[DATE].to_numpy()))
    rows = rows.take(order).reset_index(drop=True)
    rows.insert(1, TICKER, pd.Categorical.from_codes(codes[order], categories=tickers))
    return rows


def _scored(
    rows: pd.DataFrame,
    generation: Generation,
    style: TradeStyle,
    horizons: tuple[int, ...],
    model: Any = None,
    weight: float = 0.0,
) -> pd.DataFrame:
    """The scan's scores of every row, ranked within its date (:func:`scoring.labels`); with
    a model, its AlphaScore (the same per-date scaling as a scan's) and the composite score
    without it too (``composite_without_alpha``)."""
    codes = rows[TICKER].cat.codes.to_numpy()
    universe = generation.universe  # its columns are those the reference table has
    known = pd.Series(np.nan, index=universe.index)
    market_cap = universe.get("market_cap", known).to_numpy(dtype="float64")
    sectors = universe.get("sector", known).fillna("Unknown").astype("category")
    rows = rows.assign(market_cap=market_cap[codes])
    dates = Dates.of(rows[DATE].to_numpy())
    alpha = None
    if model is not None:
        from pipeline.alpha.inference import alpha_score

        raw = rows["alpha_raw"].to_numpy(dtype="float64")
        scaled = dates.each(raw, lambda x: alpha_score(pd.Series(x)).to_numpy())
        alpha = pd.Series(scaled, index=rows.index)
    core = scoring.labels(rows, style=style, alpha=alpha, alpha_weight=weight, by=dates)
    out = pd.DataFrame(
        {
            DATE: rows[DATE],
            TICKER: rows[TICKER],
            "Sector": pd.Categorical.from_codes(
                sectors.cat.codes.to_numpy()[codes], categories=sectors.cat.categories
            ),
            "close": rows["close"],
            "TechRating": core.rating,
            "signal": core.signal.astype("category"),
            "Tier": core.tier.astype("category"),
            "ICS": core.ics,
            "merit_band": core.merit_band.astype("category"),
            "merit_score": core.merit_score,
            "composite_score": core.composite,
            "AlphaScore": np.nan if alpha is None else alpha,
        }
    )
    if alpha is not None and weight > 0:
        out["composite_without_alpha"] = scoring.composite(core.rating, None, 0.0, dates).round(2)
    for h in horizons:
        out[f"fwd_{h}d"] = rows[f"fwd_{h}d"]
        out[f"exit_{h}d"] = rows[f"exit_{h}d"]
    return out


def _benchmark_returns(frames: list[pd.DataFrame], window: Window) -> pd.DataFrame:
    """The benchmark's forward returns per session of the window (NaN without it)."""
    days = pd.DatetimeIndex(window.days, name=DATE)
    out = pd.DataFrame(index=days)
    bars = [f[f.index == window.benchmark] for f in frames]
    bars = [b for b in bars if len(b)]
    if not bars:
        for h in window.horizons:
            out[f"fwd_{h}d"] = np.nan
        return out
    index = BarDays.of(hygiene.clean(pd.concat(bars)))
    session = np.arange(window.start, window.stop)
    seg = np.zeros(len(session), dtype=np.int64)
    for h, (ret, code) in forward_returns(index, seg, session, window).items():
        out[f"fwd_{h}d"] = np.where(code == EXITS.index("held"), ret, np.nan)
    return out
