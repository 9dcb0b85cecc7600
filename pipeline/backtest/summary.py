"""What a backtest found: per horizon, how each label, tier, band, decile and sector did.

Returns are the panel's forward returns (:mod:`pipeline.backtest.panel`), gross and net of
costs (``2 · costs_bps`` per round trip). Means are of returns winsorised per date at the
1st/99th percentile, as in :mod:`pipeline.alpha.evaluate` (real feeds have bad prints worth
thousands of per cent); medians and hit rates (share of returns > 0) are of the raw returns.
Excess returns subtract, per date, the equal-weight mean of every row with a return (the
universe) or the benchmark's own forward return. A spread is, per date, the mean of the top
group minus the mean of the bottom group; its t-statistic uses a Newey–West standard error
with ``h − 1`` lags, as neighbouring dates' returns overlap.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipeline.alpha.evaluate import daily_ic, json_safe, newey_west_se, turnover, winsorize
from pipeline.backtest.run import Backtest
from pipeline.schema import DATE, TICKER

GROUPS = ("signal", "Tier", "merit_band", "decile", "Sector")
# (top, bottom) of the groupings with an order; the sectors have none
SPREADS = {
    "signal": ("Strong Long", "Short"),
    "Tier": ("CORE", "WATCH"),
    "merit_band": ("A+", "D"),
    "decile": (10, 1),
}
IC_SCORES = ("TechRating", "composite_score", "AlphaScore")
EVENTS = ("Strong Long", "Short")
EVENT_WINDOW = (-5, 21)  # sessions around an entry
SCOREBOARD_HORIZON = 10
TOP_N = 10  # names held per label by the growth-of-$10,000 portfolios
START_CAPITAL = 10_000.0


def summarize(result: Backtest) -> dict[str, Any]:
    """The summary document (``summary.json``): see the module docstring."""
    panel = result.panel
    day = pd.factorize(panel[DATE], sort=True)[0]
    frame = panel.assign(decile=_deciles(panel["TechRating"], day))
    cost = 2.0 * result.costs_bps / 1e4
    horizons = {}
    for h in result.horizons:
        gross = frame[f"fwd_{h}d"].to_numpy()
        spy = result.benchmark[f"fwd_{h}d"].reindex(panel[DATE]).to_numpy()
        horizons[str(h)] = {
            "gross": _returns(frame, day, gross, spy, h),
            "net": _returns(frame, day, gross - cost, spy, h),
            "ic": {s: _ic(day, frame[s].to_numpy(), gross, h) for s in IC_SCORES},
            "exits": {str(k): int(v) for k, v in frame[f"exit_{h}d"].value_counts().items()},
        }
    dates = result.dates
    return json_safe(
        {
            "store": result.store,
            "data_version": result.data_version,
            "start": f"{dates[0]:%Y-%m-%d}",
            "end": f"{dates[-1]:%Y-%m-%d}",
            "sessions": len(dates),
            "rows": len(panel),
            "tickers": int(panel[TICKER].nunique()),
            "costs_bps": result.costs_bps,
            "trade_style": result.trade_style,
            "unscored": {c: int(result.statuses[c].sum()) for c in ("short_history", "stale")},
            "horizons": horizons,
            "turnover": _turnover(frame, day),
            "events": events(result),
            "growth": {k: v["summary"] for k, v in growth(result).items()},
            "scoreboard": scoreboard(result),
            "timings": result.timings,
        }
    )


def _deciles(score: pd.Series, day: np.ndarray) -> np.ndarray:
    """Per date, the score's decile 1 (lowest) … 10; 0 where the score is missing."""
    pct = score.groupby(day).rank(pct=True, method="first").to_numpy()
    return np.where(np.isnan(pct), 0, np.clip(np.ceil(pct * 10), 1, 10)).astype(np.int8)


