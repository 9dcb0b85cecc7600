"""Wilder's directional movement: PLUS_DI, MINUS_DI and ADX in one pass.

TA-Lib's three functions evolve the same smoothed +DM, −DM and TR sums bar by bar (seeded
with the sums over bars 1..n−1, then ``v −= v/n; v += today`` from bar n), so one pass yields
all three; ADX averages DX from bar ``2n − 1`` on. The segment function returns the sums
after its last bar, so a live scan steps one more bar with :func:`directional_advance`.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.extending import register_jitable

from pipeline.kernels.rounding import mul
from pipeline.kernels.smoothing import NAN, nan_head, true_range

TA_EPSILON = 1e-14  # TA-Lib 0.8's fixed zero band (TA_IS_ZERO)


@register_jitable
def _move(high, low, close, t):
    """(+DM, −DM, true range) of bar ``t`` against bar ``t − 1``: the larger of the up and
    down moves counts when positive, the other is 0 (both 0 on a tie)."""
    up = high[t] - high[t - 1]
    down = low[t - 1] - low[t]
    tr = true_range(high[t], low[t], close[t - 1])
    if down > 0 and up < down:
        return 0.0, down, tr
    if up > 0 and up > down:
        return up, 0.0, tr
    return 0.0, 0.0, tr


@register_jitable
def directional_advance(high, low, close, plus, minus, adx, n, pdm, mdm, ptr, sum_dx, value,
                        start, stop):  # fmt: skip
    """Wilder steps over bars ``start .. stop − 1`` (``start ≥ n``) from the smoothed sums
    ``pdm``, ``mdm``, ``ptr``, the DX total of the ADX seed and the last ADX ``value``;
    returns them. A bar's place in the ADX seed is its index, so ``t`` counts from the
    ticker's first bar."""
    for t in range(start, stop):
        up, down, tr = _move(high, low, close, t)
        mdm -= mdm / n
        pdm -= pdm / n
        mdm += down
        pdm += up
        ptr = ptr - (ptr / n) + tr
        mdi = 0.0
        pdi = 0.0
        if ptr > 0.0:
            mdi = mul(100.0, mdm / ptr)
            pdi = mul(100.0, pdm / ptr)
        plus[t] = pdi
        minus[t] = mdi
        total = mdi + pdi
        valid = ptr > 0.0 and not (-TA_EPSILON < total < TA_EPSILON)
        dx = mul(100.0, abs(mdi - pdi) / total) if valid else 0.0
        if t < 2 * n - 1:
            if valid:
                sum_dx += dx
            continue
        if t == 2 * n - 1:
            if valid:
                sum_dx += dx
            value = sum_dx / n
        elif valid:
            value = (mul(value, n - 1) + dx) / n
        adx[t] = value
    return pdm, mdm, ptr, sum_dx, value


@register_jitable
def directional_segment(high, low, close, plus, minus, adx, n):
    """TA-Lib PLUS_DI(n), MINUS_DI(n) (from bar n) and ADX(n) (from bar 2n − 1); returns the
    state of :func:`directional_advance` after the last bar (NaN when there is none).

    Adding a 0.0 move leaves a sum's bits unchanged, so taking both moves every bar equals
    TA-Lib's if/else accumulation exactly.
    """
    m = close.shape[0]
    nan_head(adx, 2 * n - 1)
    if n == 1:  # TA-Lib returns the raw one-bar ratios here, not scaled by 100
        nan_head(plus, 1)
        nan_head(minus, 1)
        for t in range(1, m):
            up, down, tr = _move(high, low, close, t)
            plus[t] = up / tr if up > 0.0 and tr > 0.0 else 0.0
            minus[t] = down / tr if down > 0.0 and tr > 0.0 else 0.0
        return NAN, NAN, NAN, NAN, NAN
    nan_head(plus, n)
    nan_head(minus, n)
    if n >= m:
        return NAN, NAN, NAN, NAN, NAN
    pdm = 0.0
    mdm = 0.0
    ptr = 0.0
    for t in range(1, n):
        up, down, tr = _move(high, low, close, t)
        mdm += down
        pdm += up
        ptr += tr
    return directional_advance(high, low, close, plus, minus, adx, n, pdm, mdm, ptr, 0.0, 0.0, n, m)


@njit(cache=True, nogil=True)
def directional(high, low, close, bounds, n):
    """Segmented TA-Lib PLUS_DI, MINUS_DI and ADX → (plus_di, minus_di, adx)."""
    plus = np.empty_like(close)
    minus = np.empty_like(close)
    adx = np.empty_like(close)
    for s in range(bounds.shape[0] - 1):
        lo, hi = bounds[s], bounds[s + 1]
        directional_segment(
            high[lo:hi], low[lo:hi], close[lo:hi], plus[lo:hi], minus[lo:hi], adx[lo:hi], n
        )
    return plus, minus, adx
