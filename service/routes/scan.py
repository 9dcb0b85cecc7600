"""POST /v1/scan: the scanner screen, answered from the latest finished snapshot."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from pipeline.errors import UnknownSectorError
from pipeline.scan import match_sectors
from service.deps import SnapshotDep
from service.errors import ApiError, json_response
from service.schemas import ScanRequest

router = APIRouter(tags=["app"])


@router.post("/v1/scan")
def scan(snapshot: SnapshotDep, body: ScanRequest | None = None) -> Response:
    """Filter the latest snapshot (sectors, min TechRating, max rows); never runs a scan."""
    body = body or ScanRequest()
    if body.is_default():
        return Response(snapshot.data, media_type="application/json")
    document = snapshot.document
    rows: list[dict[str, Any]] = document["results"]
    if body.sectors:
        try:
            wanted = match_sectors(body.sectors, {r["Sector"] for r in rows if r.get("Sector")})
        except UnknownSectorError as exc:
            raise ApiError(
                422, "unknown_sector", str(exc), field="sectors", valid=exc.valid
            ) from None
        rows = [r for r in rows if r.get("Sector") in wanted]
    if body.min_tech_rating > 0:
        rows = [r for r in rows if (r.get("TechRating") or 0) >= body.min_tech_rating]
    rows = rows[: body.max_symbols]
    return json_response(
        {
            **document,
            "results": rows,
            "trade_style": body.trade_style or document.get("trade_style"),
            "options_mode": body.options_mode,
        }
    )
