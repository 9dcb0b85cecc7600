"""cuDF partitions: store files read straight into GPU memory, and the device columns that the
kernels take.

On the ``cuda`` cluster with cuDF and dask-cuDF installed, :func:`pipeline.frame.load_bars`
reads each store file with ``cudf.read_parquet`` (decoded on the GPU), and
:func:`pipeline.features.latest_features` cleans and computes the indicators of such a
partition where it is (:func:`pipeline.hygiene.clean_on_device`). Without cuDF, partitions stay
pandas and their arrays move to the GPU once per partition. The bar cache is for CPU workers:
cuDF partitions are always read from the Parquet files.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import StoreError
from pipeline.schema import DATE, PRICE_COLUMNS, TICKER, TICKER_DTYPE, empty_bars
from pipeline.store import parquet_filters, read_bytes


def available() -> bool:
    """Whether cuDF and dask-cuDF (which teaches Dask about cuDF frames) are installed."""
    try:
        import cudf  # noqa: F401
        import dask_cudf  # noqa: F401
    except Exception:  # ImportError, or a CUDA library that fails to load
        return False
    return True


def is_cudf(frame: object) -> bool:
    """Whether ``frame`` is a cuDF object (checked by module, so cuDF need not be installed)."""
    return type(frame).__module__.partition(".")[0] == "cudf"


def meta() -> Any:
    """The zero-row cuDF bars frame (Dask ``meta`` for cuDF partitions)."""
    import cudf
    import dask_cudf  # noqa: F401  (registers cuDF with Dask's dispatch)

    return cudf.from_pandas(empty_bars())


def read_partition(spec: tuple) -> Any:
    """One store file (filtered like :func:`pipeline.store.read_file`) as a cuDF frame."""
    import cudf

    file, tickers, start, end, _key = spec
    source = file.url if file.location.local else io.BytesIO(read_bytes(file))
    try:
        frame = cudf.read_parquet(source, filters=parquet_filters(tickers, start, end))
    except (OSError, RuntimeError, ValueError) as exc:
        raise StoreError(f"cannot read store file {file.url} with cuDF: {exc}") from None
    return frame.set_index(TICKER)


def device_columns(bars: Any) -> tuple[pd.Index, np.ndarray, dict[str, Any]]:
    """A cuDF bars partition as (tickers, segment bounds, Numba device arrays of its columns,
    ``date`` as int64 nanoseconds): what :func:`pipeline.hygiene.clean_on_device` takes. Only
    the bounds and one name per ticker come to the host."""
    import cupy
    from numba import cuda

    n = len(bars)
    if n:
        codes = cupy.asarray(bars.index.factorize()[0])
        starts = cupy.asnumpy(cupy.flatnonzero(codes[1:] != codes[:-1]) + 1)
    else:
        starts = np.array([], dtype=np.int64)
    bounds = np.concatenate(([0], starts, [n])).astype(np.int64)
    names = bars.index.take(bounds[:-1]).to_pandas() if n else []
    tickers = pd.Index(names, dtype=TICKER_DTYPE, name=TICKER)
    dates = bars[DATE].astype("datetime64[ns]").astype("int64")
    columns = {DATE: cuda.as_cuda_array(dates.values)}
    for column in (*PRICE_COLUMNS, "volume"):
        columns[column] = cuda.as_cuda_array(bars[column].astype("float64").values)
    return tickers, bounds, columns
