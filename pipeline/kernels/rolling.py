"""Fixed-window indicators: BBANDS, STOCH, WILLR, CCI, ROC.

Windows never reach across a ticker boundary because each segment is processed on its own
views. Operation order and zero tests follow TA-Lib 0.8 so results match it to the last bit;
the scaled zero test is TA-Lib's ``TA_IS_ZERO_SCALED(v, s) = |v| <= 1e-14 · s``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.extending import register_jitable

from pipeline.kernels.rounding import mul
from pipeline.kernels.smoothing import NAN, nan_head, sma_segment

TA_EPSILON = 1e-14


@register_jitable
def _is_zero_scaled(value, scale):
    return abs(value) <= mul(TA_EPSILON, scale)


@register_jitable
def bbands_advance(x, upper, middle, lower, n, k, total, shift, v1, v2, budget, start, stop):
    """BBANDS steps over bars ``start .. stop − 1`` from the running sums (``total`` of the
    values, ``v1`` and ``v2`` of their shifted values and squares, each holding the ``n − 1``
    bars before the bar), the ``shift`` and the bars left until the next re-centring; returns
    them."""
    lb = n - 1
    inv = 1.0 / n
    for i in range(start, stop):
        total += x[i]
        t = x[i] - shift
        v1 += t
        t = mul(t, t)
        v2 += t
        m1 = mul(v1, inv)
        var = mul(v2, inv) - mul(m1, m1)
        mid = total / n
        trailing = i - lb
        total -= x[trailing]
        t = x[trailing] - shift
        v1 -= t
        t = mul(t, t)
        v2 -= t
        budget -= 1
        if var < mul(0.000001, mul(v2, inv)) or t > mul(1000000.0, v2) or budget <= 0:
            budget = 32 * n
            window = i - lb
            s = 0.0
            for j in range(window, i + 1):
                s += x[j]
            shift = mul(s, inv)
            v1 = 0.0
            v2 = 0.0
            for j in range(window, i + 1):
                t = x[j] - shift
                v1 += t
                t = mul(t, t)
                v2 += t
            m1 = mul(v1, inv)
            var = mul(v2, inv) - mul(m1, m1)
            if var < mul(0.000000000001, mul(v2, inv)):
                var = 0.0
            t = x[window] - shift
            v1 -= t
            t = mul(t, t)
            v2 -= t
        sd = math.sqrt(var) if var != 0.0 else 0.0
        width = mul(sd, k)
        middle[i] = mid
        upper[i] = mid + width
        lower[i] = mid - width
    return total, shift, v1, v2, budget


@register_jitable
def bbands_segment(x, upper, middle, lower, n, k):
    """TA-Lib BBANDS with an SMA middle band and equal up/down deviations ``k``; returns the
    state of :func:`bbands_advance` after the last bar (NaN when there is none).

    The population standard deviation uses TA-Lib 0.8's shifted running sums, re-centred on
    the window mean every ``32·n`` bars or when cancellation threatens, so a flat window gives
    exactly zero width.
    """
    m = x.shape[0]
    lb = n - 1
    nan_head(upper, lb)
    nan_head(middle, lb)
    nan_head(lower, lb)
    if lb >= m:
        return NAN, NAN, NAN, NAN, NAN
    shift = x[0]
    total = 0.0
    v1 = 0.0
    v2 = 0.0
    for j in range(lb):
        total += x[j]
        t = x[j] - shift
        v1 += t
        t = mul(t, t)
        v2 += t
    return bbands_advance(x, upper, middle, lower, n, k, total, shift, v1, v2, 32 * n, lb, m)


@register_jitable
def extremes_segment(high, low, highest, lowest, n, suffix_high, suffix_low):
    """Highest high and lowest low of the last ``n`` bars, from bar ``n − 1`` on.

    Van Herk/Gil-Werman blocks (as TA-Lib's WILLR): with blocks of ``n`` bars, a window is a
    suffix of one block plus a prefix of the next, so each bar costs three comparisons. The
    extremes are exact values: on finite data they equal TA-Lib's whatever the scan order.
    """
    m = high.shape[0]
    nan_head(highest, n - 1)
    nan_head(lowest, n - 1)
    for start in range(0, m, n):
        end = min(start + n, m) - 1
        hi = high[end]
        lo = low[end]
        suffix_high[end] = hi
        suffix_low[end] = lo
        for i in range(end - 1, start - 1, -1):
            hi = max(hi, high[i])
            lo = min(lo, low[i])
            suffix_high[i] = hi
            suffix_low[i] = lo
    for start in range(0, m, n):
        hi = high[start]
        lo = low[start]
        for t in range(start, min(start + n, m)):
            hi = max(hi, high[t])
            lo = min(lo, low[t])
            if t >= n - 1:
                highest[t] = max(suffix_high[t - n + 1], hi)
                lowest[t] = min(suffix_low[t - n + 1], lo)


@register_jitable
def fast_k(close, highest, lowest):
    """Fast %K of one bar from its window's extremes: 0 on a flat window."""
    spread = highest - lowest
    if _is_zero_scaled(spread, abs(highest) + abs(lowest)):
        return 0.0
    return mul((close - lowest) / spread, 100.0)


@register_jitable
def williams(close, highest, lowest):
    """WILLR of one bar from its window's extremes, clamped to [−100, 0]; 0 on a flat window."""
    spread = highest - lowest
    if _is_zero_scaled(spread, abs(highest) + abs(lowest)):
        return 0.0
    r = mul((highest - close) / spread, -100.0)
    if r > 0.0:
        return 0.0
    if r < -100.0:
        return -100.0
    return r


@register_jitable
def stoch_segment(
    close, highest, lowest, slowk, slowd, fastk_period, k_smooth, d_period, fastk, tmp
):
    """TA-Lib STOCH with SMA smoothing, from the window extremes of ``fastk_period`` bars:
    fast %K = (close − LL)/(HH − LL)·100 (0 on a flat window), slow %K = SMA(fast %K,
    k_smooth), slow %D = SMA(slow %K, d_period). Returns the two SMAs' running totals after the
    last bar (their states)."""
    m = close.shape[0]
    lb_k = fastk_period - 1
    first = lb_k + k_smooth - 1 + d_period - 1
    nan_head(fastk, lb_k)
    for t in range(lb_k, m):
        fastk[t] = fast_k(close[t], highest[t], lowest[t])
    total_k = sma_segment(fastk, tmp, k_smooth, lb_k)
    total_d = sma_segment(tmp, slowd, d_period, lb_k + k_smooth - 1)
    nan_head(slowk, first)
    for i in range(first, m):
        slowk[i] = tmp[i]
    return total_k, total_d


@register_jitable
def willr_segment(close, highest, lowest, out, n):
    """TA-Lib WILLR from the window extremes of ``n`` bars: (HH − close)/(HH − LL)·(−100),
    clamped to [−100, 0]; 0 on a flat window."""
    m = close.shape[0]
    nan_head(out, n - 1)
    for t in range(n - 1, m):
        out[t] = williams(close[t], highest[t], lowest[t])


@register_jitable
def typical_price(high, low, close):
    return (high + low + close) / 3.0


@register_jitable
def cci_at(typical, i, n, r):
    """CCI of bar ``i`` from the typical prices of its ``n`` bars, summed in TA-Lib's ring
    order: ``r`` is the bar's slot, its index from the ticker's first bar modulo ``n``."""
    avg = 0.0
    for t in range(i - r, i + 1):
        avg += typical[t]
    for t in range(i - n + 1, i - r):
        avg += typical[t]
    avg /= n
    dev = 0.0
    for t in range(i - r, i + 1):
        dev += abs(typical[t] - avg)
    for t in range(i - n + 1, i - r):
        dev += abs(typical[t] - avg)
    dev /= n
    diff = typical[i] - avg
    scale = abs(avg)
    if _is_zero_scaled(diff, scale) or _is_zero_scaled(dev, scale):
        return 0.0
    return diff / mul(0.015, dev)


@register_jitable
def cci_segment(high, low, close, out, n, typical):
    """TA-Lib CCI: (TP − mean TP)/(0.015 · mean deviation) over ``n`` bars, 0 when either is
    zero at the scale of the mean.

    TA-Lib sums a ring buffer in slot order, not date order: with ``r = i % n`` the slots hold
    bars ``i − r .. i`` then ``i − n + 1 .. i − r − 1``, and the sums here run in that order.
    """
    m = close.shape[0]
    for i in range(m):
        typical[i] = typical_price(high[i], low[i], close[i])
    nan_head(out, n - 1)
    for i in range(n - 1, m):
        out[i] = cci_at(typical, i, n, i % n)


@register_jitable
def roc_segment(x, out, n):
    """TA-Lib ROC: (x / x[−n] − 1)·100, 0 when the old value is 0."""
    m = x.shape[0]
    nan_head(out, n)
    for i in range(n, m):
        old = x[i - n]
        out[i] = mul((x[i] / old) - 1.0, 100.0) if old != 0.0 else 0.0


@njit(cache=True, nogil=True)
def bbands(x, bounds, n, k):
    """Segmented TA-Lib BBANDS (SMA, equal deviations) → (upper, middle, lower)."""
    upper = np.empty_like(x)
    middle = np.empty_like(x)
    lower = np.empty_like(x)
    for s in range(bounds.shape[0] - 1):
        lo, hi = bounds[s], bounds[s + 1]
        bbands_segment(x[lo:hi], upper[lo:hi], middle[lo:hi], lower[lo:hi], n, k)
    return upper, middle, lower


@njit(cache=True, nogil=True)
def extremes(high, low, bounds, n):
    """Segmented rolling highest high and lowest low → (highest, lowest)."""
    highest = np.empty_like(high)
    lowest = np.empty_like(low)
    suffix_high = np.empty_like(high)
    suffix_low = np.empty_like(low)
    for s in range(bounds.shape[0] - 1):
        lo, hi = bounds[s], bounds[s + 1]
        extremes_segment(
            high[lo:hi],
            low[lo:hi],
            highest[lo:hi],
            lowest[lo:hi],
            n,
            suffix_high[lo:hi],
            suffix_low[lo:hi],
        )
    return highest, lowest


@njit(cache=True, nogil=True)
def stoch(high, low, close, bounds, fastk_period, k_smooth, d_period):
    """Segmented TA-Lib STOCH (SMA smoothing) → (slowk, slowd)."""
    highest, lowest = extremes(high, low, bounds, fastk_period)
    slowk = np.empty_like(close)
    slowd = np.empty_like(close)
    fastk = np.empty_like(close)
    tmp = np.empty_like(close)
    for s in range(bounds.shape[0] - 1):
        lo, hi = bounds[s], bounds[s + 1]
        stoch_segment(
            close[lo:hi],
            highest[lo:hi],
            lowest[lo:hi],
            slowk[lo:hi],
            slowd[lo:hi],
            fastk_period,
            k_smooth,
            d_period,
            fastk[lo:hi],
            tmp[lo:hi],
        )
    return slowk, slowd


@njit(cache=True, nogil=True)
def willr(high, low, close, bounds, n):
    """Segmented TA-Lib WILLR."""
    highest, lowest = extremes(high, low, bounds, n)
    out = np.empty_like(close)
    for s in range(bounds.shape[0] - 1):
        lo, hi = bounds[s], bounds[s + 1]
        willr_segment(close[lo:hi], highest[lo:hi], lowest[lo:hi], out[lo:hi], n)
    return out


@njit(cache=True, nogil=True)
def cci(high, low, close, bounds, n):
    """Segmented TA-Lib CCI."""
    out = np.empty_like(close)
    typical = np.empty_like(close)
    for s in range(bounds.shape[0] - 1):
        lo, hi = bounds[s], bounds[s + 1]
        cci_segment(high[lo:hi], low[lo:hi], close[lo:hi], out[lo:hi], n, typical[lo:hi])
    return out


@njit(cache=True, nogil=True)
def roc(x, bounds, n):
    """Segmented TA-Lib ROC."""
    out = np.empty_like(x)
    for s in range(bounds.shape[0] - 1):
        lo, hi = bounds[s], bounds[s + 1]
        roc_segment(x[lo:hi], out[lo:hi], n)
    return out


@njit(cache=True, nogil=True)
def window_ending(x, first, last, n, lag, how):
    """Per output row ``s``, reduce the ``n`` bars ending ``lag`` bars before bar ``last[s]``,
    never before bar ``first[s]`` (its ticker's first; fewer bars when the history is shorter,
    NaN when none): ``how`` 0 = max, 1 = min, 2 = mean. A scan asks at each ticker's last
    bar, a backtest at every bar of its dates."""
    k = last.shape[0]
    out = np.empty(k)
    for s in range(k):
        stop = last[s] + 1 - lag
        start = max(first[s], stop - n)
        if stop <= start:
            out[s] = np.nan
            continue
        acc = x[start]
        for i in range(start + 1, stop):
            if how == 0:
                acc = max(acc, x[i])
            elif how == 1:
                acc = min(acc, x[i])
            else:
                acc += x[i]
        out[s] = acc / (stop - start) if how == 2 else acc
    return out
