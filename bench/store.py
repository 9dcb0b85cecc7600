"""The bar store in a bucket: scan, one-day sync and chart history from s3:// vs a local disk.

One run, one process: moto's S3 server on loopback (``ThreadedMotoServer``, the S3 protocol
without network latency) with this process's AWS_* variables pointed at it before any Dask
cluster starts (the workers inherit them); every ``s3://`` store below is an exact copy of a
local one (its current generation's objects, byte for byte: same files, only the transport
differs). A counting filter on moto's request log tells how many S3 requests each step made.

a. **Full scan** of the demo store of ``bench.scan`` (``--tickers`` × ``--days``) on one warm
   2-worker cluster: local and s3 interleaved, ``--repeat`` each after ``--warmup``; medians,
   per stage, and the ratio s3 / local (goal ≤ 1.5×). ``--check``: both ranked tables equal.
b. **One-day incremental sync** (``bench.sync``'s fake Polygon server in its own process, a
   ``--sync-tickers`` × ``--sync-days`` backfill into a local store first): the one-day sync
   into a fresh copy of that store, local and s3 interleaved, ``--repeat`` each, with the
   provider and S3 requests made, and the store write alone (``BarStore.update``).
   ``--check``: the store the sync left in the bucket equals the market's bars (sampled).
c. **Symbol history** ``GET /v1/symbol/{t}?days=90``: each store's snapshot published into its
   own ``redis-server`` and the service called in process (httpx ASGI transport, as
   ``bench.app``). Cold: each of ``--tickers-detail`` tickers' first call while the recent
   bars are held back (the service's :class:`RecentHistory` is replaced by one whose
   snapshot-triggered prefetch does nothing until released), so the route reads the ticker's
   store file. Then the prefetch is released and awaited (its load time reported), and warm:
   each of ``--tickers-warm`` other tickers' first call (the relevant number: a warm service,
   a ticker nobody asked for yet; goal ≤ 5 ms p50 from the bucket), and repeats of the same
   tickers (memoized). ``--check``: served histories equal a local store read.

Run: ``python -m bench.store [--tickers 6000 --days 504 --repeat 5 --record]``.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import re
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from bench.app import _check_detail, _timed
from bench.cache import BUCKET, start_s3
from bench.common import append, demo_store, parser, record, start_redis
from bench.sync import check as check_sync
from bench.sync import make_market, serve, settings_for
from pipeline import snapshots, storage
from pipeline.cluster import client_session
from pipeline.config import Settings
from pipeline.price_history import trusted_bars
from pipeline.scan import STAGES, ScanResult, run_scan
from pipeline.storage import Location
from pipeline.store import POINTER, BarStore
from pipeline.sync import SyncSummary, sync
from service.deps import history_key
from service.history import RecentHistory
from service.main import create_app

STAGE_NAMES = {
    "read": "read",
    "indicators": "indicators + features",
    "alpha": "alpha",
    "cross_section": "cross-section + snapshot",
}
GOAL_SCAN_RATIO = 1.5
GOAL_DETAIL_MS = 5.0


class S3Requests(logging.Filter):
    """Counts the requests moto's server answers, by method, from werkzeug's one log line per
    request (and drops the lines). The Dask workers' requests are counted too: they all go
    to this process's server."""

    _METHOD = re.compile(r"\b(GET|PUT|POST|HEAD|DELETE)\b")

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    @classmethod
    def install(cls) -> S3Requests:
        counter = cls()
        log = logging.getLogger("werkzeug")
        log.setLevel(logging.INFO)
        log.addFilter(counter)
        return counter

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        found = self._METHOD.search(str(args[0])) if args else None
        if found:
            with self._lock:
                self.counts[found.group(1)] += 1
        return False

    def mark(self) -> Counter[str]:
        with self._lock:
            return Counter(self.counts)

    def since(self, mark: Counter[str]) -> Counter[str]:
        return self.mark() - mark


