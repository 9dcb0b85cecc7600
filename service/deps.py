"""Dependencies as Annotated aliases, so route signatures read as their inputs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from pipeline.config import Settings
from service.errors import no_snapshot
from service.snapshot_cache import Current, SnapshotCache


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _cache(request: Request) -> SnapshotCache:
    return request.app.state.snapshots


async def _snapshot(request: Request) -> Current:
    current = await request.app.state.snapshots.latest()
    if current is None:
        raise no_snapshot()
    return current


SettingsDep = Annotated[Settings, Depends(_settings)]
CacheDep = Annotated[SnapshotCache, Depends(_cache)]
SnapshotDep = Annotated[Current, Depends(_snapshot)]
