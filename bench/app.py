"""The app's screens in process: POST /v1/scan per preset, symbol detail, copilot (p50 ms).

Builds (or reuses) the demo store of ``bench.scan``, scans it once and publishes the snapshot
into its own ``redis-server``, then calls the service in process (httpx's ASGI transport: the
whole app, middleware and routing included, no socket) with the app's headers:

- ``POST /v1/scan`` with each body of the app's contract (first open, the three presets, a
  filter-panel and a Randomize body): the first call after the snapshot is published, then
  the p50 of ``--calls`` more (goal ≤ 2 ms after the first);
- ``GET /v1/symbol/{t}?days=90`` for ``--tickers-detail`` different tickers: each one's first
  call (cold: the bar store is read) and the p50 of repeats (warm; goal ≤ 5 ms);
- ``POST /v1/copilot`` with one question of each kind, repeated (goal ≤ 20 ms p50).

``--check`` verifies each answer first: 200, rows that honour the 0–10 rating, integer
volumes. Run: ``python -m bench.app [--calls 200 --record]``.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import append, demo_store, parser, record, start_redis
from pipeline import snapshots
from pipeline.config import Settings
from pipeline.scan import run_scan
from service.main import create_app

HEADERS = {"Accept": "application/json", "Accept-Encoding": "gzip"}
SCAN_BODIES = {
    "first open": {"max_symbols": 6000, "trade_style": "Short-term swing", "min_tech_rating": 0.0},
    "preset conservative": {
        "max_symbols": 6000, "trade_style": "Position", "min_tech_rating": 7.0,
        "lookback_days": 180,
    },
    "preset moderate": {
        "max_symbols": 6000, "trade_style": "Swing", "min_tech_rating": 5.0, "lookback_days": 90,
    },
    "preset aggressive": {
        "max_symbols": 6000, "trade_style": "Day", "min_tech_rating": 3.0, "lookback_days": 30,
    },
    "filter panel": {
        "trade_style": "Swing", "sectors": ["Information Technology", "Health Care"],
        "min_tech_rating": 6.5, "lookback_days": 120, "options_mode": "stock_only",
    },
    "Randomize": {
        "max_symbols": 6000, "trade_style": "Position", "sectors": ["Technology"],
        "min_tech_rating": 4.0, "lookback_days": 211,
    },
}  # fmt: skip
GOALS_MS = {"scan": 2.0, "detail": 5.0, "copilot": 20.0}


async def _timed(client: httpx.AsyncClient, method: str, path: str, **kwargs) -> float:
    """Milliseconds until the whole (still compressed) answer is in: the client's own gunzip
    and JSON parse are not the server's time."""
    tic = time.perf_counter()
    async with client.stream(method, path, headers=HEADERS, **kwargs) as response:
        async for _ in response.aiter_raw():
            pass
        elapsed = (time.perf_counter() - tic) * 1e3
        if response.status_code != 200:
            raise SystemExit(f"{method} {path} answered {response.status_code}")
    return elapsed


def _check_scan(body: dict, answer: dict) -> None:
    floor = 10 * (body.get("min_tech_rating") or 0)
    if not answer["results"] or any(r["TechRating"] < floor for r in answer["results"]):
        raise SystemExit(f"check failed: {body} kept rows under TechRating {floor}")
    if answer["filters"]["min_TechRating"] != floor:
        raise SystemExit(f"check failed: {body} states another rating floor")


def _check_detail(answer: dict) -> None:
    history = answer["history"]
    if not 0 < len(history) <= 90 or any(not isinstance(b["Volume"], int) for b in history):
        raise SystemExit(f"check failed: detail of {answer['symbol']}")


