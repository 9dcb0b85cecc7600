"""Data hygiene for one partition of bars: vectorized, per ticker, every dropped row counted.

A row is dropped for the first of these reasons that applies, in this order:

``duplicate_date``      another row of the same ticker has the same date (the last one is kept)
``non_finite_price``    open, high, low or close is NaN or infinite
``non_positive_price``  a price is zero or negative
``high_below_low``      high < low
``price_spike``         a bad print: open, high or low over 100× off the bar's close, or the close
                        over 100× off both neighbouring closes (a split is one lasting step, not
                        a spike that comes back, and is kept)
``bad_volume``          volume is NaN, infinite or negative

Rows out of date order are sorted first (the store is sorted, so this costs only a check).
The result is plain arrays, ready for the segmented kernels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.kernels import cleaning
from pipeline.schema import BAR_COLUMNS, DATE, DATE_DTYPE, TICKER
from pipeline.segments import segment_bounds

REASONS: tuple[str, ...] = (
    "duplicate_date",
    "non_finite_price",
    "non_positive_price",
    "high_below_low",
    "price_spike",
    "bad_volume",
)


@dataclass(frozen=True)
class Cleaned:
    """Clean bars as flat arrays, and per input ticker the rows in and the drops per reason."""

    tickers: pd.Index  # every ticker of the input, in order
    rows_in: np.ndarray
    dropped: dict[str, np.ndarray]
    arrays: dict[str, np.ndarray]  # date, open, high, low, close, volume of the kept rows
    bounds: np.ndarray  # segment bounds of ``arrays`` (tickers that kept a row)
    kept: np.ndarray  # positions in ``tickers`` of the tickers that kept a row
    on_device: Mapping[str, Any] | None = None  # ``arrays`` in GPU memory too (clean_on_device)


def clean(bars: pd.DataFrame) -> Cleaned:
    """Drop bad rows of ``bars`` (ticker index, grouped by ticker) and count them per ticker."""
    bounds = segment_bounds(bars.index)
    dates = bars[DATE].to_numpy()
    lengths = np.diff(bounds)
    if cleaning.out_of_order(_read_only(dates.view(np.int64)), bounds):
        codes = np.repeat(np.arange(len(lengths)), lengths)
        bars = bars.iloc[np.lexsort((dates, codes))]  # sort dates inside each ticker
    tickers = bars.index[bounds[:-1]]
    arrays = {c: _read_only(bars[c].to_numpy()) for c in BAR_COLUMNS}
    columns = [arrays[c] for c in ("open", "high", "low", "close", "volume")]
    reason, counts = cleaning.reasons(arrays[DATE].view(np.int64), *columns, bounds)
    dropped, kept, kept_bounds = _tally(counts, lengths)
    if kept_bounds is not None:
        total = int(kept_bounds[-1])
        values = [arrays[DATE].view(np.int64), *columns]
        arrays = {
            c: _read_only(cleaning.compact(reason, total, v))
            for c, v in zip(BAR_COLUMNS, values, strict=True)
        }
        arrays[DATE] = arrays[DATE].view(DATE_DTYPE)
        bounds = kept_bounds
    return Cleaned(
        tickers=pd.Index(tickers, name=TICKER),
        rows_in=lengths,
        dropped=dropped,
        arrays=arrays,
        bounds=bounds,
        kept=kept,
    )


def trusted(bars: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``bars`` (ticker index, grouped by ticker) that :func:`clean` keeps, as a
    bars frame sorted by date within each ticker: the bars a chart of what the scan saw
    should draw."""
    cleaned = clean(bars)
    lengths = np.diff(cleaned.bounds)
    index = pd.Index(cleaned.tickers[cleaned.kept].repeat(lengths), name=TICKER)
    return pd.DataFrame(cleaned.arrays, index=index, columns=list(BAR_COLUMNS))


def clean_on_device(tickers: pd.Index, bounds: np.ndarray, columns: Mapping[str, Any]) -> Cleaned:
    """:func:`clean` for a partition already in GPU memory, with the same result.

    ``columns`` are Numba device arrays of :data:`BAR_COLUMNS` (``date`` as int64 nanoseconds),
    ``bounds`` their ticker segments and ``tickers`` one name per segment. The checks and the
    compaction run on the GPU (:mod:`pipeline.kernels.gpu`); the clean columns stay there for
    the indicator kernels (``on_device``) and come to the host once for the features. Rows out
    of date order (never in a store Technic wrote) are sorted by :func:`clean` on the host.
    """
    from numba import cuda

    from pipeline.kernels import gpu

    lengths = np.diff(bounds)
    on_gpu = cuda.to_device(np.ascontiguousarray(bounds, dtype=np.int64))
    if gpu.out_of_order(columns[DATE], on_gpu):
        host = {c: columns[c].copy_to_host() for c in BAR_COLUMNS}
        host[DATE] = host[DATE].view(DATE_DTYPE)
        return clean(pd.DataFrame(host, index=pd.Index(tickers.repeat(lengths), name=TICKER)))
    values = [columns[c] for c in BAR_COLUMNS]
    codes, counts = gpu.reasons(*values, on_gpu)
    dropped, kept, kept_bounds = _tally(counts, lengths)
    if kept_bounds is not None:
        kept_rows = counts[:, cleaning.KEEP]
        at = cuda.to_device(np.concatenate(([0], np.cumsum(kept_rows)[:-1])).astype(np.int64))
        values = [gpu.compact(codes, on_gpu, at, int(kept_bounds[-1]), v) for v in values]
        bounds = kept_bounds
    device = dict(zip(BAR_COLUMNS, values, strict=True))
    arrays = {c: _read_only(v.copy_to_host()) for c, v in device.items()}
    arrays[DATE] = arrays[DATE].view(DATE_DTYPE)
    return Cleaned(
        tickers=pd.Index(tickers, name=TICKER),
        rows_in=lengths,
        dropped=dropped,
        arrays=arrays,
        bounds=bounds,
        kept=kept,
        on_device=device,
    )


def _tally(
    counts: np.ndarray, lengths: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray | None]:
    """From the per-ticker reason counts: the drops per reason, the positions of the tickers
    that kept a row, and the segment bounds of the kept rows (None when no row was dropped)."""
    dropped = {name: counts[:, code + 1] for code, name in enumerate(REASONS)}
    kept_rows = counts[:, cleaning.KEEP]
    if not (kept_rows != lengths).any():
        return dropped, np.arange(len(lengths)), None
    kept = np.flatnonzero(kept_rows)
    return dropped, kept, np.concatenate(([0], np.cumsum(kept_rows[kept]))).astype(np.int64)


def _read_only(values: np.ndarray) -> np.ndarray:
    """A read-only view. Kernels never write their inputs, and Numba compiles one version
    per writability: whether pandas hands out a read-only view (copy-on-write) or a writable
    array depends on where the frame came from, so inputs are made read-only always and the
    kernels compiled by the workers' warm-up are the ones every partition uses."""
    view = values.view()
    view.flags.writeable = False
    return view
