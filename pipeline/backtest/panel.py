"""One partition of bars → the backtest's rows: every (ticker, session) a scan as of that
session would score, with the scan's inputs and the forward returns that followed.

A row as of session ``D`` is evaluated at the ticker's last clean bar on or before ``D``
(:class:`pipeline.segments.Tails`), with the same kernels and formulas as the scan, so it
holds the numbers ``technic scan --as-of D`` computes; the statuses are the scan's too
(``short_history`` before ``stale``). The one piece of hygiene that looks ahead is the price
spike check, which judges a close by both neighbours: the last bar of a history cut at ``D``
has only one and is judged by its own prices. So for a ticker with a dropped spike, the dates
on which that bar was its newest are computed again from its bars cut there
(:func:`_cut_at_spikes`), as the scan would see them.

Forward return for horizon ``h``: enter at the open of the ticker's first clean bar after
``D``, exit at the close of its last clean bar on or before the ``h``-th session after ``D``.
``exit_{h}d`` says how it ended:

``held``       the ticker traded through the horizon
``delisted``   its bars end inside the horizon: it exits at its last close
``no_entry``   no bar between ``D`` and the exit session (it ended or halted at ``D``): no return
``no_future``  the store ends before the exit session: no return yet
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline import hygiene
from pipeline.features import Extra, compute_indicators, features_at
from pipeline.schema import DATE, TICKER
from pipeline.segments import Benchmark, Tails, segment_bounds
from pipeline.universe_rules import STATUSES, status_codes

# The scan's features the scores read (pipeline.scoring), plus the close.
INPUTS: tuple[str, ...] = (
    "last_date", "bars", "close", "ret_5d", "ret_21d", "ret_63d", "ret_126d", "ret_252d",
    "dist_sma20", "dist_sma50", "dist_sma200", "sma50_vs_sma200", "rsi14", "atr14",
    "atr14_pct", "adx14", "plus_di14", "minus_di14", "mfi14", "avg_dollar_volume_20d", "rs_63d",
)  # fmt: skip
EXITS: tuple[str, ...] = ("held", "delisted", "no_entry", "no_future")


@dataclass(frozen=True)
class Window:
    """What the backtest asks of every partition."""

    sessions: np.ndarray  # every session of the store, datetime64[ns] ascending
    start: int  # index in ``sessions`` of the first date to scan
    stop: int  # one past the last
    horizons: tuple[int, ...]
    min_history: int
    stale_days: int
    benchmark: str  # its rows are not scored
    alpha: Extra | None = None  # the model's raw score at given bars (scan's LatestAlpha)

    @property
    def days(self) -> np.ndarray:
        return self.sessions[self.start : self.stop]


def panel_rows(
    bars: pd.DataFrame, window: Window, benchmark: Benchmark | None
) -> tuple[pd.DataFrame, np.ndarray]:
    """The scored rows of one partition (``date``, ``ticker`` as a categorical of the
    partition's tickers, :data:`INPUTS`, ``fwd_{h}d``, ``exit_{h}d``), and per date of the
    window how many of its tickers had each status of :data:`STATUSES` (an array
    ``(len(days), len(STATUSES))``)."""
    bars = bars[bars.index != window.benchmark]
    cleaned = hygiene.clean(bars)
    tickers = cleaned.tickers[cleaned.kept]
    counts = np.zeros((len(window.days), len(STATUSES)), dtype=np.int64)
    if len(tickers) == 0:
        return _empty(window), counts
    seg, day = _pairs(cleaned.arrays[DATE], cleaned.bounds, window.days)
    replaced, cut = _cut_at_spikes(bars, cleaned, tickers, window)
    if replaced is not None:
        keep = ~np.isin(seg * len(window.days) + day, replaced)
        seg, day = seg[keep], day[keep]
    index = BarDays.of(cleaned)
    rows = _rows(index, seg, day, window, benchmark, counts)
    if cut is not None:
        cut_rows = _rows(BarDays.of(cut.cleaned), cut.segment, cut.day, window, benchmark, counts)
        cut_rows["segment"] = cut.real[cut_rows["segment"].to_numpy()]
        rows = pd.concat([rows, cut_rows], ignore_index=True)
    real = rows.pop("segment").to_numpy()
    rows.insert(1, TICKER, pd.Categorical.from_codes(real, categories=tickers))
    session = window.start + rows.pop("day").to_numpy()
    for h, (ret, code) in forward_returns(index, real, session, window).items():
        rows[f"fwd_{h}d"] = ret
        rows[f"exit_{h}d"] = pd.Categorical.from_codes(code, EXITS)
    order = np.lexsort((rows[DATE].to_numpy(), real))
    return rows.iloc[order].reset_index(drop=True), counts


def _empty(window: Window) -> pd.DataFrame:
    columns: dict[str, object] = {
        DATE: np.array([], dtype="datetime64[ns]"),
        TICKER: pd.Categorical([], categories=[]),
    }
    columns.update({c: np.array([], dtype="float64") for c in INPUTS})
    for h in window.horizons:
        columns[f"fwd_{h}d"] = np.array([], dtype="float64")
        columns[f"exit_{h}d"] = pd.Categorical([], categories=EXITS)
    return pd.DataFrame(columns)


def _pairs(dates: np.ndarray, bounds: np.ndarray, days: np.ndarray) -> tuple[np.ndarray, ...]:
    """Every (segment, day) with a bar of the segment on or before the day."""
    first = dates[bounds[:-1]]
    seg = np.repeat(np.arange(len(bounds) - 1), len(days))
    day = np.tile(np.arange(len(days)), len(bounds) - 1)
    started = days[day] >= first[seg]
    return seg[started], day[started]


@dataclass(frozen=True)
class BarDays:
    """Clean bars searchable by (segment, day), built once per partition: dates ascend inside
    each segment, so all segments are searched together on one (segment, day) key."""

    cleaned: hygiene.Cleaned
    key: np.ndarray
    origin: int
    span: int

    @classmethod
    def of(cls, cleaned: hygiene.Cleaned) -> BarDays:
        day = cleaned.arrays[DATE].astype("datetime64[D]").view(np.int64)  # daily bars
        origin = int(day.min()) if len(day) else 0
        span = int(day.max()) - origin + 1 if len(day) else 1
        bounds = cleaned.bounds
        owner = np.repeat(np.arange(len(bounds) - 1, dtype=np.int64), np.diff(bounds))
        return cls(cleaned, owner * span + (day - origin), origin, span)

    def as_of(self, seg: np.ndarray, when: np.ndarray) -> np.ndarray:
        """Position of each segment's last bar on or before ``when`` (its first bar − 1 if
        none)."""
        asked = when.astype("datetime64[D]").view(np.int64) - self.origin
        query = seg.astype(np.int64) * self.span + np.clip(asked, -1, self.span - 1)
        return np.searchsorted(self.key, query, side="right") - 1


def _rows(
    bars: BarDays,
    seg: np.ndarray,
    day: np.ndarray,
    window: Window,
    benchmark: Benchmark | None,
    counts: np.ndarray,
) -> pd.DataFrame:
    """The scan's statuses of the (segment, day) pairs, counted into ``counts``, and the
    inputs of those it scores."""
    arrays, bounds = bars.cleaned.arrays, bars.cleaned.bounds
    days = window.days[day]
    pos = bars.as_of(seg, days)
    first = bounds[seg]
    status = status_codes(
        pos - first + 1,
        arrays[DATE][pos],
        days,
        min_history=window.min_history,
        stale_days=window.stale_days,
    )
    np.add.at(counts, (day, status), 1)
    ok = status == 0
    seg, day, pos, first = seg[ok], day[ok], pos[ok], first[ok]
    if not ok.any():
        return pd.DataFrame({"segment": seg, "day": day, DATE: window.days[day]})
    ind = compute_indicators(arrays, bounds)
    feats = features_at(arrays, ind, Tails(first=first, last=pos), benchmark)
    columns = {"segment": seg, "day": day, DATE: window.days[day], **{c: feats[c] for c in INPUTS}}
    if window.alpha is not None:  # at each distinct bar once (days in a gap share one)
        bars_at, back = np.unique(pos, return_inverse=True)
        columns["alpha_raw"] = window.alpha(arrays, bounds, ind, bars_at)["alpha_raw"][back]
    return pd.DataFrame(columns)


def forward_returns(
    bars: BarDays, seg: np.ndarray, session: np.ndarray, window: Window
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per horizon of the window, the forward return of each (segment, session index) pair
    and how its trade ended (codes into :data:`EXITS`; see the module docstring)."""
    arrays, bounds = bars.cleaned.arrays, bars.cleaned.bounds
    dates, sessions = arrays[DATE], window.sessions
    entry = bars.as_of(seg, sessions[session]) + 1
    end = bounds[seg + 1]
    safe_entry = np.minimum(entry, len(dates) - 1)
    out = {}
    for horizon in window.horizons:
        target = session + horizon
        future = target < len(sessions)
        exit_day = sessions[np.minimum(target, len(sessions) - 1)]
        leave = bars.as_of(seg, exit_day)
        traded = (entry < end) & (leave >= entry)
        with np.errstate(divide="ignore", invalid="ignore"):
            ret = arrays["close"][np.maximum(leave, 0)] / arrays["open"][safe_entry] - 1.0
        code = np.select([~future, ~traded, dates[end - 1] < exit_day], [3, 2, 1], 0)
        out[horizon] = np.where(future & traded, ret, np.nan), code.astype(np.int8)
    return out


