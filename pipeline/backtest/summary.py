"""What a backtest found: per horizon, how each label, tier, band, decile and sector did.

Returns are the panel's forward returns (:mod:`pipeline.backtest.panel`), gross and net of
costs (``2 · costs_bps`` per round trip). Means are of returns winsorised per date at the
1st/99th percentile, as in :mod:`pipeline.alpha.evaluate` (real feeds have bad prints worth
thousands of per cent); medians and hit rates (share of returns > 0) are of the raw returns.
Net means, medians and excess returns are the gross ones minus the costs. Excess returns
subtract, per date, the equal-weight mean of every row with a return (the universe) or the
benchmark's own forward return. A spread is, per date, the mean of the top group minus the
mean of the bottom group; its t-statistic uses a Newey–West standard error with ``h − 1``
lags, as neighbouring dates' returns overlap.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.alpha.evaluate import json_safe, newey_west_se, rank_ic
from pipeline.backtest.run import Backtest
from pipeline.cross_section import Dates
from pipeline.schema import DATE, TICKER

GROUPS = ("signal", "Tier", "merit_band", "decile", "Sector")
# (top, bottom) of the groupings with an order; the sectors have none
SPREADS = {
    "signal": ("Strong Long", "Short"),
    "Tier": ("CORE", "WATCH"),
    "merit_band": ("A+", "D"),
    "decile": ("10", "1"),
}
IC_SCORES = ("TechRating", "composite_score", "AlphaScore")
# with a blended model, the composite score as it would be without it
WITHOUT_ALPHA = "composite_without_alpha"
EVENTS = ("Strong Long", "Short")
EVENT_WINDOW = (-5, 21)  # sessions around an entry
SCOREBOARD_HORIZON = 10
TOP_N = 10  # names held per label by the growth-of-$10,000 portfolios
START_CAPITAL = 10_000.0


@dataclass(frozen=True)
class Grouping:
    """A label column as integer codes (−1: none) and the names of the codes."""

    codes: np.ndarray
    names: list[str]

    @classmethod
    def of(cls, column: pd.Series) -> Grouping:
        values = column.astype("category")
        codes = values.cat.codes.to_numpy().astype(np.int64)
        return cls(codes, [str(c) for c in values.cat.categories])


class Panel:
    """The panel's columns the statistics read, grouped once."""

    def __init__(self, result: Backtest) -> None:
        panel = result.panel
        self.result = result
        self.dates = Dates.of(panel[DATE].to_numpy())
        self.tickers = Grouping.of(panel[TICKER])
        rating = panel["TechRating"].to_numpy(dtype="float64")
        decile = np.ceil(self.dates.each(rating, _first_pct) * 10)
        decile = np.where(np.isnan(decile), -1, np.clip(decile, 1, 10) - 1).astype(np.int64)
        self.groups = {g: Grouping.of(panel[g]) for g in GROUPS if g != "decile"}
        self.groups["decile"] = Grouping(decile, [str(d) for d in range(1, 11)])

    def matrix(self, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """A per-row column as a dense (dates × tickers) array."""
        out = np.full((len(self.dates), len(self.tickers.names)), fill)
        out[self.dates.codes, self.tickers.codes] = values
        return out


def _first_pct(x: np.ndarray) -> np.ndarray:
    """Percentile of each value by its position in sorted order (ties broken by order, like
    pandas ``rank(method="first", pct=True)``); NaN stays NaN."""
    out = np.full(len(x), np.nan)
    present = np.flatnonzero(~np.isnan(x))
    order = present[np.argsort(x[present], kind="stable")]
    out[order] = np.arange(1, len(order) + 1) / max(len(order), 1)
    return out


@dataclass(frozen=True)
class Summary:
    """The summary document (``summary.json``) and the series its plots draw."""

    document: dict[str, Any]
    daily_ic: dict[tuple[str, int], pd.Series]  # (score, horizon) → IC per date
    curves: dict[str, dict[str, Any]]  # signal → growth of $10,000: equity, drawdown


def summarize(result: Backtest) -> Summary:
    """Every statistic of the module docstring over the backtest's panel."""
    data = Panel(result)
    panel = result.panel
    cost = 2.0 * result.costs_bps / 1e4
    daily_ic: dict[tuple[str, int], pd.Series] = {}
    scores = [s for s in (*IC_SCORES, WITHOUT_ALPHA) if s in panel]
    horizons = {}
    for h in result.horizons:
        gross = panel[f"fwd_{h}d"].to_numpy(dtype="float64")
        spy = result.benchmark[f"fwd_{h}d"].to_numpy()[_session_of(result, data)]
        clipped = data.dates.clip_quantiles(gross)
        gross_stats, net_stats = _returns(data, gross, clipped, spy, h, cost)
        for score in scores:
            ic = rank_ic(data.dates, panel[score].to_numpy(), gross)
            daily_ic[(score, h)] = ic.set_axis(pd.DatetimeIndex(ic.index))
        horizons[str(h)] = {
            "gross": gross_stats,
            "net": net_stats,
            "ic": {s: _ic_stats(daily_ic[(s, h)], h) for s in scores},
            "exits": {str(k): int(v) for k, v in panel[f"exit_{h}d"].value_counts().items()},
        }
    dates = result.dates
    curves = growth(data)
    document = json_safe(
        {
            "store": result.store,
            "data_version": result.data_version,
            "start": f"{dates[0]:%Y-%m-%d}",
            "end": f"{dates[-1]:%Y-%m-%d}",
            "sessions": len(dates),
            "scored_sessions": len(data.dates),  # sessions with a row (a scan needs history)
            "rows": len(panel),
            "tickers": int(panel[TICKER].nunique()),
            "costs_bps": result.costs_bps,
            "trade_style": result.trade_style,
            "model": result.model,
            "unscored": {c: int(result.statuses[c].sum()) for c in ("short_history", "stale")},
            "horizons": horizons,
            "turnover": _turnover(data),
            "events": events(data),
            "growth": {k: v["summary"] for k, v in curves.items()},
            "scoreboard": scoreboard(data),
            "timings": result.timings,
        }
    )
    return Summary(document=document, daily_ic=daily_ic, curves=curves)


def _session_of(result: Backtest, data: Panel) -> np.ndarray:
    """Each row's position in the backtest's sessions (the benchmark's rows)."""
    return np.searchsorted(result.dates.to_numpy(), data.dates.days)[data.dates.codes]


def _returns(
    data: Panel, ret: np.ndarray, clipped: np.ndarray, spy: np.ndarray, horizon: int, cost: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The returns' statistics by every grouping, and the spreads: gross, and net of the
    round trip's ``cost`` (which comes off every mean and median and decides the hit rate)."""
    has = ~np.isnan(ret)
    universe = data.dates.mean(clipped)[data.dates.codes]
    ascending = np.flatnonzero(has)
    ascending = ascending[np.argsort(ret[ascending])]  # sorted once for every median
    sums_of = {
        "mean": clipped,
        "excess_universe": clipped - universe,
        "excess_spy": clipped - spy,
        "hit_gross": (ret > 0).astype("float64"),
        "hit_net": (ret > cost).astype("float64"),
    }
    gross: dict[str, Any] = {"by": {}, "spreads": {}}
    net: dict[str, Any] = {"by": {}, "spreads": {}}
    rows = {stat: values[has] for stat, values in sums_of.items()}
    spy_known = ~np.isnan(rows["excess_spy"])
    rows["excess_spy"] = np.where(spy_known, rows["excess_spy"], 0.0)
    for name, group in data.groups.items():
        codes = group.codes[has] + 1  # 0: no group
        size = len(group.names) + 1

        def total(weights: np.ndarray | None, codes: np.ndarray = codes, size: int = size):
            return np.bincount(codes, weights=weights, minlength=size)[1:]

        count = total(None)
        medians = _medians(ret[ascending], group.codes[ascending], size - 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = {stat: total(values) / count for stat, values in rows.items()}
            means["excess_spy"] = total(rows["excess_spy"]) / total(spy_known.astype("float64"))
        for out, shift, hits in ((gross, 0.0, "hit_gross"), (net, cost, "hit_net")):
            out["by"][name] = {
                label: {
                    "count": int(count[k]),
                    "mean": means["mean"][k] - shift,
                    "median": medians[k] - shift,
                    "hit_rate": means[hits][k],
                    "excess_universe": means["excess_universe"][k] - shift,
                    "excess_spy": means["excess_spy"][k] - shift,
                }
                for k, label in enumerate(group.names)
                if count[k]
            }
    for name, (top, bottom) in SPREADS.items():
        group = data.groups[name]
        entry: dict[str, Any] = {"top": top, "bottom": bottom, "n_dates": 0}
        if top in group.names and bottom in group.names:
            means = _per_date_means(data, group, clipped)  # the costs cancel in a spread
            spread = means[:, group.names.index(top)] - means[:, group.names.index(bottom)]
            spread = spread[~np.isnan(spread)]
            se = newey_west_se(spread, horizon - 1)
            entry.update(
                mean=float(spread.mean()) if len(spread) else None,
                t_nw=float(spread.mean() / se) if se and se > 0 else None,
                n_dates=len(spread),
            )
        gross["spreads"][name] = net["spreads"][name] = entry
    return gross, net


def _medians(ascending: np.ndarray, codes: np.ndarray, size: int) -> np.ndarray:
    """Per code 0…size−1, the median of the ``ascending`` values with it (NaN without any;
    codes below 0 are ignored). A stable sort by code keeps each code's values in order."""
    order = np.argsort(codes.astype(np.int16), kind="stable")  # a radix sort: small keys
    ordered = ascending[order]
    starts = np.searchsorted(codes[order], np.arange(size + 1))
    out = np.full(size, np.nan)
    for k in range(size):
        lo, hi = starts[k], starts[k + 1]
        if hi > lo:
            mid = (lo + hi - 1) / 2
            out[k] = (ordered[int(np.floor(mid))] + ordered[int(np.ceil(mid))]) / 2
    return out


def _per_date_means(data: Panel, group: Grouping, values: np.ndarray) -> np.ndarray:
    """(dates × groups) means of ``values`` (NaN where a date has none of a group)."""
    ok = ~np.isnan(values) & (group.codes >= 0)
    size = len(group.names)
    key = data.dates.codes[ok] * size + group.codes[ok]
    cells = len(data.dates) * size
    sums = np.bincount(key, weights=values[ok], minlength=cells)
    counts = np.bincount(key, minlength=cells)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts).reshape(len(data.dates), size)


def _ic_stats(ic: pd.Series, horizon: int) -> dict[str, Any]:
    """Mean of the per-date IC, its Newey–West t (``h − 1`` lags), dates and hit rate."""
    if ic.empty:
        return {"mean": None, "t_nw": None, "n_dates": 0, "hit_rate": None}
    se = newey_west_se(ic.to_numpy(), horizon - 1)
    return {
        "mean": float(ic.mean()),
        "t_nw": float(ic.mean() / se) if se and se > 0 else None,
        "n_dates": len(ic),
        "hit_rate": float((ic > 0).mean()),
    }


def _turnover(data: Panel) -> dict[str, Any]:
    """Mean share of names new from one date to the next: in the composite's top decile,
    and with each signal."""
    score = data.result.panel["composite_score"].to_numpy(dtype="float64")
    top = data.matrix(data.dates.each(score, _first_pct) > 0.9, fill=0.0) > 0
    out: dict[str, Any] = {"top_decile_composite": _new_share(top)}
    signal = data.groups["signal"]
    labels = data.matrix(signal.codes, fill=-1)
    out["signals"] = {name: _new_share(labels == k) for k, name in enumerate(signal.names)}
    return out


def _new_share(held: np.ndarray) -> float | None:
    """Mean over dates (after the first) of the share of held names not held the date before."""
    size = held[1:].sum(axis=1)
    new = (held[1:] & ~held[:-1]).sum(axis=1)
    days = size > 0
    return float((new[days] / size[days]).mean()) if days.any() else None


def events(data: Panel) -> dict[str, Any]:
    """The event study: mean cumulative return over the equal-weight universe from
    ``EVENT_WINDOW[0]`` to ``EVENT_WINDOW[1]`` sessions around each entry into a label (the
    ticker's label changed to it from the session before); offset 0 is the return of the
    session whose scan gave the label."""
    close = data.matrix(data.result.panel["close"].to_numpy(dtype="float64"))
    with np.errstate(invalid="ignore", divide="ignore"):
        daily = np.vstack([np.full((1, close.shape[1]), np.nan), close[1:] / close[:-1] - 1.0])
    with _all_nan_is_nan():
        excess = daily - np.nanmean(daily, axis=1, keepdims=True)
    signal = data.groups["signal"]
    labels = data.matrix(signal.codes, fill=-1)
    lo, hi = EVENT_WINDOW
    offsets = np.arange(lo, hi + 1)
    out = {}
    for label in EVENTS:
        if label not in signal.names:
            continue
        code = signal.names.index(label)
        entered = (labels[1:] == code) & (labels[:-1] != code)
        d, t = np.nonzero(entered)
        d = d + 1
        rows = d[:, None] + offsets[None, :]
        inside = (rows >= 0) & (rows < len(excess))
        values = np.where(inside, excess[np.clip(rows, 0, len(excess) - 1), t[:, None]], np.nan)
        with _all_nan_is_nan():
            mean = np.nanmean(values, axis=0) if len(d) else np.full(len(offsets), np.nan)
        out[label] = {
            "entries": len(d),
            "offsets": offsets.tolist(),
            "mean_excess": mean.tolist(),
            "cumulative_excess": np.nancumsum(mean).tolist(),
        }
    return out


@contextlib.contextmanager
def _all_nan_is_nan() -> Iterator[None]:
    """Means of all-NaN slices are NaN, which is the answer: no warning for them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def growth(data: Panel, top_n: int = TOP_N) -> dict[str, dict[str, Any]]:
    """ "Growth of $10,000" per signal: each session hold the label's ``top_n`` names by
    composite score, equal weight, from the next open to the next close (``fwd_1d``), net of
    a round trip's costs every session. The equity curve and its summary per label."""
    result = data.result
    if 1 not in result.horizons:
        return {}
    panel = result.panel
    ret = panel["fwd_1d"].to_numpy(dtype="float64")
    score = panel["composite_score"].to_numpy(dtype="float64")
    signal = data.groups["signal"]
    ok = np.flatnonzero(~np.isnan(ret) & (signal.codes >= 0))
    day, label = data.dates.codes[ok], signal.codes[ok]
    order = ok[np.lexsort((-score[ok], label, day))]
    group = data.dates.codes[order] * len(signal.names) + signal.codes[order]
    first = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    place = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
    held = order[place < top_n]
    cells = len(data.dates) * len(signal.names)
    key = data.dates.codes[held] * len(signal.names) + signal.codes[held]
    sums = np.bincount(key, weights=ret[held], minlength=cells)
    counts = np.bincount(key, minlength=cells)
    with np.errstate(invalid="ignore", divide="ignore"):
        daily = (sums / counts).reshape(len(data.dates), len(signal.names))
    cost = 2.0 * result.costs_bps / 1e4
    index = pd.DatetimeIndex(data.dates.days)
    out = {}
    for k, name in enumerate(signal.names):
        r = pd.Series(np.nan_to_num(daily[:, k] - cost, nan=0.0), index=index)
        equity = START_CAPITAL * (1.0 + r).cumprod()
        drawdown = equity / equity.cummax() - 1.0
        years = len(r) / 252.0
        out[name] = {
            "equity": equity,
            "drawdown": drawdown,
            "summary": {
                "final": float(equity.iloc[-1]),
                "cagr": float((equity.iloc[-1] / START_CAPITAL) ** (1 / years) - 1.0),
                "max_drawdown": float(drawdown.min()),
                "sessions_held": int((counts.reshape(len(data.dates), -1)[:, k] > 0).sum()),
            },
        }
    return out


def scoreboard(data: Panel, horizon: int = SCOREBOARD_HORIZON) -> dict[str, Any]:
    """The base rates the app shows: per signal and per tier, the share of ``horizon``-day
    returns above zero and their (winsorised) mean, gross, measured over the backtest."""
    panel = data.result.panel
    column = f"fwd_{horizon}d"
    if column not in panel:
        return {}
    ret = panel[column].to_numpy(dtype="float64")
    clipped = data.dates.clip_quantiles(ret)
    has = ~np.isnan(ret)
    days = data.dates.days[np.unique(data.dates.codes[has])] if has.any() else []
    out: dict[str, Any] = {
        "horizon": horizon,
        "from": f"{pd.Timestamp(days[0]):%Y-%m-%d}" if len(days) else None,
        "to": f"{pd.Timestamp(days[-1]):%Y-%m-%d}" if len(days) else None,
    }
    for name in ("signal", "Tier"):
        group = data.groups[name]
        rows = has & (group.codes >= 0)
        size = len(group.names)
        count = np.bincount(group.codes[rows], minlength=size)
        wins = np.bincount(group.codes[rows], weights=(ret[rows] > 0), minlength=size)
        sums = np.bincount(group.codes[rows], weights=clipped[rows], minlength=size)
        out[name] = {
            label: {
                "count": int(count[k]),
                "win_rate": float(wins[k] / count[k]),
                "mean_return": float(sums[k] / count[k]),
            }
            for k, label in enumerate(group.names)
            if count[k]
        }
    return out
