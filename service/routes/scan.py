"""POST /v1/scan: the scanner screen, answered from the latest finished snapshot.

Answers are built once per snapshot and distinct body (the app sends a handful of presets)
and then served from memory; the default body gets the published bytes themselves.
"""

from __future__ import annotations

import gzip
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from pipeline.errors import UnknownSectorError
from pipeline.scan import match_sectors
from pipeline.scoring import STYLES
from service.deps import CacheDep, SnapshotDep
from service.errors import ApiError
from service.schemas import ScanRequest
from service.snapshot_cache import Current, SnapshotCache

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


def _styled(cache: SnapshotCache, snapshot: Current, style: str | None) -> tuple[dict, bytes]:
    if style is None:
        return snapshot.document, snapshot.data
    try:
        return cache.styled(snapshot, style)
    except LookupError:
        raise ApiError(
            503, "style_unavailable", "the latest snapshot cannot be re-ranked right now"
        ) from None


def _filtered(document: dict[str, Any], body: ScanRequest) -> bytes:
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
    answer = {**document, "results": rows[: body.max_symbols], "options_mode": body.options_mode}
    return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)


@router.post("/v1/scan")
async def scan(
    request: Request, snapshot: SnapshotDep, cache: CacheDep, body: ScanRequest | None = None
) -> Response:
    """Filter the latest snapshot (sectors, min TechRating, max rows) and rank it for the
    trade style; never runs a scan. Whole documents go out gzip-compressed to clients that
    accept it, with an ETag (a client holding the latest snapshot gets a 304)."""
    body = body or ScanRequest()
    style = _style(body.trade_style, snapshot.document.get("trade_style"))
    if body.is_default():
        zipped = "gzip" in request.headers.get("accept-encoding", "")

        def whole() -> bytes:
            data = _styled(cache, snapshot, style)[1]
            return gzip.compress(data, 6, mtime=0) if zipped else data

        # snapshots are immutable: the id (and style) is a strong validator
        etag = f'"{snapshot.snapshot_id}{"-" + style if style else ""}"'
        headers = {"Vary": "Accept-Encoding", "ETag": etag, "Cache-Control": "no-cache"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        if zipped:
            headers["Content-Encoding"] = "gzip"
        data = await snapshot.amemo(("whole", style, zipped), whole)
        return Response(data, media_type="application/json", headers=headers)
    key = ("scan", style, body.model_dump_json(exclude={"trade_style", "lookback_days"}))
    data = await snapshot.amemo(key, lambda: _filtered(_styled(cache, snapshot, style)[0], body))
    return Response(data, media_type="application/json")
