"""The out-of-sample report: per-date rank IC and portfolio statistics for the model and for
simple baselines, per walk-forward fold and pooled over every out-of-sample date.

Per score and set of dates:

``ic_mean``, ``ic_std``   mean and standard deviation of the per-date Spearman IC (score vs.
                          the ``h``-day forward return, over the eligible tickers of the date)
``ic_ir``                 ic_mean / ic_std (per date, not annualised)
``ic_tstat``              ic_mean / ic_std · √n_dates (the usual, naive t-statistic)
``ic_tstat_nw``           the same with a Newey–West standard error (``h − 1`` lags): labels
                          of neighbouring dates overlap, so the naive t-stat overstates
``noise_band``            1.96 Newey–West standard errors: |ic_mean| inside it is noise
``hit_rate``              share of dates with IC > 0
``decile_spread``         mean over dates of (top-decile − bottom-decile) mean forward return;
                          returns are winsorised per date at the 1st/99th percentile (the real
                          data has bad ticks worth 8,000×)
``decile_returns``        mean forward return per score decile (1 = lowest), same winsorising
``turnover``              mean share of the top decile that is new from one date to the next
``n_dates``               dates with at least :data:`MIN_NAMES` scored tickers

Baselines: ``momentum_12_1`` (return from 252 to 21 bars ago), ``short_term_reversal`` (minus
the 5-day return) and ``random`` (seeded noise: what no skill looks like).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.cross_section import Dates
from pipeline.segments import segment_bounds

MIN_NAMES = 20
BASELINES = ("momentum_12_1", "short_term_reversal", "random")


def baseline_scores(panel: pd.DataFrame, seed: int = 0) -> dict[str, np.ndarray]:
    """The baselines' scores for every row of a (ticker-sorted) panel."""
    bounds = segment_bounds(panel.index)
    close = panel["close"].to_numpy()
    first = np.repeat(bounds[:-1], np.diff(bounds))
    pos = np.arange(len(close))

    def lag(h: int) -> np.ndarray:
        q = pos - h
        return np.where(q >= first, close[np.maximum(q, first)], np.nan)

    with np.errstate(divide="ignore", invalid="ignore"):
        momentum = lag(21) / lag(252) - 1.0
    return {
        "momentum_12_1": momentum,
        "short_term_reversal": -panel["ret_5d"].to_numpy(dtype=np.float64),
        "random": np.random.default_rng(seed).standard_normal(len(close)),
    }


def daily_ic(session: np.ndarray, score: np.ndarray, ret: np.ndarray) -> pd.Series:
    """Spearman rank correlation of ``score`` and ``ret`` per date (by session index)."""
    return rank_ic(Dates.of(session), score, ret)


