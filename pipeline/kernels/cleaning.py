"""Row checks for data hygiene over a flat partition (see :mod:`pipeline.hygiene`).

The per-segment functions (``*_segment``) are the one definition of each check;
the drivers here run them on the CPU, their twins in :mod:`pipeline.kernels.gpu` on a GPU.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.extending import register_jitable

from pipeline.kernels.rounding import mul

KEEP = 0  # reason codes: 0 keeps the row; 1.. index pipeline.hygiene.REASONS plus one
CODES = 7
SPIKE_FACTOR = 100.0  # a price this many times off its reference is a bad print


@register_jitable
def far_off(price, reference):
    """Whether ``price`` is over ``SPIKE_FACTOR`` times above or below a positive
    ``reference`` (never for a missing or non-positive reference). Bitwise, not ``and``/``or``:
    without branches the row loop runs about twice as fast."""
    return (reference > 0) & (
        (price > mul(SPIKE_FACTOR, reference)) | (reference > mul(SPIKE_FACTOR, price))
    )


@register_jitable
def spike(open_, high, low, close, i, lo, hi):
    """Whether row ``i`` of the segment ``lo:hi`` is a bad print: its open, high or low far off
    its own close, or its close far off the closes of both neighbours. A split moves the level
    once and for good, so the first bar after it is off its previous neighbour only; the first
    and last bar of a segment have one neighbour and are judged by their own prices."""
    c = close[i]
    own = far_off(open_[i], c) | far_off(high[i], c) | far_off(low[i], c)
    inside = lo < i < hi - 1
    before = close[i - 1] if inside else c
    after = close[i + 1] if inside else c
    return own | (far_off(c, before) & far_off(c, after))


@register_jitable
def out_of_order_segment(dates, lo, hi):
    """Whether the dates of rows ``lo:hi`` ever go backwards."""
    for i in range(lo + 1, hi):  # noqa: SIM110 (no generators in CUDA device code)
        if dates[i] < dates[i - 1]:
            return True
    return False


@register_jitable
def reasons_segment(dates, open_, high, low, close, volume, lo, hi, codes, counts):
    """Rows ``lo:hi`` (one ticker): each row's first hygiene reason (0: keep) into ``codes``,
    the count of each reason into ``counts`` (that ticker's row). ``dates`` are int64
    nanoseconds sorted inside the segment; of equal dates the last row is kept."""
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
        elif spike(open_, high, low, close, i, lo, hi):
            code = 5
        elif not (math.isfinite(v) and v >= 0):
            code = 6
        else:
            code = KEEP
        codes[i] = code
        counts[code] += 1


@register_jitable
def compact_segment(codes, lo, hi, at, source, target):
    """Copy the kept rows of ``source[lo:hi]`` to ``target`` from position ``at`` on."""
    j = at
    for i in range(lo, hi):
        if codes[i] == KEEP:
            target[j] = source[i]
            j += 1


@njit(cache=True, nogil=True)
def out_of_order(dates, bounds):
    """Whether any segment's dates go backwards (then the rows need sorting first)."""
    for s in range(bounds.shape[0] - 1):
        if out_of_order_segment(dates, bounds[s], bounds[s + 1]):
            return True
    return False


@njit(cache=True, nogil=True)
def reasons(dates, open_, high, low, close, volume, bounds):
    """Per row, the first hygiene reason that drops it (0: keep), and per segment the count of
    each reason: ``(codes, counts[segment, code])``."""
    k = bounds.shape[0] - 1
    codes = np.zeros(close.shape[0], dtype=np.int8)
    counts = np.zeros((k, CODES), dtype=np.int64)
    for s in range(k):
        reasons_segment(
            dates, open_, high, low, close, volume, bounds[s], bounds[s + 1], codes, counts[s]
        )
    return codes, counts


@njit(cache=True, nogil=True)
def compact(codes, kept, column):
    """The ``kept`` rows of ``column`` whose code is KEEP, as a new array."""
    out = np.empty(kept, dtype=column.dtype)
    compact_segment(codes, 0, codes.shape[0], 0, column, out)
    return out