def describe(counts: Counter[str] | dict[str, int]) -> str:
    total = sum(counts.values())
    kinds = ", ".join(f"{k} {v:g}" for k, v in sorted(counts.items()) if v)
    return f"{total:g} ({kinds})" if kinds else "0"


def median_counts(samples: list[Counter[str]]) -> dict[str, float]:
    keys = sorted({k for c in samples for k in c})
    return {k: statistics.median(c.get(k, 0) for c in samples) for k in keys}


def copy_store(source: str | Path, target: str) -> int:
    """``source``'s current generation (files, tables, reference, manifest, then the pointer)
    at ``target``, byte for byte; returns the bytes copied."""
    generation = BarStore(source).current()
    src, dst = Location.parse(source), Location.parse(target)
    dst.make()

    def copy(key: str) -> int:
        data = src.get(key)
        dst.put(key, data)
        return len(data)

    with ThreadPoolExecutor(max_workers=4) as pool:
        copied = sum(pool.map(copy, sorted(generation.objects)))
    if src.exists(POINTER):  # a store from before the pointer is read by its root manifest
        copied += copy(POINTER)
    return copied


def remove_store(target: str) -> None:
    if target.startswith("s3://"):
        storage._s3fs().rm(target.removeprefix("s3://"), recursive=True)
    else:
        shutil.rmtree(target, ignore_errors=True)


def percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q))


# -- a. full scan -------------------------------------------------------------------------


def measure_scan(stores: dict[str, str], args, requests: S3Requests) -> dict[str, Any]:
    """Interleaved warm scans of each store: samples, stage timings, S3 requests, last result."""
    settings = Settings(max_workers="2", dashboard_address=":0", use_redis=False, cache_ttl=0)
    out: dict[str, Any] = {
        where: {"samples": [], "timings": [], "requests": []} for where in stores
    }
    with client_session(settings) as client:

        def scan(store: str) -> ScanResult:
            return run_scan(store, client=client, settings=settings)

        if args.check:
            first = {where: scan(store) for where, store in stores.items()}
            pd.testing.assert_frame_equal(first["local"].table, first["s3"].table)
            print(f"check: the scan's table from s3 equals local ({len(first['s3'].table)} rows)")
        for _ in range(args.warmup):
            for store in stores.values():
                scan(store)
        order = list(stores)
        for i in range(args.repeat):
            for where in order if i % 2 == 0 else order[::-1]:
                mark = requests.mark()
                tic = time.perf_counter()
                result = scan(stores[where])
                out[where]["samples"].append(time.perf_counter() - tic)
                out[where]["requests"].append(requests.since(mark))
                out[where]["timings"].append(result.timings)
                out[where]["result"] = result
    for row in out.values():
        row["median"] = statistics.median(row["samples"])
        row["stages"] = {s: statistics.median(t[s] for t in row["timings"]) for s in STAGES}
    return out


# -- b. one-day incremental sync ----------------------------------------------------------


