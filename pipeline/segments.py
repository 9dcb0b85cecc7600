"""Where values are read in a flat partition: ticker runs, segment bounds and the bars each
output row is evaluated at, and the benchmark's closes by date.

Every segmented kernel takes ``bounds`` (each ticker's slice of flat arrays); the scan reads
features at each ticker's last bar and a backtest at every bar of its dates (:class:`Tails`).
The low module of the engine: hygiene, features, signals, the store and the backtest all
build on it, and it builds on nothing of theirs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def run_starts(tickers: pa.Array | pa.ChunkedArray | np.ndarray) -> np.ndarray:
    """Where each ticker's run starts in ``tickers`` (grouped by ticker): ``[0, ...]``, empty
    for no rows. The one definition of ticker boundaries: store files, splits and the
    segmented kernels' bounds all come from it. Arrow strings are compared without
    factorizing."""
    if isinstance(tickers, pa.ChunkedArray):
        tickers = tickers.combine_chunks()
    if len(tickers) == 0:
        return np.zeros(0, dtype=np.int64)
    if isinstance(tickers, pa.Array):
        changed = pc.not_equal(tickers[1:], tickers[:-1]).to_numpy(zero_copy_only=False)
    else:
        changed = tickers[1:] != tickers[:-1]
    return np.r_[0, np.flatnonzero(changed) + 1].astype(np.int64)


def segment_bounds(index: pd.Index) -> np.ndarray:
    """Start offset of each ticker's run in a ticker-grouped ``index``, plus the total length.

    ``bounds[i]:bounds[i+1]`` is the i-th ticker's slice; a frame of ``k`` tickers gives
    ``k + 1`` bounds. This is what every segmented kernel takes.
    """
    values = index.array
    arrow = getattr(values, "_pa_array", None)  # Arrow-backed strings
    starts = run_starts(arrow if arrow is not None else np.asarray(values))
    return np.r_[starts, len(index)].astype(np.int64)


@dataclass(frozen=True)
class Benchmark:
    """The benchmark's closes by date, for relative strength (small: sent to every task)."""

    dates: np.ndarray  # datetime64[ns], ascending
    close: np.ndarray

    def with_bar(self, bar: tuple | None) -> Benchmark:
        """With a forming bar (date, close) appended when it is newer than the last one."""
        if bar is None or np.datetime64(bar[0], "ns") <= self.dates[-1]:
            return self
        day = np.datetime64(bar[0], "ns")
        return Benchmark(np.append(self.dates, day), np.append(self.close, bar[1]))

    def close_at(self, dates: np.ndarray) -> np.ndarray:
        """Benchmark close on or before each date (NaN before its first bar)."""
        pos = np.searchsorted(self.dates, dates, side="right") - 1
        return np.where(pos >= 0, self.close[np.maximum(pos, 0)], np.nan)


@dataclass(frozen=True)
class Tails:
    """Where each output row is evaluated in a flat partition: ``last``, the bar it is as of,
    and ``first``, its ticker's first bar. A scan has one row per ticker at its last bar; a
    backtest one per (ticker, date) at its last bar on or before the date."""

    first: np.ndarray
    last: np.ndarray

    @classmethod
    def from_bounds(cls, bounds: np.ndarray) -> Tails:
        return cls(first=bounds[:-1], last=bounds[1:] - 1)

    def window(self, values: np.ndarray, n: int, lag: int, how: int) -> np.ndarray:
        """``values`` reduced over the ``n`` bars ending ``lag`` bars before each row's bar
        (``how``: 0 max, 1 min, 2 mean; see :func:`pipeline.kernels.rolling.window_ending`)."""
        from pipeline.kernels.rolling import window_ending  # Numba: only where windows are read

        return window_ending(values, self.first, self.last, n, lag, how)

    def at(self, values: np.ndarray, lag: int = 0) -> np.ndarray:
        """``values`` at ``lag`` bars before each last bar (NaN where the ticker is shorter)."""
        pos = self.last - lag
        return np.where(pos >= self.first, values[np.maximum(pos, self.first)], np.nan)
