"""The symbol screens and universe stats, from the latest snapshot (and the bar store for
a symbol's price history)."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from pipeline.errors import StoreError, UnknownTickerError
from pipeline.store import BarStore
from service.deps import SettingsDep, SnapshotDep
from service.errors import ApiError

router = APIRouter(tags=["app"])
TICKER = r"^[A-Za-z0-9][A-Za-z0-9.\-_^/]{0,14}$"


@router.get("/v1/universe_stats")
def universe_stats(snapshot: SnapshotDep) -> dict[str, Any]:
    """Sectors and industries of the latest snapshot, most common first."""
    rows = snapshot.document["results"]
    sectors = Counter(r["Sector"] for r in rows if r.get("Sector"))
    industries = Counter(r["Industry"] for r in rows if r.get("Industry"))
    return {
        "total": snapshot.document.get("universe_size", len(rows)),
        "sectors": [{"name": n, "count": c} for n, c in sectors.most_common()],
        "subindustries": [{"name": n, "count": c} for n, c in industries.most_common()],
    }


@router.get("/v1/symbol")
def symbol_row(
    snapshot: SnapshotDep, symbol: Annotated[str, Query(pattern=TICKER)]
) -> dict[str, Any]:
    """That ticker's row of the latest snapshot (an empty list if it is not in it)."""
    row = snapshot.by_ticker.get(symbol.strip().upper())
    return {"results": [row] if row else [], "snapshot_id": snapshot.snapshot_id}


@router.get("/v1/symbol/{ticker}")
def symbol_detail(
    snapshot: SnapshotDep,
    settings: SettingsDep,
    ticker: Annotated[str, Path(pattern=TICKER)],
    days: Annotated[int, Query(ge=1, le=3650)] = 90,
) -> dict[str, Any]:
    """The symbol detail screen: scores from the snapshot, price history from the store."""
    symbol = ticker.strip().upper()
    row = snapshot.by_ticker.get(symbol)
    if row is None:
        raise ApiError(404, "unknown_ticker", f"{symbol} is not in the latest snapshot")
    history = _history(settings.store_path, symbol, days, snapshot.document.get("as_of"))
    return {
        "symbol": symbol,
        "last_price": row.get("close"),
        "change_pct": row.get("change_pct"),
        "history": history,
        "fundamentals": dict.fromkeys(("pe", "eps", "roe", "debt_to_equity", "market_cap")),
        "events": dict.fromkeys(
            ("next_earnings", "days_to_earnings", "next_dividend", "dividend_amount")
        ),
        "merit_score": row.get("merit_score"),
        "merit_band": row.get("merit_band"),
        "merit_flags": row.get("merit_flags"),
        "merit_summary": row.get("merit_summary"),
        "tech_rating": row.get("TechRating"),
        "win_prob_10d": row.get("win_prob_10d"),
        "quality_score": row.get("QualityScore"),
        "ics": row.get("ICS"),
        "ics_tier": row.get("Tier"),
        "alpha_score": row.get("AlphaScore"),
        "risk_score": None,
        "momentum_score": None,
        "value_score": None,
        "quality_factor": None,
        "growth_score": None,
        "options_available": False,
        "snapshot_id": snapshot.snapshot_id,
    }


def _history(store_path, symbol: str, days: int, as_of: str | None) -> list[dict[str, Any]]:
    """The last ``days`` bars up to the snapshot's date, oldest first ([] without a store)."""
    try:
        bars = BarStore.open(store_path).read([symbol])
    except (StoreError, UnknownTickerError):
        return []
    if as_of:
        bars = bars[bars["date"] <= as_of]
    bars = bars.tail(days)
    return [
        {"date": f"{d:%Y-%m-%d}", "Open": o, "High": h, "Low": lo, "Close": c, "Volume": v}
        for d, o, h, lo, c, v in zip(
            bars["date"],
            bars["open"],
            bars["high"],
            bars["low"],
            bars["close"],
            bars["volume"],
            strict=True,
        )
    ]
