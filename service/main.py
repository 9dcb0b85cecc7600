"""The HTTP service: ``create_app()`` builds the FastAPI app that serves finished snapshots.

The lifespan owns one Redis connection (via :mod:`pipeline.redis_conn`); requests never run a
scan. Run it with ``uvicorn service.main:app`` (or ``technic serve``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from pipeline import redis_conn
from pipeline.config import Settings, get_settings
from service import errors, metrics
from service.routes import health, scan, scans, symbols
from service.snapshot_cache import SnapshotCache


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; ``settings`` default to the environment's."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        current = settings or get_settings()
        app.state.settings = current
        app.state.snapshots = SnapshotCache(redis_conn.connect(current), current.redis_prefix)
        yield

    app = FastAPI(title="Technic", version="0.1.0", lifespan=lifespan)
    errors.install(app)
    metrics.install(app)
    for router in (scan.router, scans.router, symbols.router, health.router):
        app.include_router(router)
    return app


app = create_app()
