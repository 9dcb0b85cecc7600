"""Beyond the app: the latest scan with filters, sorting and paging; history and diffs."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Response

from pipeline import snapshots
from pipeline.errors import UnknownSectorError
from pipeline.snapshots import SnapshotNotFound
from pipeline.snapshots.queries import RATING_SCALE, tech_rating_floor
from pipeline.vocabulary import SIGNALS, TIERS, match_sectors
from service.auth import OPTIONAL_KEY
from service.deps import CacheDep, SettingsDep, SnapshotDep
from service.errors import INVALID, REDIS_GONE, SNAPSHOT_GONE, ApiError, documented
from service.routes.symbols import TICKER
from service.schemas import SignalName, TierName

router = APIRouter(tags=["scans"])
TICKER_PATH = Path(pattern=TICKER)
NUMERIC = (
    "rank", "TechRating", "composite_score", "ICS", "merit_score", "close", "change_pct",
    "ATR14_pct", "rrr", "entry", "stop", "target", "dollar_volume_20d", "position_shares",
)  # fmt: skip


@router.get(
    "/v1/scans/latest",
    openapi_extra=OPTIONAL_KEY,
    responses=documented({
        422: f"{INVALID}; `unknown_sector`: a sector no vocabulary knows (`valid` lists them)",
        503: SNAPSHOT_GONE,
    }),
)  # fmt: skip
async def latest_scan(
    snapshot: SnapshotDep,
    sector: Annotated[list[str] | None, Query(max_length=20)] = None,
    signal: Annotated[
        list[SignalName] | None,
        Query(max_length=5, description=f"Signals (any name): {SIGNALS.describe()}."),
    ] = None,
    tier: Annotated[
        list[TierName] | None,
        Query(max_length=3, description=f"Tiers (any name): {TIERS.describe()}."),
    ] = None,
    min_price: Annotated[float | None, Query(ge=0)] = None,
    max_price: Annotated[float | None, Query(ge=0)] = None,
    min_dollar_volume: Annotated[float | None, Query(ge=0)] = None,
    max_dollar_volume: Annotated[float | None, Query(ge=0)] = None,
    min_tech_rating: Annotated[
        float | None,
        Query(
            ge=0,
            le=RATING_SCALE,
            description="On the app's 0–10 Rating scale: TechRating ≥ 10 × this.",
        ),
    ] = None,
    min_merit: Annotated[float | None, Query(ge=0, le=100)] = None,
    sort: Annotated[str, Query(pattern=r"^-?[A-Za-z_0-9]+$")] = "rank",
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> Response:
    """Rows of the latest snapshot, filtered, sorted by any numeric field (``-field`` for
    descending) and paged. Answers are computed once per snapshot and query."""
    field = sort.lstrip("-")
    if field not in NUMERIC:
        raise ApiError(
            422, "invalid_request", f"sort: not a numeric field: {field}", field="sort",
            valid=list(NUMERIC),
        )  # fmt: skip
    bounds = (
        ("close", min_price, max_price),
        ("dollar_volume_20d", min_dollar_volume, max_dollar_volume),
        ("TechRating", tech_rating_floor(min_tech_rating) if min_tech_rating else None, None),
        ("merit_score", min_merit, None),
    )
    try:
        matched = match_sectors(sector, snapshot.sector_names())
    except UnknownSectorError as exc:
        raise ApiError(422, "unknown_sector", str(exc), field="sector", valid=exc.valid) from None
    sectors = tuple(sorted(matched.selected)) if matched is not None else None
    query = (sectors, tuple(signal or ()), tuple(tier or ()), bounds, sort, limit, offset)

    def page() -> bytes:
        rows: list[dict[str, Any]] = snapshot.document["results"]
        if sectors is not None:
            rows = [r for r in rows if r.get("Sector") in sectors]
        if signal:
            rows = [r for r in rows if r.get("signal") in signal]
        if tier:
            rows = [r for r in rows if r.get("Tier") in tier]
        for name, low, high in bounds:
            if low is not None:
                rows = [r for r in rows if r.get(name) is not None and r[name] >= low]
            if high is not None:
                rows = [r for r in rows if r.get(name) is not None and r[name] <= high]
        present = [r for r in rows if r.get(field) is not None]
        present.sort(key=lambda r: r[field], reverse=sort.startswith("-"))
        rows = present + [r for r in rows if r.get(field) is None]
        body = {
            "snapshot_id": snapshot.snapshot_id,
            "as_of": snapshot.document.get("as_of"),
            "total": len(rows),
            "offset": offset,
            "limit": limit,
            "results": rows[offset : offset + limit],
        }
        return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)

    return Response(await snapshot.amemo(("latest", query), page), media_type="application/json")


def _redis(cache: CacheDep):
    if cache.conn is None:
        raise ApiError(503, "redis_unavailable", "snapshot history needs Redis")
    return cache.conn


@router.get(
    "/v1/scans", openapi_extra=OPTIONAL_KEY, responses=documented({422: INVALID, 503: REDIS_GONE})
)
def scan_history(
    cache: CacheDep,
    settings: SettingsDep,
    days: Annotated[int, Query(ge=1, le=365)] = 30,
) -> dict[str, Any]:
    """Published snapshots of the last ``days`` days, newest first."""
    conn = _redis(cache)
    return {"snapshots": snapshots.history(None, days, settings=settings, conn=conn)}


@router.get(
    "/v1/scans/diff",
    openapi_extra=OPTIONAL_KEY,
    responses=documented(
        {
            404: "`unknown_snapshot`: no snapshot with that id or as-of date",
            422: INVALID,
            503: REDIS_GONE,
        }
    ),
)
def scan_diff(
    cache: CacheDep,
    settings: SettingsDep,
    from_: Annotated[str, Query(alias="from", pattern=r"^[A-Za-z0-9\-]{1,40}$")],
    to: Annotated[str, Query(pattern=r"^[A-Za-z0-9\-]{1,40}$")] = "latest",
) -> dict[str, Any]:
    """Entered / left / moved between two snapshots (ids, as-of dates or ``latest``)."""
    conn = _redis(cache)
    try:
        return snapshots.diff(from_, to, settings=settings, conn=conn)
    except SnapshotNotFound as exc:
        raise ApiError(404, "unknown_snapshot", str(exc)) from None


@router.get(
    "/v1/symbol/{ticker}/history",
    openapi_extra=OPTIONAL_KEY,
    responses=documented({422: INVALID, 503: REDIS_GONE}),
)
def symbol_history(
    cache: CacheDep,
    settings: SettingsDep,
    ticker: Annotated[str, TICKER_PATH],
    days: Annotated[int, Query(ge=1, le=365)] = 30,
) -> dict[str, Any]:
    """The scans ``ticker`` appeared in: date, rank, tier, signal and signals."""
    conn = _redis(cache)
    symbol = ticker.strip().upper()
    found = snapshots.history(symbol, days, settings=settings, conn=conn)
    return {"symbol": symbol, "history": found}


@router.get(
    "/v1/scoreboard",
    openapi_extra=OPTIONAL_KEY,
    responses=documented({503: SNAPSHOT_GONE}),
)
def scoreboard(snapshot: SnapshotDep) -> dict[str, Any]:
    """The base rates the latest snapshot carries: per signal and per tier, how often the
    10-day forward return was above zero and its mean, measured by the latest backtest of
    the store (``technic backtest``); ``scoreboard`` is null (and ``reason`` says why) when
    none was run."""
    document = snapshot.document
    board = document.get("scoreboard")
    return {
        "snapshot_id": document.get("snapshot_id"),
        "as_of": document.get("as_of"),
        "scoreboard": board,
        "win_prob_source": document.get("win_prob_source"),
        "reason": None
        if board
        else "no backtest of this store yet: run 'technic backtest' on it, then scan",
    }
