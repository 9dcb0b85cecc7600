"""Scan snapshots: the ranked table → the app's JSON document and an analyst's Parquet table.

The JSON document has the app's ``ScannerBundle`` shape (../shared/app-contract.md):
``results`` (ScanResult rows, best first), ``movers``, ``ideas``, ``log``, ``universe_size``,
``symbols_scanned``, plus metadata: ``snapshot_id``, ``as_of``, ``generated_at``, ``timings``,
``hygiene``, ``model``, ``regime``, ``filters``, ``store`` (the bar store and generation it
was computed from) and ``unscored`` (tickers read but not scored, by status; see
:data:`UNSCORED_REASONS`). Missing numbers are ``null``, never NaN.
Files are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import scoring
from pipeline.config import TradeStyle
from pipeline.sparklines import sparkline_matrix
from pipeline.vocabulary import LONG_SIGNALS

# App field → table column (None: the app field has no source yet and is null).
RESULT_FIELDS: dict[str, str | None] = {
    "ticker": "ticker",
    "signal": "Signal",
    "rrr": "rrr",
    "entry": "entry",
    "stop": "stop",
    "target": "target",
    "note": "note",
    "sparkline": "sparkline",
    "ICS": "ICS",
    "Tier": "Tier",
    "win_prob_10d": "win_prob_10d",
    "QualityScore": None,
    "PlayStyle": "PlayStyle",
    "IsUltraRisky": "IsUltraRisky",
    "Profile": "Profile",
    "ProfileLabel": "ProfileLabel",
    "Sector": "Sector",
    "Industry": "Industry",
    "TechRating": "TechRating",
    "AlphaScore": "AlphaScore",
    "ATR14_pct": "atr14_pct",
    "EventSummary": None,
    "EventFlags": None,
    "FundamentalSnapshot": None,
    "merit_score": "merit_score",
    "merit_band": "merit_band",
    "merit_flags": "merit_flags",
    "merit_summary": "merit_summary",
    # extras the app ignores and analysts use
    "rank": "rank",
    "composite_score": "composite_score",
    "close": "close",
    "change_pct": "change_pct",
    "signals": "signals",
    "position_shares": "position_shares",
    "dollar_volume_20d": "avg_dollar_volume_20d",
}
MOVERS = 5
IDEAS = 3  # the app's scoreboard strip shows three
IDEA_TIERS = ("CORE", "SATELLITE")
MOVER_MIN_PRICE = 1.0
MOVER_MIN_DOLLAR_VOLUME = 1e6


def _sparkline(values: np.ndarray) -> list[float]:
    return [round(float(v), 4) for v in values if v == v]


def _sparklines(column: pd.Series) -> list[list[float]]:
    """Sparkline lists rounded to 4 decimals, without the NaN padding of short histories."""
    matrix = sparkline_matrix(column).round(4)
    short = np.isnan(matrix).any(axis=1)
    rows = matrix.tolist()
    for i in np.flatnonzero(short):
        rows[i] = [v for v in rows[i] if v == v]
    return rows


def _values(column: pd.Series) -> list[Any]:
    """A column as JSON-ready Python values: NaN and infinities become None."""
    values = column.to_numpy()
    if values.dtype.kind == "f":
        out = values.astype(object)
        out[~np.isfinite(values)] = None
        return out.tolist()
    return values.tolist()


def results(table: pd.DataFrame) -> list[dict[str, Any]]:
    """ScanResult rows in table order."""
    n = len(table)
    columns: dict[str, list[Any]] = {}
    for field, column in RESULT_FIELDS.items():
        if column is None:
            columns[field] = [None] * n
        elif column == "ticker":
            columns[field] = table.index.astype(str).tolist()
        elif column == "sparkline":
            columns[field] = _sparklines(table["sparkline"])
        elif column == "change_pct":
            columns[field] = _values((table["ret_1d"] * 100).round(2))
        else:
            columns[field] = _values(table[column])
    columns["option_strategies"] = [[] for _ in range(n)]
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def movers(table: pd.DataFrame, count: int = MOVERS) -> list[dict[str, Any]]:
    """Top gainers then top losers of the latest session among liquid names (price ≥ $1,
    20-day average dollar volume ≥ $1M), so a bad print cannot lead the list."""
    ret = table["ret_1d"].to_numpy(dtype="float64")
    liquid = np.flatnonzero(
        (table["close"].to_numpy(dtype="float64") >= MOVER_MIN_PRICE)
        & (table["avg_dollar_volume_20d"].to_numpy(dtype="float64") >= MOVER_MIN_DOLLAR_VOLUME)
        & ~np.isnan(ret)
    )
    ranked = liquid[np.argsort(ret[liquid], kind="stable")]
    picks = list(dict.fromkeys([*ranked[::-1][:count].tolist(), *ranked[:count].tolist()]))
    picked = table.iloc[picks]
    lines = sparkline_matrix(picked["sparkline"])
    rows = zip(
        picked.index, picked["ret_1d"].tolist(), picked["rel_volume"].tolist(), lines, strict=True
    )
    out = []
    for ticker, change, volume, line in rows:
        up = change >= 0
        out.append(
            {
                "ticker": str(ticker),
                "delta": f"{change * 100:+.2f}%",
                "note": f"{'Up' if up else 'Down'} {abs(change) * 100:.2f}%"
                + (f" on {volume:.1f}x volume" if volume == volume else ""),
                "isPositive": up,
                "sparkline": _sparkline(line),
            }
        )
    return out


def ideas(
    rows: list[dict[str, Any]], count: int = IDEAS, board: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Idea cards from ScanResult rows (best first): the first ``count`` Long / Strong Long
    rows of tier CORE or SATELLITE, each with its plan and sparkline (``option`` is null:
    there is no options data). With the latest backtest's scoreboard (``board``), the card
    says how often its signal rose over the measured horizon."""
    rates = (board or {}).get("signal") or {}
    out = []
    for row in rows:
        if len(out) == count:
            break
        if row["signal"] not in LONG_SIGNALS or row["Tier"] not in IDEA_TIERS:
            continue
        events = row["signals"] or ()
        theme = "Breakout" if "breakout_20d" in events or "new_52w_high" in events else "Momentum"
        out.append(
            {
                "title": f"{theme}: {row['ticker']}",
                "ticker": row["ticker"],
                "meta": f"TechRating {row['TechRating']:.0f} · {row['Sector']} · {row['Tier']}"
                + _base_rate(row["signal"], rates, board),
                "plan": f"Entry {row['entry']:g} · Stop {row['stop']:g} · Target "
                f"{row['target']:g} ({row['rrr']:g}R)",
                "sparkline": row["sparkline"],
                "option": None,
            }
        )
    return out


