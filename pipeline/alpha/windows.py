"""Alpha158-style rolling families over trailing windows, evaluated at chosen rows.

One kernel serves the training panel (every row) and the scan (each ticker's last row): it
walks back from each requested row over at most ``max(windows)`` bars of the same ticker and
emits every statistic of every window as soon as the walk has covered that window. The two
paths therefore give bit-identical values (no running sums that depend on where a computation
started), and a row's values read only bars at or before it.

Every statistic is unit-free: prices enter relative to the row's close, volumes as ratios or
``log1p``. Per window ``d`` (``d`` bars ending at the row; return statistics need ``d`` daily
returns, so ``d + 1`` bars), in :data:`STATS` order:

``ma``    mean(close)/close − 1                 ``std``   std(close)/close (population)
``max``   max(high)/close − 1                   ``min``   min(low)/close − 1
``rsv``   (close − min low)/(max high − min low), NaN on a flat window
``imax``  bars since the highest high / d       ``imin``  bars since the lowest low / d
``corr``  correlation of close and log1p(volume), NaN when either is flat
``cntp``  share of up days                      ``cntn``  share of down days
``sump``  sum of gains / sum of |moves| (NaN when nothing moved)
``vol``   std of daily log returns (population)
``vma``   log((volume + 1)/(mean volume + 1))   ``vstd``  std(volume)/mean(volume)
``wvma``  std(|r|·volume)/mean(|r|·volume)

A window the ticker's history does not cover yet is NaN.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.extending import register_jitable

WINDOWS: tuple[int, ...] = (5, 10, 20, 60)
STATS: tuple[str, ...] = (
    "ma", "std", "max", "min", "rsv", "imax", "imin", "corr",
    "cntp", "cntn", "sump", "vol", "vma", "vstd", "wvma",
)  # fmt: skip
NAMES: tuple[str, ...] = tuple(f"{s}{d}" for d in WINDOWS for s in STATS)


def inputs(
    close: np.ndarray, volume: np.ndarray, bounds: np.ndarray, positions: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """``ret``, ``log_ret`` and ``log_volume`` for :func:`window_stats`.

    With ``positions`` (the scan: one row per ticker), only the rows the kernel reads for them
    are filled (each position and the ``max(WINDOWS) − 1`` rows before it, in its segment);
    the other rows are left unset, which window_stats never reads. Both paths compute each
    value with the same compiled arithmetic, so their windows are bit-identical.
    """
    full = positions is None or len(positions) * max(WINDOWS) >= len(close)
    make = np.full_like if full else (lambda a, _: np.empty_like(a))
    ret, log_ret, log_volume = (make(x, np.nan) for x in (close, close, volume))
    if full:
        _fill_all(close, volume, bounds, ret, log_ret, log_volume)
    else:
        span = max(WINDOWS)
        _fill_at(close, volume, bounds, positions, span, ret, log_ret, log_volume)
    return ret, log_ret, log_volume


@register_jitable
def _fill_row(close, volume, lo, i, ret, log_ret, log_volume):
    log_volume[i] = math.log1p(volume[i])
    if i > lo:
        r = close[i] / close[i - 1]
        ret[i] = r - 1.0
        log_ret[i] = math.log(r)


@njit(cache=True, nogil=True)
def _fill_all(close, volume, bounds, ret, log_ret, log_volume):
    for s in range(bounds.shape[0] - 1):
        for i in range(bounds[s], bounds[s + 1]):
            _fill_row(close, volume, bounds[s], i, ret, log_ret, log_volume)


@njit(cache=True, nogil=True)
def _fill_at(close, volume, bounds, positions, span, ret, log_ret, log_volume):
    for p in positions:
        lo = bounds[np.searchsorted(bounds, p, side="right") - 1]
        for i in range(max(lo, p - span + 1), p + 1):
            _fill_row(close, volume, lo, i, ret, log_ret, log_volume)


@njit(cache=True, nogil=True)
def trailing_mean_product(a, b, bounds, positions, n):
    """Mean of ``a·b`` over the ``n`` rows ending at each position (NaN when the segment has
    fewer): the same sum in the same order whichever rows are asked for."""
    out = np.full(positions.shape[0], np.nan)
    seg = 0
    for row in range(positions.shape[0]):
        p = positions[row]
        if seg >= bounds.shape[0] - 1 or p < bounds[seg] or p >= bounds[seg + 1]:
            seg = np.searchsorted(bounds, p, side="right") - 1
        if p - n + 1 < bounds[seg]:
            continue
        total = 0.0
        for i in range(p - n + 1, p + 1):
            total += a[i] * b[i]
        out[row] = total / n
    return out


@njit(cache=True, nogil=True)
def window_stats(high, low, close, volume, ret, log_ret, log_volume, bounds, positions, windows):
    """``(len(positions), len(windows)·15)`` matrix of the statistics in :data:`STATS` for
    each window (window-major), at each row of ``positions`` (rows of the flat arrays,
    segments given by ``bounds``). ``windows`` must be ascending.

    ``ret`` and ``log_ret`` are ``close[i]/close[i−1] − 1`` and its log, ``log_volume`` is
    ``log1p(volume)`` (see :func:`inputs`); a segment's first row is never read from them."""
    n_stats = 15
    k = positions.shape[0]
    nw = windows.shape[0]
    out = np.full((k, nw * n_stats), np.nan)
    longest = windows[nw - 1]
    seg = 0
    for row in range(k):
        p = positions[row]
        # segment of p (positions ascending in practice; fall back to a search otherwise)
        if seg >= bounds.shape[0] - 1 or p < bounds[seg] or p >= bounds[seg + 1]:
            seg = np.searchsorted(bounds, p, side="right") - 1
        lo = bounds[seg]
        c_p = close[p]
        v_p = volume[p]
        sx = 0.0
        sxx = 0.0
        sy = 0.0
        syy = 0.0
        sxy = 0.0
        hmax = -np.inf
        lmin = np.inf
        kmax = 0
        kmin = 0
        sv = 0.0
        svv = 0.0
        cntp = 0.0
        cntn = 0.0
        gain = 0.0
        moved = 0.0
        slr = 0.0
        slr2 = 0.0
        sw = 0.0
        sww = 0.0
        nret = 0
        j = 0
        for back in range(longest):
            i = p - back
            if i < lo:
                break
            x = close[i] / c_p - 1.0
            sx += x
            sxx += x * x
            y = log_volume[i]
            sy += y
            syy += y * y
            sxy += x * y
            if high[i] > hmax:
                hmax = high[i]
                kmax = back
            if low[i] < lmin:
                lmin = low[i]
                kmin = back
            v = volume[i]
            sv += v
            svv += v * v
            if i > lo:
                r = ret[i]
                if r > 0.0:
                    cntp += 1.0
                    gain += r
                elif r < 0.0:
                    cntn += 1.0
                moved += abs(r)
                lr = log_ret[i]
                slr += lr
                slr2 += lr * lr
                w = abs(r) * v
                sw += w
                sww += w * w
                nret += 1
            if back + 1 == windows[j]:
                d = float(windows[j])
                base = j * n_stats
                mx = sx / d
                out[row, base + 0] = mx
                out[row, base + 1] = math.sqrt(max(sxx / d - mx * mx, 0.0))
                out[row, base + 2] = hmax / c_p - 1.0
                out[row, base + 3] = lmin / c_p - 1.0
                spread = hmax - lmin
                if spread > 0.0:
                    out[row, base + 4] = (c_p - lmin) / spread
                out[row, base + 5] = kmax / d
                out[row, base + 6] = kmin / d
                my = sy / d
                vx = sxx / d - mx * mx
                vy = syy / d - my * my
                if vx > 1e-20 and vy > 1e-12:
                    out[row, base + 7] = (sxy / d - mx * my) / math.sqrt(vx * vy)
                mv = sv / d
                out[row, base + 12] = math.log((v_p + 1.0) / (mv + 1.0))
                if mv > 0.0:
                    out[row, base + 13] = math.sqrt(max(svv / d - mv * mv, 0.0)) / mv
                if nret == windows[j]:
                    out[row, base + 8] = cntp / d
                    out[row, base + 9] = cntn / d
                    if moved > 0.0:
                        out[row, base + 10] = gain / moved
                    ml = slr / d
                    out[row, base + 11] = math.sqrt(max(slr2 / d - ml * ml, 0.0))
                    mw = sw / d
                    if mw > 0.0:
                        out[row, base + 14] = math.sqrt(max(sww / d - mw * mw, 0.0)) / mw
                j += 1
                if j == nw:
                    break
    return out
