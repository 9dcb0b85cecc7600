"""The bar store: a Parquet dataset sorted by (ticker, date), whole tickers per file.

Layout of a store directory::

    manifest.json          the files of the current generation, their ticker ranges and lists
    bars/g000003-00000.parquet ...
    universe.parquet       reference table: ticker, name, sector, industry, market_cap

Writers put a new generation's files next to the old ones, then swap ``manifest.json`` with an
atomic rename, so a reader sees either the old store or the new one, never a mix. The previous
generation's files are kept until the next write, so a reader that listed them just before the
swap can still open them.

The store keeps prices as they came: bad prints stay in it and are dropped, and counted, by the
scan's hygiene step. Only duplicate (ticker, date) keys are resolved on write (the last row wins)
because the sort order is the store's contract.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import ConfigError, StoreError, UnknownTickerError
from pipeline.schema import BAR_COLUMNS, DATE, TICKER, TICKER_DTYPE, conform_bars

MANIFEST = "manifest.json"
UNIVERSE = "universe.parquet"
FORMAT = "technic-bars/1"
DEFAULT_ROWS_PER_FILE = 400_000
UNIVERSE_COLUMNS = ("ticker", "name", "sector", "industry", "market_cap")

_ARROW_SCHEMA = pa.schema(
    [
        (TICKER, pa.string()),
        (DATE, pa.timestamp("ns")),
        *[(c, pa.float64()) for c in BAR_COLUMNS[1:]],
    ]
)


@dataclass(frozen=True)
class StoreFile:
    """One Parquet file of the store: complete tickers, sorted."""

    path: Path
    tickers: tuple[str, ...]
    rows: int
    start: str
    end: str


@dataclass(frozen=True)
class WriteSummary:
    """What a write did; printed by the CLI and kept in the manifest."""

    rows: int
    tickers: int
    files: int
    rows_replaced: int = 0
    duplicate_dates: int = 0
    sources: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "tickers": self.tickers,
            "files": self.files,
            "rows_replaced": self.rows_replaced,
            "duplicate_dates": self.duplicate_dates,
            "sources": list(self.sources),
            **self.extra,
        }


class BarStore:
    """A bar store directory. Open an existing one with :meth:`open`; create with :meth:`write`."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path).expanduser()

    # -- reading ---------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> BarStore:
        """Open an existing store; raise :class:`StoreError` with the fix if there is none."""
        store = cls(path)
        if not (store.path / MANIFEST).is_file():
            hint = "it is not a bar store" if store.path.exists() else "it does not exist"
            raise StoreError(
                f"no bar store at {store.path} ({hint}); create one with "
                f"'technic demo-data --store {store.path}' or 'technic import FILE --store "
                f"{store.path}'"
            )
        return store

    @property
    def manifest(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / MANIFEST).read_text())
        except FileNotFoundError:
            raise StoreError(f"no bar store at {self.path}") from None
        except json.JSONDecodeError as exc:
            raise StoreError(f"corrupt store manifest {self.path / MANIFEST}: {exc}") from None

    @property
    def files(self) -> list[StoreFile]:
        return [
            StoreFile(
                path=self.path / f["path"],
                tickers=tuple(f["tickers"]),
                rows=f["rows"],
                start=f["start"],
                end=f["end"],
            )
            for f in self.manifest["files"]
        ]

    @property
    def tickers(self) -> list[str]:
        return [t for f in self.files for t in f.tickers]

    @property
    def data_version(self) -> str:
        """Changes whenever the store's content changes (a new generation)."""
        return self.manifest["data_version"]

    def select(self, tickers: list[str] | None = None) -> list[tuple[StoreFile, tuple[str, ...]]]:
        """Files holding ``tickers`` (all when None), each with its selected tickers.

        Raises :class:`UnknownTickerError` naming tickers that are not in the store.
        """
        files = self.files
        if not files:
            raise StoreError(f"the bar store at {self.path} is empty")
        if tickers is None:
            return [(f, f.tickers) for f in files]
        if not tickers:
            raise ConfigError("the ticker list is empty; leave it out to select every ticker")
        wanted = {t.strip().upper() for t in tickers}
        out = []
        for f in files:
            hit = tuple(t for t in f.tickers if t in wanted)
            if hit:
                out.append((f, hit))
        missing = wanted - {t for _, hit in out for t in hit}
        if missing:
            raise UnknownTickerError(missing)
        return out

    def universe(self) -> pd.DataFrame:
        """The reference table, one row per ticker of the store (unknown fields are NaN)."""
        path = self.path / UNIVERSE
        known = (
            pd.read_parquet(path)
            if path.is_file()
            else pd.DataFrame(columns=list(UNIVERSE_COLUMNS))
        )
        frame = pd.DataFrame({TICKER: pd.array(self.tickers, dtype=TICKER_DTYPE)})
        frame = frame.merge(known, on=TICKER, how="left")
        return frame.set_index(TICKER)

    def read(self, tickers: list[str] | None = None) -> pd.DataFrame:
        """All bars (or those of ``tickers``) as one pandas frame in the contract (ticker index)."""
        parts = [read_file(f.path, hit if tickers else None) for f, hit in self.select(tickers)]
        return pd.concat(parts) if parts else pd.DataFrame()

    # -- writing ---------------------------------------------------------------------------

    def write(
        self,
        bars: pd.DataFrame,
        universe: pd.DataFrame | None = None,
        *,
        merge: bool = True,
        sources: tuple[str, ...] = (),
        rows_per_file: int = DEFAULT_ROWS_PER_FILE,
        extra: dict[str, Any] | None = None,
    ) -> WriteSummary:
        """Write ``bars`` (long format) into the store as a new generation.

        With ``merge`` the new rows are combined with the store's: a (ticker, date) present in
        both takes the new row. Duplicate keys inside ``bars`` keep the last row and are counted.
        """
        new = conform_bars(bars, source=", ".join(sources) or "bars")
        new["_new"] = True
        existing = None
        if merge and (self.path / MANIFEST).is_file():
            existing = self.read().reset_index()
            existing["_new"] = False
        combined = new if existing is None else pd.concat([existing, new], ignore_index=True)
        combined = combined.sort_values([TICKER, DATE], kind="stable", ignore_index=True)
        keys = combined[[TICKER, DATE]]
        dup_later = keys.duplicated(keep="last")
        new_dups = int((dup_later & combined["_new"]).sum())
        replaced = int((dup_later & ~combined["_new"]).sum())
        combined = combined.loc[~dup_later.to_numpy(), [TICKER, *BAR_COLUMNS]]
        combined = combined.reset_index(drop=True)

        generation = self._next_generation()
        entries = self._write_files(combined, generation, rows_per_file)
        if universe is not None:
            self._write_universe(universe, merge=merge)
        summary = WriteSummary(
            rows=len(combined),
            tickers=int(combined[TICKER].nunique()),
            files=len(entries),
            rows_replaced=replaced,
            duplicate_dates=new_dups,
            sources=sources,
            extra=extra or {},
        )
        self._swap_manifest(generation, entries, summary)
        return summary

    def _next_generation(self) -> int:
        try:
            return int(self.manifest.get("generation", 0)) + 1
        except StoreError:
            return 1

    def _write_files(
        self, bars: pd.DataFrame, generation: int, rows_per_file: int
    ) -> list[dict[str, Any]]:
        bar_dir = self.path / "bars"
        bar_dir.mkdir(parents=True, exist_ok=True)
        tickers = bars[TICKER].to_numpy()
        starts = np.flatnonzero(np.r_[True, tickers[1:] != tickers[:-1]]) if len(bars) else []
        bounds = np.r_[starts, len(bars)].astype(np.int64)
        entries = []
        lo = 0  # index into bounds
        while lo < len(bounds) - 1:
            hi = lo + 1
            while hi < len(bounds) - 1 and bounds[hi] - bounds[lo] < rows_per_file:
                hi += 1
            chunk = bars.iloc[bounds[lo] : bounds[hi]]
            name = f"g{generation:06d}-{len(entries):05d}.parquet"
            table = pa.Table.from_pandas(chunk, schema=_ARROW_SCHEMA, preserve_index=False)
            _atomic_parquet(table, bar_dir / name)
            entries.append(
                {
                    "path": f"bars/{name}",
                    "tickers": [str(t) for t in pd.unique(chunk[TICKER])],
                    "rows": len(chunk),
                    "start": str(chunk[DATE].min().date()),
                    "end": str(chunk[DATE].max().date()),
                }
            )
            lo = hi
        return entries

    def _write_universe(self, universe: pd.DataFrame, *, merge: bool) -> None:
        new = conform_universe(universe)
        path = self.path / UNIVERSE
        if merge and path.is_file():
            old = pd.read_parquet(path)
            new = pd.concat([old[~old[TICKER].isin(new[TICKER])], new], ignore_index=True)
        new = new.sort_values(TICKER, ignore_index=True)
        _atomic_parquet(pa.Table.from_pandas(new, preserve_index=False), path)

    def _swap_manifest(
        self, generation: int, entries: list[dict[str, Any]], summary: WriteSummary
    ) -> None:
        digest = hashlib.sha256(
            json.dumps([(e["path"], e["rows"], e["tickers"]) for e in entries]).encode()
        ).hexdigest()[:16]
        previous = self.manifest if (self.path / MANIFEST).is_file() else None
        manifest = {
            "format": FORMAT,
            "generation": generation,
            "data_version": f"g{generation}-{digest}",
            "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "rows": summary.rows,
            "tickers": summary.tickers,
            "last_write": summary.as_dict(),
            "files": entries,
        }
        tmp = self.path / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, self.path / MANIFEST)
        keep = {e["path"] for e in entries}
        if previous is not None:
            keep |= {f["path"] for f in previous["files"]}
        for stale in (self.path / "bars").glob("g*.parquet"):
            if f"bars/{stale.name}" not in keep:
                stale.unlink(missing_ok=True)


