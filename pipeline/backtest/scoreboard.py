"""The latest backtest's base rates, for the scans and the app.

``technic backtest`` saves, per signal and per tier, the share of 10-day forward returns
above zero and their mean (:func:`pipeline.backtest.summary.scoreboard`) as
``<TECHNIC_DATA_DIR>/backtests/scoreboard.json``, naming the store it measured. A scan of that
store puts it in its snapshot (``scoreboard``) and, where no model gives a row its
``win_prob_10d``, fills it with the measured win rate of the row's signal (the snapshot's
``win_prob_source`` says which it is); the service serves it at ``GET /v1/scoreboard``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import orjson

from pipeline.config import Settings

log = logging.getLogger(__name__)
FILE = "scoreboard.json"


def path(settings: Settings) -> Path:
    """Where the latest backtest's scoreboard lives."""
    return settings.data_dir.expanduser() / "backtests" / FILE


def save(board: dict[str, Any], store: str, settings: Settings) -> Path:
    """Keep ``board`` (measured on ``store``) as the latest scoreboard, written whole."""
    target = path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{FILE}.tmp")
    tmp.write_bytes(orjson.dumps({**board, "store": store}, option=orjson.OPT_INDENT_2))
    os.replace(tmp, target)
    return target


def load(settings: Settings, store: str) -> dict[str, Any] | None:
    """The latest scoreboard if it was measured on ``store``; None otherwise (or unreadable,
    with a warning)."""
    found = path(settings)
    try:
        board = orjson.loads(found.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        log.warning("scoreboard %s is unreadable (%s): scans go without it", found, exc)
        return None
    return board if board.get("store") == store else None


def win_rates(board: dict[str, Any]) -> dict[str, float]:
    """The measured win rate of each signal."""
    return {name: row["win_rate"] for name, row in (board.get("signal") or {}).items()}


def describe(board: dict[str, Any]) -> str:
    """Where the base rates come from, in words."""
    return (
        f"the backtest's {board.get('horizon')}-day win rate of the row's signal, "
        f"{board.get('from')} to {board.get('to')}"
    )
