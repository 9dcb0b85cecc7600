"""HTTP load test: requests/s and p50/p99 latency of the app's hot endpoints at 64 connections.

Builds (or reuses) the demo store of ``bench.scan``, scans it once and publishes the snapshot
into its own ``redis-server``, starts ``technic serve --workers W`` (uvicorn, a separate
process) on loopback, and drives it from another process: ``wrk`` when it is installed
(``-t1 -c64 --latency``: one event-loop thread drives all connections and leaves
the cores to the server), else an asyncio httpx client. Each endpoint gets a bounded run
(``--duration`` seconds) after a warm-up that lets every worker load the snapshot:

- ``POST /v1/scan`` with the default body ``{}`` (every row, answered from memory once built),
  plain and with ``Accept-Encoding: gzip`` (what mobile HTTP clients send);
- ``GET /v1/scans/latest?limit=50``.

``--check`` verifies every answer once before loading it (status 200, the published rows).

Run: ``python -m bench.http [--workers 2 --connections 64 --duration 10 --record]``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
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

from bench.common import append, demo_store, parser, record, start_redis
from pipeline import snapshots
from pipeline.config import Settings
from pipeline.scan import run_scan

GOAL_RPS = 2000.0
GOAL_P99_MS = 50.0


@dataclass(frozen=True)
class Endpoint:
    label: str
    method: str
    path: str
    body: bytes | None = None
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def headers(self) -> dict[str, str]:
        json = {"Content-Type": "application/json"} if self.body is not None else {}
        return {**json, **dict(self.extra)}


ENDPOINTS = (
    Endpoint("`POST /v1/scan` `{}`", "POST", "/v1/scan", b"{}"),
    Endpoint(
        "`POST /v1/scan` `{}`, gzip", "POST", "/v1/scan", b"{}", (("Accept-Encoding", "gzip"),)
    ),
    Endpoint("`GET /v1/scans/latest?limit=50`", "GET", "/v1/scans/latest?limit=50"),
)


@dataclass
class Load:
    """One bounded run: requests/s, latency percentiles (ms), errors, bytes per response."""

    rps: float
    p50: float
    p99: float
    errors: int
    requests: int
    tool: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def wrk(base: str, endpoint: Endpoint, connections: int, duration: int, threads: int) -> Load:
    """A run of wrk (C, event-driven): the load generator costs little CPU per request."""
    lines = [f'wrk.method = "{endpoint.method}"']
    if endpoint.body is not None:
        lines += [f"wrk.body = '{endpoint.body.decode()}'"]
    lines += [f'wrk.headers["{name}"] = "{value}"' for name, value in endpoint.headers.items()]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines) + "\n")
    try:
        out = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
             "--timeout", "10s", "-s", script.name, base + endpoint.path],
            capture_output=True, text=True, check=True, timeout=duration + 60,
        ).stdout  # fmt: skip
    finally:
        os.unlink(script.name)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.MULTILINE))
    done = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    return Load(
        float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        _ms(latency["50"]),
        _ms(latency["99"]),
        errors,
        done,
        "wrk",
    )


def _drive(url: str, endpoint: Endpoint, connections: int, duration: int, out) -> None:
    """An asyncio httpx load generator (the fallback without wrk), in its own process."""

    async def main() -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(limits=limits, timeout=10) as client:
            samples: list[float] = []
            errors = 0
            stop = time.monotonic() + duration

            async def user() -> None:
                nonlocal errors
                while time.monotonic() < stop:
                    tic = time.perf_counter()
                    try:
                        response = await client.request(
                            endpoint.method, url, content=endpoint.body,
                            headers=endpoint.headers,
                        )  # fmt: skip
                        ok = response.status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    samples.append(time.perf_counter() - tic)
                    errors += not ok

            start = time.monotonic()
            await asyncio.gather(*(user() for _ in range(connections)))
            elapsed = time.monotonic() - start
            cuts = statistics.quantiles(samples, n=100)
            out.put((len(samples) / elapsed, cuts[49] * 1e3, cuts[98] * 1e3, errors, len(samples)))

    asyncio.run(main())


def httpx_load(base: str, endpoint: Endpoint, connections: int, duration: int) -> Load:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(
        target=_drive, args=(base + endpoint.path, endpoint, connections, duration, queue)
    )
    proc.start()
    rps, p50, p99, errors, done = queue.get(timeout=duration + 120)
    proc.join(30)
    return Load(rps, p50, p99, errors, done, "httpx")


def check(base: str, document: dict) -> None:
    for endpoint in ENDPOINTS:
        response = httpx.request(
            endpoint.method,
            base + endpoint.path,
            content=endpoint.body,
            headers=endpoint.headers,
            timeout=30,
        )
        if response.status_code != 200:
            raise SystemExit(f"check failed: {endpoint.label} answered {response.status_code}")
        if endpoint.path == "/v1/scan" and response.json()["results"] != document["results"]:
            raise SystemExit(f"check failed: {endpoint.label} is not the published rows")
    print(
        f"check: every endpoint answers 200; /v1/scan returns the {len(document['results']):,} rows"
    )


def serve(port: int, workers: int, env: dict[str, str]) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("technic")
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--workers", str(workers), "--no-access-log"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit("technic serve exited during start-up")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("technic serve did not become healthy in 60 s")


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    p.add_argument("--connections", type=int, default=64, help="concurrent connections")
    p.add_argument("--duration", type=int, default=10, help="seconds per endpoint")
    p.add_argument(
        "--wrk-threads", type=int, default=1, help="wrk threads (each drives many connections)"
    )
    p.add_argument(
        "--tool", choices=("auto", "wrk", "httpx"), default="auto", help="load generator"
    )
    args = p.parse_args()
    tool = args.tool if args.tool != "auto" else ("wrk" if shutil.which("wrk") else "httpx")
    store = demo_store(args)
    proc, redis_port = start_redis()
    data_dir = Path(tempfile.mkdtemp(prefix="technic-bench-http-"))
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "TECHNIC_DATA_DIR": str(data_dir),
        "TECHNIC_STORE": str(store),
        "TECHNIC_USE_REDIS": "1",
    }
    server = None
    try:
        settings = Settings(
            data_dir=data_dir,
            store=store,
            use_redis=True,
            redis_url=env["REDIS_URL"],
            dashboard_address=":0",
            max_workers="2",
        )
        result = run_scan(store, settings=settings)
        if not snapshots.publish(result, settings=settings).published:
            raise SystemExit("publish did not reach Redis")
        port = free_port()
        server = serve(port, args.workers, env)
        base = f"http://127.0.0.1:{port}"
        if args.check:
            check(base, orjson.loads(result.to_json()))
        runs = {}
        for endpoint in ENDPOINTS:
            for _ in range(max(args.warmup, 1)):  # every worker loads the snapshot first
                warm = min(args.duration, 3)
                if tool == "wrk":
                    wrk(base, endpoint, args.connections, warm, args.wrk_threads)
                else:
                    httpx_load(base, endpoint, args.connections, warm)
            runs[endpoint] = (
                wrk(base, endpoint, args.connections, args.duration, args.wrk_threads)
                if tool == "wrk"
                else httpx_load(base, endpoint, args.connections, args.duration)
            )
            print(endpoint.label, runs[endpoint])
        sizes = {
            e: len(httpx.request(e.method, base + e.path, content=e.body, headers=e.headers).read())
            for e in ENDPOINTS
            if not e.extra
        }
        zipped = httpx.post(base + "/v1/scan", json={}, headers={"Accept-Encoding": "gzip"})
        gzip_size = int(zipped.headers["content-length"])
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(data_dir, ignore_errors=True)

    rows = []
    for endpoint, load in runs.items():
        size = gzip_size if endpoint.extra else sizes[endpoint]
        met = load.rps >= GOAL_RPS and load.p99 <= GOAL_P99_MS and load.errors == 0
        rows.append(
            f"| {endpoint.label} | {size / 1e3:,.0f} kB | {load.rps:,.0f} | {load.p50:.1f} | "
            f"{load.p99:.1f} | {load.errors} of {load.requests:,} | {'met' if met else 'missed'} |"
        )
    body = (
        f"{len(result.table):,}-row snapshot; `technic serve --workers {args.workers}` "
        f"(uvicorn) and the load generator ({tool}, {args.connections} connections, "
        f"{args.wrk_threads if tool == 'wrk' else 1} thread, "
        f"{args.duration} s per endpoint) share the machine over loopback. Goal: "
        f"≥ {GOAL_RPS:,.0f} req/s, p99 ≤ {GOAL_P99_MS:g} ms, zero errors.\n\n"
        "| endpoint | response | req/s | p50 ms | p99 ms | errors | goal |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |\n" + "\n".join(rows)
    )
    block = record("HTTP load", body)
    print(block)
    if args.record:
        append(block)


if __name__ == "__main__":
    main()