def rank_ic(dates: Dates, score: np.ndarray, ret: np.ndarray) -> pd.Series:
    """:func:`daily_ic` of rows already grouped by date, indexed by the dates (those with at
    least :data:`MIN_NAMES` rows that have both values, neither constant)."""
    score, ret = np.asarray(score, dtype="float64"), np.asarray(ret, dtype="float64")
    both = ~(np.isnan(score) | np.isnan(ret))
    if not both.any():
        return pd.Series(dtype="float64")
    a = dates.rank(np.where(both, score, np.nan))
    b = dates.rank(np.where(both, ret, np.nan))
    codes = dates.codes[both]
    a, b = a[both], b[both]

    def total(weights: np.ndarray | None) -> np.ndarray:
        return np.bincount(codes, weights=weights, minlength=len(dates))

    n, sa, sb = total(None).astype("float64"), total(a), total(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = total(a * b) - sa * sb / n
        va = total(a * a) - sa**2 / n
        vb = total(b * b) - sb**2 / n
        ic = cov / np.sqrt(va * vb)
    keep = (n >= MIN_NAMES) & (va > 0) & (vb > 0)
    return pd.Series(ic[keep], index=dates.days[keep])


def newey_west_se(values: np.ndarray, lags: int) -> float:
    """Newey–West (Bartlett) standard error of the mean of ``values``."""
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n < 2:
        return float("nan")
    e = x - x.mean()
    var = e @ e / n
    for k in range(1, min(lags, n - 1) + 1):
        var += 2.0 * (1.0 - k / (lags + 1)) * (e[k:] @ e[:-k]) / n
    return float(np.sqrt(max(var, 0.0) / n))


def winsorize(session: np.ndarray, ret: np.ndarray) -> np.ndarray:
    """``ret`` clipped to its date's 1st and 99th percentiles."""
    return Dates.of(session).clip_quantiles(ret)


def decile_table(session: np.ndarray, score: np.ndarray, ret: np.ndarray) -> pd.DataFrame:
    """Mean winsorised forward return per (date, score decile 0..9)."""
    df = pd.DataFrame({"s": session, "a": score, "r": ret}).dropna()
    counts = df.groupby("s")["a"].transform("size")
    df = df[counts >= MIN_NAMES]
    if df.empty:
        return pd.DataFrame()
    df["r"] = winsorize(df["s"].to_numpy(), df["r"].to_numpy())
    pct = df.groupby("s")["a"].rank(pct=True, method="first")
    df["d"] = np.clip(np.ceil(pct.to_numpy() * 10).astype(int) - 1, 0, 9)
    return df.groupby(["s", "d"])["r"].mean().unstack("d")


def turnover(session: np.ndarray, ticker: np.ndarray, score: np.ndarray) -> float:
    """Mean share of the top decile that was not in the previous date's top decile."""
    df = pd.DataFrame({"s": session, "t": ticker, "a": score}).dropna()
    counts = df.groupby("s")["a"].transform("size")
    df = df[counts >= MIN_NAMES]
    if df.empty:
        return float("nan")
    pct = df.groupby("s")["a"].rank(pct=True, method="first")
    top = df[pct.to_numpy() > 0.9][["s", "t"]]
    days = np.sort(top["s"].unique())
    if len(days) < 2:
        return float("nan")
    order = pd.Series(np.arange(len(days)), index=days)
    top = top.assign(k=order.reindex(top["s"]).to_numpy())
    prev = top.assign(k=top["k"] + 1)[["k", "t"]]
    kept = top.merge(prev, on=["k", "t"]).groupby("k").size()
    size = top.groupby("k").size()
    share_new = 1.0 - kept.reindex(size.index, fill_value=0) / size
    return float(share_new.iloc[1:].mean())


def metrics(
    session: np.ndarray, ticker: np.ndarray, score: np.ndarray, ret: np.ndarray, horizon: int
) -> dict[str, Any]:
    """Every statistic of the module docstring for one score over the given rows."""
    ic = daily_ic(session, score, ret)
    n = len(ic)
    mean = float(ic.mean()) if n else float("nan")
    std = float(ic.std(ddof=1)) if n > 1 else float("nan")
    se_nw = newey_west_se(ic.to_numpy(), horizon - 1)
    deciles = decile_table(session, score, ret)
    spread = (deciles[9] - deciles[0]).mean() if not deciles.empty and 9 in deciles else np.nan
    return json_safe(
        {
            "ic_mean": mean,
            "ic_std": std,
            "ic_ir": mean / std if std and std > 0 else float("nan"),
            "ic_tstat": mean / std * np.sqrt(n) if std and std > 0 else float("nan"),
            "ic_tstat_nw": mean / se_nw if se_nw and se_nw > 0 else float("nan"),
            "noise_band": 1.96 * se_nw,
            "hit_rate": float((ic > 0).mean()) if n else float("nan"),
            "decile_spread": float(spread),
            "decile_returns": [float(v) for v in deciles.mean()] if not deciles.empty else [],
            "turnover": turnover(session, ticker, score),
            "n_dates": n,
            "n_rows": int(np.isfinite(score).sum()),
        }
    )


def json_safe(value: Any) -> Any:
    """NaN and ±inf → None (JSON has no NaN); numpy scalars → Python numbers."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    return value


def report(oos: pd.DataFrame, folds: list, dates: np.ndarray, horizon: int) -> dict[str, Any]:
    """Per-fold and pooled metrics of ``oos`` (one row per out-of-sample ticker-date with
    ``session``, ``ticker``, ``fold``, ``score``, ``fwd_ret_{h}d`` and the baseline columns)."""
    ret_col = f"fwd_ret_{horizon}d"
    ticker = pd.factorize(oos["ticker"])[0]

    def block(rows: np.ndarray) -> dict[str, Any]:
        s, t, r = oos["session"].to_numpy()[rows], ticker[rows], oos[ret_col].to_numpy()[rows]
        out = {"model": metrics(s, t, oos["score"].to_numpy()[rows], r, horizon)}
        out["baselines"] = {
            name: metrics(s, t, oos[name].to_numpy()[rows], r, horizon) for name in BASELINES
        }
        return out

    fold_col = oos["fold"].to_numpy()
    per_fold = []
    for f in folds:
        entry = {
            "fold": f.number,
            "train": [_day(dates[f.train_start]), _day(dates[f.train_end])],
            "test": [_day(dates[f.test_start]), _day(dates[f.test_end])],
            "gap_sessions": f.gap,
        }
        per_fold.append(entry | block(fold_col == f.number))
    pooled = block(np.ones(len(oos), dtype=bool))
    return {
        "horizon": horizon,
        "label": f"{horizon}-session forward return (IC: Spearman per date)",
        "oos_start": _day(dates[folds[0].test_start]) if folds else None,
        "oos_end": _day(dates[folds[-1].test_end]) if folds else None,
        "n_oos_rows": len(oos),
        "model": pooled["model"],
        "baselines": pooled["baselines"],
        "folds": per_fold,
    }


def _day(value: Any) -> str:
    return f"{pd.Timestamp(value):%Y-%m-%d}"


def plots(result: dict[str, Any], oos: pd.DataFrame, dates: np.ndarray, out_dir: Path) -> list:
    """PNG plots of the report into ``out_dir``: cumulative IC, IC per fold, the model's
    decile returns and the calibration's reliability diagram. Returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    horizon = result["horizon"]
    ret = oos[f"fwd_ret_{horizon}d"].to_numpy()
    session = oos["session"].to_numpy()
    paths = []

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name in ("score", *BASELINES):
        ic = daily_ic(session, oos[name].to_numpy(), ret)
        label = "model" if name == "score" else name
        ax.plot(pd.to_datetime(dates[ic.index.to_numpy()]), ic.cumsum().to_numpy(), label=label)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_title(f"Cumulative daily rank IC, out of sample ({horizon}-day forward return)")
    ax.set_ylabel("sum of daily IC")
    ax.legend()
    fig.autofmt_xdate()
    paths.append(_save(fig, out_dir / "ic_cumulative.png"))

    fig, ax = plt.subplots(figsize=(9, 4.5))
    names = ["model", *BASELINES]
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values = [
            (f["model"] if name == "model" else f["baselines"][name])["ic_mean"] or 0.0
            for f in result["folds"]
        ]
        ax.bar(np.arange(len(values)) + i * width, values, width, label=name)
    ax.set_xticks(np.arange(len(result["folds"])) + 0.4 - width / 2)
    ax.set_xticklabels([f"{f['test'][0]}\n{f['test'][1]}" for f in result["folds"]], fontsize=7)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_title("Mean daily rank IC per walk-forward test fold")
    ax.legend()
    paths.append(_save(fig, out_dir / "ic_by_fold.png"))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    deciles = result["model"].get("decile_returns") or []
    ax.bar(np.arange(1, len(deciles) + 1), deciles)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("model score decile (1 = lowest)")
    ax.set_ylabel(f"mean {horizon}-day forward return")
    ax.set_title("Out-of-sample forward return by model decile")
    paths.append(_save(fig, out_dir / "deciles.png"))

    table = (result.get("calibration") or {}).get("reliability") or []
    if table:
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        ax.plot([r["mean_pred"] for r in table], [r["frac_pos"] for r in table], "o-")
        lo = min(min(r["mean_pred"], r["frac_pos"]) for r in table) - 0.05
        hi = max(max(r["mean_pred"], r["frac_pos"]) for r in table) + 0.05
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("predicted P(10-day return > 0)")
        ax.set_ylabel("observed frequency")
        ax.set_title("Reliability, out of sample")
        paths.append(_save(fig, out_dir / "reliability.png"))
    return [str(p) for p in paths]


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