def _returns(
    frame: pd.DataFrame, day: np.ndarray, ret: np.ndarray, spy: np.ndarray, horizon: int
) -> dict[str, Any]:
    has = ~np.isnan(ret)
    clipped = _winsorized(day, ret)
    table = pd.DataFrame({"day": day, "r": ret, "w": clipped})
    universe = table.groupby("day")["w"].transform("mean").to_numpy()
    table["over_universe"] = clipped - universe
    table["over_spy"] = clipped - spy
    by = {}
    for group in GROUPS:
        keys = frame[group].to_numpy()
        stats = (
            table[has]
            .groupby(keys[has], observed=True)
            .agg(
                count=("r", "size"),
                mean=("w", "mean"),
                median=("r", "median"),
                hit_rate=("r", lambda r: float((r > 0).mean())),
                excess_universe=("over_universe", "mean"),
                excess_spy=("over_spy", "mean"),
            )
        )
        if group == "decile":
            stats = stats.drop(index=0, errors="ignore")
        by[group] = {str(k): row.to_dict() for k, row in stats.iterrows()}
    spreads = {}
    for group, (top, bottom) in SPREADS.items():
        keys = frame[group].to_numpy()
        per_day = table.assign(k=keys)[has].groupby(["day", "k"], observed=True)["w"].mean()
        wide = per_day.unstack("k")
        if top not in wide or bottom not in wide:
            spreads[group] = {"top": str(top), "bottom": str(bottom), "n_dates": 0}
            continue
        spread = (wide[top] - wide[bottom]).dropna()
        se = newey_west_se(spread.to_numpy(), horizon - 1)
        spreads[group] = {
            "top": str(top),
            "bottom": str(bottom),
            "mean": float(spread.mean()) if len(spread) else None,
            "t_nw": float(spread.mean() / se) if se and se > 0 else None,
            "n_dates": len(spread),
        }
    return {"by": by, "spreads": spreads}


def _winsorized(day: np.ndarray, ret: np.ndarray) -> np.ndarray:
    """``ret`` clipped per date to its 1st/99th percentiles (NaN stays NaN)."""
    has = ~np.isnan(ret)
    out = np.full(len(ret), np.nan)
    if has.any():
        out[has] = winsorize(day[has], ret[has])
    return out


def _ic(day: np.ndarray, score: np.ndarray, ret: np.ndarray, horizon: int) -> dict[str, Any]:
    ic = daily_ic(day, score, ret)
    if ic.empty:
        return {"mean": None, "t_nw": None, "n_dates": 0, "hit_rate": None}
    se = newey_west_se(ic.to_numpy(), horizon - 1)
    return {
        "mean": float(ic.mean()),
        "t_nw": float(ic.mean() / se) if se and se > 0 else None,
        "n_dates": len(ic),
        "hit_rate": float((ic > 0).mean()),
    }


def daily_ic_series(result: Backtest, score: str, horizon: int) -> pd.Series:
    """Per date, the rank IC of ``score`` with the ``horizon``-day forward return."""
    panel = result.panel
    day = pd.factorize(panel[DATE], sort=True)[0]
    ic = daily_ic(day, panel[score].to_numpy(), panel[f"fwd_{horizon}d"].to_numpy())
    return pd.Series(ic.to_numpy(), index=result.dates[ic.index.to_numpy()])


def _turnover(frame: pd.DataFrame, day: np.ndarray) -> dict[str, Any]:
    """Share of the composite's top decile new each date, and of each signal's names."""
    ticker = pd.factorize(frame[TICKER])[0]
    out: dict[str, Any] = {
        "top_decile_composite": turnover(day, ticker, frame["composite_score"].to_numpy())
    }
    held = pd.DataFrame({"day": day, "t": ticker, "s": frame["signal"].astype(str).to_numpy()})
    before = held.assign(day=held["day"] + 1)
    stayed = held.merge(before, on=["day", "t", "s"], how="left", indicator=True)
    stayed["new"] = stayed["_merge"] == "left_only"
    first_day = held["day"].min()
    per_signal = stayed[stayed["day"] > first_day].groupby("s")["new"].mean()
    out["signals"] = {str(k): float(v) for k, v in per_signal.items()}
    return out


def _daily_returns(result: Backtest) -> pd.DataFrame:
    """Close-to-close returns, sessions × tickers (NaN where a ticker was not scored)."""
    panel = result.panel
    closes = panel.pivot(index=DATE, columns=TICKER, values="close").reindex(result.dates)
    return closes / closes.shift(1) - 1.0