def measure_sync(url: str, args, requests: S3Requests, root: Path) -> dict[str, Any]:
    """Backfill a local store from the fake market, then time one-day syncs and store writes
    into fresh copies of it, local and s3 interleaved."""
    market = make_market(args.sync_tickers, args.sync_days, args.seed)
    backfill_days, new_day = market.sessions[:-1], market.sessions[-1]
    base = root / "two-years"
    tic = time.perf_counter()
    filled = sync(base, settings=settings_for(url), since=backfill_days[0], until=backfill_days[-1])
    backfill_s = time.perf_counter() - tic
    assert filled.days_written == backfill_days, "the backfill missed days"
    checked = check_sync(base, market, backfill_days[-1], backfill_days) if args.check else 0

    names = {"T": "ticker", "o": "open", "h": "high", "l": "low", "c": "close", "v": "volume"}
    frame = pd.DataFrame(market.rows(new_day)).rename(columns=names)
    frame["date"] = pd.Timestamp(new_day)
    frame = frame[["ticker", "date", "open", "high", "low", "close", "volume"]]

    def target(where: str, tag: str) -> str:
        name = f"{tag}-{where}-{uuid.uuid4().hex[:6]}"
        return str(root / name) if where == "local" else f"s3://{BUCKET}/{name}"

    def row() -> dict[str, list]:
        return {"sync": [], "summaries": [], "requests": [], "write": [], "write_requests": []}

    out: dict[str, Any] = {"local": row(), "s3": row()}
    for i in range(-args.warmup, args.repeat):  # i < 0: a warm-up, untimed
        for where in ("local", "s3") if i % 2 == 0 else ("s3", "local"):
            kept = out[where] if i >= 0 else row()
            into = target(where, "sync")
            copy_store(base, into)
            mark = requests.mark()
            tic = time.perf_counter()
            done: SyncSummary = sync(into, settings=settings_for(url), until=new_day)
            kept["sync"].append(time.perf_counter() - tic)
            kept["requests"].append(requests.since(mark))
            kept["summaries"].append(done)
            assert done.days_written == [new_day], done.lines()
            if args.check and where == "s3" and "checked" not in out["s3"]:
                out["s3"]["checked"] = check_sync(into, market, new_day, market.sessions)
            remove_store(into)

            into = target(where, "write")
            copy_store(base, into)
            mark = requests.mark()
            tic = time.perf_counter()
            BarStore(into).update(frame)
            kept["write"].append(time.perf_counter() - tic)
            kept["write_requests"].append(requests.since(mark))
            remove_store(into)
    return {
        "market": market,
        "filled": filled,
        "backfill_s": backfill_s,
        "checked": checked,
        "rows_written": out["s3"]["summaries"][0].rows_written,
        **out,
    }


# -- c. symbol history --------------------------------------------------------------------


class HeldBack(RecentHistory):
    """The service's recent bars with the load a new snapshot starts held back until
    :meth:`release`, so that calls before it read the ticker's store file as a service does
    while its recent bars are still loading."""

    def __init__(self) -> None:
        super().__init__()
        self.held = True

    def prefetch(self, key, document: dict[str, Any]) -> None:
        if not self.held:
            super().prefetch(key, document)

    def release(self, key, document: dict[str, Any]) -> None:
        self.held = False
        super().prefetch(key, document)


def pick_tickers(document: dict[str, Any], args) -> dict[str, list[str]]:
    """One probe ticker, ``--tickers-detail`` cold and ``--tickers-warm`` warm ones, all
    different, drawn at random from the snapshot's rows."""
    rows = [r["ticker"] for r in document["results"]]
    rng = np.random.default_rng(args.seed)
    drawn = [rows[i] for i in rng.permutation(len(rows))]
    cold = drawn[1 : 1 + args.tickers_detail]
    warm = drawn[1 + len(cold) : 1 + len(cold) + args.tickers_warm]
    return {"probe": drawn[:1], "cold": cold, "warm": warm}


