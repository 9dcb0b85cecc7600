"""The segmented kernels on a CUDA GPU: one GPU thread per ticker segment.

Every kernel here calls the same per-segment function as its CPU driver (``*_segment``,
compiled for the GPU by Numba from the one definition), on the same slices, so CPU and GPU
compute the same operations in the same order, fused multiply-adds included, and nothing else
fused (products are :func:`~pipeline.kernels.rounding.mul`): the same bits. A launch runs all
the segments of a partition at once; each thread walks its ticker's bars in date order, as the
recursive indicators (EMA, RSI, ATR, ADX) require.

The indicator twins take and return device arrays (Numba's, or CuPy's: anything with
``__cuda_array_interface__``); :data:`TWINS` maps each CPU driver to its twin. The hygiene
twins (:func:`out_of_order`, :func:`reasons`, :func:`compact`) clean a partition that is
already in GPU memory (a cuDF partition's columns).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from numba import cuda

from pipeline.kernels import cleaning, directional, rolling, smoothing, volume
from pipeline.kernels.cleaning import compact_segment, out_of_order_segment, reasons_segment
from pipeline.kernels.directional import directional_segment
from pipeline.kernels.rolling import (
    bbands_segment,
    cci_segment,
    extremes_segment,
    roc_segment,
    stoch_segment,
    willr_segment,
)
from pipeline.kernels.smoothing import (
    atr_segment,
    ema_segment,
    macd_segment,
    rsi_segment,
    sma_segment,
)
from pipeline.kernels.volume import mfi_segment, obv_segment

THREADS = 128  # threads per block; a partition's few thousand segments fill a few dozen blocks


def _empty(like, count: int = 1):
    return tuple(cuda.device_array(like.shape, like.dtype) for _ in range(count))


def _launch(kernel, bounds, *args) -> None:
    segments = bounds.shape[0] - 1
    if segments > 0:
        kernel[(segments + THREADS - 1) // THREADS, THREADS](*args)


@cuda.jit
def _sma(x, bounds, out, n):
    s = cuda.grid(1)
    if s < bounds.shape[0] - 1:
        lo, hi = bounds[s], bounds[s + 1]
        sma_segment(x[lo:hi], out[lo:hi], n, 0)


def sma(x, bounds, n):
    (out,) = _empty(x)
    _launch(_sma, bounds, x, bounds, out, n)
    return out


@cuda.jit
def _ema(x, bounds, out, n):
    s = cuda.grid(1)
    if s < bounds.shape[0] - 1:
        lo, hi = bounds[s], bounds[s + 1]
        ema_segment(x[lo:hi], out[lo:hi], n, n - 1)


def ema(x, bounds, n):
    (out,) = _empty(x)
    _launch(_ema, bounds, x, bounds, out, n)
    return out


@cuda.jit
def _macd(x, bounds, line, signal, hist, fast, slow, sig, fast_ema, slow_ema):
    s = cuda.grid(1)
    if s < bounds.shape[0] - 1:
        lo, hi = bounds[s], bounds[s + 1]
        macd_segment(
            x[lo:hi], line[lo:hi], signal[lo:hi], hist[lo:hi], fast, slow, sig,
            fast_ema[lo:hi], slow_ema[lo:hi],
        )  # fmt: skip


def macd(x, bounds, fast, slow, sig):
    line, signal, hist, fast_ema, slow_ema = _empty(x, 5)
    _launch(_macd, bounds, x, bounds, line, signal, hist, fast, slow, sig, fast_ema, slow_ema)
    return line, signal, hist


@cuda.jit
def _rsi(x, bounds, out, n):
    s = cuda.grid(1)
    if s < bounds.shape[0] - 1:
        lo, hi = bounds[s], bounds[s + 1]
        rsi_segment(x[lo:hi], out[lo:hi], n)


def rsi(x, bounds, n):
    (out,) = _empty(x)
    _launch(_rsi, bounds, x, bounds, out, n)
    return out


@cuda.jit
def _atr(high, low, close, bounds, out, n):
    s = cuda.grid(1)
    if s < bounds.shape[0] - 1:
        lo, hi = bounds[s], bounds[s + 1]
        atr_segment(high[lo:hi], low[lo:hi], close[lo:hi], out[lo:hi], n)


def atr(high, low, close, bounds, n):
    (out,) = _empty(close)
    _launch(_atr, bounds, high, low, close, bounds, out, n)
    return out


@cuda.jit
def _directional(high, low, close, bounds, plus, minus, adx, n):
    s = cuda.grid(1)
    if s < bounds.shape[0] - 1:
        lo, hi = bounds[s], bounds[s + 1]
        directional_segment(
            high[lo:hi], low[lo:hi], close[lo:hi], plus[lo:hi], minus[lo:hi], adx[lo:hi], n
        )


def directional_(high, low, close, bounds, n):
    plus, minus, adx = _empty(close, 3)
    _launch(_directional, bounds, high, low, close, bounds, plus, minus, adx, n)
    return plus, minus, adx


@cuda.jit
def _bbands(x, bounds, upper, middle, lower, n, k):
    s = cuda.grid(1)
    if s < bounds.shape[0] - 1:
        lo, hi = bounds[s], bounds[s + 1]
        bbands_segment(x[lo:hi], upper[lo:hi], middle[lo:hi], lower[lo:hi], n, k)


def bbands(x, bounds, n, k):
    upper, middle, lower = _empty(x, 3)
    _launch(_bbands, bounds, x, bounds, upper, middle, lower, n, float(k))
    return upper, middle, lower


@cuda.jit
def _extremes(high, low, bounds, highest, lowest, n, suffix_high, suffix_low):
    s = cuda.grid(1)
    if s < bounds.shape[0] - 1:
        lo, hi = bounds[s], bounds[s + 1]
        extremes_segment(
            high[lo:hi], low[lo:hi], highest[lo:hi], lowest[lo:hi], n,
            suffix_high[lo:hi], suffix_low[lo:hi],
        )  # fmt: skip


def extremes(high, low, bounds, n):
    highest, lowest, suffix_high, suffix_low = _empty(high, 4)
    _launch(_extremes, bounds, high, low, bounds, highest, lowest, n, suffix_high, suffix_low)
    return highest, lowest


@cuda.jit
def _stoch(close, bounds, highest, lowest, slowk, slowd, p_k, p_smooth, p_d, fastk, tmp):
    s = cuda.grid(1)
    if s < bounds.shape[0] - 1:
        lo, hi = bounds[s], bounds[s + 1]
        stoch_segment(
            close[lo:hi], highest[lo:hi], lowest[lo:hi], slowk[lo:hi], slowd[lo:hi],
            p_k, p_smooth, p_d, fastk[lo:hi], tmp[lo:hi],
        )  # fmt: skip


def stoch(high, low, close, bounds, fastk_period, k_smooth, d_period):
    highest, lowest = extremes(high, low, bounds, fastk_period)
    slowk, slowd, fastk, tmp = _empty(close, 4)
    _launch(
        _stoch, bounds, close, bounds, highest, lowest, slowk, slowd,
        fastk_period, k_smooth, d_period, fastk, tmp,
    )  # fmt: skip
    return slowk, slowd


@cuda.jit
def _willr(close, bounds, highest, lowest, out, n):
    s = cuda.grid(1)
    if s < bounds.shape[0] - 1:
        lo, hi = bounds[s], bounds[s + 1]
        willr_segment(close[lo:hi], highest[lo:hi], lowest[lo:hi], out[lo:hi], n)


def willr(high, low, close, bounds, n):
    highest, lowest = extremes(high, low, bounds, n)
    (out,) = _empty(close)
    _launch(_willr, bounds, close, bounds, highest, lowest, out, n)
    return out


@cuda.jit
def _cci(high, low, close, bounds, out, n, typical):
    s = cuda.grid(1)
    if s < bounds.shape[0] - 1:
        lo, hi = bounds[s], bounds[s + 1]
        cci_segment(high[lo:hi], low[lo:hi], close[lo:hi], out[lo:hi], n, typical[lo:hi])


def cci(high, low, close, bounds, n):
    out, typical = _empty(close, 2)
    _launch(_cci, bounds, high, low, close, bounds, out, n, typical)
    return out


@cuda.jit
def _roc(x, bounds, out, n):
    s = cuda.grid(1)
    if s < bounds.shape[0] - 1:
        lo, hi = bounds[s], bounds[s + 1]
        roc_segment(x[lo:hi], out[lo:hi], n)


def roc(x, bounds, n):
    (out,) = _empty(x)
    _launch(_roc, bounds, x, bounds, out, n)
    return out


@cuda.jit
def _obv(close, vol, bounds, out):
    s = cuda.grid(1)
    if s < bounds.shape[0] - 1:
        lo, hi = bounds[s], bounds[s + 1]
        obv_segment(close[lo:hi], vol[lo:hi], out[lo:hi])


def obv(close, vol, bounds):
    (out,) = _empty(close)
    _launch(_obv, bounds, close, vol, bounds, out)
    return out


@cuda.jit
def _mfi(high, low, close, vol, bounds, out, n):
    s = cuda.grid(1)
    if s < bounds.shape[0] - 1:
        lo, hi = bounds[s], bounds[s + 1]
        mfi_segment(high[lo:hi], low[lo:hi], close[lo:hi], vol[lo:hi], out[lo:hi], n)


def mfi(high, low, close, vol, bounds, n):
    (out,) = _empty(close)
    _launch(_mfi, bounds, high, low, close, vol, bounds, out, n)
    return out


@cuda.jit
def _out_of_order(dates, bounds, flags):
    s = cuda.grid(1)
    if s < bounds.shape[0] - 1:
        flags[s] = out_of_order_segment(dates, bounds[s], bounds[s + 1])


def out_of_order(dates, bounds) -> bool:
    """Whether any segment's dates go backwards (``dates``: int64 nanoseconds)."""
    segments = bounds.shape[0] - 1
    flags = cuda.to_device(np.zeros(max(segments, 1), dtype=np.int8))
    _launch(_out_of_order, bounds, dates, bounds, flags)
    return bool(flags.copy_to_host().any())


