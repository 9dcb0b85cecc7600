"""CPU vs GPU scan times for 6,000 tickers × 504 and × 2,520 days, in one run.

For each history length: build (or reuse) the demo store, then time full scans (median of
``--repeat`` after ``--warmup``) on the local CPU cluster with ``--cpu-workers`` workers (2:
the goal's "2-core CPU scan") and on the cuda cluster (dask-cuda, the indicator kernels' GPU
twins, on cuDF partitions where cuDF is installed). ``--check`` verifies the GPU table equals
the CPU table (float64 to 1e-9 relative) before timing. Prints the ratio and the device name;
without a usable GPU it says why (and ``--record`` records that instead of any estimate).

Run: ``python -m bench.gpu [--lengths 504,2520 --repeat 3 --record]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd

from bench.common import append, demo_store, parser, record
from pipeline import cudf_frame
from pipeline.cluster import client_session, gpu_status
from pipeline.config import Settings
from pipeline.scan import run_scan

GOAL = 10.0  # GPU scan of 6,000 × 2,520 at least this many times faster than 2-core CPU


def median_scan(store, settings: Settings, warmup: int, repeat: int):
    with client_session(settings) as client:
        result = None
        samples = []
        for run in range(warmup + repeat):
            tic = time.perf_counter()
            result = run_scan(store, client=client, settings=settings)
            if run >= warmup:
                samples.append(time.perf_counter() - tic)
    return statistics.median(samples), result


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--lengths", default="504,2520", help="history lengths in business days")
    p.add_argument("--cpu-workers", default="2", help="CPU cluster workers (TECHNIC_MAX_WORKERS)")
    args = p.parse_args()
    found, device = gpu_status()
    if not found:
        body = f"No GPU benchmark: this machine has no usable GPU ({device}); nothing measured."
        block = record("GPU vs CPU scan", body)
        print(block)
        if args.record:
            append(block)
        raise SystemExit(1)
    rows = []
    for days in (int(d) for d in args.lengths.split(",")):
        store = demo_store(argparse.Namespace(**{**vars(args), "days": days}))
        base = {"use_redis": False, "dashboard_address": ":0"}
        cpu_settings = Settings(cluster="local", max_workers=args.cpu_workers, **base)
        gpu_settings = Settings(cluster="cuda", **base)
        cpu, cpu_result = median_scan(store, cpu_settings, args.warmup, args.repeat)
        gpu, gpu_result = median_scan(store, gpu_settings, args.warmup, args.repeat)
        if args.check:
            pd.testing.assert_frame_equal(gpu_result.table, cpu_result.table, rtol=1e-9)
            print(f"check: {days} days, GPU table equals the CPU table (1e-9 relative)")
        ratio = cpu / gpu
        met = "met" if days < 2520 or ratio >= GOAL else "missed"
        rows.append(
            f"| {args.tickers:,} × {days:,} | {cpu:.3f} | {gpu:.3f} | {ratio:.1f}× | "
            f"{met if days >= 2520 else '—'} |"
        )
        print(rows[-1])
    partitions = (
        "cuDF, read on the GPU"
        if cudf_frame.available()
        else "pandas, arrays moved to the GPU once per partition"
    )
    body = (
        f"GPU: {device}; partitions: {partitions}. "
        f"CPU: local cluster, {args.cpu_workers} single-threaded workers. "
        f"Median of {args.repeat} full scans after {args.warmup} warm-up. Goal: the GPU scan "
        f"of 6,000 × 2,520 at least {GOAL:g}× faster than the 2-core CPU scan.\n\n"
        "| store | CPU s | GPU s | CPU / GPU | goal |\n| --- | ---: | ---: | ---: | --- |\n"
        + "\n".join(rows)
    )
    block = record("GPU vs CPU scan", body)
    print(block)
    if args.record:
        append(block)


if __name__ == "__main__":
    main()
