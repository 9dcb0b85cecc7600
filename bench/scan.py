"""Full scan on a warm cluster vs a per-ticker loop over TA-Lib's functions.

Builds the demo store once (kept at ``--store``), then in one run:

1. ``--check``: every indicator the scan uses equals TA-Lib on a sample of tickers;
2. the full scan on a warm LocalCluster (2 single-threaded workers): median of ``--repeat``,
   per stage;
3. the scan's indicator kernels in this process over the same flat arrays (one thread);
4. a per-ticker Python loop over TA-Lib computing the same indicators.

Run: ``python -m bench.scan [--tickers 6000 --days 504 --repeat 5 --record]``.
"""

from __future__ import annotations

import statistics

import numpy as np
import talib

from bench.common import append, demo_store, parser, record, timed
from pipeline import hygiene
from pipeline.cluster import client_session
from pipeline.config import Settings
from pipeline.features import INDICATORS, compute_indicators
from pipeline.indicators import REGISTRY
from pipeline.scan import STAGES, run_scan
from pipeline.store import BarStore


def talib_loop(cleaned: hygiene.Cleaned) -> int:
    """The scan's indicators, ticker by ticker, with TA-Lib's C functions."""
    a, bounds = cleaned.arrays, cleaned.bounds
    calls = 0
    for s in range(len(bounds) - 1):
        lo, hi = bounds[s], bounds[s + 1]
        h, lo_, c, v = (a[k][lo:hi] for k in ("high", "low", "close", "volume"))
        for n in (20, 50, 200):
            talib.SMA(c, n)
        talib.RSI(c, 14)
        talib.MACD(c, 12, 26, 9)
        talib.BBANDS(c, 20, 2.0, 2.0, 0)
        talib.ATR(h, lo_, c, 14)
        talib.ADX(h, lo_, c, 14)
        talib.PLUS_DI(h, lo_, c, 14)
        talib.MINUS_DI(h, lo_, c, 14)
        talib.STOCH(h, lo_, c, 14, 3, 0, 3, 0)
        talib.MFI(h, lo_, c, v, 14)
        talib.CCI(h, lo_, c, 20)
        talib.WILLR(h, lo_, c, 14)
        calls += 14
    return calls


def check_parity(cleaned: hygiene.Cleaned, sample: int) -> int:
    """Compare every scan indicator with TA-Lib on ``sample`` tickers; return values checked."""
    ours = compute_indicators(cleaned.arrays, cleaned.bounds)
    bounds, a = cleaned.bounds, cleaned.arrays
    checked = 0
    for s in np.linspace(0, len(bounds) - 2, sample).astype(int):
        lo, hi = bounds[s], bounds[s + 1]
        for name, params, columns in INDICATORS:
            ind = REGISTRY[name]
            args = [a[i][lo:hi] for i in ind.inputs]
            ref = getattr(talib, name)(*args, **ind.talib_kwargs(**params))
            ref = ref if isinstance(ref, tuple) else (ref,)
            for column, expected in zip(columns, ref, strict=True):
                got = ours[column][lo:hi]
                if not np.array_equal(got, expected, equal_nan=True):
                    raise SystemExit(f"parity check failed: {column} on segment {s}")
                checked += int(np.isfinite(expected).sum())
    return checked


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    args = p.parse_args()
    store = demo_store(args)
    bars = BarStore.open(store).read()
    cleaned = hygiene.clean(bars)
    rows = len(cleaned.arrays["close"])
    if args.check:
        print(f"parity with TA-Lib: {check_parity(cleaned, 200):,} values equal")

    settings = Settings(max_workers="2", dashboard_address=":0", use_redis=False)  # engine only
    with client_session(settings) as client:
        total, samples, result = timed(
            lambda: run_scan(store, client=client, settings=settings), args.warmup, args.repeat
        )
        stage_runs = [run_scan(store, client=client, settings=settings).timings]
    stages = {s: statistics.median(r[s] for r in [result.timings, *stage_runs]) for s in STAGES}

    kernels, _, _ = timed(
        lambda: compute_indicators(cleaned.arrays, cleaned.bounds), args.warmup, args.repeat
    )
    loop, _, calls = timed(
        lambda: talib_loop(cleaned), min(args.warmup, 1), max(1, args.repeat // 2)
    )

    n = result.snapshot["universe_size"]
    body = f"""
Universe: {n:,} tickers + SPY, {rows:,} clean bars; {len(cleaned.bounds) - 1:,} tickers read.

| measurement | seconds |
| --- | ---: |
| full scan, warm 2-worker cluster, median of {args.repeat} | {total:.3f} |
| · read | {stages["read"]:.3f} |
| · indicators + features | {stages["indicators"]:.3f} |
| · alpha | {stages["alpha"]:.3f} |
| · cross-section + snapshot | {stages["cross_section"]:.3f} |
| scan's indicator kernels, 1 process, 1 thread | {kernels:.3f} |
| TA-Lib per-ticker loop, same indicators ({calls:,} calls) | {loop:.3f} |

Ratios: TA-Lib loop / kernels = {loop / kernels:.2f}x;
TA-Lib loop / scan's indicator stage = {loop / stages["indicators"]:.2f}x.
All scan samples (s): {", ".join(f"{x:.3f}" for x in samples)}.
"""
    block = record(f"Full scan, {args.tickers:,} × {args.days}", body)
    print(block)
    if args.record:
        append(block)


if __name__ == "__main__":
    main()
