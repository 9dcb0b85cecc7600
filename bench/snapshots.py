"""Snapshot publish and read times in a real Redis, for a full-universe (6,000-row) scan.

Builds (or reuses) the demo store of ``bench.scan``, runs one scan, starts its own
``redis-server`` on a free port (no persistence) and times, through ``pipeline.snapshots``:

- ``publish``: a fresh result (the JSON document is serialised inside publish) and a result
  whose JSON was already serialised (as after ``ScanResult.write``); every publish has a new id,
  so the history, the slimming of older documents and the pointer swap are all exercised;
- ``latest_bytes``: the app's read, bytes as stored (a GET of the pointer, the document fetched
  once per id and kept in process), through the settings (``connect`` answers first) and on a
  held connection;
- ``latest()`` cold (the first read after a publish: fetch and parse) and warm (same id: the
  in-process parsed copy);
- ``get(id)``: fetch and parse by id.

``--check`` verifies that ``latest_bytes`` returns exactly the published bytes (and ``get`` the
same document) before timing. Reports JSON/Arrow sizes and Redis memory per snapshot.

Run: ``python -m bench.snapshots [--tickers 6000 --days 504 --repeat 20 --record]``.
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import orjson
import redis

from bench.common import append, demo_store, parser, record, start_redis, timed
from pipeline import snapshots
from pipeline.config import Settings
from pipeline.scan import ScanResult, run_scan
from pipeline.snapshots import redis_store

PUBLISH_GOAL_MS = 50.0
READ_GOAL_MS = 2.0


class Variants:
    """The scan's result under fresh snapshot ids, so every publish is a new snapshot."""

    def __init__(self, result: ScanResult):
        self.result, self.count = result, 0

    def __call__(self, serialised: bool) -> ScanResult:
        self.count += 1
        document = {**self.result.snapshot, "snapshot_id": f"bench-{self.count:04d}"}
        fresh = dataclasses.replace(self.result, snapshot=document)
        if serialised:
            fresh.to_json()
        return fresh


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def p90(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=10)[-1] if len(samples) > 1 else samples[0]


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--reads", type=int, default=200, help="timed runs of each read")
    args = p.parse_args()
    store = demo_store(args)
    scan_settings = Settings(use_redis=False, dashboard_address=":0", max_workers="2")
    result = run_scan(store, settings=scan_settings)
    rows = len(result.table)
    variants = Variants(result)

    proc, port = start_redis()
    data_dir = Path(tempfile.mkdtemp(prefix="technic-bench-snapshots-"))
    try:
        settings = Settings(
            data_dir=data_dir, redis_url=f"redis://127.0.0.1:{port}/0", use_redis=True
        )
        conn = redis.Redis.from_url(settings.redis_url)
        keys = redis_store.Keys(settings.redis_prefix)
        baseline = conn.info("memory")["used_memory"]
        version = conn.info("server")["redis_version"]

        def publish(serialised: bool) -> None:
            done = snapshots.publish(variants(serialised), settings=settings)
            if not done.published:
                raise SystemExit(f"publish did not reach Redis: {done}")

        first = variants(True)
        if not snapshots.publish(first, settings=settings).published:
            raise SystemExit("publish did not reach Redis")
        if args.check:
            found = snapshots.latest_bytes(settings=settings)
            if found != (first.snapshot["snapshot_id"], first.to_json()):
                raise SystemExit("check failed: latest_bytes differs from the published bytes")
            if snapshots.get(first.snapshot["snapshot_id"], settings=settings) != orjson.loads(
                first.to_json()
            ):
                raise SystemExit("check failed: get(id) differs from the published document")
            print(f"check: latest_bytes returns the {len(first.to_json()):,} published bytes")

        serialise, _, _ = timed(lambda: snapshots.to_json(result.snapshot), 1, args.repeat)
        fresh_samples, ready_samples = [], []
        for run in range(args.warmup + args.repeat):  # alternate: same history state for both
            for serialised, samples in ((False, fresh_samples), (True, ready_samples)):
                candidate = variants(serialised)
                tic = time.perf_counter()
                done = snapshots.publish(candidate, settings=settings)
                if run >= args.warmup:
                    samples.append(time.perf_counter() - tic)
                if not done.published:
                    raise SystemExit(f"publish did not reach Redis: {done}")
        pub_fresh, pub_ready = statistics.median(fresh_samples), statistics.median(ready_samples)

        held = redis.Redis.from_url(settings.redis_url)
        lb_api, lb_api_s, _ = timed(
            lambda: snapshots.latest_bytes(settings=settings), args.warmup, args.reads
        )
        lb_conn, lb_conn_s, _ = timed(
            lambda: snapshots.latest_bytes(conn=held, settings=settings), args.warmup, args.reads
        )
        cold_samples = []
        for _ in range(args.repeat):
            publish(True)
            tic = time.perf_counter()
            snapshots.latest(conn=held, settings=settings)
            cold_samples.append(time.perf_counter() - tic)
        cold = statistics.median(cold_samples)
        warm, warm_s, _ = timed(
            lambda: snapshots.latest(conn=held, settings=settings), args.warmup, args.reads
        )
        sid = conn.get(keys.latest).decode()
        get_id, get_s, _ = timed(
            lambda: snapshots.get(sid, conn=held, settings=settings),
            args.warmup,
            max(args.repeat, args.reads // 10),
        )
        json_key = keys.of(sid)["json"]
        raw_get, raw_get_s, _ = timed(lambda: held.get(json_key), args.warmup, args.reads)
        pointer, pointer_s, _ = timed(lambda: held.get(keys.latest), args.warmup, args.reads)

        parts = keys.of(sid)
        usage = {part: conn.memory_usage(key, samples=0) or 0 for part, key in parts.items()}
        sizes = {part: len(conn.get(key)) for part, key in parts.items()}
        history = [i.decode() for i in conn.zrevrange(keys.history, 0, -1)]
        full = sum(conn.exists(keys.of(i)["json"]) for i in history)
        used = conn.info("memory")["used_memory"] - baseline
        held.close()
        conn.close()
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(data_dir, ignore_errors=True)

    full_mb = sum(usage.values()) / 2**20
    slim_mb = (usage["meta"] + usage["members"]) / 2**20

    publish_goal = f"≤ {PUBLISH_GOAL_MS:g} ms"
    read_goal = f"≤ {READ_GOAL_MS:g} ms"
    table = [
        ("serialise the JSON document (`to_json`)", serialise, None, ""),
        ("`publish`, fresh result (serialises inside)", pub_fresh, fresh_samples, publish_goal),
        ("`publish`, JSON already serialised", pub_ready, ready_samples, publish_goal),
        ("`latest_bytes(settings=)`: pointer GET, cached bytes", lb_api, lb_api_s, read_goal),
        ("`latest_bytes(conn=)` on a held connection", lb_conn, lb_conn_s, read_goal),
        ("`latest()` cold: first read after a publish", cold, cold_samples, read_goal),
        ("`latest()` warm: same id, parsed copy in process", warm, warm_s, read_goal),
        ("`get(id)` (fetch + parse)", get_id, get_s, ""),
        ("reference: plain `GET` of the JSON key, held connection", raw_get, raw_get_s, ""),
        ("reference: `GET` of the latest pointer, held connection", pointer, pointer_s, ""),
    ]
    lines = ["| measurement | median ms | p90 ms | goal |", "| --- | ---: | ---: | --- |"]
    for name, median, samples, goal in table:
        spread = ms(p90(samples)) if samples else ""
        if goal:
            limit = PUBLISH_GOAL_MS if goal == publish_goal else READ_GOAL_MS
            goal = f"{goal}: {'met' if median * 1000 <= limit else '**missed**'}"
        lines.append(f"| {name} | {ms(median)} | {spread} | {goal} |")
    rows_md = "\n".join(lines)
    body = f"""
Snapshot of {rows:,} rows (universe {result.snapshot["universe_size"]:,}); own redis-server
{version} (no persistence) on 127.0.0.1 TCP, redis-py {redis.__version__}; {args.repeat} publishes
and {args.reads} reads per row (medians and p90).

{rows_md}

Sizes of one snapshot: JSON {sizes["json"]:,} bytes, Arrow (lz4) {sizes["arrow"]:,} bytes,
members {sizes["members"]:,} bytes, meta {sizes["meta"]:,} bytes. Redis `MEMORY USAGE`: full
snapshot {full_mb:.2f} MiB, slimmed to meta + members {slim_mb:.3f} MiB. After
{len(history)} publishes Redis holds {len(history)} snapshots ({full} with full documents);
`used_memory` grew by {used / 2**20:.1f} MiB.
"""
    block = record(f"Snapshots in Redis, {rows:,} rows", body)
    print(block)
    if args.record:
        append(block)


if __name__ == "__main__":
    main()
