"""The mobile app's parse rules (../shared/app-contract.md), as the Dart code applies them.

``as int?`` throws on 1.0 or a string; ``(x as num).toDouble()`` throws on null or a string;
``x as String`` throws on anything but a string; ``x?.toString()`` and ``double.tryParse``
tolerate anything. Each function raises ``AppParseError`` where the app's parse would throw
(and the user would get an empty screen).
"""

from __future__ import annotations

from typing import Any

SCAN_BODIES: dict[str, dict[str, Any]] = {  # the contract's table, verbatim
    "first open": {"max_symbols": 6000, "trade_style": "Short-term swing", "min_tech_rating": 0.0},
    "conservative": {
        "max_symbols": 6000, "trade_style": "Position", "min_tech_rating": 7.0,
        "lookback_days": 180,
    },
    "moderate": {
        "max_symbols": 6000, "trade_style": "Swing", "min_tech_rating": 5.0, "lookback_days": 90,
    },
    "aggressive": {
        "max_symbols": 6000, "trade_style": "Day", "min_tech_rating": 3.0, "lookback_days": 30,
    },
}  # fmt: skip
CHIP_SECTORS = (
    "Communication Services", "Consumer Discretionary", "Consumer Staples", "Energy",
    "Financials", "Health Care", "Industrials", "Information Technology", "Materials",
    "Real Estate", "Utilities",
)  # fmt: skip
CHIP_STYLES = ("Day", "Swing", "Position")
RANDOMIZE_SECTORS = ("Technology", "Healthcare", "Financial Services", "Energy", None)


class AppParseError(AssertionError):
    """Where the app's Dart parse would throw."""


def as_int(value: Any, where: str) -> int | None:
    """``x as int?``."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise AppParseError(f"{where}: {value!r} is not a JSON integer")


def as_num(value: Any, where: str) -> float:
    """``(x as num).toDouble()``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise AppParseError(f"{where}: {value!r} is not a number")


def as_string(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    raise AppParseError(f"{where}: {value!r} is not a string")


def as_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise AppParseError(f"{where}: {value!r} is not a bool")


def as_list(value: Any, where: str) -> list:
    if isinstance(value, list):
        return value
    raise AppParseError(f"{where}: {value!r} is not a list")


def scanner_bundle(body: Any) -> dict[str, Any]:
    """What the scanner screen reads from POST /v1/scan."""
    if not isinstance(body, dict):
        raise AppParseError(f"ScannerBundle is not an object: {type(body).__name__}")
    as_int(body.get("universe_size"), "universe_size")
    as_int(body.get("symbols_scanned"), "symbols_scanned")
    for i, idea in enumerate(as_list(body.get("ideas") or [], "ideas")[:3]):
        for key in ("title", "meta", "plan"):
            as_string(idea.get(key), f"ideas[{i}].{key}")
    for i, mover in enumerate(as_list(body.get("movers") or [], "movers")):
        as_string(mover.get("ticker"), f"movers[{i}].ticker")
        as_bool(mover.get("isPositive"), f"movers[{i}].isPositive")
        for v in as_list(mover.get("sparkline") or [], f"movers[{i}].sparkline"):
            as_num(v, f"movers[{i}].sparkline")
    for i, row in enumerate(as_list(body.get("results") or [], "results")):
        as_string(row.get("ticker"), f"results[{i}].ticker")
        as_bool(row.get("IsUltraRisky"), f"results[{i}].IsUltraRisky")
        for v in as_list(row.get("sparkline") or [], f"results[{i}].sparkline"):
            as_num(v, f"results[{i}].sparkline")
        as_list(row.get("option_strategies") or [], f"results[{i}].option_strategies")
    return body


def ideas_tab(body: Any) -> list[dict[str, Any]]:
    """GET /v1/scan: a bare list or ``{"data": [...]}`` of Ideas."""
    items = body.get("data") if isinstance(body, dict) else body
    for i, idea in enumerate(as_list(items, "data")):
        for key in ("title", "ticker", "meta", "plan"):
            as_string(idea.get(key), f"data[{i}].{key}")
        for v in as_list(idea.get("sparkline"), f"data[{i}].sparkline"):
            as_num(v, f"data[{i}].sparkline")
        option = idea.get("option")
        if option is not None and not isinstance(option, dict):
            raise AppParseError(f"data[{i}].option: {option!r} is neither an object nor null")
    return items


def symbol_detail(body: Any, *, old_app: bool = True) -> dict[str, Any]:
    """GET /v1/symbol/{ticker}; the older app parses Volume ``as int`` and the prices with
    ``(x as num).toDouble()``."""
    if not isinstance(body, dict):
        raise AppParseError("symbol detail is not an object")
    as_string(body.get("symbol"), "symbol")
    for i, bar in enumerate(as_list(body.get("history"), "history")):
        as_string(bar.get("date"), f"history[{i}].date")
        for key in ("Open", "High", "Low", "Close"):
            as_num(bar.get(key), f"history[{i}].{key}")
        if old_app and not isinstance(bar.get("Volume"), int):
            raise AppParseError(f"history[{i}].Volume: {bar.get('Volume')!r} is not an int")
    for card in ("fundamentals", "events"):
        value = body.get(card)
        if value is not None and not isinstance(value, dict):
            raise AppParseError(f"{card}: {value!r} is neither an object nor null")
        if isinstance(value, dict) and all(v is None for v in value.values()):
            raise AppParseError(f"{card}: an object of nulls draws an empty card")
    as_bool(body.get("options_available"), "options_available")
    return body


def copilot_answer(body: Any) -> str:
    if not isinstance(body, dict):
        raise AppParseError("copilot answer is not an object")
    text = body.get("body", body.get("message"))
    return as_string(text, "body")
