"""The app's scanner query over a finished snapshot: style, sectors, rating, rows.

The rating rule, one for every endpoint: ``min_tech_rating`` is on the app's 0–10 "Rating"
scale (its slider and presets say 7, 5, 3) and keeps rows whose TechRating (0–100) is at least
``RATING_SCALE`` (10) times it, so 7 keeps TechRating ≥ 70. Sectors are matched to the
snapshot's own sector names through :func:`pipeline.vocabulary.match_sectors` (the app's GICS
chips and its Randomize button's Yahoo-style names both work). Every answer states the filters
it applied (``filters``) and says them in words (``log``), including the options that change
nothing (``lookback_days``, ``options_mode``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.errors import clip
from pipeline.snapshots.document import ideas
from pipeline.vocabulary import match_sectors

RATING_SCALE = 10.0  # TechRating points per point of the app's 0–10 Rating
LOOKBACK_EFFECT = (
    "changes nothing: scores use each ticker's full stored history, as the published scan did"
)
OPTIONS_EFFECT = "changes nothing: there is no options data, so option_strategies are empty"


@dataclass(frozen=True)
class ScannerQuery:
    """What the scanner screen asked for; every field optional."""

    trade_style: str | None = None  # canonical name; None keeps the snapshot's ranking
    trade_style_asked: str | None = None  # the name as sent, e.g. "Position"
    sectors: tuple[str, ...] = ()
    min_tech_rating: float = 0.0  # the app's 0–10 scale
    max_symbols: int | None = None
    lookback_days: int | None = None
    options_mode: str | None = None


def tech_rating_floor(min_tech_rating: float) -> float:
    """The TechRating (0–100) that the app's 0–10 ``min_tech_rating`` asks for."""
    return min_tech_rating * RATING_SCALE


def answer(document: dict[str, Any], query: ScannerQuery) -> dict[str, Any]:
    """The ScannerBundle for ``query``: ``document`` (already ranked for the query's trade
    style) with its rows filtered and cut, ideas from those rows, and what was applied.

    Raises :class:`pipeline.errors.UnknownSectorError` for a sector name that is neither in
    the snapshot nor a known sector or alias.
    """
    rows: list[dict[str, Any]] = document["results"]
    sectors = match_sectors(query.sectors, {r["Sector"] for r in rows if r.get("Sector")})
    if sectors is not None:
        rows = [r for r in rows if r.get("Sector") in sectors.selected]
    floor = tech_rating_floor(query.min_tech_rating)
    if floor > 0:
        rows = [r for r in rows if r.get("TechRating") is not None and r["TechRating"] >= floor]
    shown = rows[: query.max_symbols] if query.max_symbols is not None else rows
    style = document.get("trade_style")
    filters = {
        "trade_style": style,
        "trade_style_asked": query.trade_style_asked,
        "sectors": None
        if sectors is None
        else {"asked": list(query.sectors), "matched": sorted(sectors.selected)},
        "min_tech_rating": query.min_tech_rating,
        "min_TechRating": floor,
        "max_symbols": query.max_symbols,
        "lookback_days": _option(query.lookback_days, LOOKBACK_EFFECT),
        "options_mode": _option(query.options_mode, OPTIONS_EFFECT),
        "matched": len(rows),
        "returned": len(shown),
        "scan": document.get("filters"),
    }
    words = _in_words(query, style, sectors.selected if sectors else None, floor, rows, shown)
    return {
        **document,
        "results": shown,
        "ideas": ideas(rows, board=document.get("scoreboard")),
        "filters": filters,
        "log": f"{document.get('log', '')}. {words}".lstrip(". "),
    }


def _option(value: object, effect: str) -> dict[str, Any] | None:
    return None if value is None else {"asked": value, "effect": effect}


def _in_words(
    query: ScannerQuery,
    style: str | None,
    selected: frozenset[str] | None,
    floor: float,
    rows: list[dict[str, Any]],
    shown: list[dict[str, Any]],
) -> str:
    """The applied filters as one sentence for the app's log line."""
    parts = [f"ranked for {style}"]
    if query.trade_style_asked and query.trade_style_asked.strip() != style:
        parts[0] += f" (asked as {clip(query.trade_style_asked)!r})"
    if query.sectors:
        asked = ", ".join(clip(s) for s in query.sectors)
        found = ", ".join(sorted(selected or ())) or "none in this universe"
        parts.append(f"sectors {asked} → {found}")
    if floor > 0:
        parts.append(
            f"Rating ≥ {query.min_tech_rating:g} of 10, i.e. TechRating ≥ {floor:g} of 100"
        )
    if query.max_symbols is not None and len(shown) < len(rows):
        parts.append(f"first {query.max_symbols:,} rows")
    if query.lookback_days is not None:
        parts.append(f"lookback_days {query.lookback_days} {LOOKBACK_EFFECT}")
    if query.options_mode is not None:
        parts.append(f"options_mode {clip(query.options_mode)!r} {OPTIONS_EFFECT}")
    return f"Showing {len(shown):,} of {len(rows):,} matching rows: {'; '.join(parts)}."