def read_file(
    path: Path,
    tickers: tuple[str, ...] | None = None,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Read one store file into a bars frame (ticker index), optionally filtered."""
    filters: list[tuple[str, str, Any]] = []
    if tickers is not None:
        filters.append((TICKER, "in", list(tickers)))
    if start is not None:
        filters.append((DATE, ">=", pd.Timestamp(start)))
    if end is not None:
        filters.append((DATE, "<=", pd.Timestamp(end)))
    try:
        table = pq.read_table(path, filters=filters or None)
    except (OSError, pa.ArrowInvalid) as exc:
        raise StoreError(f"cannot read store file {path}: {exc}") from None
    frame = table.to_pandas()
    frame.index = pd.Index(frame.pop(TICKER).astype(TICKER_DTYPE), name=TICKER)
    return frame


def conform_universe(universe: pd.DataFrame) -> pd.DataFrame:
    """Normalise a reference table to ``UNIVERSE_COLUMNS`` (missing columns become NaN)."""
    df = universe.reset_index() if universe.index.name == TICKER else universe
    df = df.rename(columns={c: str(c).strip().lower() for c in df.columns})
    aliases = {"symbol": TICKER, "gics_sector": "sector", "gics_sub_industry": "industry"}
    df = df.rename(columns={k: v for k, v in aliases.items() if k in df and v not in df})
    if TICKER not in df:
        raise StoreError(f"universe table needs a 'ticker' column; found {', '.join(df.columns)}")
    out = pd.DataFrame({TICKER: df[TICKER].astype(TICKER_DTYPE).str.strip().str.upper()})
    for col in UNIVERSE_COLUMNS[1:]:
        if col == "market_cap":
            out[col] = pd.to_numeric(df[col], errors="coerce") if col in df else np.nan
        else:
            out[col] = df[col].astype(TICKER_DTYPE) if col in df else pd.NA
    out = out.drop_duplicates(TICKER, keep="last")
    return out


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    # Snappy: prices barely compress, and it decodes ~40% faster than zstd here.
    pq.write_table(table, tmp, compression="snappy", row_group_size=65_536)
    os.replace(tmp, path)
