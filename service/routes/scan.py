"""/v1/scan: the scanner screen (POST) and the Ideas tab (GET), from the latest snapshot.

Answers are built once per snapshot and distinct query (the app sends a handful of presets)
and then served from memory, gzip-compressed to clients that take it, with an ETag (a client
holding the same answer gets a 304). Requests never run a scan.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from pipeline.errors import UnknownSectorError
from pipeline.snapshots import queries
from pipeline.snapshots.document import ideas
from service.auth import OPTIONAL_KEY
from service.deps import CacheDep, SnapshotDep
from service.errors import INVALID, SNAPSHOT_GONE, UNREADABLE, ApiError, documented
from service.limits import TOO_LARGE
from service.schemas import IdeasAnswer, ScanFilter, ScannerBundle
from service.snapshot_cache import Current, SnapshotCache

router = APIRouter(tags=["app"])
IDEAS_TAB = 20  # cards on the Ideas tab
# What the app sends by itself (app-contract.md): first open, then its three presets. Their
# answers are made when a snapshot arrives (:func:`warm`), so no user waits for the first.
APP_BODIES = (
    {"max_symbols": 6000, "trade_style": "Short-term swing", "min_tech_rating": 0.0},
    {"max_symbols": 6000, "trade_style": "Position", "min_tech_rating": 7.0, "lookback_days": 180},
    {"max_symbols": 6000, "trade_style": "Swing", "min_tech_rating": 5.0, "lookback_days": 90},
    {"max_symbols": 6000, "trade_style": "Day", "min_tech_rating": 3.0, "lookback_days": 30},
)


def _ranked(cache: SnapshotCache, snapshot: Current, style: str | None) -> dict[str, Any]:
    """The snapshot's document ranked for ``style`` (None or its own style: as published)."""
    if style is None or style == snapshot.document.get("trade_style"):
        return snapshot.document
    try:
        return cache.styled(snapshot, style)[0]
    except LookupError:
        raise ApiError(
            503, "style_unavailable", "the latest snapshot cannot be re-ranked right now"
        ) from None


def _bundle(cache: SnapshotCache, snapshot: Current, query: queries.ScannerQuery) -> bytes:
    try:
        answer = queries.answer(_ranked(cache, snapshot, query.trade_style), query)
    except UnknownSectorError as exc:
        raise ApiError(422, "unknown_sector", str(exc), field="sectors", valid=exc.valid) from None
    return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)


def _answer(
    cache: SnapshotCache, snapshot: Current, query: queries.ScannerQuery, zipped: bool
) -> bytes:
    data = snapshot.memo(("scan", query), lambda: _bundle(cache, snapshot, query))
    return gzip.compress(data, 6, mtime=0) if zipped else data


def warm(cache: SnapshotCache, snapshot: Current, bodies: tuple[dict, ...] = APP_BODIES) -> None:
    """Make the answers to ``bodies`` (plain and gzip) for a new snapshot before anyone asks;
    a body that fails here fails again, and says why, when a request asks for it."""
    for body in bodies:
        query = ScanFilter(**body).query()
        for zipped in (True, False):
            with contextlib.suppress(Exception):
                make = functools.partial(_answer, cache, snapshot, query, zipped)
                snapshot.memo(("scan", query, zipped), make)


@router.post(
    "/v1/scan",
    response_model=ScannerBundle,
    openapi_extra=OPTIONAL_KEY,
    responses={
        304: {"description": "Not Modified: `If-None-Match` holds this answer's ETag."},
        **documented({
            400: UNREADABLE,
            413: TOO_LARGE,
            422: f"{INVALID}; `unknown_sector`: a sector no vocabulary knows (`valid` lists them)",
            503: f"{SNAPSHOT_GONE}; `style_unavailable`: the snapshot cannot be re-ranked now",
        }),
    },
)  # fmt: skip
async def scan(
    request: Request, snapshot: SnapshotDep, cache: CacheDep, body: ScanFilter | None = None
) -> Response:
    """The scanner: the latest snapshot ranked for the trade style, filtered by sectors and
    the 0–10 Rating, cut to max_symbols; ``filters`` and ``log`` say what was applied."""
    query = (body or ScanFilter()).query()
    zipped = "gzip" in request.headers.get("accept-encoding", "")
    digest = hashlib.blake2b(repr(query).encode(), digest_size=6).hexdigest()
    etag = f'"{snapshot.snapshot_id}-{digest}"'  # snapshots are immutable
    headers = {"Vary": "Accept-Encoding", "ETag": etag, "Cache-Control": "no-cache"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)

    data = await snapshot.amemo(
        ("scan", query, zipped), lambda: _answer(cache, snapshot, query, zipped)
    )
    if zipped:
        headers["Content-Encoding"] = "gzip"
    return Response(data, media_type="application/json", headers=headers)


@router.get(
    "/v1/scan",
    response_model=IdeasAnswer,
    openapi_extra=OPTIONAL_KEY,
    responses=documented({503: SNAPSHOT_GONE}),
)
async def ideas_tab(snapshot: SnapshotDep) -> Response:
    """The Ideas tab: the latest snapshot's best Long setups of tier CORE or SATELLITE, as
    ``{"data": [Idea, ...]}``."""

    def make() -> bytes:
        document = snapshot.document
        answer = {
            "data": ideas(document["results"], IDEAS_TAB, document.get("scoreboard")),
            "snapshot_id": snapshot.snapshot_id,
            "as_of": document.get("as_of"),
            "trade_style": document.get("trade_style"),
            "log": document.get("log", ""),
        }
        return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)

    return Response(await snapshot.amemo(("ideas",), make), media_type="application/json")
