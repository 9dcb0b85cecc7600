"""Start-up: `technic scan` as a whole process vs a plain TA-Lib script, `--help` and `serve`.

Builds (or reuses) the demo store of ``bench.scan``, then in one run, with Redis off
(TECHNIC_USE_REDIS=0) and a fresh TECHNIC_DATA_DIR:

1. whole processes, interleaved round by round (the order rotates, so drift hits all alike),
   one warm-up round (it fills the on-disk caches: bytecode, Numba) then ``--repeat`` timed:
   a plain ~20-line TA-Lib script (pyarrow reads the store's bar files, a per-ticker loop
   computes 15 TA-Lib indicators and keeps each one's last value), ``technic scan --json``
   by default and with each TECHNIC_CLUSTER (threads, local with TECHNIC_MAX_WORKERS=2,
   sync), and ``technic --help``; wall (Popen to reaped) and CPU (``os.wait4``: the process
   and the children it reaped), medians (goals: default scan ≤ 1.5× the TA-Lib script,
   ``--help`` ≤ 0.3 s);
2. the first run after install: the default scan with a new, empty NUMBA_CACHE_DIR (the
   kernels compile), then again on that cache (it must not compile again: no cache file is
   written), and once more with a fresh bytecode cache too (PYTHONPYCACHEPREFIX: an install
   that did not compile ``.pyc`` files, as ``uv`` by default);
3. the warm scan in this process (``run_scan``, threads), per stage, plus writing its
   snapshot files: the start-up share of each process is (process wall − warm scan) /
   process wall;
4. ``technic serve`` against a ``redis-server`` holding that scan's snapshot: from Popen until
   ``GET /health`` answers 200 (polled every 20 ms; goal ≤ 3 s), its CPU until then, and its
   first ``POST /v1/scan`` (the app's first-open body) against the median of the next 20.

Run: ``python -m bench.startup [--tickers 6000 --days 504 --repeat 5 --record]``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from bench.app import HEADERS, SCAN_BODIES
from bench.common import append, demo_store, parser, record, start_redis

TALIB_SCRIPT = '''\
"""A plain TA-Lib scan: the store's bar files, ticker by ticker, 15 indicators' last values."""
import sys

import numpy as np
import pyarrow.parquet as pq
import talib

last = {}
for path in sys.argv[1:]:
    table = pq.read_table(path, columns=["ticker", "high", "low", "close", "volume"])
    ticker = table.column("ticker").to_numpy()
    cols = [table.column(k).to_numpy() for k in ("high", "low", "close", "volume")]
    cuts = [0, *(np.flatnonzero(ticker[1:] != ticker[:-1]) + 1), len(ticker)]
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        h, l, c, v = (x[lo:hi] for x in cols)
        out = [talib.SMA(c, 20), talib.SMA(c, 50), talib.SMA(c, 200), talib.RSI(c, 14)]
        out += [*talib.MACD(c, 12, 26, 9), *talib.BBANDS(c, 20, 2.0, 2.0, 0)]
        out += [talib.ATR(h, l, c, 14), talib.ADX(h, l, c, 14), talib.PLUS_DI(h, l, c, 14)]
        out += [talib.MINUS_DI(h, l, c, 14), *talib.STOCH(h, l, c, 14, 3, 0, 3, 0)]
        out += [talib.MFI(h, l, c, v, 14), talib.CCI(h, l, c, 20), talib.WILLR(h, l, c, 14)]
        out.append(talib.SMA(v, 20))  # the scan's 20-day average volume
        last[ticker[lo]] = [x[-1] for x in out]
print(len(last))
'''
TALIB = "TA-Lib script"
DEFAULT = "`technic scan` (default)"
HELP = "`technic --help`"
CLUSTERS = {  # label: TECHNIC_* variables
    DEFAULT: {},
    "`technic scan`, TECHNIC_CLUSTER=threads": {"TECHNIC_CLUSTER": "threads"},
    "`technic scan`, TECHNIC_CLUSTER=local (2 workers)": {
        "TECHNIC_CLUSTER": "local",
        "TECHNIC_MAX_WORKERS": "2",
        "TECHNIC_DASHBOARD_ADDRESS": ":0",
    },
    "`technic scan`, TECHNIC_CLUSTER=sync": {"TECHNIC_CLUSTER": "sync"},
}
GOALS = {"ratio": 1.5, "help": 0.3, "ready": 3.0, "first_post": 2.0}
COMMAND_PERF = re.compile(
    r"\[COMMAND PERF\] start-up ([\d.]+)s, scan ([\d.]+)s, after the scan ([\d.]+)s"
)


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    stdout: bytes
    stderr: str


def technic() -> str:
    beside = Path(sys.executable).parent / "technic"
    found = str(beside) if beside.exists() else shutil.which("technic")
    if not found:
        raise SystemExit("no `technic` console script beside this Python or on PATH")
    return found


def base_env(data_dir: Path) -> dict[str, str]:
    """This environment without Technic's or Redis's settings, Redis off, a fresh data dir."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TECHNIC_", "REDIS_")) and k not in ("CACHE_TTL", "POLYGON_API_KEY")
    }
    return env | {"TECHNIC_USE_REDIS": "0", "TECHNIC_DATA_DIR": str(data_dir)}


