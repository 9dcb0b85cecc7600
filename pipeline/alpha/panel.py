"""The feature panel: unit-free features for every (ticker, date), from the scan's own kernels.

:func:`alpha_features` is the one definition of the model's inputs. The training panel
(:func:`panel_partition`, mapped over the bar partitions) evaluates it at every row; the scan
evaluates it at each ticker's last row, inside the same ``map_partitions`` task that computes
the scan's features (:func:`latest_columns`). Both read the same indicator arrays (the
registry's segmented kernels over each ticker's whole clean history) and the same window
kernel (:mod:`pipeline.alpha.windows`), so a ticker's features on a date are the same numbers
in training and in a scan as of that date.

Every feature at row ``t`` reads bars at or before ``t`` only, and none is a price or volume
level: returns, ratios to the close or to average volume, oscillators (0–100 or ±), volatility
ratios and the Alpha158-style rolling families of :mod:`pipeline.alpha.windows`.

Rows outside the model's universe (:data:`UNIVERSE`: too little history, a sub-dollar close or
thin trading) are flagged ``eligible = False``: they are neither trained on, evaluated, nor
given an AlphaScore.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import pandas as pd

from pipeline import hygiene
from pipeline.alpha.windows import NAMES as WINDOW_NAMES
from pipeline.alpha.windows import WINDOWS, inputs, trailing_mean_product, window_stats
from pipeline.features import compute_indicators
from pipeline.indicators import REGISTRY
from pipeline.schema import DATE, DATE_DTYPE, TICKER, TICKER_DTYPE

RETURNS = (1, 5, 10, 20, 60)
EMAS = (10, 60)
INDICATOR_FEATURES = (
    "rsi14", "adx14", "plus_di14", "minus_di14", "stoch_k", "stoch_d", "mfi14", "cci20",
    "willr14",
)  # fmt: skip
FEATURES: tuple[str, ...] = (
    *(f"ret_{h}d" for h in RETURNS),
    "dist_sma20", "dist_sma50", "dist_sma200", "sma50_vs_sma200",
    *(f"dist_ema{n}" for n in EMAS),
    "macd_pct", "macd_signal_pct", "macd_hist_pct",
    "bb_pctb", "bb_width", "atr14_pct",
    *INDICATOR_FEATURES,
    "di_balance", "kmid", "klen", "kup", "klow", "gap",
    "vol_ratio_5_60", "vol_ratio_20_60",
    *WINDOW_NAMES,
)  # fmt: skip
# Changes whenever the feature definitions change: a model built for other features is refused.
FEATURE_VERSION = (
    "f1-"
    + hashlib.sha256(
        ("|".join(FEATURES) + f"|windows={WINDOWS}|returns={RETURNS}|emas={EMAS}").encode()
    ).hexdigest()[:12]
)
LOOKBACK = max(WINDOWS) + 1  # bars a row needs for every window family


UNIVERSE: dict[str, float] = {
    "min_bars": LOOKBACK,  # clean bars up to and including the row
    "min_price": 1.0,  # close, USD
    "min_dollar_volume": 1e6,  # 20-day average of close × volume, USD
}
META = ("date", "close", "bars", "dollar_volume_20d", "eligible")


def alpha_features(
    arrays: Mapping[str, np.ndarray],
    bounds: np.ndarray,
    ind: Mapping[str, np.ndarray],
    positions: np.ndarray,
) -> dict[str, np.ndarray]:
    """Every feature of :data:`FEATURES` at the rows ``positions`` (ascending) of the clean
    flat arrays, plus ``bars``, ``dollar_volume_20d`` and ``eligible``.

    ``ind`` holds the scan's indicator arrays (:func:`pipeline.features.compute_indicators`)
    over the same arrays, so the scan passes the ones it already computed.
    """
    close, high, low = arrays["close"], arrays["high"], arrays["low"]
    open_, volume = arrays["open"], arrays["volume"]
    seg = np.searchsorted(bounds, positions, side="right") - 1
    first = bounds[seg]
    p = positions
    c = close[p]

    def lag(values: np.ndarray, h: int) -> np.ndarray:
        q = p - h
        return np.where(q >= first, values[np.maximum(q, first)], np.nan)

    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for h in RETURNS:
            out[f"ret_{h}d"] = c / lag(close, h) - 1.0
        for n in (20, 50, 200):
            out[f"dist_sma{n}"] = c / ind[f"sma{n}"][p] - 1.0
        out["sma50_vs_sma200"] = ind["sma50"][p] / ind["sma200"][p] - 1.0
        for n in EMAS:
            ema = REGISTRY["EMA"].kernel(close, bounds, n)
            out[f"dist_ema{n}"] = c / ema[p] - 1.0
        out["macd_pct"] = ind["macd"][p] / c
        out["macd_signal_pct"] = ind["macd_signal"][p] / c
        out["macd_hist_pct"] = ind["macd_hist"][p] / c
        upper, middle, lower = (ind[k][p] for k in ("bb_upper", "bb_middle", "bb_lower"))
        width = upper - lower
        out["bb_pctb"] = np.where(width > 0, (c - lower) / width, np.nan)
        out["bb_width"] = width / middle
        out["atr14_pct"] = ind["atr14"][p] / c
        for name in INDICATOR_FEATURES:
            out[name] = ind[name][p]
        di_sum = out["plus_di14"] + out["minus_di14"]
        out["di_balance"] = np.where(
            di_sum > 0, (out["plus_di14"] - out["minus_di14"]) / di_sum, 0.0
        )
        o, hi, lo = open_[p], high[p], low[p]
        out["kmid"] = (c - o) / o
        out["klen"] = (hi - lo) / o
        out["kup"] = (hi - np.maximum(o, c)) / o
        out["klow"] = (np.minimum(o, c) - lo) / o
        out["gap"] = o / lag(close, 1) - 1.0
        extra = inputs(close, volume, bounds, p)
        stats = window_stats(high, low, close, volume, *extra, bounds, p, np.asarray(WINDOWS))
        for j, name in enumerate(WINDOW_NAMES):
            out[name] = stats[:, j]
        out["vol_ratio_5_60"] = out["vol5"] / out["vol60"]
        out["vol_ratio_20_60"] = out["vol20"] / out["vol60"]
        bars = (p - first + 1).astype(np.int64)
        dollar = trailing_mean_product(close, volume, bounds, p, 20)
    for name in FEATURES:  # ±inf (a zero denominator) is no information: missing
        values = out[name]
        values[~np.isfinite(values)] = np.nan
    eligible = (
        (bars >= UNIVERSE["min_bars"])
        & (c >= UNIVERSE["min_price"])
        & (dollar >= UNIVERSE["min_dollar_volume"])
    )
    return {
        **{name: out[name] for name in FEATURES},
        "bars": bars,
        "dollar_volume_20d": dollar,
        "eligible": eligible,
    }


def matrix(columns: Mapping[str, np.ndarray] | pd.DataFrame) -> np.ndarray:
    """The model's input matrix (float32, :data:`FEATURES` order) from feature columns."""
    return np.column_stack([np.asarray(columns[f], dtype=np.float32) for f in FEATURES])


