"""GET /health (is this process able to work?) and GET /health/ready (can it answer the app
now?), with what is and is not available."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response

from pipeline.errors import TechnicError
from pipeline.store import BarStore
from service.deps import CacheDep, SettingsDep, store_url
from service.errors import json_response
from service.schemas import HealthBody
from service.snapshot_cache import Current

log = logging.getLogger(__name__)
router = APIRouter(tags=["ops"])
STORE_CHECK_SECONDS = 30.0
_store_checked: dict[str, tuple[float, bool]] = {}  # store URL → (monotonic time, answer)


def snapshot_age(current: Current) -> float | None:
    """Seconds since the served snapshot was generated (None if it does not say)."""
    stamp = current.document.get("generated_at")
    try:
        generated = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return None
    if generated.tzinfo is None:
        generated = generated.replace(tzinfo=UTC)
    return (datetime.now(UTC) - generated).total_seconds()


def _store_reachable(url: str) -> bool:
    """Whether the bar store is there and answers (a bucket that refuses is False, not an
    error: the service still serves snapshots without it). A store found, or a bucket that
    failed, is not asked again for STORE_CHECK_SECONDS: health checks come every few seconds
    and an unreachable bucket answers only after its timeouts."""
    now = time.monotonic()
    known = _store_checked.get(url)
    if known is not None and now - known[0] < STORE_CHECK_SECONDS:
        return known[1]
    try:
        found = BarStore(url).exists()
    except TechnicError as exc:
        log.warning("health: bar store %s unavailable: %s", url, exc)
        found = False
    else:
        if not found:  # not created yet: the next check looks again
            return False
    _store_checked[url] = (now, found)
    return found


def _status(
    cache: CacheDep, settings: SettingsDep, warmed: str | None
) -> tuple[dict[str, Any], Current | None]:
    current = cache.get()
    if current is not None:
        status = "degraded" if cache.problem else "ok"
    else:
        status = "no_snapshot" if cache.redis_ok else "unavailable"
    body: dict[str, Any] = {
        "status": status,
        "reason": cache.problem,
        "redis": cache.redis_ok,
        "store": _store_reachable(store_url(settings, current)),
        "snapshot": None,
    }
    if current is not None:
        doc = current.document
        age = snapshot_age(current)
        body["snapshot"] = {
            "id": current.snapshot_id,
            "as_of": doc.get("as_of"),
            "generated_at": doc.get("generated_at"),
            "age_seconds": None if age is None else round(age, 1),
            "symbols_scanned": doc.get("symbols_scanned"),
            "live": bool(doc.get("live")),  # a live snapshot of the session (technic live)
            "as_of_time": doc.get("as_of_time"),
            "stale": bool(doc.get("stale")),
            # its presets re-ranked and its charts' bars in memory (done in the background)
            "warm": warmed == current.snapshot_id,
        }
    return body, current


@router.get(
    "/health",
    response_model=HealthBody,
    responses={503: {"model": HealthBody, "description": "Redis is unreachable and no "
                     "snapshot is held (`status`: unavailable)."}},
)  # fmt: skip
def health(request: Request, cache: CacheDep, settings: SettingsDep) -> Response:
    """Liveness, for deploy checks: 200 while the process can work (with a snapshot, or
    before the first one is published: ``status`` says which); 503 only when Redis is
    unreachable and there is no snapshot to fall back on."""
    body, _ = _status(cache, settings, request.app.state.warmed)
    return json_response(body, status_code=503 if body["status"] == "unavailable" else 200)


@router.get(
    "/health/ready",
    response_model=HealthBody,
    responses={503: {"model": HealthBody, "description": "No snapshot can be served yet."}},
)
def ready(request: Request, cache: CacheDep, settings: SettingsDep) -> Response:
    """Readiness: 200 once a snapshot can be served, 503 (saying a scan is needed) before."""
    body, current = _status(cache, settings, request.app.state.warmed)
    return json_response(body, status_code=200 if current is not None else 503)
