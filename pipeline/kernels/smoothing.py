"""Moving averages and Wilder-style smoothing: SMA, EMA, MACD, RSI, ATR (and true range).

Each indicator has one per-segment function (``<name>_segment``) that runs TA-Lib's algorithm
on the views of one ticker, with TA-Lib's operation order, seeding and zero tests, so results
match it to the last bit. The public kernel loops over the segments of a flat partition
(``bounds``) inside compiled code; a single ticker is the one-segment case ``[0, len]``.

A segment function seeds the indicator, then runs its ``<name>_advance`` step from the first
output to the last bar and returns the step's state there. Live scans
(:mod:`pipeline.live.kernels`) call the same ``_advance`` from that state on one more bar, so
one bar appended by a step has the bits of a recompute over the longer history.
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
def sma_advance(x, out, n, total, start, stop):
    """TA-Lib SMA's running-total step over bars ``start .. stop − 1``: ``total`` holds the
    ``n − 1`` values before the bar; returns it for the next bar (the kernel's state)."""
    for i in range(start, stop):
        total += x[i]
        out[i] = total / n
        total -= x[i - n + 1]
    return total


@register_jitable
def sma_segment(x, out, n, start):
    """TA-Lib SMA of ``x[start:]`` written from ``start + n − 1`` on (running total); returns
    the state after the last bar (NaN when there is no output)."""
    m = x.shape[0]
    first = start + n - 1
    nan_head(out, first)
    if first >= m:
        return NAN
    total = 0.0
    for i in range(start, first):
        total += x[i]
    return sma_advance(x, out, n, total, first, m)


@register_jitable
def ema_step(value, prev, k, n):
    """One TA-Lib EMA step: ``fma(value − prev, k, prev)``; ``n == 1`` copies the value."""
    return value if n == 1 else fma(value - prev, k, prev)


@register_jitable
def ema_advance(x, out, n, prev, start, stop):
    """EMA steps over bars ``start .. stop − 1`` from ``prev``; returns the last value."""
    k = 2.0 / (n + 1)
    for i in range(start, stop):
        prev = ema_step(x[i], prev, k, n)
        out[i] = prev
    return prev


@register_jitable
def ema_seed(x, n, first):
    """The EMA's seed: the plain mean of ``x[first − n + 1 .. first]``, summed in order."""
    total = 0.0
    for j in range(first - n + 1, first + 1):
        total += x[j]
    return x[first] if n == 1 else total / n


@register_jitable
def ema_segment(x, out, n, first):
    """TA-Lib EMA with the seed window ``x[first − n + 1 .. first]``, output from ``first``;
    returns the last value (the state).

    Seed: the plain mean of the window (summed in order); then ``prev = fma(x − prev, k, prev)``
    with ``k = 2 / (n + 1)``. ``n == 1`` copies the input exactly.
    """
    m = x.shape[0]
    nan_head(out, first)
    if first >= m:
        return NAN
    prev = ema_seed(x, n, first)
    out[first] = prev
    return ema_advance(x, out, n, prev, first + 1, m)


@register_jitable
def macd_advance(x, macd, signal, hist, fast, slow, sig, f, s, g, start, stop):
    """MACD steps over bars ``start .. stop − 1`` from the fast, slow and signal EMAs
    ``f``, ``s``, ``g``; returns them."""
    kf = 2.0 / (fast + 1)
    ks = 2.0 / (slow + 1)
    kg = 2.0 / (sig + 1)
    for i in range(start, stop):
        f = ema_step(x[i], f, kf, fast)
        s = ema_step(x[i], s, ks, slow)
        line = f - s
        g = ema_step(line, g, kg, sig)
        macd[i] = line
        signal[i] = g
        hist[i] = line - g
    return f, s, g


@register_jitable
def macd_segment(x, macd, signal, hist, fast, slow, sig, fast_ema, slow_ema):
    """TA-Lib MACD: fast and slow EMAs both seeded on the window ending at bar ``slow − 1``,
    the signal EMA seeded with the mean of the first ``sig`` MACD values; returns the three
    EMAs after the last bar (the state; NaN when there is no output)."""
    m = x.shape[0]
    if slow < fast:
        fast, slow = slow, fast
    t0 = slow - 1
    first = t0 + sig - 1
    if first >= m:
        nan_head(macd, m)
        nan_head(signal, m)
        nan_head(hist, m)
        return NAN, NAN, NAN
    f = ema_segment(x[: first + 1], fast_ema[: first + 1], fast, t0)
    s = ema_segment(x[: first + 1], slow_ema[: first + 1], slow, t0)
    for i in range(t0, first + 1):
        macd[i] = fast_ema[i] - slow_ema[i]
    g = ema_seed(macd, sig, first)
    signal[first] = g
    hist[first] = macd[first] - g
    nan_head(macd, first)
    nan_head(signal, first)
    nan_head(hist, first)
    return macd_advance(x, macd, signal, hist, fast, slow, sig, f, s, g, first + 1, m)


@register_jitable
def rsi_advance(x, out, n, gain, loss, start, stop):
    """RSI steps over bars ``start .. stop − 1`` from the Wilder averages ``gain`` and
    ``loss``; returns them."""
    inv = 1.0 / n
    for today in range(start, stop):
        change = x[today] - x[today - 1]
        loss = mul(loss, n - 1)
        gain = mul(gain, n - 1)
        up = change if change > 0.0 else 0.0
        gain += up
        loss += up - change
        loss = mul(loss, inv)
        gain = mul(gain, inv)
        total = gain + loss
        out[today] = mul(100.0, gain / total) if total > 0.0 else 0.0
    return gain, loss


@register_jitable
def rsi_segment(x, out, n):
    """TA-Lib RSI: Wilder averages of gains and losses, seeded with their mean over ``n``
    changes (×1/n), first value at bar ``n``; 0 when there was no move at all. Returns the
    averages after the last bar (the state)."""
    m = x.shape[0]
    nan_head(out, n)
    if n >= m:
        return NAN, NAN
    inv = 1.0 / n
    gain = 0.0
    loss = 0.0
    for today in range(1, n + 1):
        change = x[today] - x[today - 1]
        up = change if change > 0.0 else 0.0
        gain += up
        loss += up - change
    loss = mul(loss, inv)
    gain = mul(gain, inv)
    total = gain + loss
    out[n] = mul(100.0, gain / total) if total > 0.0 else 0.0
    return rsi_advance(x, out, n, gain, loss, n + 1, m)


@register_jitable
def atr_advance(high, low, close, out, n, prev, start, stop):
    """ATR steps over bars ``start .. stop − 1`` from ``prev``; returns the last value."""
    beta = (n - 1) / n
    alpha = 1.0 - beta
    for i in range(start, stop):
        prev = fma(beta, prev, mul(alpha, true_range(high[i], low[i], close[i - 1])))
        out[i] = prev
    return prev


@register_jitable
def atr_segment(high, low, close, out, n):
    """TA-Lib ATR: mean true range of bars 1..n, then ``fma(β, prev, α·TR)`` with
    ``β = (n − 1)/n`` and ``α = 1 − β``. Returns the last value (the state)."""
    m = close.shape[0]
    nan_head(out, n)
    if n >= m:
        return NAN
    total = 0.0
    for i in range(1, n + 1):
        total += true_range(high[i], low[i], close[i - 1])
    prev = total / n
    out[n] = prev
    return atr_advance(high, low, close, out, n, prev, n + 1, m)


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
