"""GET /v1/cluster: where this process runs its scans, its workers and the dashboard link."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from service.auth import OPTIONAL_KEY

router = APIRouter(tags=["ops"])


@router.get("/v1/cluster", openapi_extra=OPTIONAL_KEY)
def cluster(request: Request) -> dict[str, Any]:
    """The cluster setting, whether this process has started its client (on its first scan
    job), the workers (address, threads, memory limit) and the Dask dashboard link."""
    return request.app.state.cluster.info()