def empty() -> pd.DataFrame:
    """The zero-row panel frame (Dask ``meta`` for :func:`panel_partition`)."""
    index = pd.Index([], dtype=TICKER_DTYPE, name=TICKER)
    cols: dict[str, pd.Series] = {
        "date": pd.Series([], dtype=DATE_DTYPE),
        "close": pd.Series([], dtype="float64"),
        "bars": pd.Series([], dtype="int64"),
        "dollar_volume_20d": pd.Series([], dtype="float64"),
        "eligible": pd.Series([], dtype="bool"),
    }
    cols.update({f: pd.Series([], dtype="float32") for f in FEATURES})
    return pd.DataFrame(cols, index=index)


def panel_partition(bars: pd.DataFrame) -> pd.DataFrame:
    """Clean one partition of bars and compute every feature at every clean row.

    One row per clean bar (index ``ticker``), columns :data:`META` then :data:`FEATURES`
    (float32: what the model reads).
    """
    cleaned = hygiene.clean(bars)
    arrays, bounds = cleaned.arrays, cleaned.bounds
    n = int(bounds[-1])
    if n == 0:
        return empty()
    ind = compute_indicators(arrays, bounds)
    cols = alpha_features(arrays, bounds, ind, np.arange(n, dtype=np.int64))
    tickers = cleaned.tickers[cleaned.kept]
    index = pd.Index(tickers.take(np.repeat(np.arange(len(tickers)), np.diff(bounds))))
    frame = pd.DataFrame(
        {
            "date": arrays[DATE],
            "close": arrays["close"],
            "bars": cols["bars"],
            "dollar_volume_20d": cols["dollar_volume_20d"],
            "eligible": cols["eligible"],
            **{f: cols[f].astype(np.float32) for f in FEATURES},
        },
        index=index.rename(TICKER),
    )
    return frame
