"""The Redis raw-bar cache: does it still pay for a local store, an s3:// store, or neither?

A cache value is a store file's own Parquet bytes, one value per file (every as-of date and
ticker selection of the file shares it), so a hit replaces the store's GET of the file and
nothing else: the same Parquet is parsed, page checksums verified, either way.

Builds (or reuses) the demo store of ``bench.scan`` on a local disk and copies it into a
bucket of moto's S3 server on loopback (``ThreadedMotoServer``: the S3 protocol, no network,
so its reads show the per-object cost of an S3 client and server, not a WAN's latency). Starts
its own ``redis-server`` and a warm 2-worker cluster, then for each store reads its current
generation whole with ``load_bars`` (persisted; the pointer and manifest are read once,
untimed, as a scan does): store only (cache off), cold cache (every file a miss: store read +
SET) and warm cache (every file a hit: GET, no store read), and reports the medians with
Redis ``used_memory`` for the whole cache (goal: under 100 MB). ``--check`` verifies that both
stores give exactly the same partitions with the cache off, missing and hitting.

Run: ``python -m bench.cache [--tickers 6000 --days 504 --repeat 5 --record]``.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import boto3
import pandas as pd
import redis
from distributed import Client, wait
from moto.server import ThreadedMotoServer

from bench.common import append, demo_store, parser, record, start_redis
from pipeline import storage
from pipeline.cache import OUTCOME, OUTCOMES, BarCache
from pipeline.cluster import client_session
from pipeline.config import Settings
from pipeline.frame import load_bars
from pipeline.redis_conn import RedisTarget
from pipeline.store import BarStore

BUCKET = "technic-bench"


def start_s3() -> ThreadedMotoServer:
    """moto's S3 server on a free loopback port, with this process's AWS_* variables set for
    it (before the cluster starts, so its workers inherit them) and an empty bucket."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "technic-bench",
            "AWS_SECRET_ACCESS_KEY": "not-a-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
        }
    )
    storage._s3fs.cache_clear()  # an s3fs opened before would point at another endpoint
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    return server


def copy_to_s3(local: Path) -> str:
    """The local store's bars and reference table written as a store in the bucket."""
    url = f"s3://{BUCKET}/store"
    source = BarStore(local)
    BarStore(url).write(
        source.read().reset_index(),
        source.reference().reset_index(),
        merge=False,
        sources=("bench",),
    )
    return url


def read_with(client: Client, store: str | Path) -> Callable[[BarCache | None], tuple]:
    """A timed whole-store read of ``store`` on the cluster: (seconds, outcome counts).

    The store's pointer and manifest are read once, untimed, as a scan does (a hit does not
    save them); only the reads of its files are timed."""
    generation = BarStore.open(store).current()

    def read(cache: BarCache | None) -> tuple[float, dict[str, int]]:
        tic = time.perf_counter()
        bars = client.persist(load_bars(generation, cache=cache))
        wait(bars)
        seconds = time.perf_counter() - tic
        tally = bars.map_partitions(
            lambda part: pd.DataFrame({OUTCOME: [part.attrs.get(OUTCOME, "off")]}),
            meta={OUTCOME: "object"},
        ).compute()
        counts = tally[OUTCOME].value_counts()
        return seconds, {outcome: int(counts.get(outcome, 0)) for outcome in OUTCOMES}

    return read


def measure(read, args, url: str, conn: redis.Redis) -> dict[str, float]:
    """Median seconds of store-only, cold and warm reads, and the cache's Redis memory."""
    for _ in range(args.warmup):
        read(None)
    store_only = [read(None)[0] for _ in range(args.repeat)]
    cold, warm, filled = [], [], []
    for _ in range(args.repeat):
        cache = BarCache(RedisTarget(url, "bench", 30.0), f"bench-{uuid.uuid4().hex[:6]}:v1", 600)
        conn.flushdb()
        conn.execute_command("MEMORY", "PURGE")
        base = conn.info("memory")["used_memory"]
        seconds, outcome = read(cache)
        assert outcome["miss"] > 0 and outcome["hit"] == outcome["off"] == 0, outcome
        cold.append(seconds)
        time.sleep(3)  # let Redis free its transient write buffers
        conn.execute_command("MEMORY", "PURGE")
        filled.append(conn.info("memory")["used_memory"] - base)
        seconds, outcome = read(cache)
        assert outcome["hit"] > 0 and outcome["miss"] == outcome["off"] == 0, outcome
        warm.append(seconds)
    return {
        "store": statistics.median(store_only),
        "cold": statistics.median(cold),
        "warm": statistics.median(warm),
        "memory": statistics.median(filled) / 1e6,
    }