def run_process(argv: list[str], env: dict[str, str], label: str) -> Run:
    """One whole process: wall from Popen until reaped, CPU of it and its reaped children."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        tic = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - tic
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read().decode(errors="replace")
    if proc.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        raise SystemExit(f"{label} exited with status {proc.returncode}:\n{tail}")
    return Run(wall, usage.ru_utime + usage.ru_stime, stdout, stderr)


def check(label: str, run: Run, tickers: int) -> str:
    """What the process printed, checked: a one-line description (SystemExit if wrong)."""
    if label == TALIB:
        count = int(run.stdout.strip() or 0)
        if count != tickers:
            raise SystemExit(f"check failed: the TA-Lib script saw {count} tickers, not {tickers}")
        return f"{count:,} tickers"
    if label == HELP:
        if b"scan" not in run.stdout:
            raise SystemExit("check failed: `technic --help` does not list `scan`")
        return "usage"
    document = orjson.loads(run.stdout)
    if not document.get("results") or not document.get("universe_size"):
        raise SystemExit(f"check failed: {label} printed a snapshot without rows")
    return f"{document['universe_size']:,} scored, {len(document['results']):,} rows"


def measure_processes(commands: dict, args) -> tuple[dict[str, list[Run]], dict[str, str]]:
    """Every command once per round, the order rotating; the first ``--warmup`` rounds untimed.
    Returns the timed runs and what each command's first run printed (checked)."""
    labels = list(commands)
    runs: dict[str, list[Run]] = {label: [] for label in labels}
    seen: dict[str, str] = {}
    for r in range(args.warmup + args.repeat):
        for label in labels[r % len(labels) :] + labels[: r % len(labels)]:
            argv, env, tickers, snapshots_dir = commands[label]
            run = run_process(argv, env, label)
            if snapshots_dir is not None:
                shutil.rmtree(snapshots_dir, ignore_errors=True)
            if label not in seen:
                seen[label] = check(label, run, tickers) if args.check else ""
            if r >= args.warmup:
                runs[label].append(run)
        print(f"round {r + 1}/{args.warmup + args.repeat} done", file=sys.stderr, flush=True)
    return runs, seen


def written(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in root.rglob("*") if p.is_file()}


def first_after_install(argv: list[str], env: dict[str, str], work: Path) -> list[tuple]:
    """The default scan on an empty Numba cache, again on that cache, then with both the Numba
    and the bytecode caches empty: (label, run, Numba cache files the run wrote)."""
    numba, numba2, pyc = work / "numba-cache", work / "numba-cache-2", work / "pycache"
    for folder in (numba, numba2, pyc):
        folder.mkdir()
    cold = env | {"NUMBA_CACHE_DIR": str(numba)}
    coldest = env | {"NUMBA_CACHE_DIR": str(numba2), "PYTHONPYCACHEPREFIX": str(pyc)}
    steps = (
        ("empty Numba cache (kernels compile)", cold, numba),
        ("again, on that cache", cold, numba),
        ("empty Numba and bytecode caches (PYTHONPYCACHEPREFIX)", coldest, numba2),
    )
    out = []
    for label, step_env, cache in steps:
        before = set(written(cache).items())
        run = run_process(argv, step_env, label)
        out.append((label, run, len(set(written(cache).items()) - before)))
        shutil.rmtree(Path(env["TECHNIC_DATA_DIR"]) / "snapshots", ignore_errors=True)
    return out


