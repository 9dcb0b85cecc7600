"""Every indicator of the scan (:data:`pipeline.features.INDICATORS`) one bar further.

:func:`run_segments` runs the segment functions of :mod:`pipeline.kernels` over whole
histories, as the scan does, and keeps what a later bar needs: each indicator's step state after
the last bar and the last few outputs. :func:`step` takes one more bar per ticker from those
states with the same ``*_advance`` functions, so its outputs have the bits of a recompute over
the history with that bar appended. Tickers whose history is shorter than the tail a step
reads are recomputed whole instead (:func:`run_segments` on the tail itself).

Columns of the output matrices, in order: one per SMA period, then :data:`COLUMNS`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.kernels.directional import directional_advance, directional_segment
from pipeline.kernels.rolling import (
    bbands_advance,
    bbands_segment,
    cci_at,
    extremes_segment,
    fast_k,
    stoch_segment,
    typical_price,
    williams,
    willr_segment,
)
from pipeline.kernels.smoothing import (
    atr_advance,
    atr_segment,
    macd_advance,
    macd_segment,
    rsi_advance,
    rsi_segment,
    sma_advance,
    sma_segment,
)
from pipeline.kernels.volume import mfi_advance, mfi_segment

# Output columns after the SMAs (named by pipeline.features.INDICATORS, see pipeline.live.plan)
COLUMNS = (
    "rsi", "macd", "macd_signal", "macd_hist", "bb_upper", "bb_middle", "bb_lower", "atr",
    "plus_di", "minus_di", "adx", "stoch_k", "stoch_d", "mfi", "cci", "willr",
)  # fmt: skip
# State slots after the SMAs' running totals
STATE = (
    "rsi_gain", "rsi_loss", "macd_fast", "macd_slow", "macd_signal", "bb_total", "bb_shift",
    "bb_v1", "bb_v2", "bb_budget", "atr", "dm_plus", "dm_minus", "dm_tr", "dm_dx_sum", "adx",
    "stoch_k_total", "stoch_d_total", "mfi_pos", "mfi_neg", "mfi_null_run",
)  # fmt: skip
NAN = np.nan


@njit(cache=True, nogil=True)
def _segment(h, lw, c, v, smas, p, out, states):
    """Every indicator over one ticker's bars: full outputs into ``out`` (bars × columns),
    the step states into ``states``. ``p``: rsi, macd fast/slow/signal, bb n and k, atr, dmi,
    stoch k/k_smooth/d, mfi, cci, willr periods."""
    m = c.shape[0]
    k = smas.shape[0]
    for j in range(k):
        states[j] = sma_segment(c, out[:, j], smas[j], 0)
    col = out[:, k:].T.copy()  # contiguous rows per column
    states[k], states[k + 1] = rsi_segment(c, col[0], int(p[0]))
    scratch_a = np.empty(m)
    scratch_b = np.empty(m)
    f, s, g = macd_segment(
        c, col[1], col[2], col[3], int(p[1]), int(p[2]), int(p[3]), scratch_a, scratch_b
    )
    states[k + 2], states[k + 3], states[k + 4] = f, s, g
    total, shift, v1, v2, budget = bbands_segment(c, col[4], col[5], col[6], int(p[4]), p[5])
    states[k + 5], states[k + 6], states[k + 7] = total, shift, v1
    states[k + 8], states[k + 9] = v2, budget
    states[k + 10] = atr_segment(h, lw, c, col[7], int(p[6]))
    pdm, mdm, ptr, sum_dx, value = directional_segment(h, lw, c, col[8], col[9], col[10], int(p[7]))
    states[k + 11], states[k + 12], states[k + 13] = pdm, mdm, ptr
    states[k + 14], states[k + 15] = sum_dx, value
    highest = np.empty(m)
    lowest = np.empty(m)
    extremes_segment(h, lw, highest, lowest, int(p[8]), scratch_a, scratch_b)
    fastk = np.empty(m)
    tmp = np.empty(m)
    total_k, total_d = stoch_segment(
        c, highest, lowest, col[11], col[12], int(p[8]), int(p[9]), int(p[10]), fastk, tmp
    )
    states[k + 16], states[k + 17] = total_k, total_d
    pos, neg, null_run = mfi_segment(h, lw, c, v, col[13], int(p[11]))
    states[k + 18], states[k + 19], states[k + 20] = pos, neg, null_run
    typical = np.empty(m)
    from_cci = int(p[12])
    for i in range(m):
        typical[i] = typical_price(h[i], lw[i], c[i])
    for i in range(min(from_cci - 1, m)):
        col[14][i] = NAN
    for i in range(from_cci - 1, m):
        col[14][i] = cci_at(typical, i, from_cci, i % from_cci)
    extremes_segment(h, lw, highest, lowest, int(p[13]), scratch_a, scratch_b)
    willr_segment(c, highest, lowest, col[15], int(p[13]))
    out[:, k:] = col.T


@njit(cache=True, nogil=True)
def run_segments(h, lw, c, v, bounds, smas, p, keep):
    """Every indicator over each segment of a flat partition: the last ``keep`` outputs per
    segment (segments × keep × columns, NaN-padded in front) and the step states
    (segments × slots)."""
    segments = bounds.shape[0] - 1
    columns = smas.shape[0] + len(COLUMNS)
    tails = np.full((segments, keep, columns), NAN)
    states = np.full((segments, smas.shape[0] + len(STATE)), NAN)
    for s in range(segments):
        lo, hi = bounds[s], bounds[s + 1]
        out = np.empty((hi - lo, columns))
        _segment(h[lo:hi], lw[lo:hi], c[lo:hi], v[lo:hi], smas, p, out, states[s])
        n = min(keep, hi - lo)
        tails[s, keep - n :] = out[hi - lo - n :]
    return tails, states


@njit(cache=True, nogil=True)
def _window(x, i, n, how):
    """Max (``how`` 0) or min (1) of ``x[i − n + 1 .. i]``: exact, in any order."""
    acc = x[i]
    for t in range(i - n + 1, i):
        acc = max(acc, x[t]) if how == 0 else min(acc, x[t])
    return acc


@njit(cache=True, nogil=True)
def step(h, lw, c, v, at, reach, index, states, stoch_k_before, smas, p):
    """One bar further for each ticker ``s``: its new bar is ``at[s]`` in the flat tail
    arrays, with at least ``reach`` of its bars before it (enough for every window:
    :func:`reach_needed`), and it is bar ``index[s]`` of the ticker's history. Returns the
    outputs at the new bar (tickers × columns) and the states after it; ``states`` is left as
    it was, so the same committed states can take the next minute's bar.
    ``stoch_k_before``: slow %K at the ``d − 1`` bars before (tickers × (d − 1))."""
    tickers = at.shape[0]
    k = smas.shape[0]
    out = np.empty((tickers, k + len(COLUMNS)))
    new = states.copy()
    rsi_n, fast, slow, sig = int(p[0]), int(p[1]), int(p[2]), int(p[3])
    bb_n, bb_k, atr_n, dmi_n = int(p[4]), p[5], int(p[6]), int(p[7])
    st_k, st_ks, st_d, mfi_n, cci_n, willr_n = (
        int(p[8]), int(p[9]), int(p[10]), int(p[11]), int(p[12]), int(p[13])
    )  # fmt: skip
    t = reach  # the new bar's index in each ticker's views
    buf = np.empty((k + len(COLUMNS), t + 1))  # the advances write their outputs at [:, t]
    fk = np.empty(st_ks)
    sk = np.empty(st_d)
    kout = np.empty(st_ks)
    dout = np.empty(st_d)
    typical = np.empty(cci_n)
    for s in range(tickers):
        i = at[s]
        hv, lv, cv, vv = h[i - t : i + 1], lw[i - t : i + 1], c[i - t : i + 1], v[i - t : i + 1]
        st = new[s]
        row = out[s]
        for j in range(k):
            st[j] = sma_advance(cv, buf[j], smas[j], st[j], t, t + 1)
        st[k], st[k + 1] = rsi_advance(cv, buf[k], rsi_n, st[k], st[k + 1], t, t + 1)
        f, sl, g = macd_advance(
            cv, buf[k + 1], buf[k + 2], buf[k + 3], fast, slow, sig,
            st[k + 2], st[k + 3], st[k + 4], t, t + 1,
        )  # fmt: skip
        st[k + 2], st[k + 3], st[k + 4] = f, sl, g
        total, shift, v1, v2, budget = bbands_advance(
            cv, buf[k + 4], buf[k + 5], buf[k + 6], bb_n, bb_k,
            st[k + 5], st[k + 6], st[k + 7], st[k + 8], int(st[k + 9]), t, t + 1,
        )  # fmt: skip
        st[k + 5], st[k + 6], st[k + 7], st[k + 8], st[k + 9] = total, shift, v1, v2, budget
        st[k + 10] = atr_advance(hv, lv, cv, buf[k + 7], atr_n, st[k + 10], t, t + 1)
        pdm, mdm, ptr, sum_dx, value = directional_advance(
            hv, lv, cv, buf[k + 8], buf[k + 9], buf[k + 10], dmi_n,
            st[k + 11], st[k + 12], st[k + 13], st[k + 14], st[k + 15], t, t + 1,
        )  # fmt: skip
        st[k + 11], st[k + 12], st[k + 13], st[k + 14], st[k + 15] = pdm, mdm, ptr, sum_dx, value
        pos, neg, null_run = mfi_advance(
            hv, lv, cv, vv, buf[k + 13], mfi_n, st[k + 18], st[k + 19], st[k + 20], t, t + 1
        )
        st[k + 18], st[k + 19], st[k + 20] = pos, neg, null_run
        for j in range(k + 11):
            row[j] = buf[j, t]
        for j in range(st_ks):  # fast %K of the bars the slow %K's SMA reads
            b = t - st_ks + 1 + j
            fk[j] = fast_k(cv[b], _window(hv, b, st_k, 0), _window(lv, b, st_k, 1))
        st[k + 16] = sma_advance(fk, kout, st_ks, st[k + 16], st_ks - 1, st_ks)
        for j in range(st_d - 1):
            sk[j] = stoch_k_before[s, j]
        sk[st_d - 1] = kout[st_ks - 1]
        st[k + 17] = sma_advance(sk, dout, st_d, st[k + 17], st_d - 1, st_d)
        row[k + 11], row[k + 12] = kout[st_ks - 1], dout[st_d - 1]
        row[k + 13] = buf[k + 13, t]
        for j in range(cci_n):
            b = t - cci_n + 1 + j
            typical[j] = typical_price(hv[b], lv[b], cv[b])
        row[k + 14] = cci_at(typical, cci_n - 1, cci_n, index[s] % cci_n)
        row[k + 15] = williams(cv[t], _window(hv, t, willr_n, 0), _window(lv, t, willr_n, 1))
    return out, new


def reach_needed(smas: np.ndarray, p: np.ndarray) -> int:
    """Bars before the new one that :func:`step` reads, at least: its longest window and the
    longest seed (an indicator's first output: SMA n at bar n − 1, MACD at slow + signal − 2,
    ADX at 2n − 1, ...), plus one."""
    windows = (*smas, p[0], p[2] + p[3], p[4], p[6], 2 * p[7], p[8] + p[9] + p[10], p[11],
               p[12], p[13])  # fmt: skip
    return int(max(windows)) + 1