async def measure_history(
    settings: Settings, tickers: dict[str, list[str]], args
) -> dict[str, Any]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    out: dict[str, Any] = {}

    def path(ticker: str) -> str:
        return f"/v1/symbol/{ticker}?days=90"

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://app") as client,
    ):
        history = app.state.history = HeldBack()  # before the first request loads a snapshot
        tic = time.perf_counter()
        await app.state.snapshots.latest()  # what a first request does: from Redis
        out["snapshot"] = (time.perf_counter() - tic) * 1e3
        out["first"] = await _timed(client, "GET", path(tickers["probe"][0]))
        out["cold"] = [await _timed(client, "GET", path(t)) for t in tickers["cold"]]
        current = app.state.snapshots.current
        key = history_key(app.state.settings, current)
        assert history.get(key) is None, "the recent bars loaded though held back"

        tic = time.perf_counter()
        history.release(key, current.document)
        deadline = tic + 600
        while (recent := history.get(key)) is None:
            with history._lock:  # the load ended without bars (it logged why)
                failed = history._loading is None and history.get(key) is None
            if failed:
                raise SystemExit(f"the recent bars of {key[0]} did not load")
            if time.perf_counter() > deadline:
                raise SystemExit("the recent bars did not load in 10 minutes")
            await asyncio.sleep(0.005)
        out["waited"] = time.perf_counter() - tic
        out["load"] = recent.seconds
        out["held_bars"] = len(recent.frame)
        out["from_memory"] = sum(recent.bars(t, 90) is not None for t in tickers["warm"])

        out["warm"] = [await _timed(client, "GET", path(t)) for t in tickers["warm"]]
        out["repeat"] = [
            await _timed(client, "GET", path(t))
            for t in tickers["warm"][: args.tickers_detail]
            for _ in range(args.calls)
        ]
        if args.check:  # the answers served above (memoized), against a local store read
            generation = BarStore(args.local).current()
            as_of = current.document["as_of"]
            sample = tickers["cold"][:10] + tickers["warm"][:10]
            for ticker in sample:
                answer = (await client.get(path(ticker))).json()
                _check_detail(answer)
                want = trusted_bars(generation, ticker, as_of).tail(90)
                got = answer["history"]
                dates = list(want["date"].dt.strftime("%Y-%m-%d"))
                if [b["date"] for b in got] != dates or [b["Close"] for b in got] != list(
                    want["close"]
                ):
                    raise SystemExit(f"check failed: history of {ticker} from {key[0]}")
            out["checked"] = len(sample)
    return out


# -- the report ---------------------------------------------------------------------------


def verdict(ok: bool, goal: str) -> str:
    return f"{goal}: {'met' if ok else '**missed**'}"


def scan_table(scan: dict[str, Any], args) -> str:
    local, s3 = scan["local"], scan["s3"]
    ratio = s3["median"] / local["median"]
    lines = [
        "| full scan, warm 2-worker cluster | local s | s3 s | s3 / local | goal |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| median of {args.repeat} | {local['median']:.3f} | {s3['median']:.3f} | "
        f"{ratio:.2f}× | {verdict(ratio <= GOAL_SCAN_RATIO, f'≤ {GOAL_SCAN_RATIO:g}×')} |",
    ]
    for stage in STAGES:
        a, b = local["stages"][stage], s3["stages"][stage]
        share = f"{b / a:.2f}×" if a > 0.005 else ""
        lines.append(f"| · {STAGE_NAMES.get(stage, stage)} | {a:.3f} | {b:.3f} | {share} |  |")
    lines.append(f"| S3 requests per scan | | {describe(median_counts(s3['requests']))} | | |")
    return "\n".join(lines)


def sync_table(res: dict[str, Any], args) -> str:
    local, s3 = res["local"], res["s3"]
    per_day = s3["summaries"][0]
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(per_day.requests_by_kind.items()))
    rows = []
    for label, k, reqs in (
        (f"one-day incremental sync, loopback HTTP, median of {args.repeat}", "sync", "requests"),
        (
            f"· the store write alone (`BarStore.update`, {res['rows_written']:,} rows)",
            "write",
            "write_requests",
        ),
    ):
        a, b = statistics.median(local[k]), statistics.median(s3[k])
        rows.append(
            f"| {label} | {a:.3f} | {b:.3f} | {b / a:.2f}× | {describe(median_counts(s3[reqs]))} |"
        )
    return "\n".join(
        [
            "| measurement | local s | s3 s | s3 / local | S3 requests (s3, median) |",
            "| --- | ---: | ---: | ---: | --- |",
            *rows,
            f"| provider requests per one-day sync | {per_day.requests} | {per_day.requests} | "
            f"| ({kinds}) |",
        ]
    )


