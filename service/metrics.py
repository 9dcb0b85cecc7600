"""Prometheus metrics: request counts and latency per route, and the served snapshot's age,
scan duration and bar-cache reads. Exposed at ``GET /metrics``."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from service.snapshot_cache import SnapshotCache


def install(app: FastAPI) -> None:
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
    age = Gauge("technic_snapshot_age_seconds", "Age of the served snapshot.", registry=registry)
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

    @app.middleware("http")
    async def _measure(request: Request, call_next):
        tic = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        requests.labels(route, request.method, str(response.status_code)).inc()
        latency.labels(route).observe(time.perf_counter() - tic)
        return response

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    def metrics() -> Response:
        cache: SnapshotCache = app.state.snapshots
        current = cache.get()
        if current is not None:
            age.set(time.time() - current.loaded_at)
            for stage, seconds in (current.document.get("timings") or {}).items():
                scan.labels(stage).set(seconds)
            bars = (current.document.get("cache") or {}).get("bars") or {}
            for outcome in ("hit", "miss", "off"):
                reads.labels(outcome).set(bars.get(outcome, 0))
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