def _base_rate(signal: str, rates: dict[str, Any], board: dict[str, Any] | None) -> str:
    """' · Strong Long rose 10d later in 53% (2015–2017)', or '' without a measured rate."""
    found = rates.get(signal)
    if not found or board is None:
        return ""
    years = f"{str(board.get('from'))[:4]}–{str(board.get('to'))[:4]}"
    return f" · {signal} rose {board.get('horizon')}d later in {found['win_rate']:.0%} ({years})"


@dataclass
class Snapshot:
    """A scan's snapshot: the ranked table and its document (``snapshot``: what the app
    receives), serialised once. What :func:`pipeline.snapshots.publish` publishes."""

    table: pd.DataFrame
    snapshot: dict[str, Any]

    @functools.cached_property
    def _json(self) -> bytes:
        return to_json(self.snapshot)

    def to_json(self) -> bytes:
        """The document as JSON bytes (NaN and infinities as null)."""
        return self._json

    def write(self, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write the snapshot's JSON and Parquet files into ``out_dir``."""
        return write(self.snapshot, self.table, Path(out_dir), self.to_json())


def build(table: pd.DataFrame, meta: dict[str, Any]) -> dict[str, Any]:
    """The snapshot document: ScannerBundle fields first, then ``meta`` (which must hold
    ``universe_size``, ``symbols_scanned``, ``as_of`` and ``timings``)."""
    rows = results(table)
    return {
        "results": rows,
        "movers": movers(table),
        "ideas": ideas(rows, board=meta.get("scoreboard")),
        "log": status_line(meta),
        **meta,
    }


def restyle(table: pd.DataFrame, document: dict[str, Any], style: TradeStyle) -> dict[str, Any]:
    """The snapshot ``document`` (of the ranked ``table``) as it would read for another trade
    style: rows scored, planned and ranked for ``style``; movers and metadata unchanged."""
    account = document.get("account") or {}
    model = document.get("model") or {}
    ranked = scoring.rescore(
        table,
        style=style,
        account_size=account.get("account_size", 100_000.0),
        risk_pct=account.get("risk_pct", 1.0),
        alpha_weight=model.get("alpha_weight") or 0.0,
    )
    rows = results(ranked)
    ideas_now = ideas(rows, board=document.get("scoreboard"))
    return {**document, "results": rows, "ideas": ideas_now, "trade_style": style}


UNSCORED_REASONS = {  # a snapshot's "unscored" statuses, in words
    "short_history": "fewer than {min_history} clean bars as of {as_of}: too short to score",
    "stale": "no bar within {stale_days} days of {as_of}: treated as delisted or halted",
    "no_clean_bars": "no clean bar up to {as_of}",
    "filtered": "scored, but left out by the published scan's filters ({filters})",
    "benchmark": "the benchmark: relative strength and the market regime are measured against it",
    "not_in_snapshot": "in the bar store but not in the snapshot of {as_of} (added since?)",
}


def why_unscored(status: str, document: dict[str, Any]) -> str:
    """Why a ticker with ``status`` (a key of the document's ``unscored``) has no row."""
    rules = document.get("universe_rules") or {}
    filters = ", ".join(f"{k} {v}" for k, v in (document.get("filters") or {}).items() if v)
    return UNSCORED_REASONS.get(status, status).format(
        as_of=document.get("as_of"),
        min_history=rules.get("min_history", "the required"),
        stale_days=rules.get("stale_days", "the allowed"),
        filters=filters or "none",
    )


def status_line(meta: dict[str, Any]) -> str:
    """The app's status line, e.g. 'Scanned 5,646 of 6,000 symbols as of 2026-11-20 in 0.9 s'."""
    seconds = meta["timings"].get("total", 0.0)
    return (
        f"Scanned {meta['symbols_scanned']:,} of {meta['universe_size']:,} symbols as of "
        f"{meta['as_of']} in {seconds:.1f} s"
    )


def to_json(document: dict[str, Any]) -> bytes:
    """Serialize a snapshot document (NaN and infinities become null)."""
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)


def write(
    document: dict[str, Any], table: pd.DataFrame, out_dir: Path, json_bytes: bytes | None = None
) -> tuple[Path, Path]:
    """Write ``<snapshot_id>.json`` (``json_bytes`` if already serialised) and
    ``<snapshot_id>.parquet`` into ``out_dir``."""
    out_dir = Path(out_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = document["snapshot_id"]
    json_path = out_dir / f"{stem}.json"
    parquet_path = out_dir / f"{stem}.parquet"
    _atomic_write(json_path, json_bytes if json_bytes is not None else to_json(document))
    tmp = parquet_path.with_name(f".{parquet_path.name}.tmp")
    arrow = pa.Table.from_pandas(table.reset_index(), preserve_index=False)
    # Plain Arrow types only (pandas cannot rebuild its Arrow list dtypes from its metadata);
    # the snapshot's identity travels in the schema metadata instead.
    identity = {k: document[k] for k in ("snapshot_id", "as_of", "generated_at") if k in document}
    arrow = arrow.replace_schema_metadata({b"technic": orjson.dumps(identity)})
    pq.write_table(arrow, tmp)
    os.replace(tmp, parquet_path)
    return json_path, parquet_path


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