def history_table(hist: dict[str, dict[str, Any]], tickers: dict[str, list[str]], args) -> str:
    local, s3 = hist["local"], hist["s3"]

    def pair(samples_a: list[float], samples_b: list[float]) -> str:
        return (
            f"{percentile(samples_a, 50):.2f} / {percentile(samples_a, 90):.2f} | "
            f"{percentile(samples_b, 50):.2f} / {percentile(samples_b, 90):.2f}"
        )

    warm_ok = percentile(s3["warm"], 50) <= GOAL_DETAIL_MS
    n_cold, n_warm = len(tickers["cold"]), len(tickers["warm"])
    n_rep = min(n_warm, args.tickers_detail)
    return "\n".join(
        [
            "| `GET /v1/symbol/{t}?days=90` | local p50 / p90 ms | s3 p50 / p90 ms | goal |",
            "| --- | ---: | ---: | --- |",
            f"| service start: the snapshot loaded from Redis (no store read; not a request) | "
            f"{local['snapshot']:.1f} | {s3['snapshot']:.1f} |  |",
            f"| first detail call (opens the store's generation, builds the symbol view, "
            f"reads one store file) | {local['first']:.1f} | {s3['first']:.1f} |  |",
            f"| cold: first call per ticker, recent bars not loaded (store file read), "
            f"{n_cold} tickers | {pair(local['cold'], s3['cold'])} |  |",
            f"| warm: first call per ticker, recent bars in memory, {n_warm} other tickers | "
            f"{pair(local['warm'], s3['warm'])} | "
            f"{verdict(warm_ok, f'≤ {GOAL_DETAIL_MS:g} ms p50 (s3)')} |",
            f"| warm, repeats of the same ticker (memoized), {n_rep} tickers × {args.calls} | "
            f"{pair(local['repeat'], s3['repeat'])} |  |",
            f"| recent bars load (`RecentBars.seconds`; wall from release until held) | "
            f"{local['load']:.2f} s ({local['waited']:.2f} s) | "
            f"{s3['load']:.2f} s ({s3['waited']:.2f} s) |  |",
        ]
    )


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument(
        "--sync-tickers", type=int, default=None, help="fake market size (default --tickers)"
    )
    p.add_argument(
        "--sync-days", type=int, default=None, help="backfilled sessions (default --days)"
    )
    p.add_argument("--tickers-detail", type=int, default=50, help="cold history tickers")
    p.add_argument("--tickers-warm", type=int, default=200, help="warm history tickers")
    p.add_argument("--calls", type=int, default=20, help="memoized repeats per ticker")
    args = p.parse_args()
    args.sync_tickers = args.sync_tickers or args.tickers
    args.sync_days = args.sync_days or args.days
    args.local = demo_store(args)
    root = args.store.expanduser() / f"store-{uuid.uuid4().hex[:6]}"
    data_dir = Path(tempfile.mkdtemp(prefix="technic-bench-store-"))
    load_before = os.getloadavg()[0]

    # the fake Polygon server first: forking a process that already runs moto's threads is
    # asking for trouble
    ready: mp.Queue = mp.Queue()
    stop = mp.Event()
    polygon = mp.Process(
        target=serve, args=(args.sync_tickers, args.sync_days, args.seed, ready, stop)
    )
    polygon.start()
    server = start_s3()  # sets AWS_* before any cluster starts
    requests = S3Requests.install()
    redis_proc = None
    try:
        s3_url = f"s3://{BUCKET}/store"
        tic = time.perf_counter()
        copied = copy_store(args.local, s3_url)
        upload_s = time.perf_counter() - tic
        generation = BarStore(args.local).current()
        stores = {"local": str(args.local), "s3": s3_url}
        polygon_url = ready.get(timeout=900)  # pre-rendered: nothing runs beside the timings

        scan = measure_scan(stores, args, requests)
        synced = measure_sync(polygon_url, args, requests, root)
        stop.set()
        polygon.join(timeout=30)

        redis_proc, port = start_redis()
        tickers = pick_tickers(scan["local"]["result"].snapshot, args)
        hist = {}
        for where in stores:
            settings = Settings(
                data_dir=data_dir,
                use_redis=True,
                redis_url=f"redis://127.0.0.1:{port}/0",
                redis_prefix=f"bench-store-{where}-{uuid.uuid4().hex[:6]}:v1",
                cache_ttl=0,
                cluster="sync",
            )
            if not snapshots.publish(scan[where]["result"], settings=settings).published:
                raise SystemExit("publish did not reach Redis")
            hist[where] = asyncio.run(measure_history(settings, tickers, args))
        if args.check:
            print(f"check: {hist['s3']['checked']} served histories per store equal a store read")
    finally:
        stop.set()
        polygon.join(timeout=30)
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(10)
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(data_dir, ignore_errors=True)

    files = len(generation.files)
    plural = "" if files == 1 else "s"
    bars = sum(f.rows for f in generation.files)
    market, filled = synced["market"], synced["filled"]
    per_day = synced["s3"]["summaries"][0]
    parity = []
    if args.check:
        parity.append("both scans' ranked tables equal")
        parity.append(
            f"the backfill and the s3 one-day sync equal the market's bars "
            f"({synced['checked']:,} + {synced['s3']['checked']:,} rows sampled)"
        )
        parity.append(f"{hist['s3']['checked']} served histories per store equal a store read")
    checks = f"\n\nChecked first: {'; '.join(parity)}." if parity else ""
    first_day = market.sessions[0]
    body = f"""
S3: moto's server on loopback in this process (`ThreadedMotoServer`), the S3 protocol without
a network: its request handling runs in this process's threads and competes for the GIL and the
{os.cpu_count()} cores with the scan's client, the sync and the service (a real bucket is
across a network instead: more latency per request, none of this CPU). Each s3:// store is a
byte-for-byte copy of the local one's current generation ({files} file{plural}, {bars:,} bars,
{copied / 1e6:.1f} MB uploaded in {upload_s:.1f} s). S3 requests are counted at the server
(workers' included).{checks}

**a. Full scan** of the {args.tickers:,} × {args.days} demo store, local and s3 interleaved
after {args.warmup} warm-up each, bar cache off (`cache_ttl=0`):

{scan_table(scan, args)}

Samples (s): local {", ".join(f"{x:.3f}" for x in scan["local"]["samples"])};
s3 {", ".join(f"{x:.3f}" for x in scan["s3"]["samples"])}.

**b. One-day incremental sync** ({args.sync_tickers:,}-ticker fake Polygon market on
{len(market.sessions)} NYSE sessions {first_day} .. {market.sessions[-1]}, own process,
loopback HTTP; `TECHNIC_POLYGON_RPM=0`): a {len(filled.days_written)}-session backfill into a
local store ({filled.store_rows:,} rows, {filled.requests} provider requests, untimed here:
{synced["backfill_s"]:.1f} s), then each one-day sync into a fresh copy of it
({per_day.rows_written:,} rows into {per_day.store_tickers:,} tickers), local and s3
interleaved after {args.warmup} warm-up each:

{sync_table(synced, args)}

Samples (s): sync local {", ".join(f"{x:.3f}" for x in synced["local"]["sync"])};
sync s3 {", ".join(f"{x:.3f}" for x in synced["s3"]["sync"])};
write local {", ".join(f"{x:.3f}" for x in synced["local"]["write"])};
write s3 {", ".join(f"{x:.3f}" for x in synced["s3"]["write"])}.

**c. Symbol history** in process (httpx ASGI transport, the app's headers), one app per
store on its own snapshot; the cold calls ran with the service's `RecentHistory` replaced by
one whose prefetch is held back until released (the route then reads the ticker's store file,
as before the recent bars are loaded); the warm tickers are others, each called once after the
recent bars were held ({hist["s3"]["held_bars"]:,} bars; {hist["s3"]["from_memory"]} of
{len(tickers["warm"])} warm tickers answered from memory; a ticker the window cannot answer
reads its store file):

{history_table(hist, tickers, args)}

Load average (1 min) {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on
{os.cpu_count()} cores shared with other work: timings scale with it.
"""
    block = record(f"Bar store in a bucket (s3 on loopback), {args.tickers:,} × {args.days}", body)
    print(block)
    if args.record:
        append(block)


if __name__ == "__main__":
    main()
