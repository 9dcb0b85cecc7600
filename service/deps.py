"""Dependencies as Annotated aliases, so route signatures read as their inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from pipeline.config import Settings
from service.errors import no_snapshot, redis_unavailable
from service.snapshot_cache import Current, SnapshotCache


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _cache(request: Request) -> SnapshotCache:
    return request.app.state.snapshots


async def _snapshot(request: Request) -> Current:
    cache: SnapshotCache = request.app.state.snapshots
    current = await cache.latest()
    if current is None:
        raise no_snapshot() if cache.redis_ok or cache.conn is None else redis_unavailable()
    return current


def store_path(settings: Settings, current: Current | None) -> Path:
    """The bar store the service reads: TECHNIC_STORE when it is set, else the store the
    latest snapshot was computed from (it names it), else the default under the data dir.
    So ``technic scan --store X --publish`` then ``technic serve`` serves X's history."""
    if settings.store is not None or current is None:
        return settings.store_path
    named = (current.document.get("store") or {}).get("path")
    return Path(named).expanduser() if named else settings.store_path


SettingsDep = Annotated[Settings, Depends(_settings)]
CacheDep = Annotated[SnapshotCache, Depends(_cache)]
SnapshotDep = Annotated[Current, Depends(_snapshot)]
