"""Scan backtest on the real universe: the whole backtest against one scan per date.

Builds (once, under ``--store``) a bar store of the real data in ../shared/data:
``us_stocks_ohlcv`` (7,163 tickers) and ``benchmarks_ohlcv`` (SPY, ^GSPC), with sectors,
industries and market caps from the 2021-02-02 snapshot of ``us_tickers_sector_industry``
(the oldest there: later than the backtest, so the market-cap percentile of ICS looks ahead;
sectors rarely change). Then, in one run, as whole processes with Redis off:

1. ``technic backtest --start 2015-01-02 --end 2017-10-13 --horizons 1,5,10,21 --json``: wall,
   CPU and peak memory (``os.wait4``'s max RSS), and the backtest's own stage timings;
2. ``technic scan --as-of D --json`` for ``--repeat`` dates spread over the range: the median
   whole process, times the number of sessions, is what one scan per date would cost
   (goal: the backtest ≤ 60 s and ≥ 20× faster than that);
3. the results: per horizon, the spreads and rank ICs, and per signal the net mean return and
   hit rate at 10 days, whatever they are.

Run: ``python -m bench.backtest [--repeat 3] [--record]``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import pandas as pd

from bench.common import append, parser, record
from pipeline.sources.public_data import SNAPSHOT

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
START, END = "2015-01-02", "2017-10-13"
HORIZONS = "1,5,10,21"


def real_store(root: Path) -> Path:
    """The real universe's store under ``root``, built on first use."""
    from pipeline.sources.public_data import import_us_universe

    return Path(import_us_universe(DATA, root.expanduser() / "real-us"))


def run(command: list[str], env: dict[str, str]) -> tuple[float, float, int, bytes]:
    """Wall s, CPU s and peak RSS (bytes) of a whole process, and its stdout."""
    tic = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - tic
        err = proc.stderr.read().decode() if proc.stderr else ""
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{err[-2000:]}")
        out.seek(0)
        data = out.read()
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, data


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.set_defaults(repeat=3)
    args = p.parse_args()
    store = real_store(args.store)
    technic = str(Path(sys.executable).with_name("technic"))
    home = tempfile.mkdtemp(prefix="technic-bench-home-")
    env = {**os.environ, "TECHNIC_USE_REDIS": "0", "TECHNIC_DATA_DIR": home}
    out_dir = Path(home) / "backtest"

    command = [technic, "backtest", "--store", str(store), "--start", START, "--end", END]
    command += ["--horizons", HORIZONS, "--out", str(out_dir), "--json"]
    wall, cpu, rss, data = run(command, env)
    summary = orjson.loads(data)
    sessions = summary["sessions"]

    dates = pd.DatetimeIndex(pd.read_parquet(out_dir / "panel.parquet", columns=["date"])["date"])
    days = dates.unique().sort_values()
    picks = [days[int(i * (len(days) - 1) / max(args.repeat - 1, 1))] for i in range(args.repeat)]
    scans = []
    for day in picks:
        scan = [technic, "scan", "--store", str(store), "--as-of", f"{day:%Y-%m-%d}", "--json"]
        scans.append(run(scan, env)[0])
    one_scan = statistics.median(scans)
    sequential = one_scan * sessions

    lines = [
        f"Real universe ({DATA.name}: us_stocks_ohlcv + benchmarks_ohlcv; sectors and market "
        f"caps of {SNAPSHOT}), {START} .. {END}: {sessions:,} sessions, {summary['rows']:,} "
        f"scanned rows of {summary['tickers']:,} tickers; horizons {HORIZONS}; costs "
        f"{summary['costs_bps']:g} bps a side; Redis off; whole processes.",
        "",
        "| | wall s | CPU s | peak RSS GiB | goal |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| `technic backtest` (whole process) | {wall:.1f} | {cpu:.1f} | {rss / 2**30:.2f} | "
        f"≤ 60 s: {'met' if wall <= 60 else '**missed**'} |",
        f"| one `technic scan --as-of D` (median of {len(scans)}) | {one_scan:.2f} | | | |",
        f"| × {sessions} sessions (one scan per date) | {sequential:.0f} | | | |",
        f"| speed-up | {sequential / wall:.0f}× | | | ≥ 20×: "
        f"{'met' if sequential / wall >= 20 else '**missed**'} |",
        "",
        f"Backtest stages (s): {summary['timings']}; scan samples (s): "
        + ", ".join(f"{s:.2f}" for s in scans)
        + ".",
        "",
        "| horizon | TechRating IC (NW t) | composite IC (NW t) | Strong Long − Short, net "
        "(NW t) | decile 10 − 1, net (NW t) | CORE − WATCH, net (NW t) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for h, block in summary["horizons"].items():
        ic = block["ic"]
        spreads = block["net"]["spreads"]
        cells = [_ic(ic["TechRating"]), _ic(ic["composite_score"])]
        cells += [_spread(spreads[g]) for g in ("signal", "decile", "Tier")]
        lines.append(f"| {h}d | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| signal | rows | 10d net mean | 10d hit rate | over universe | over SPY |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, row in summary["horizons"]["10"]["net"]["by"]["signal"].items():
        lines.append(
            f"| {name} | {row['count']:,} | {row['mean']:+.2%} | {row['hit_rate']:.1%} | "
            f"{row['excess_universe']:+.2%} | {_pct(row['excess_spy'])} |"
        )
    growth = summary["growth"]
    lines += [
        "",
        "Growth of $10,000 (top 10 per signal, daily, net): "
        + "; ".join(
            f"{k} ${v['final']:,.0f} (max drawdown {v['max_drawdown']:.0%})"
            for k, v in growth.items()
        )
        + ".",
    ]
    block = record("Scan backtest, real universe", "\n".join(lines))
    print(block)
    if args.record:
        append(block)


def _ic(ic: dict) -> str:
    if ic.get("mean") is None:
        return "—"
    return f"{ic['mean']:+.4f} ({ic['t_nw']:.1f})"


def _spread(s: dict) -> str:
    if s.get("mean") is None:
        return "—"
    return f"{s['mean']:+.2%} ({s['t_nw']:.1f})"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2%}"


if __name__ == "__main__":
    main()