def warm_in_process(store: Path, data_dir: Path, args):
    """``run_scan`` on threads in this process: totals, stages and snapshot-file writes."""
    from pipeline.config import Settings
    from pipeline.scan import STAGES, run_scan

    settings = Settings(data_dir=data_dir, use_redis=False, cluster="threads")
    totals, writes, stages = [], [], {s: [] for s in STAGES}
    result = None
    for i in range(args.warmup + args.repeat):
        tic = time.perf_counter()
        result = run_scan(store, settings=settings)
        toc = time.perf_counter()
        result.write(data_dir / "inproc-snapshots")
        done = time.perf_counter()
        if i >= args.warmup:
            totals.append(toc - tic)
            writes.append(done - toc)
            for s in STAGES:
                stages[s].append(result.timings[s])
    med = statistics.median
    return med(totals), med(writes), {s: med(v) for s, v in stages.items()}, totals, result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_of(pid: int) -> float:
    """CPU seconds of a live process (and its reaped children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def serve_once(
    argv: list[str], env: dict[str, str], calls: int
) -> tuple[float, float, float, float]:
    """Seconds until GET /health answers 200, CPU until then, first POST /v1/scan ms and the
    median ms of ``calls`` more (all on the keep-alive connection of the health polls)."""
    port = free_port()
    body = SCAN_BODIES["first open"]
    with tempfile.TemporaryFile() as err:
        tic = time.perf_counter()
        proc = subprocess.Popen(
            [*argv, "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=err
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
                while True:
                    try:
                        if client.get("/health").status_code == 200:
                            ready = time.perf_counter() - tic
                            cpu = cpu_of(proc.pid)
                            break
                    except httpx.TransportError:
                        pass
                    if proc.poll() is not None or time.perf_counter() - tic > 60:
                        err.seek(0)
                        tail = err.read().decode(errors="replace").strip().splitlines()[-15:]
                        raise SystemExit("`technic serve` never got ready:\n" + "\n".join(tail))
                    time.sleep(0.02)

                def post() -> float:
                    tic = time.perf_counter()
                    with client.stream("POST", "/v1/scan", json=body, headers=HEADERS) as answer:
                        for _ in answer.iter_raw():
                            pass
                        if answer.status_code != 200:
                            raise SystemExit(f"POST /v1/scan answered {answer.status_code}")
                    return (time.perf_counter() - tic) * 1e3

                first = post()
                after = statistics.median(post() for _ in range(calls))
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return ready, cpu, first, after


def measure_serve(
    argv, env, result, data_dir: Path, args
) -> list[tuple[float, float, float, float]]:
    """``technic serve`` on a redis-server holding ``result``'s snapshot: warm-up, then
    ``--serve-runs`` runs."""
    from pipeline import snapshots
    from pipeline.config import Settings

    proc, port = start_redis()
    try:
        url = f"redis://127.0.0.1:{port}/0"
        settings = Settings(data_dir=data_dir, use_redis=True, redis_url=url, cache_ttl=0)
        if not snapshots.publish(result, settings=settings).published:
            raise SystemExit("publish did not reach Redis")
        env = env | {"TECHNIC_USE_REDIS": "1", "REDIS_URL": url}
        out = []
        for i in range(args.warmup + args.serve_runs):
            run = serve_once(argv, env, args.calls)
            if i >= args.warmup:
                out.append(run)
    finally:
        proc.terminate()
        proc.wait(10)
    return out


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--serve-runs", type=int, default=3, help="timed `technic serve` starts")
    p.add_argument("--calls", type=int, default=20, help="POST /v1/scan after the first")
    args = p.parse_args()
    store = demo_store(args)
    from pipeline.store import BarStore

    files = BarStore(store).current().files
    tickers = sum(len(f.tickers) for f in files)
    rows = sum(f.rows for f in files)
    cli = technic()
    work = Path(tempfile.mkdtemp(prefix="technic-bench-startup-"))
    try:
        data_dir = work / "data"
        env = base_env(data_dir)
        script = work / "talib_scan.py"
        script.write_text(TALIB_SCRIPT)
        scan_argv = [cli, "scan", "--store", str(store), "--json"]
        commands = {
            TALIB: ([sys.executable, str(script), *(f.url for f in files)], env, tickers, None)
        }
        for label, extra in CLUSTERS.items():
            commands[label] = (scan_argv, env | extra, tickers, data_dir / "snapshots")
        commands[HELP] = ([cli, "--help"], env, tickers, None)
        runs, seen = measure_processes(commands, args)
        installs = first_after_install(scan_argv, env, work)
        print("first runs after install done", file=sys.stderr, flush=True)
        warm, write, stages, warm_samples, result = warm_in_process(store, data_dir, args)
        print("in-process scans done", file=sys.stderr, flush=True)
        serves = measure_serve(
            [cli, "serve"], env | {"TECHNIC_STORE": str(store)}, result, data_dir, args
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = statistics.median
    wall = {k: med(r.wall for r in v) for k, v in runs.items()}
    cpu = {k: med(r.cpu for r in v) for k, v in runs.items()}
    base = wall[TALIB]
    lines = [
        "| command | wall s | CPU s | × TA-Lib script | start-up share | goal |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for label in runs:
        share = f"{(wall[label] - warm) / wall[label]:.0%}" if label in CLUSTERS else ""
        goal = ""
        if label == DEFAULT:
            goal = (
                f"≤ {GOALS['ratio']}× the script: {verdict(wall[label] <= GOALS['ratio'] * base)}"
            )
        elif label == HELP:
            goal = f"≤ {GOALS['help']} s: {verdict(wall[label] <= GOALS['help'])}"
        lines.append(
            f"| {label} | {wall[label]:.3f} | {cpu[label]:.3f} | {wall[label] / base:.2f} | "
            f"{share} | {goal} |"
        )
    lines.append(f"| warm `run_scan` in process (threads) | {warm:.3f} | | {warm / base:.2f} | | |")
    for s, v in stages.items():
        lines.append(f"| · {s.replace('_', ' ')} | {v:.3f} | | | | |")
    lines.append(f"| snapshot files (JSON + Parquet), in process | {write:.3f} | | | | |")

    perf = [m.groups() for r in runs[DEFAULT] if (m := COMMAND_PERF.search(r.stderr))]
    split = ""
    if perf:
        up, scan, tail = (med(float(x[i]) for x in perf) for i in range(3))
        split = (
            f"The default scan's own `[COMMAND PERF]` line (medians): start-up {up:.2f} s, "
            f"scan {scan:.2f} s, after the scan {tail:.2f} s.\n\n"
        )

    warm_default = wall[DEFAULT]
    install = [
        "| first run after install | wall s | CPU s | × warm process | cache files written |"
    ]
    install.append("| --- | ---: | ---: | ---: | ---: |")
    for label, run, files_written in installs:
        install.append(
            f"| {label} | {run.wall:.3f} | {run.cpu:.3f} | {run.wall / warm_default:.2f} | "
            f"{files_written} |"
        )
    recompiles = installs[1][2]
    install_note = (
        "The second run on the same Numba cache wrote no cache file: nothing recompiled."
        if recompiles == 0
        else f"**The second run wrote {recompiles} Numba cache files: it recompiled.**"
    )

    ready = med(s[0] for s in serves)
    ready_cpu = med(s[1] for s in serves)
    first = med(s[2] for s in serves)
    after = med(s[3] for s in serves)
    serve_lines = [
        "| `technic serve` | median | goal |",
        "| --- | ---: | --- |",
        f"| Popen → `GET /health` 200, s | {ready:.3f} | ≤ {GOALS['ready']:g} s: "
        f"{verdict(ready <= GOALS['ready'])} |",
        f"| CPU until then, s | {ready_cpu:.3f} | |",
        f"| first `POST /v1/scan` (first open), ms | {first:.1f} | ≤ {GOALS['first_post']:g}× "
        f"the next: {verdict(first <= GOALS['first_post'] * after)} |",
        f"| median of the next {args.calls}, ms | {after:.2f} | |",
    ]

    def samples(label: str) -> str:
        return ", ".join(f"{r.wall:.2f}" for r in runs[label])

    body = f"""
{args.tickers:,} × {args.days} demo store ({tickers:,} tickers, {rows:,} rows in {len(files)}
files); Redis off (TECHNIC_USE_REDIS=0), a fresh TECHNIC_DATA_DIR. Whole processes: wall from
Popen until reaped, CPU of the process and its reaped children (`os.wait4`), medians of
{args.repeat} interleaved rounds after {args.warmup} warm-up round(s). The TA-Lib script
(pyarrow + a per-ticker loop of 15 TA-Lib indicators, last values kept) saw {seen[TALIB] or "–"};
the default scan printed {seen[DEFAULT] or "–"}. Start-up share = (process wall − warm
in-process `run_scan`) / process wall.

{chr(10).join(lines)}

{split}Wall samples (s): TA-Lib script {samples(TALIB)}; default scan {samples(DEFAULT)};
`--help` {samples(HELP)}; warm in-process scan {", ".join(f"{x:.2f}" for x in warm_samples)}.

{chr(10).join(install)}

{install_note} "× warm process" compares with the default scan's warm median above.

`technic serve` (default options) against a `redis-server` holding this scan's snapshot,
health polled every 20 ms, {args.serve_runs} starts after {args.warmup} warm-up; the POSTs use
the health polls' keep-alive connection and the app's headers.

{chr(10).join(serve_lines)}

Ready samples (s): {", ".join(f"{s[0]:.2f}" for s in serves)}; first POSTs (ms):
{", ".join(f"{s[2]:.1f}" for s in serves)}.
"""
    block = record(f"Start-up: whole processes, {args.tickers:,} × {args.days}", body)
    print(block)
    if args.record:
        append(block)


if __name__ == "__main__":
    main()