def events(result: Backtest) -> dict[str, Any]:
    """The event study: mean cumulative return over the equal-weight universe from
    ``EVENT_WINDOW[0]`` to ``EVENT_WINDOW[1]`` sessions around each entry into a label (the
    ticker's label changed to it from the session before)."""
    daily = _daily_returns(result)
    excess = daily.sub(daily.mean(axis=1), axis=0).to_numpy()
    panel = result.panel
    signals = panel.pivot(index=DATE, columns=TICKER, values="signal").reindex(result.dates)
    labels = signals.astype(object).to_numpy()
    lo, hi = EVENT_WINDOW
    offsets = np.arange(lo, hi + 1)
    out = {}
    for label in EVENTS:
        now = labels[1:] == label
        entered = now & (labels[:-1] != label)
        d, t = np.nonzero(entered)
        d = d + 1
        rows = d[:, None] + offsets[None, :]
        inside = (rows >= 0) & (rows < len(excess))
        values = np.where(inside, excess[np.clip(rows, 0, len(excess) - 1), t[:, None]], np.nan)
        mean = np.nanmean(values, axis=0) if len(d) else np.full(len(offsets), np.nan)
        path = np.nancumsum(mean)
        out[label] = {
            "entries": len(d),
            "offsets": offsets.tolist(),
            "mean_excess": mean.tolist(),
            "cumulative_excess": path.tolist(),
        }
    return out


def growth(result: Backtest, top_n: int = TOP_N) -> dict[str, dict[str, Any]]:
    """ "Growth of $10,000" per signal: each session hold the label's ``top_n`` names by
    composite score, equal weight, from the next open to the next close (``fwd_1d``), net of
    a round trip's costs every session. The equity curve and its summary per label."""
    if 1 not in result.horizons:
        return {}
    panel = result.panel[[DATE, "signal", "composite_score", "fwd_1d"]].dropna(subset=["fwd_1d"])
    cost = 2.0 * result.costs_bps / 1e4
    ranked = panel.sort_values([DATE, "composite_score"], ascending=[True, False], kind="stable")
    top = ranked.groupby([DATE, "signal"], observed=True).head(top_n)
    day = top.groupby([DATE, "signal"], observed=True)["fwd_1d"].mean().unstack("signal")
    out = {}
    for label in day.columns:
        r = (day[label] - cost).reindex(result.dates).fillna(0.0)
        equity = START_CAPITAL * (1.0 + r).cumprod()
        drawdown = equity / equity.cummax() - 1.0
        years = len(r) / 252.0
        out[str(label)] = {
            "equity": equity,
            "drawdown": drawdown,
            "summary": {
                "final": float(equity.iloc[-1]),
                "cagr": float((equity.iloc[-1] / START_CAPITAL) ** (1 / years) - 1.0)
                if years > 0
                else None,
                "max_drawdown": float(drawdown.min()),
                "sessions_held": int(day[label].notna().sum()),
            },
        }
    return out


def scoreboard(result: Backtest, horizon: int = SCOREBOARD_HORIZON) -> dict[str, Any]:
    """The base rates the app shows: per signal and per tier, the share of ``horizon``-day
    returns above zero and their (winsorised) mean, gross, measured over the backtest."""
    column = f"fwd_{horizon}d"
    if column not in result.panel:
        return {}
    rows = result.panel.dropna(subset=[column])
    day = pd.factorize(rows[DATE], sort=True)[0]
    rows = rows.assign(w=_winsorized(day, rows[column].to_numpy()))
    out: dict[str, Any] = {"horizon": horizon, "from": None, "to": None}
    if len(rows):
        out["from"] = f"{rows[DATE].min():%Y-%m-%d}"
        out["to"] = f"{rows[DATE].max():%Y-%m-%d}"
    for group in ("signal", "Tier"):
        stats = rows.groupby(group, observed=True).agg(
            count=(column, "size"),
            win_rate=(column, lambda r: float((r > 0).mean())),
            mean_return=("w", "mean"),
        )
        out[group] = {str(k): v.to_dict() for k, v in stats.iterrows()}
    return out
