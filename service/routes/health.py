"""GET /health: 200 while a snapshot can be served, with what is and is not available."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Response

from pipeline.store import MANIFEST
from service.deps import CacheDep, SettingsDep
from service.errors import json_response

router = APIRouter(tags=["ops"])


@router.get("/health")
def health(cache: CacheDep, settings: SettingsDep) -> Response:
    """Redis, bar store and latest snapshot status; 503 only when nothing can be served."""
    current = cache.get()
    body: dict[str, Any] = {
        "status": "ok" if current else "no_snapshot",
        "redis": cache.redis_ok,
        "store": (settings.store_path / MANIFEST).is_file(),
        "snapshot": None,
    }
    if current is not None:
        doc = current.document
        body["snapshot"] = {
            "id": current.snapshot_id,
            "as_of": doc.get("as_of"),
            "generated_at": doc.get("generated_at"),
            "age_seconds": round(time.time() - current.loaded_at, 1),
            "symbols_scanned": doc.get("symbols_scanned"),
        }
    return json_response(body, status_code=200 if current else 503)