@dataclass(frozen=True)
class _Cut:
    """Histories cut at spikes: one segment per cut, the real segment each belongs to, and
    the (cut segment, day) pairs it answers for."""

    cleaned: hygiene.Cleaned
    real: np.ndarray
    segment: np.ndarray
    day: np.ndarray


def _cut_at_spikes(
    bars: pd.DataFrame, cleaned: hygiene.Cleaned, tickers: pd.Index, window: Window
) -> tuple[np.ndarray | None, _Cut | None]:
    """For tickers with a dropped price spike: each raw bar dropped in the full history and
    the days on which it was the newest bar (from its date to the next bar's), as
    ``segment · len(days) + day`` keys, and the histories cut at those bars (see the module
    docstring). None, None when no ticker of the partition had a spike."""
    spiked = np.flatnonzero(cleaned.dropped["price_spike"][cleaned.kept] > 0)
    if len(spiked) == 0:
        return None, None
    days = window.days
    pieces, real, segment, day, replaced = [], [], [], [], []
    clean_dates = cleaned.arrays[DATE]
    raw_bounds = segment_bounds(bars.index)
    raw_start = dict(zip(bars.index[raw_bounds[:-1]], raw_bounds[:-1], strict=True))
    for s in spiked:
        lo = raw_start[tickers[s]]
        raw = bars.iloc[lo : lo + int(cleaned.rows_in[cleaned.kept[s]])].sort_values(
            DATE, kind="stable"
        )
        raw_dates = raw[DATE].to_numpy()
        kept = clean_dates[cleaned.bounds[s] : cleaned.bounds[s + 1]]
        following = np.append(raw_dates[1:], np.datetime64("2262-01-01"))
        for r in np.flatnonzero(~np.isin(raw_dates, kept)):
            hit = np.flatnonzero((days >= raw_dates[r]) & (days < following[r]))
            if len(hit) == 0:
                continue
            name = f"{len(pieces):08d}"  # pieces keep their order when sorted by name
            pieces.append(raw.iloc[: r + 1].set_axis(pd.Index([name] * (r + 1), name=TICKER)))
            real.append(s)
            segment.append(np.full(len(hit), len(pieces) - 1))
            day.append(hit)
            replaced.append(s * len(days) + hit)
    if not pieces:
        return None, None
    cut = hygiene.clean(pd.concat(pieces))
    piece, piece_day = np.concatenate(segment), np.concatenate(day)
    kept = np.isin(piece, cut.kept)  # a piece whose every bar is dropped has no row to give
    return np.concatenate(replaced), _Cut(
        cleaned=cut,
        real=np.asarray(real)[cut.kept],
        segment=np.searchsorted(cut.kept, piece[kept]),
        day=piece_day[kept],
    )