async def measure(settings: Settings, document: dict, args) -> dict[str, list]:
    app = create_app(settings)
    rows = document["results"]
    tickers = [r["ticker"] for r in rows[:: max(len(rows) // args.tickers_detail, 1)]]
    top = rows[0]["ticker"]
    questions = {
        "why": {"question": f"Why is {top} rated so?"},
        "plan": {"question": "What's the plan?", "symbol": top},
        "risks": {"question": f"risks of {top}"},
        "sector": {"question": f"compare {top} with its sector"},
        "best in a sector": {"question": "best setups in Energy"},
        "best for a style": {"question": "best day trading setups"},
        "market": {"question": "how is the market?"},
        "help": {"question": "tell me a joke"},
    }
    out: dict[str, list] = {"scan": [], "detail": [], "copilot": []}
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://app") as client,
    ):
        for label, body in SCAN_BODIES.items():
            first = await _timed(client, "POST", "/v1/scan", json=body)
            if args.check:
                _check_scan(body, (await client.post("/v1/scan", json=body)).json())
            calls = [await _timed(client, "POST", "/v1/scan", json=body) for _ in range(args.calls)]
            out["scan"].append((label, first, statistics.median(calls)))
        cold, warm = [], []
        for ticker in tickers:
            path = f"/v1/symbol/{ticker}?days=90"
            cold.append(await _timed(client, "GET", path))
            if args.check:
                _check_detail((await client.get(path)).json())
            warm += [await _timed(client, "GET", path) for _ in range(args.calls // 10)]
        out["detail"] = [(len(tickers), statistics.median(cold), statistics.median(warm))]
        for label, body in questions.items():
            first = await _timed(client, "POST", "/v1/copilot", json=body)
            calls = [
                await _timed(client, "POST", "/v1/copilot", json=body)
                for _ in range(args.calls // 4)
            ]
            out["copilot"].append((label, first, statistics.median(calls)))
    return out


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=200, help="timed calls per body")
    p.add_argument("--tickers-detail", type=int, default=50, help="tickers for the detail")
    args = p.parse_args()
    store = demo_store(args)
    proc, port = start_redis()
    data_dir = Path(tempfile.mkdtemp(prefix="technic-bench-app-"))
    try:
        settings = Settings(
            data_dir=data_dir,
            use_redis=True,
            redis_url=f"redis://127.0.0.1:{port}/0",
            cache_ttl=0,
            cluster="sync",
        )
        result = run_scan(store, settings=settings)
        if not snapshots.publish(result, settings=settings).published:
            raise SystemExit("publish did not reach Redis")
        out = asyncio.run(measure(settings, result.snapshot, args))
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(data_dir, ignore_errors=True)

    def verdict(kind: str, p50: float) -> str:
        return f"≤ {GOALS_MS[kind]:g} ms: {'met' if p50 <= GOALS_MS[kind] else '**missed**'}"

    lines = ["| request | first ms | p50 ms after | goal |", "| --- | ---: | ---: | --- |"]
    for label, first, p50 in out["scan"]:
        lines.append(
            f"| `POST /v1/scan` {label} | {first:.1f} | {p50:.2f} | {verdict('scan', p50)} |"
        )
    n, cold, warm = out["detail"][0]
    lines.append(
        f"| `GET /v1/symbol/{{t}}?days=90`, {n} tickers | {cold:.1f} (p50 of the firsts) | "
        f"{warm:.2f} | {verdict('detail', warm)} |"
    )
    for label, first, p50 in out["copilot"]:
        lines.append(
            f"| `POST /v1/copilot` {label} | {first:.1f} | {p50:.2f} | {verdict('copilot', p50)} |"
        )
    body = (
        f"{len(result.table):,}-row snapshot of the {args.tickers:,} × {args.days} demo store; "
        "the app's headers (gzip accepted); the service in process (httpx ASGI transport, "
        f"middleware and routing included); {args.calls} calls per scan body, "
        f"{args.calls // 10} repeats per detail ticker, {args.calls // 4} per copilot "
        "question. 'first' is the first call after the snapshot was published (the answer is "
        "built then, and a trade style other than the published one is re-ranked).\n\n"
        + "\n".join(lines)
    )
    block = record("The app's screens in process", body)
    print(block)
    if args.record:
        append(block)


if __name__ == "__main__":
    main()
