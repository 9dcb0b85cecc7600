"""cuDF partitions: detection everywhere; reading and scanning them where cuDF and a GPU are.

cuDF has no CPU build, so the reading test runs only on a machine with both. The GPU cleaning
and kernels that such partitions go through are checked everywhere in Numba's CUDA simulator
(``tests/pipeline/kernels/test_gpu.py::check_device_hygiene``, from device arrays made the way
:func:`pipeline.cudf_frame.device_columns` makes them).
"""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline import cudf_frame
from pipeline.features import latest_features
from pipeline.frame import load_bars


def test_is_cudf_goes_by_the_module() -> None:
    fake = type("DataFrame", (), {"__module__": "cudf.core.dataframe"})()
    assert cudf_frame.is_cudf(fake)
    assert not cudf_frame.is_cudf(pd.DataFrame())
    assert not cudf_frame.is_cudf(type("DataFrame", (), {"__module__": "cudfx"})())


def test_available_only_with_cudf_and_dask_cudf() -> None:
    try:
        import cudf  # noqa: F401
        import dask_cudf  # noqa: F401
    except Exception:
        assert not cudf_frame.available()
    else:
        assert cudf_frame.available()


def test_cudf_partitions_scan_like_pandas_ones(demo_store) -> None:
    if not cudf_frame.available():
        pytest.skip("cuDF and dask-cuDF are not installed (they need an NVIDIA GPU)")
    pandas_parts = load_bars(demo_store).to_delayed()
    cudf_parts = load_bars(demo_store, backend="cudf").to_delayed()
    assert len(cudf_parts) == len(pandas_parts) > 1
    for on_host, on_gpu in zip(pandas_parts, cudf_parts, strict=True):
        bars, gpu_bars = on_host.compute(scheduler="sync"), on_gpu.compute(scheduler="sync")
        assert cudf_frame.is_cudf(gpu_bars)
        pd.testing.assert_frame_equal(gpu_bars.to_pandas(), bars, check_index_type=False)
        pd.testing.assert_frame_equal(
            latest_features(gpu_bars), latest_features(bars), check_exact=True
        )
