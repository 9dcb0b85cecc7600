"""The HTTP service: ``create_app()`` builds the FastAPI app.

It serves finished snapshots from Redis and starts scan jobs; requests never run a scan. The
lifespan owns the Redis connections (one pool, plus an asyncio client for event streams), the
scan jobs and the Dask client (started on the first scan job). Run it with
``uvicorn service.main:app`` (or ``technic serve``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from pipeline import redis_conn, snapshots
from pipeline.config import Settings, get_settings
from pipeline.jobs import ScanJobs
from pipeline.shared_client import SharedClient
from service import errors, first_pass, metrics
from service.auth import ReadKey
from service.deps import history_key
from service.errors import READ_KEY, documented
from service.history import RecentHistory
from service.limits import BodyLimit
from service.quiet import MarkRequests, Quiet
from service.response_cache import ResponseCache
from service.routes import alerts, cluster, copilot, health, jobs, scan, scans, symbols
from service.snapshot_cache import Current, SnapshotCache

log = logging.getLogger(__name__)
DESCRIPTION = """Technic serves the latest finished stock scan in milliseconds and starts new
scans on its Dask cluster. The app's endpoints follow its contract; writes need `X-API-Key`."""


def _prepare(app: FastAPI, settings: Settings, snapshot: Current) -> None:
    """What a new snapshot's first requests would otherwise wait for: the app's first-open
    answer now (tens of ms, before the snapshot is served), and the request itself sent through
    the service once (:mod:`service.first_pass`); its presets (re-ranked) and the recent bars
    of its charts in one background thread that yields to requests (:mod:`service.quiet`).
    ``scan.warm`` makes the answers even where reads need a key (the own requests have none)."""
    first, *presets = scan.APP_BODIES
    scan.warm(app.state.snapshots, snapshot, (first,))
    first_pass.post_bodies(app, "/v1/scan", (first,))
    quiet: Quiet = app.state.quiet

    def warm_up() -> None:
        for body in presets:
            quiet.wait()
            scan.warm(app.state.snapshots, snapshot, (body,))
            first_pass.post_bodies(app, "/v1/scan", (body,))
        quiet.wait()
        app.state.history.load(history_key(settings, snapshot), snapshot.document)
        app.state.warmed = snapshot.snapshot_id

    threading.Thread(target=warm_up, name="warm-snapshot", daemon=True).start()


def _start_live(settings: Settings) -> threading.Event | None:
    """The live loop (``technic live``) in a background thread; set the event to stop it.
    A setting it cannot run with (no Polygon key) is logged once and the service goes on."""
    from pipeline.errors import ConfigError
    from pipeline.live.loop import LiveLoop

    try:
        loop = LiveLoop(settings)
    except ConfigError as exc:
        log.error("[LIVE] TECHNIC_LIVE is on, but live scans cannot start: %s", exc)
        return None
    stop = threading.Event()
    threading.Thread(target=loop.run, args=(stop,), name="live-loop", daemon=True).start()
    return stop


def _start_alerts(conn, settings: Settings) -> threading.Event:
    """The webhook dispatcher (:mod:`pipeline.alerts.deliver`) in a background thread."""
    from pipeline.alerts.deliver import Dispatcher
    from pipeline.alerts.store import Keys

    stop = threading.Event()
    dispatcher = Dispatcher(
        conn,
        Keys(settings.redis_prefix),
        attempts=settings.alert_attempts,
        backoff=settings.alert_backoff,
        backoff_max=settings.alert_backoff_max,
        timeout=settings.alert_timeout,
    )
    threading.Thread(target=dispatcher.run, args=(stop,), name="alerts", daemon=True).start()
    return stop


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; ``settings`` default to the environment's."""
    current = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis_conn.connect(current)  # logs whether Redis answers now
        where = redis_conn.target(current)
        # A client even when Redis is down at start: it connects on first use and reconnects
        # after a failure, so the service picks Redis up whenever it comes.
        conn = redis_conn.client(where) if where.enabled else None
        app.state.settings = current
        app.state.redis = conn
        app.state.history = RecentHistory()
        app.state.quiet = quiet
        app.state.warmed = None  # the snapshot whose warm-up is done
        app.state.snapshots = SnapshotCache(
            conn,
            current.redis_prefix,
            current.snapshot_poll_interval,
            on_reconnect=lambda: snapshots.push(settings=current, conn=conn),
            on_snapshot=lambda snapshot: _prepare(app, current, snapshot),
        )
        app.state.cluster = SharedClient(current)
        app.state.jobs = ScanJobs(conn, current, app.state.cluster) if conn else None
        app.state.events = (
            redis.asyncio.Redis.from_url(
                where.url,
                socket_connect_timeout=where.timeout,
                socket_timeout=where.timeout + 10,
                retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=2),
            )
            if conn is not None
            else None
        )
        live = _start_live(current) if current.live else None
        dispatcher = _start_alerts(conn, current) if conn is not None else None
        try:
            yield
        finally:
            for stop in (live, dispatcher):
                if stop is not None:
                    stop.set()
            if app.state.jobs is not None:
                app.state.jobs.shutdown()
            app.state.cluster.close()
            if app.state.events is not None:
                await app.state.events.aclose()

    app = FastAPI(title="Technic", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    quiet = Quiet()
    errors.install(app)
    # middleware, innermost first: the response cache, the body limit around it (the cache
    # reads bodies), metrics around both (413s are counted), CORS outermost
    app.add_middleware(ResponseCache, app_state=app.state)
    app.add_middleware(BodyLimit)
    metrics.install(app, dependencies=[ReadKey])
    app.add_middleware(MarkRequests, quiet=quiet)
    if current.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=current.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Content-Type", "X-API-Key", "Last-Event-ID"],
        )
    # /v1/scans/latest and /v1/scans/diff before the jobs' /v1/scans/{job_id}
    for router in (scan.router, scans.router, symbols.router, copilot.router, cluster.router):
        app.include_router(router, dependencies=[ReadKey], responses=documented({401: READ_KEY}))
    app.include_router(jobs.router)
    app.include_router(alerts.router)
    app.include_router(health.router)
    return app


app = create_app()
