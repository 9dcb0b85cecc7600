"""Prometheus metrics: request counts and latency per route, and the served snapshot's age,
scan duration and bar-cache reads. Exposed at ``GET /metrics``."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from fastapi import FastAPI, Response, params
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.first_pass import is_warm_up
from service.routes.health import snapshot_age
from service.snapshot_cache import SnapshotCache


class _Measure:
    """Pure ASGI middleware (cheaper than Starlette's BaseHTTPMiddleware, and it leaves
    streamed responses alone) that hands each HTTP request to ``measure`` (not the service's
    own, :mod:`service.first_pass`)."""

    def __init__(
        self,
        app: ASGIApp,
        measure: Callable[[Scope, Receive, Send, ASGIApp], Awaitable[None]],
    ):
        self.app, self.measure = app, measure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_warm_up(scope):
            await self.app(scope, receive, send)
        else:
            await self.measure(scope, receive, send, self.app)


def install(app: FastAPI, dependencies: Sequence[params.Depends] = ()) -> None:
    """Count and time every request, and serve the registry at /metrics."""
    registry = CollectorRegistry()
    requests = Counter(
        "technic_http_requests",
        "HTTP requests by route template, method and status.",
        ["route", "method", "status"],
        registry=registry,
    )
    latency = Histogram(
        "technic_http_request_seconds",
        "HTTP request latency by route template.",
        ["route"],
        buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        registry=registry,
    )
    age = Gauge(
        "technic_snapshot_age_seconds",
        "Seconds since the served snapshot was generated.",
        registry=registry,
    )
    scan = Gauge(
        "technic_scan_seconds", "Stage durations of the served snapshot's scan.", ["stage"],
        registry=registry,
    )  # fmt: skip
    reads = Gauge(
        "technic_bar_cache_reads",
        "How the served scan read its partitions (bar cache hit, miss or off).",
        ["outcome"],
        registry=registry,
    )

    async def measure(scope: Scope, receive: Receive, send: Send, app_: ASGIApp) -> None:
        tic = time.perf_counter()
        status = 500

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app_(scope, receive, sent)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            requests.labels(route, scope["method"], str(status)).inc()
            latency.labels(route).observe(time.perf_counter() - tic)

    app.add_middleware(_Measure, measure=measure)

    @app.get("/metrics", tags=["ops"], include_in_schema=False, dependencies=dependencies)
    def metrics() -> Response:
        cache: SnapshotCache = app.state.snapshots
        current = cache.get()
        if current is not None:
            generated = snapshot_age(current)
            age.set(generated if generated is not None else float("nan"))
            for stage, seconds in (current.document.get("timings") or {}).items():
                scan.labels(stage).set(seconds)
            bars = (current.document.get("cache") or {}).get("bars") or {}
            for outcome in ("hit", "miss", "off"):
                reads.labels(outcome).set(bars.get(outcome, 0))
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
