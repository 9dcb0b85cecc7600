"""Volume-weighted indicators: OBV and MFI."""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.extending import register_jitable

from pipeline.kernels.rounding import mul
from pipeline.kernels.smoothing import NAN, nan_head

TA_EPSILON = 1e-14


@register_jitable
def obv_segment(close, volume, out):
    """TA-Lib OBV: starts at the first bar's volume, then ± each bar's volume on an up/down
    close (unchanged on a flat close)."""
    m = close.shape[0]
    if m == 0:
        return
    total = volume[0]
    prev = close[0]
    for i in range(m):
        if close[i] > prev:
            total += volume[i]
        elif close[i] < prev:
            total -= volume[i]
        out[i] = total
        prev = close[i]


@register_jitable
def _money_flow(high, low, close, volume, t):
    """(positive, negative) raw money flow of bar ``t`` against bar ``t − 1``, with TA-Lib's
    scaled dead zone: an unchanged typical price moves no money."""
    tp = (high[t] + low[t] + close[t]) / 3.0
    prev = (high[t - 1] + low[t - 1] + close[t - 1]) / 3.0
    diff = tp - prev
    flow = mul(tp, volume[t])
    if abs(diff) <= mul(TA_EPSILON, abs(tp) + abs(prev)):
        flow = 0.0
    if diff < 0.0:
        return 0.0, flow
    return flow, 0.0


@register_jitable
def mfi_value(pos_sum, neg_sum):
    total = pos_sum + neg_sum
    clamped = 0.0 if pos_sum < 0.0 else (total if pos_sum > total else pos_sum)
    return 0.0 if total <= 0.0 else mul(100.0, clamped / total)


@register_jitable
def mfi_flow(high, low, close, volume, today, n, pos_sum, neg_sum, null_run):
    """Bar ``today``'s flow added to the sums (``null_run``: bars in a row without any)."""
    pos, neg = _money_flow(high, low, close, volume, today)
    pos_sum += pos
    neg_sum += neg
    null_run = null_run + 1 if pos + neg == 0.0 else 0
    if null_run >= n:
        null_run = n
        pos_sum = 0.0
        neg_sum = 0.0
    return pos_sum, neg_sum, null_run


@register_jitable
def mfi_advance(high, low, close, volume, out, n, pos_sum, neg_sum, null_run, start, stop):
    """MFI steps over bars ``start .. stop − 1`` (``start > n``) from the flow sums of the
    ``n − 1`` bars before and the run of bars without flow; returns them."""
    for today in range(start, stop):
        old_pos, old_neg = _money_flow(high, low, close, volume, today - n)
        pos_sum -= old_pos
        neg_sum -= old_neg
        pos_sum, neg_sum, null_run = mfi_flow(
            high, low, close, volume, today, n, pos_sum, neg_sum, null_run
        )
        out[today] = mfi_value(pos_sum, neg_sum)
    return pos_sum, neg_sum, null_run


@register_jitable
def mfi_segment(high, low, close, volume, out, n):
    """TA-Lib MFI: 100 · positive flow / total flow over ``n`` bars; 0 with no flow, and the
    sums restart after ``n`` bars in a row without any flow. Returns the state of
    :func:`mfi_advance` after the last bar (NaN when there is none).

    TA-Lib keeps the last ``n`` flows in a ring buffer; they are recomputed from the inputs
    here (same operations, same bits), so the kernel needs no scratch memory.
    """
    m = close.shape[0]
    nan_head(out, n)
    if n >= m:
        return NAN, NAN, NAN
    pos_sum = 0.0
    neg_sum = 0.0
    null_run = 0.0
    for today in range(1, n + 1):
        pos_sum, neg_sum, null_run = mfi_flow(
            high, low, close, volume, today, n, pos_sum, neg_sum, null_run
        )
    out[n] = mfi_value(pos_sum, neg_sum)
    return mfi_advance(high, low, close, volume, out, n, pos_sum, neg_sum, null_run, n + 1, m)


@njit(cache=True, nogil=True)
def obv(close, volume, bounds):
    """Segmented TA-Lib OBV."""
    out = np.empty_like(close)
    for s in range(bounds.shape[0] - 1):
        lo, hi = bounds[s], bounds[s + 1]
        obv_segment(close[lo:hi], volume[lo:hi], out[lo:hi])
    return out


@njit(cache=True, nogil=True)
def mfi(high, low, close, volume, bounds, n):
    """Segmented TA-Lib MFI."""
    out = np.empty_like(close)
    for s in range(bounds.shape[0] - 1):
        lo, hi = bounds[s], bounds[s + 1]
        mfi_segment(high[lo:hi], low[lo:hi], close[lo:hi], volume[lo:hi], out[lo:hi], n)
    return out