@cuda.jit
def _reasons(dates, open_, high, low, close, volume, bounds, codes, counts):
    s = cuda.grid(1)
    if s < bounds.shape[0] - 1:
        reasons_segment(
            dates, open_, high, low, close, volume, bounds[s], bounds[s + 1], codes, counts[s]
        )


def reasons(dates, open_, high, low, close, volume, bounds):
    """Twin of :func:`pipeline.kernels.cleaning.reasons`: device codes, host counts."""
    codes = cuda.device_array(close.shape[0], dtype=np.int8)
    counts = cuda.to_device(np.zeros((bounds.shape[0] - 1, cleaning.CODES), dtype=np.int64))
    _launch(_reasons, bounds, dates, open_, high, low, close, volume, bounds, codes, counts)
    return codes, counts.copy_to_host()


@cuda.jit
def _compact(codes, bounds, at, source, target):
    s = cuda.grid(1)
    if s < bounds.shape[0] - 1:
        compact_segment(codes, bounds[s], bounds[s + 1], at[s], source, target)


def compact(codes, bounds, at, kept: int, column):
    """Twin of :func:`pipeline.kernels.cleaning.compact`: each segment's kept rows go to
    ``at[segment]`` on (``at``: the kept rows before it)."""
    out = cuda.device_array(kept, dtype=column.dtype)
    _launch(_compact, bounds, codes, bounds, at, column, out)
    return out


