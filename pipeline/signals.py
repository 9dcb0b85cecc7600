"""Screener signals at each ticker's latest bar, as booleans.

==================  ==============================================================
new_52w_high        today's high is the highest high of the last 252 bars (≥ 63 bars)
new_52w_low         today's low is the lowest low of the last 252 bars (≥ 63 bars)
golden_cross        SMA50 crossed above SMA200 in the last 5 bars
death_cross         SMA50 crossed below SMA200 in the last 5 bars
oversold            RSI14 < 30
overbought          RSI14 > 70
unusual_volume      volume ≥ 2× its average over the previous 20 bars
breakout_20d        close above the highest high of the previous 20 bars
macd_bull_cross     MACD histogram turned positive today
macd_bear_cross     MACD histogram turned negative today
above_sma200        close above SMA200
==================  ==============================================================

A signal whose inputs are missing (too little history) is False.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pipeline.segments import Tails

SIGNALS: tuple[str, ...] = (
    "new_52w_high",
    "new_52w_low",
    "golden_cross",
    "death_cross",
    "oversold",
    "overbought",
    "unusual_volume",
    "breakout_20d",
    "macd_bull_cross",
    "macd_bear_cross",
    "above_sma200",
)
CROSS_WINDOW = 5
MIN_BARS_52W = 63
UNUSUAL_VOLUME = 2.0


def _crossed(tails: Tails, fast: np.ndarray, slow: np.ndarray, up: bool) -> np.ndarray:
    """``fast`` crossed ``slow`` (upward if ``up``) on one of the last CROSS_WINDOW bars."""
    hit = np.zeros(len(tails.last), dtype=bool)
    for lag in range(CROSS_WINDOW):
        now = tails.at(fast, lag) - tails.at(slow, lag)
        before = tails.at(fast, lag + 1) - tails.at(slow, lag + 1)
        hit |= (now > 0) & (before <= 0) if up else (now < 0) & (before >= 0)
    return hit


def latest(
    tails: Tails,
    arrays: Mapping[str, np.ndarray],
    ind: Mapping[str, np.ndarray],
    feats: Mapping[str, np.ndarray],
    levels: Mapping[str, np.ndarray],
    ind_tails: Tails | None = None,
) -> dict[str, np.ndarray]:
    """Every signal of :data:`SIGNALS` per ticker (comparisons with NaN are False);
    ``ind_tails``: where the rows are in ``ind``, when apart from ``arrays``."""
    at = ind_tails or tails
    enough = feats["bars"] >= MIN_BARS_52W
    hist_now, hist_before = at.at(ind["macd_hist"]), at.at(ind["macd_hist"], 1)
    close = feats["close"]
    with np.errstate(invalid="ignore"):
        return {
            "new_52w_high": enough & (tails.at(arrays["high"]) >= levels["high_52w"]),
            "new_52w_low": enough & (tails.at(arrays["low"]) <= levels["low_52w"]),
            "golden_cross": _crossed(at, ind["sma50"], ind["sma200"], up=True),
            "death_cross": _crossed(at, ind["sma50"], ind["sma200"], up=False),
            "oversold": feats["rsi14"] < 30,
            "overbought": feats["rsi14"] > 70,
            "unusual_volume": feats["rel_volume"] >= UNUSUAL_VOLUME,
            "breakout_20d": close > levels["high_20d_before"],
            "macd_bull_cross": (hist_now > 0) & (hist_before <= 0),
            "macd_bear_cross": (hist_now < 0) & (hist_before >= 0),
            "above_sma200": close > at.at(ind["sma200"]),
        }
