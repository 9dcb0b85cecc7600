"""POST /v1/scan: the scanner screen, answered from the latest finished snapshot."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from pipeline.errors import UnknownSectorError
from pipeline.scan import match_sectors
from pipeline.scoring import STYLES
from service.deps import CacheDep, SnapshotDep
from service.errors import ApiError, json_response
from service.schemas import ScanRequest
from service.snapshot_cache import Current

router = APIRouter(tags=["app"])


def _style(requested: str | None, published: str | None) -> str | None:
    """The canonical name of a requested trade style other than the published one (names
    match case-insensitively); None for the published ranking."""
    if requested is None:
        return None
    by_name = {name.casefold(): name for name in STYLES}
    style = by_name.get(requested.strip().casefold())
    if style is None:
        raise ApiError(
            422,
            "invalid_request",
            f"trade_style: unknown style {requested!r}; use one of {', '.join(STYLES)}",
            field="trade_style",
            valid=list(STYLES),
        )
    return None if style == published else style


def _whole(request: Request, snapshot: Current, style: str | None, data: bytes) -> Response:
    """A whole pre-serialised document, gzip-compressed (once per snapshot and style) when
    the client accepts it."""
    headers = {"Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        data = snapshot.gzipped(style, data)
    return Response(data, media_type="application/json", headers=headers)


@router.post("/v1/scan")
def scan(
    request: Request, snapshot: SnapshotDep, cache: CacheDep, body: ScanRequest | None = None
) -> Response:
    """Filter the latest snapshot (sectors, min TechRating, max rows) and rank it for the
    trade style; never runs a scan."""
    body = body or ScanRequest()
    document = snapshot.document
    style = _style(body.trade_style, document.get("trade_style"))
    data = snapshot.data
    if style is not None:
        try:
            document, data = cache.styled(snapshot, style)
        except LookupError:
            raise ApiError(
                503, "style_unavailable", "the latest snapshot cannot be re-ranked right now"
            ) from None
    if body.is_default():
        return _whole(request, snapshot, style, data)
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
    return json_response({**document, "results": rows, "options_mode": body.options_mode})
