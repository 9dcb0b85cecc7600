"""One live update of the whole universe against one full scan of the same store.

Builds (or reuses) the demo store of ``bench.scan``; renders Polygon's full-market snapshot
for a forming next session (each ticker's last close moved by a few percent, part of a day's
volume) once; then in one run, after ``--warmup`` untimed runs, medians of ``--repeat``:

1. the live update, by part: parse the snapshot's JSON (``parse_snapshot``), step every
   ticker's state (``live.state.update``), the scan's cross-section and document
   (``LiveScanner.rescore`` minus the step), publish to a local ``redis-server``
   (``snapshots.publish_live``); and the whole of it (goal ≤ 100 ms);
2. the full scan of the same store in this process (``run_scan``, threads, warm), the
   reference (goal: the live update ≥ 10× faster), and ``technic scan --json`` as a whole
   process, what a cron or a person runs;
3. the state's build (once per committed session) for scale;
4. alert fan-out: ``--subscriptions`` webhook subscriptions (rule ``top``) to a local uvicorn
   receiver, one recorded change, from the dispatcher's start until every delivery was taken
   (signed, marked sent in Redis).

Run: ``python -m bench.live [--tickers 6000 --days 504 --repeat 7 --record]``.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pandas as pd

from bench.common import append, demo_store, parser, record, start_redis, timed
from pipeline import snapshots
from pipeline.config import Settings
from pipeline.live import state as live_state
from pipeline.live.scan import LiveScanner
from pipeline.scan import run_scan
from pipeline.schema import DATE, TICKER
from pipeline.sources.polygon import parse_snapshot
from pipeline.store import BarStore
from tests.fake_polygon import snapshot_body


async def receiver(scope, receive, send) -> None:
    """A minimal ASGI webhook receiver (run by ``uvicorn bench.live:receiver`` in its own
    process): takes every delivery with a 204."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def technic_scan(store, repeat: int) -> float:
    """Median wall seconds of ``technic scan --json`` as a whole process (Redis off), after
    one run that fills the on-disk caches."""
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    exe = str(Path(sys.executable).with_name("technic"))
    samples = []
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "TECHNIC_USE_REDIS": "0", "TECHNIC_DATA_DIR": home}
        for i in range(repeat + 1):
            tic = time.perf_counter()
            subprocess.run([exe, "scan", "--json", "--store", str(store)], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            if i:
                samples.append(time.perf_counter() - tic)
    return statistics.median(samples)


def fanout(settings: Settings, previous: dict, current: dict, count: int) -> tuple[float, int]:
    """Seconds from the dispatcher's start until ``count`` subscribers took one delivery
    (the receiver runs in its own process, so it does not share this one's CPU time)."""
    import socket
    import subprocess
    import sys
    import threading

    import httpx

    from pipeline import redis_conn
    from pipeline.alerts import store
    from pipeline.alerts.deliver import Dispatcher

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = [sys.executable, "-m", "uvicorn", "bench.live:receiver", "--port", str(port)]
    args += ["--log-level", "error", "--no-access-log", "--lifespan", "off", "--backlog", "4096"]
    proc = subprocess.Popen(args)
    try:
        url = f"http://127.0.0.1:{port}/hook"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(url, content=b"{}")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the receiver did not start"
                time.sleep(0.05)
        conn = redis_conn.connect(settings)
        keys = store.Keys(f"fanout-{time.time_ns()}")
        for _ in range(count):
            store.subscribe(conn, keys, {"rule": "top", "url": url})
        time.sleep(0.01)  # the change is recorded after the subscriptions were made
        assert store.record(conn, keys, previous, current) is not None
        stop = threading.Event()
        dispatcher = Dispatcher(conn, keys, attempts=3, backoff=0.1, timeout=30)
        tic = time.perf_counter()
        threading.Thread(target=dispatcher.run, args=(stop,), daemon=True).start()
        while dispatcher.delivered + dispatcher.dead < count and time.perf_counter() - tic < 120:
            time.sleep(0.005)
        seconds = time.perf_counter() - tic
        stop.set()
    finally:
        proc.terminate()
        proc.wait(10)
    return seconds, dispatcher.delivered


GOAL_MS = 100.0
GOAL_SPEEDUP = 10.0


def forming_bars(store, seed: int) -> tuple[pd.DataFrame, pd.Timestamp]:
    """A forming bar for the session after the store's last one, per ticker that traded in
    it (a few percent from its last close, 60 % of its last volume so far)."""
    generation = BarStore(store).current()
    bars = generation.read()
    last = bars.groupby(level=0, observed=True).tail(1)
    last = last[last[DATE] == last[DATE].max()]  # tickers that traded in the last session
    rng = np.random.default_rng(seed)
    move = 1 + rng.normal(0, 0.02, len(last))
    day = pd.Timestamp(generation.last_date) + pd.offsets.BDay(1)
    close = last["close"].to_numpy() * move
    forming = pd.DataFrame(
        {
            DATE: np.full(len(last), np.datetime64(day, "ns")),
            "open": last["close"].to_numpy(),
            "high": np.maximum(close, last["close"].to_numpy()) * 1.004,
            "low": np.minimum(close, last["close"].to_numpy()) * 0.996,
            "close": close,
            "volume": (last["volume"].to_numpy() * 0.6).round(),
        },
        index=pd.Index(last.index.astype(str), name=TICKER),
    )
    return forming, day


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--subscriptions", type=int, default=1000, help="webhooks for the fan-out")
    args = p.parse_args()
    store = demo_store(args)
    proc, port = start_redis()
    try:
        settings = Settings(
            data_dir=store.parent / "live-bench-data",
            use_redis=True,
            redis_url=f"redis://127.0.0.1:{port}/0",
            cache_ttl=0,
            cluster="threads",
        )
        forming, day = forming_bars(store, args.seed)
        stamp = day.tz_localize("America/New_York") + pd.Timedelta(hours=10, minutes=32)
        body = snapshot_body(forming, stamp)
        scanner = LiveScanner(store, settings)
        tic = time.perf_counter()
        scanner.refresh()
        build = time.perf_counter() - tic
        state = scanner.state
        assert state is not None
        market = parse_snapshot(body)
        spy = (market.bars.at["SPY", DATE], float(market.bars.at["SPY", "close"]))

        parts: dict[str, list[float]] = {k: [] for k in ("parse", "step", "cross", "publish")}
        totals: list[float] = []
        result = None
        for i in range(args.warmup + args.repeat):
            t0 = time.perf_counter()
            market = parse_snapshot(body)
            t1 = time.perf_counter()
            live_state.update(state, market.bars, spy)
            t2 = time.perf_counter()
            result, step = scanner.rescore(market, base_snapshot="bench")
            t3 = time.perf_counter()
            published = snapshots.publish_live(result, settings=settings)
            t4 = time.perf_counter()
            assert published
            if i < args.warmup:
                continue
            stepped = t2 - t1  # rescore steps again inside: its own step is the same work
            parts["parse"].append(t1 - t0)
            parts["step"].append(stepped)
            parts["cross"].append(t3 - t2 - stepped)
            parts["publish"].append(t4 - t3)
            totals.append((t1 - t0) + (t3 - t2) + (t4 - t3))
        assert result is not None
        scan_s, scan_samples, full = timed(
            lambda: run_scan(store, settings=settings.model_copy(update={"use_redis": False})),
            args.warmup,
            args.repeat,
        )
        command_s = technic_scan(store, args.repeat)
        fan_s, fan_done = fanout(settings, full.snapshot, result.snapshot, args.subscriptions)
    finally:
        proc.terminate()
        proc.wait(10)
    ms = {k: statistics.median(v) * 1e3 for k, v in parts.items()}
    total_ms = statistics.median(totals) * 1e3
    speedup = scan_s * 1e3 / total_ms
    size_mib = len(body) / 2**20
    met_ms = "met" if total_ms <= GOAL_MS else "**missed**"
    met_x = "met" if speedup >= GOAL_SPEEDUP else "**missed**"
    moved = int(step.moved.sum())
    body_md = f"""
Demo store {args.tickers:,} × {args.days} ({len(state.tickers):,} tickers with clean bars);
Polygon's snapshot for the next session rendered once ({size_mib:.1f} MiB,
{market.tickers:,} tickers, {moved:,} stepped); a local `redis-server`. Medians of
{args.repeat} after {args.warmup} warm-up.

| live update, by part | ms |
| --- | ---: |
| parse the snapshot JSON | {ms["parse"]:.1f} |
| step every ticker's indicators and features | {ms["step"]:.1f} |
| cross-section and document (the scan's) | {ms["cross"]:.1f} |
| publish (JSON, Arrow, one Redis transaction) | {ms["publish"]:.1f} |
| **whole update** | **{total_ms:.1f}** |

| | seconds | goal |
| --- | ---: | --- |
| one live update | {total_ms / 1e3:.3f} | ≤ {GOAL_MS / 1e3:.1f} s: {met_ms} |
| full scan of the same store, warm, in process | {scan_s:.3f} | |
| speed-up over the warm scan | {speedup:.1f}× | ≥ {GOAL_SPEEDUP:g}×: {met_x} |
| `technic scan --json`, whole process (median of {args.repeat}) | {command_s:.3f} | |
| speed-up over the command | {command_s * 1e3 / total_ms:.1f}× | ≥ {GOAL_SPEEDUP:g}× |
| build the live state (once per session) | {build:.3f} | |
| alert fan-out: {args.subscriptions:,} webhooks taken ({fan_done:,} delivered) | {fan_s:.3f} | |

Update samples (ms): {", ".join(f"{t * 1e3:.1f}" for t in totals)}; scan samples (s):
{", ".join(f"{s:.3f}" for s in scan_samples)}; the full scan scored {len(full.table):,} rows, the
live update {len(result.table):,}.
"""
    block = record("Live update vs full scan", body_md)
    print(block)
    if args.record:
        append(block)


if __name__ == "__main__":
    main()