def check(client: Client, stores: dict[str, str | Path], url: str) -> str:
    """Every store and cache outcome gives exactly the local store's partitions."""
    expected = client.gather(client.compute(load_bars(stores["local"]).to_delayed()))
    cache = BarCache(RedisTarget(url, "bench", 30.0), f"check-{uuid.uuid4().hex[:6]}:v1", 600)
    for where, store in stores.items():
        for outcome in ("off", "miss", "hit"):
            frame = load_bars(store, cache=None if outcome == "off" else cache)
            got = client.gather(client.compute(frame.to_delayed()))
            assert {part.attrs.get(OUTCOME) for part in got} == {outcome}, (where, outcome)
            assert len(got) == len(expected), where
            for a, b in zip(got, expected, strict=True):
                pd.testing.assert_frame_equal(a, b, check_exact=True)
    return f"check: {len(expected)} partitions equal for local and s3, cache off, miss and hit"


def verdict(row: dict[str, float]) -> str:
    """Whether a warm cache beats the store read (10% either way is a wash)."""
    ratio = row["store"] / row["warm"]
    if ratio > 1.1:
        return f"pays: a hit read is {ratio:.1f}× faster"
    if ratio < 1 / 1.1:
        return f"does not pay: a hit read is {1 / ratio:.1f}× slower"
    return f"a wash ({ratio:.2f}×)"


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    args = p.parse_args()
    local = demo_store(args)
    server = start_s3()
    proc, port = start_redis()
    url = f"redis://127.0.0.1:{port}/0"
    conn = redis.Redis.from_url(url)
    settings = Settings(max_workers="2", dashboard_address=":0", use_redis=False)
    try:
        stores = {"local": local, "s3": copy_to_s3(local)}
        generation = BarStore(local).current()
        files, bars = len(generation.files), sum(f.rows for f in generation.files)
        payload = sum((local / "bars" / f.name).stat().st_size for f in generation.files)
        with client_session(settings) as client:
            if args.check:
                print(check(client, stores, url))
            rows = {
                where: measure(read_with(client, store), args, url, conn)
                for where, store in stores.items()
            }
    finally:
        conn.close()
        proc.terminate()
        proc.wait(10)
        server.stop()
    lines = [
        "| store | store read (cache off) | cold cache (store read + SET) "
        "| warm cache (GET, no store read) | Redis `used_memory` | does the cache pay? |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for where, row in rows.items():
        memory = row["memory"]
        goal = "" if memory < 100 else " (**over the 100 MB goal**)"
        lines.append(
            f"| {where} | {row['store']:.3f} s | {row['cold']:.3f} s | {row['warm']:.3f} s "
            f"| {memory:.1f} MB{goal} | {verdict(row)} |"
        )
    table = "\n".join(lines)
    plural = "" if files == 1 else "s"
    body = f"""
Whole-store read (`load_bars` of the current generation, persisted on a warm 2-worker cluster),
medians of {args.repeat}: {bars:,} bars in {files} file{plural}, {payload / 1e6:.1f} MB of
Parquet. A cache value is a file's own Parquet bytes, one value per file, so the cache holds
about the store's size; the pointer and manifest are read once before timing, as a scan does.

{table}

local: the store's files on this machine's disk, in the page cache after the first read.
s3: the same store in a bucket of moto's S3 server on loopback (the S3 protocol without
network latency: a real bucket's per-object cost is higher).
"""
    block = record(f"Raw-bar cache, {args.tickers:,} × {args.days}", body)
    print(block)
    if args.record:
        append(block)


if __name__ == "__main__":
    main()