# CPU driver → its GPU twin (same arguments, device arrays in and out).
TWINS: dict[Callable, Callable] = {
    smoothing.sma: sma,
    smoothing.ema: ema,
    smoothing.macd: macd,
    smoothing.rsi: rsi,
    smoothing.atr: atr,
    directional.directional: directional_,
    rolling.bbands: bbands,
    rolling.extremes: extremes,
    rolling.stoch: stoch,
    rolling.willr: willr,
    rolling.cci: cci,
    rolling.roc: roc,
    volume.obv: obv,
    volume.mfi: mfi,
}


class OnDevice:
    """Runs CPU drivers' twins on one partition: each input array goes to the GPU once (on
    first use) unless ``device`` already holds it there, each result comes back as a NumPy
    array."""

    def __init__(
        self,
        arrays: Mapping[str, np.ndarray],
        bounds: np.ndarray,
        device: Mapping[str, object] | None = None,
    ):
        self.arrays = arrays
        self.bounds = cuda.to_device(np.ascontiguousarray(bounds))
        self.device: dict[str, object] = dict(device or {})

    def _input(self, name: str):
        if name not in self.device:
            self.device[name] = cuda.to_device(np.ascontiguousarray(self.arrays[name]))
        return self.device[name]

    def __call__(self, kernel: Callable, inputs: tuple[str, ...], params: tuple):
        result = TWINS[kernel](*(self._input(i) for i in inputs), self.bounds, *params)
        if isinstance(result, tuple):
            return tuple(r.copy_to_host() for r in result)
        return result.copy_to_host()
