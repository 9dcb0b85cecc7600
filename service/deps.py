"""Dependencies as Annotated aliases, so route signatures read as their inputs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from pipeline.config import Settings
from pipeline.storage import Location
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


def store_url(settings: Settings, current: Current | None) -> str:
    """The bar store the service reads: TECHNIC_STORE when it is set, else the store the
    latest snapshot was computed from (it names it), else the default under the data dir.
    So ``technic scan --store X --publish`` then ``technic serve`` serves X's history."""
    if settings.store is not None or current is None:
        return settings.store_url
    named = (current.document.get("store") or {}).get("path")
    return Location.parse(named).url if named else settings.store_url


def history_key(settings: Settings, current: Current) -> tuple[str, str | None, str | None]:
    """Which recent bars a snapshot's charts draw: its store, generation and as-of date."""
    document = current.document
    version = (document.get("store") or {}).get("data_version")
    return store_url(settings, current), version, document.get("as_of")


SettingsDep = Annotated[Settings, Depends(_settings)]
CacheDep = Annotated[SnapshotCache, Depends(_cache)]
SnapshotDep = Annotated[Current, Depends(_snapshot)]
