"""Moving averages and Wilder-style smoothing: SMA, EMA, MACD, RSI, ATR (and true range).

Each indicator has one per-segment function (``_<name>_segment``) that runs TA-Lib's algorithm
on the views of one ticker, with TA-Lib's operation order, seeding and zero tests, so results
match it to the last bit. The public kernel loops over the segments of a flat partition
(``bounds``) inside compiled code; a single ticker is the one-segment case ``[0, len]``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.extending import register_jitable

from pipeline.kernels.rounding import fma, mul

NAN = math.nan


@register_jitable
def nan_head(out, stop):
    """NaN in ``out[:stop]`` (the lookback), clipped to the segment."""
    for i in range(min(stop, out.shape[0])):
        out[i] = NAN


@register_jitable
def true_range(high, low, prev_close):
    """TA-Lib's TRANGE for one bar: max(high − low, |prev_close − high|, |prev_close − low|)."""
    greatest = high - low
    v = abs(prev_close - high)
    if v > greatest:
        greatest = v
    v = abs(prev_close - low)
    if v > greatest:
        greatest = v
    return greatest


@register_jitable
def sma_segment(x, out, n, start):
    """TA-Lib SMA of ``x[start:]`` written from ``start + n − 1`` on (running total)."""
    m = x.shape[0]
    first = start + n - 1
    nan_head(out, first)
    if first >= m:
        return
    total = 0.0
    i = start
    while i < first:
        total += x[i]
        i += 1
    trailing = start
    while i < m:
        total += x[i]
        value = total
        total -= x[trailing]
        trailing += 1
        out[i] = value / n
        i += 1


@register_jitable
def ema_segment(x, out, n, first):
    """TA-Lib EMA with the seed window ``x[first − n + 1 .. first]``, output from ``first``.

    Seed: the plain mean of the window (summed in order); then ``prev = fma(x − prev, k, prev)``
    with ``k = 2 / (n + 1)``. ``n == 1`` copies the input exactly.
    """
    m = x.shape[0]
    nan_head(out, first)
    if first >= m:
        return
    if n == 1:
        for i in range(first, m):
            out[i] = x[i]
        return
    k = 2.0 / (n + 1)
    total = 0.0
    for j in range(first - n + 1, first + 1):
        total += x[j]
    prev = total / n
    out[first] = prev
    for i in range(first + 1, m):
        prev = fma(x[i] - prev, k, prev)
        out[i] = prev


@register_jitable
def macd_segment(x, macd, signal, hist, fast, slow, sig, fast_ema, slow_ema):
    """TA-Lib MACD: fast and slow EMAs both seeded on the window ending at bar ``slow − 1``,
    the signal EMA seeded with the mean of the first ``sig`` MACD values."""
    m = x.shape[0]
    if slow < fast:
        fast, slow = slow, fast
    t0 = slow - 1
    first = t0 + sig - 1
    if first >= m:
        nan_head(macd, m)
        nan_head(signal, m)
        nan_head(hist, m)
        return
    ema_segment(x, fast_ema, fast, t0)
    ema_segment(x, slow_ema, slow, t0)
    nan_head(macd, t0)
    for i in range(t0, m):
        macd[i] = fast_ema[i] - slow_ema[i]
    ema_segment(macd, signal, sig, first)
    nan_head(macd, first)
    nan_head(hist, first)
    for i in range(first, m):
        hist[i] = macd[i] - signal[i]


@register_jitable
def rsi_segment(x, out, n):
    """TA-Lib RSI: Wilder averages of gains and losses, seeded with their mean over ``n``
    changes (×1/n), first value at bar ``n``; 0 when there was no move at all."""
    m = x.shape[0]
    nan_head(out, n)
    if n >= m:
        return
    inv = 1.0 / n
    prev_value = x[0]
    gain = 0.0
    loss = 0.0
    today = 1
    for _ in range(n):
        change = x[today] - prev_value
        prev_value = x[today]
        today += 1
        up = change if change > 0.0 else 0.0
        gain += up
        loss += up - change
    loss = mul(loss, inv)
    gain = mul(gain, inv)
    total = gain + loss
    out[n] = mul(100.0, gain / total) if total > 0.0 else 0.0
    while today < m:
        change = x[today] - prev_value
        prev_value = x[today]
        loss = mul(loss, n - 1)
        gain = mul(gain, n - 1)
        up = change if change > 0.0 else 0.0
        gain += up
        loss += up - change
        loss = mul(loss, inv)
        gain = mul(gain, inv)
        total = gain + loss
        out[today] = mul(100.0, gain / total) if total > 0.0 else 0.0
        today += 1


@register_jitable
def atr_segment(high, low, close, out, n):
    """TA-Lib ATR: mean true range of bars 1..n, then ``fma(β, prev, α·TR)`` with
    ``β = (n − 1)/n`` and ``α = 1 − β``."""
    m = close.shape[0]
    nan_head(out, n)
    if n >= m:
        return
    beta = (n - 1) / n
    alpha = 1.0 - beta
    total = 0.0
    for i in range(1, n + 1):
        total += true_range(high[i], low[i], close[i - 1])
    prev = total / n
    out[n] = prev
    for i in range(n + 1, m):
        prev = fma(beta, prev, mul(alpha, true_range(high[i], low[i], close[i - 1])))
        out[i] = prev


@njit(cache=True, nogil=True)
def sma(x, bounds, n):
    """Segmented TA-Lib SMA."""
    out = np.empty_like(x)
    for s in range(bounds.shape[0] - 1):
        lo, hi = bounds[s], bounds[s + 1]
        sma_segment(x[lo:hi], out[lo:hi], n, 0)
    return out


@njit(cache=True, nogil=True)
def ema(x, bounds, n):
    """Segmented TA-Lib EMA."""
    out = np.empty_like(x)
    for s in range(bounds.shape[0] - 1):
        lo, hi = bounds[s], bounds[s + 1]
        ema_segment(x[lo:hi], out[lo:hi], n, n - 1)
    return out


@njit(cache=True, nogil=True)
def macd(x, bounds, fast, slow, sig):
    """Segmented TA-Lib MACD → (macd, signal, hist)."""
    line = np.empty_like(x)
    signal = np.empty_like(x)
    hist = np.empty_like(x)
    fast_ema = np.empty_like(x)
    slow_ema = np.empty_like(x)
    for s in range(bounds.shape[0] - 1):
        lo, hi = bounds[s], bounds[s + 1]
        macd_segment(
            x[lo:hi],
            line[lo:hi],
            signal[lo:hi],
            hist[lo:hi],
            fast,
            slow,
            sig,
            fast_ema[lo:hi],
            slow_ema[lo:hi],
        )
    return line, signal, hist


@njit(cache=True, nogil=True)
def rsi(x, bounds, n):
    """Segmented TA-Lib RSI."""
    out = np.empty_like(x)
    for s in range(bounds.shape[0] - 1):
        lo, hi = bounds[s], bounds[s + 1]
        rsi_segment(x[lo:hi], out[lo:hi], n)
    return out


@njit(cache=True, nogil=True)
def atr(high, low, close, bounds, n):
    """Segmented TA-Lib ATR."""
    out = np.empty_like(close)
    for s in range(bounds.shape[0] - 1):
        lo, hi = bounds[s], bounds[s + 1]
        atr_segment(high[lo:hi], low[lo:hi], close[lo:hi], out[lo:hi], n)
    return out
