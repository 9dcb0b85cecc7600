"""The GPU twins of the segmented kernels give the CPU's bits, and a partition cleaned in GPU
memory gives the host's cleaning and features.

On a machine with a CUDA GPU the twins run on it; everywhere, they also run in Numba's CUDA
simulator (a subprocess with NUMBA_ENABLE_CUDASIM=1, which executes the kernels' Python on
the CPU thread by thread), which checks the launch geometry, the slicing and the shared
per-segment definitions, fused multiply-adds included.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.indicators import REGISTRY
from pipeline.kernels import rolling
from pipeline.kernels.rounding import fma
from tests.conftest import random_walk
from tests.pipeline.kernels.test_segments import as_tuple, assert_bitwise, params_for

ROOT = Path(__file__).resolve().parents[3]
# segments: empty, shorter than any lookback, mid-length, long with flat stretches
LENGTHS = (0, 7, 40, 260, 1, 120)


def partition(seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    parts = [random_walk(n, seed + i) if n else None for i, n in enumerate(LENGTHS)]
    arrays = {
        c: np.concatenate([p[c] for p in parts if p is not None])
        for c in ("open", "high", "low", "close", "volume")
    }
    bounds = np.concatenate([[0], np.cumsum(LENGTHS)]).astype(np.int64)
    return arrays, bounds


def check_twins(seed: int = 3) -> list[str]:
    """Every registry kernel (and ``extremes``) on the GPU against the CPU, bit for bit;
    returns what was compared."""
    from numba import cuda

    from pipeline.kernels.gpu import TWINS

    arrays, bounds = partition(seed)
    device = {k: cuda.to_device(v) for k, v in arrays.items()}
    dbounds = cuda.to_device(bounds)
    runs = [
        (name, ind.kernel, ind.inputs, tuple(ind.resolve(**params_for(ind)).values()))
        for name, ind in sorted(REGISTRY.items())
    ]
    runs.append(("extremes", rolling.extremes, ("high", "low"), (14,)))
    compared = []
    for name, kernel, inputs, values in runs:
        expected = as_tuple(kernel(*(arrays[i] for i in inputs), bounds, *values))
        got = as_tuple(TWINS[kernel](*(device[i] for i in inputs), dbounds, *values))
        assert len(got) == len(expected), name
        for k, (g, e) in enumerate(zip(got, expected, strict=True)):
            assert_bitwise(g.copy_to_host(), e, f"{name}[{k}]")
        compared.append(name)
    return compared


def check_features() -> int:
    """A small synthetic universe's latest features, indicators on the GPU vs the CPU;
    returns the tickers compared."""
    import pandas as pd

    from pipeline.features import latest_features
    from pipeline.schema import TICKER
    from pipeline.segments import Benchmark
    from pipeline.sources.synthetic import generate_universe

    bars = generate_universe(12, 280, seed=4).bars.set_index(TICKER)
    spy = bars.loc["SPY"]
    benchmark = Benchmark(spy["date"].to_numpy(), spy["close"].to_numpy())
    cpu = latest_features(bars, benchmark)
    gpu = latest_features(bars, benchmark, device="cuda")
    pd.testing.assert_frame_equal(gpu, cpu, check_exact=True)
    return len(cpu)


def to_device_columns(bars):
    """A pandas partition as :func:`pipeline.hygiene.clean_on_device` takes it (what
    :func:`pipeline.cudf_frame.device_columns` makes of a cuDF partition)."""
    from numba import cuda

    from pipeline.schema import BAR_COLUMNS, DATE
    from pipeline.segments import segment_bounds

    bounds = segment_bounds(bars.index)
    tickers = bars.index[bounds[:-1]]
    columns = {c: cuda.to_device(bars[c].to_numpy()) for c in BAR_COLUMNS}
    columns[DATE] = cuda.to_device(bars[DATE].to_numpy().view(np.int64))
    return tickers, bounds, columns


def check_device_hygiene() -> int:
    """Partitions cleaned in GPU memory (dirty rows of every kind, a ticker with no clean
    row, dates out of order, price spikes beside splits, a clean universe) equal the host's
    cleaning, and so do their latest features; returns the partitions compared."""
    import pandas as pd

    from pipeline import hygiene
    from pipeline.features import features_of, latest_features
    from pipeline.schema import TICKER, conform_bars
    from pipeline.segments import Benchmark
    from pipeline.sources.synthetic import generate_universe
    from tests.pipeline.test_hygiene import DIRTY_ROWS, SPIKE_ROWS

    dirty = conform_bars(pd.DataFrame(DIRTY_ROWS)).set_index(TICKER)
    universe = generate_universe(12, 280, seed=4).bars.set_index(TICKER)
    spy = universe.loc["SPY"]
    benchmark = Benchmark(spy["date"].to_numpy(), spy["close"].to_numpy())
    partitions = {
        "dirty": dirty,
        "sorted dirty": dirty[dirty.index != "BBB"],
        "spikes and splits": conform_bars(pd.DataFrame(SPIKE_ROWS)).set_index(TICKER),
        "universe": universe,
        "empty": universe.iloc[:0],
    }
    for name, bars in partitions.items():
        host = hygiene.clean(bars)
        device = hygiene.clean_on_device(*to_device_columns(bars))
        assert (device.on_device is None) == (name == "dirty"), name  # BBB is out of order
        pd.testing.assert_index_equal(device.tickers, host.tickers)
        for field in ("rows_in", "bounds", "kept"):
            np.testing.assert_array_equal(getattr(device, field), getattr(host, field), name)
        for reason in hygiene.REASONS:
            np.testing.assert_array_equal(device.dropped[reason], host.dropped[reason], name)
        for column, values in host.arrays.items():
            got = device.arrays[column]
            assert got.dtype == values.dtype, name
            np.testing.assert_array_equal(got.view(np.int64), values.view(np.int64), name)
        cpu = latest_features(bars, benchmark)
        gpu = features_of(device, benchmark, device="cuda")
        pd.testing.assert_frame_equal(gpu, cpu, check_exact=True)
    return len(partitions)


def check_scan() -> int:
    """A whole scan (sync scheduler) with its kernels on the GPU gives the CPU scan's table;
    returns the rows compared."""
    import tempfile

    import pandas as pd

    from pipeline import scan
    from pipeline.config import Settings
    from pipeline.sources.synthetic import generate_universe
    from pipeline.store import BarStore

    universe = generate_universe(24, 300, seed=9)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        BarStore(store).write(universe.bars, universe.universe, rows_per_file=2_000)
        settings = Settings(data_dir=tmp, cluster="sync", use_redis=False)
        cpu = scan.run_scan(store, settings=settings)
        scan.scan_device = lambda settings: "cuda"  # what a machine with a GPU decides
        gpu = scan.run_scan(store, settings=settings)
    pd.testing.assert_frame_equal(gpu.table, cpu.table, check_exact=True)
    assert gpu.hygiene == cpu.hygiene
    return len(cpu.table)


def test_twins_match_the_cpu_in_the_cuda_simulator() -> None:
    code = (
        "from tests.pipeline.kernels.test_gpu import check_device_hygiene, check_features, "
        "check_scan, "
        "check_twins; print(','.join(check_twins())); print(check_features()); "
        "print(check_device_hygiene()); print(check_scan()); "
        "from pipeline.features import warm_up; warm_up('cuda'); print('warm')"
    )
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    kernels, tickers, partitions, rows, warm = done.stdout.strip().splitlines()
    assert set(kernels.split(",")) == {*REGISTRY, "extremes"}
    assert int(tickers) == 13  # 12 stocks and SPY, every feature column equal
    assert int(partitions) == 5 and int(rows) > 12 and warm == "warm"


def test_twins_match_the_cpu_on_the_gpu() -> None:
    from numba import cuda

    if not cuda.is_available():
        pytest.skip("no CUDA GPU on this machine (the simulator test covers the twins)")
    for seed in (3, 11, 29):
        assert set(check_twins(seed)) == {*REGISTRY, "extremes"}
    assert check_features() == 13
    assert check_device_hygiene() == 5


def test_every_cpu_driver_has_a_twin() -> None:
    from pipeline.kernels.gpu import TWINS

    assert {ind.kernel for ind in REGISTRY.values()} <= set(TWINS)


@pytest.mark.parametrize(
    ("a", "b", "c"),
    [(0.1, 0.2, 0.3), (1e308, 10.0, -1e308), (1.0 + 2**-52, 1.0 - 2**-53, -1.0), (3.0, 7.0, 0.5)],
)
def test_python_fma_rounds_once(a: float, b: float, c: float) -> None:
    """The simulator's fma (plain Python) is the exactly rounded a·b + c."""
    from fractions import Fraction

    exact = Fraction(a) * Fraction(b) + Fraction(c)
    got = fma(a, b, c)
    if abs(exact) > Fraction(np.finfo(np.float64).max):
        assert np.isinf(got)
    else:
        assert got == float(exact)
    assert np.isnan(fma(np.nan, 1.0, 2.0)) and fma(np.inf, 2.0, 1.0) == np.inf
