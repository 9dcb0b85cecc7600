"""Row checks for data hygiene, one pass over a flat partition (see :mod:`pipeline.hygiene`)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

KEEP = 0  # reason codes: 0 keeps the row; 1.. index pipeline.hygiene.REASONS plus one


@njit(cache=True, nogil=True)
def reasons(dates, open_, high, low, close, volume, bounds):
    """Per row, the first hygiene reason that drops it (0: keep), and per segment the count of
    each reason: ``(codes, counts[segment, code])``. ``dates`` are int64 nanoseconds sorted
    inside each segment; of equal dates the last row is kept."""
    n = close.shape[0]
    k = bounds.shape[0] - 1
    codes = np.zeros(n, dtype=np.int8)
    counts = np.zeros((k, 6), dtype=np.int64)
    for s in range(k):
        lo, hi = bounds[s], bounds[s + 1]
        for i in range(lo, hi):
            o, h, lw, c, v = open_[i], high[i], low[i], close[i], volume[i]
            if i + 1 < hi and dates[i + 1] == dates[i]:
                code = 1
            elif not (math.isfinite(o) and math.isfinite(h) and math.isfinite(lw)
                      and math.isfinite(c)):  # fmt: skip
                code = 2
            elif not (o > 0 and h > 0 and lw > 0 and c > 0):
                code = 3
            elif not h >= lw:
                code = 4
            elif not (math.isfinite(v) and v >= 0):
                code = 5
            else:
                code = KEEP
            codes[i] = code
            counts[s, code] += 1
    return codes, counts


@njit(cache=True, nogil=True)
def compact(keep, dates, open_, high, low, close, volume):
    """The rows where ``keep`` is true, as new arrays (one pass instead of six masks)."""
    m = 0
    for i in range(keep.shape[0]):
        m += keep[i]
    out = (
        np.empty(m, dtype=dates.dtype),
        np.empty(m, dtype=open_.dtype),
        np.empty(m, dtype=high.dtype),
        np.empty(m, dtype=low.dtype),
        np.empty(m, dtype=close.dtype),
        np.empty(m, dtype=volume.dtype),
    )
    j = 0
    for i in range(keep.shape[0]):
        if keep[i]:
            out[0][j] = dates[i]
            out[1][j] = open_[i]
            out[2][j] = high[i]
            out[3][j] = low[i]
            out[4][j] = close[i]
            out[5][j] = volume[i]
            j += 1
    return out
