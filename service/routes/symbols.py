"""The symbol screens and universe stats, from the latest snapshot (and the bar store it was
computed from, for a symbol's price history)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
import pandas as pd
from fastapi import APIRouter, Path, Query, Request, Response

from pipeline.errors import StoreError
from pipeline.price_history import RecentBars, chart_rows, trusted_bars, with_forming_bar
from pipeline.snapshots.document import why_unscored
from pipeline.store import Generation
from service.auth import OPTIONAL_KEY
from service.deps import SettingsDep, SnapshotDep, history_key, store_url
from service.errors import INVALID, SNAPSHOT_GONE, ApiError, documented
from service.history import snapshot_generation
from service.schemas import SymbolDetail, SymbolRows, UniverseStats
from service.snapshot_cache import Current

log = logging.getLogger(__name__)
router = APIRouter(tags=["app"])
TICKER = r"^[A-Za-z0-9][A-Za-z0-9.\-_^/]{0,14}$"
SCORES = {  # detail field → ScanResult field
    "merit_score": "merit_score",
    "merit_band": "merit_band",
    "merit_flags": "merit_flags",
    "merit_summary": "merit_summary",
    "tech_rating": "TechRating",
    "win_prob_10d": "win_prob_10d",
    "quality_score": "QualityScore",
    "ics": "ICS",
    "ics_tier": "Tier",
    "alpha_score": "AlphaScore",
}
NO_SOURCE = ("risk_score", "momentum_score", "value_score", "quality_factor", "growth_score")


@router.get(
    "/v1/universe_stats",
    response_model=UniverseStats,
    openapi_extra=OPTIONAL_KEY,
    responses=documented({503: SNAPSHOT_GONE}),
)
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


@router.get(
    "/v1/symbol",
    response_model=SymbolRows,
    openapi_extra=OPTIONAL_KEY,
    responses=documented({422: INVALID, 503: SNAPSHOT_GONE}),
)
def symbol_row(
    snapshot: SnapshotDep, symbol: Annotated[str, Query(pattern=TICKER)]
) -> dict[str, Any]:
    """That ticker's row of the latest snapshot (an empty list if it is not in it)."""
    row = snapshot.by_ticker.get(symbol.strip().upper())
    return {"results": [row] if row else [], "snapshot_id": snapshot.snapshot_id}


@router.get(
    "/v1/symbol/{ticker}",
    response_model=SymbolDetail,
    openapi_extra=OPTIONAL_KEY,
    responses=documented({
        404: "`unknown_ticker`: neither the latest snapshot nor its bar store has the ticker",
        422: INVALID,
        503: f"{SNAPSHOT_GONE}; `store_unavailable`: the bar store cannot be read",
    }),
)  # fmt: skip
def symbol_detail(
    request: Request,
    snapshot: SnapshotDep,
    settings: SettingsDep,
    ticker: Annotated[str, Path(pattern=TICKER)],
    days: Annotated[int, Query(ge=1, le=3650)] = 90,
) -> Response:
    """The symbol detail screen: scores from the latest snapshot, the last ``days`` bars the
    scan trusted from its bar store. A ticker the store has but the snapshot did not score
    (short history, stale, filtered...) opens too, with null scores and ``status`` saying
    why; 404 only for a ticker never seen."""
    symbol = ticker.strip().upper()
    view = snapshot.memo(("symbols",), lambda: _SymbolView.of(snapshot, settings))
    recent = request.app.state.history.get(history_key(settings, snapshot))
    data = snapshot.memo(("detail", symbol, days), lambda: view.detail(symbol, days, recent))
    return Response(data, media_type="application/json")


@dataclass
class _SymbolView:
    """What the detail screen needs from one snapshot, looked up once: its store, that
    store's tickers and reference table, and why each unscored ticker was not scored."""

    current: Current
    store_url: str
    store: Generation | None
    problem: str | None  # why the store cannot be read
    tickers: frozenset[str]
    market_caps: dict[str, float]
    unscored: dict[str, str]

    @classmethod
    def of(cls, current: Current, settings: Any) -> _SymbolView:
        path = store_url(settings, current)
        unscored = {
            ticker: status
            for status, tickers in (current.document.get("unscored") or {}).items()
            for ticker in tickers
        }
        try:
            store = snapshot_generation(path, current.document)
            tickers = frozenset(store.tickers)
            caps = store.universe["market_cap"].dropna()
        except StoreError as exc:
            log.warning("symbol history unavailable: %s", exc)
            return cls(current, path, None, str(exc), frozenset(), {}, unscored)
        market_caps = {str(t): float(v) for t, v in caps.items() if v > 0}
        return cls(current, path, store, None, tickers, market_caps, unscored)

    def detail(self, symbol: str, days: int, recent: RecentBars | None) -> bytes:
        document = self.current.document
        row = self.current.by_ticker.get(symbol)
        status = "ok" if row is not None else self.unscored.get(symbol)
        if self.store is None:
            if status is None:
                raise ApiError(404, "unknown_ticker", f"{symbol} is not in the latest snapshot")
            raise ApiError(503, "store_unavailable", f"price history unavailable: {self.problem}")
        if symbol not in self.tickers:
            if status is None:
                raise ApiError(
                    404, "unknown_ticker", f"no ticker {symbol} in the snapshot or store"
                )
            log.warning(
                "symbol history: %s is in the snapshot but not in %s", symbol, self.store_url
            )
            raise ApiError(
                503, "store_unavailable", f"the bar store at {self.store_url} has no bars for "
                f"{symbol}; it changed since the snapshot was computed",
            )  # fmt: skip
        status = status or "not_in_snapshot"
        bars = recent.bars(symbol, days) if recent is not None else None
        if bars is None:
            bars = self.current.memo(
                ("trusted_bars", symbol),
                lambda: trusted_bars(self.store, symbol, document["as_of"]),
            )
        shown = bars.tail(days)
        answer = {
            "symbol": symbol,
            "status": status,
            "status_detail": None if status == "ok" else why_unscored(status, document),
            **_price(row, bars),
            "history": with_forming_bar(
                chart_rows(shown),
                document.get("as_of", ""),
                (document.get("forming_bars") or {}).get(symbol),
                days,
            ),
            "fundamentals": _fundamentals(self.market_caps.get(symbol)),
            "events": None,
            **{field: None if row is None else row.get(name) for field, name in SCORES.items()},
            **dict.fromkeys(NO_SOURCE),
            "options_available": False,
            "snapshot_id": self.current.snapshot_id,
            "as_of": document.get("as_of"),
            "history_source": {
                "store": str(self.store_url),
                "data_version": self.store.data_version,
                "snapshot_data_version": (document.get("store") or {}).get("data_version"),
            },
        }
        return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)


def _price(row: dict[str, Any] | None, bars: pd.DataFrame) -> dict[str, Any]:
    """last_price and change_pct (percent): the snapshot's, else from the trusted bars."""
    if row is not None:
        return {"last_price": row.get("close"), "change_pct": row.get("change_pct")}
    closes = bars["close"].to_numpy()
    last = float(closes[-1]) if len(closes) else None
    change = round((closes[-1] / closes[-2] - 1) * 100, 2) if len(closes) > 1 else None
    return {"last_price": last, "change_pct": change}


def _fundamentals(market_cap: float | None) -> dict[str, Any] | None:
    """What is known of the fundamentals card: only the reference table's market cap, and
    null (no card) when not even that is known."""
    if market_cap is None:
        return None
    return {"pe": None, "eps": None, "roe": None, "debt_to_equity": None, "market_cap": market_cap}
