"""The bar store: a Parquet dataset sorted by (ticker, date), whole tickers per file.

Layout of a store directory::

    manifest.json          the files of the current generation, their ticker ranges and lists
    bars/g000003-00000.parquet ...
    meta/g000003-adjustments.parquet   side tables of a generation (e.g. splits applied)
    universe.parquet       reference table: ticker, name, sector, industry, market_cap, and
                           where a provider said so active, type, exchange

Writers put a new generation's files next to the old ones, then swap ``manifest.json`` with an
atomic rename, so a reader sees either the old store or the new one, never a mix. The previous
generation's files are kept until the next write, so a reader that listed them just before the
swap can still open them.

Side tables that must change together with the bars (the splits a sync applied) are files
of the generation, named in the manifest's ``tables``, so they swap with it. ``write`` rewrites
every file; ``update`` rewrites only the files whose tickers get new rows or adjustments (what
a one-day incremental sync needs) and keeps the others, still under the same manifest swap.

The store keeps prices as they came (split-adjusted by a sync, see :mod:`pipeline.adjustments`):
bad prints stay in it and are dropped, and counted, by the scan's hygiene step. Only duplicate
(ticker, date) keys are resolved on write (the last row wins) because the sort order is the
store's contract.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.errors import ConfigError, StoreError, UnknownTickerError
from pipeline.schema import (
    BAR_COLUMNS,
    DATE,
    DATE_DTYPE,
    TICKER,
    TICKER_DTYPE,
    conform_bars,
    empty_bars,
)

MANIFEST = "manifest.json"
UNIVERSE = "universe.parquet"
TABLES = "meta"
FORMAT = "technic-bars/1"
DEFAULT_ROWS_PER_FILE = 400_000
UNIVERSE_COLUMNS = ("ticker", "name", "sector", "industry", "market_cap")
REFERENCE_EXTRA = ("active", "type", "exchange")  # kept when given; the scan reads none of them
FILE_ENTRY_KEYS = ("path", "tickers", "rows", "start", "end")  # of each manifest "files" entry
_REBUILD = "rebuild the store with 'technic import' or 'technic sync' into a new directory"

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


@dataclass(frozen=True)
class Generation:
    """One generation of a store, parsed once: its manifest, files and tickers, and (read on
    first use, then kept) its reference table. A scan takes one and every stage reads through
    it, so a scan that starts on a generation finishes on it while a writer moves on."""

    path: Path
    manifest: dict[str, Any] = field(repr=False, compare=False)

    @cached_property
    def files(self) -> tuple[StoreFile, ...]:
        return tuple(
            StoreFile(
                path=self.path / f["path"],
                tickers=tuple(f["tickers"]),
                rows=f["rows"],
                start=f["start"],
                end=f["end"],
            )
            for f in self.manifest["files"]
        )

    @cached_property
    def tickers(self) -> tuple[str, ...]:
        return tuple(t for f in self.files for t in f.tickers)

    @property
    def data_version(self) -> str:
        """Changes whenever the store's content changes (a new generation)."""
        return self.manifest["data_version"]

    @property
    def number(self) -> int:
        return int(self.manifest.get("generation", 0))

    @property
    def store_id(self) -> str | None:
        """The store's identity: made when the store is created (or replaced) and kept by
        every write that adds to it, so a model can say which universe it was trained on.
        None for a store written before identities existed (until its next write)."""
        return self.manifest.get("store_id")

    @property
    def first_date(self) -> pd.Timestamp | None:
        return min((pd.Timestamp(f.start) for f in self.files), default=None)

    @property
    def last_date(self) -> pd.Timestamp | None:
        return max((pd.Timestamp(f.end) for f in self.files), default=None)

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

    @cached_property
    def reference(self) -> pd.DataFrame:
        """The whole reference table as stored (every ticker it lists, ticker index)."""
        path = self.path / UNIVERSE
        if not path.is_file():
            return conform_universe(pd.DataFrame(columns=list(UNIVERSE_COLUMNS))).set_index(TICKER)
        return _read_universe(path).set_index(TICKER)

    @cached_property
    def universe(self) -> pd.DataFrame:
        """The reference table's scan columns, one row per ticker of the generation (unknown
        fields are NaN)."""
        known = self.reference[[c for c in UNIVERSE_COLUMNS[1:] if c in self.reference]]
        index = pd.Index(pd.array(self.tickers, dtype=TICKER_DTYPE), name=TICKER)
        frame = pd.DataFrame(index=index)
        return frame.join(known, how="left")

    def read(self, tickers: list[str] | None = None) -> pd.DataFrame:
        """All bars (or those of ``tickers``) as one pandas frame in the contract (ticker index)."""
        parts = [read_file(f.path, hit if tickers else None) for f, hit in self.select(tickers)]
        return pd.concat(parts) if parts else pd.DataFrame()

    def dates(self) -> pd.DatetimeIndex:
        """The distinct bar dates of the generation, sorted."""
        found = [
            pc.unique(_read_parquet(f.path, columns=[DATE]).column(DATE).combine_chunks())
            for f in self.files
        ]
        if not found:
            return pd.DatetimeIndex([], dtype=DATE_DTYPE)
        values = np.unique(np.concatenate([a.to_numpy() for a in found]))
        return pd.DatetimeIndex(values.astype(DATE_DTYPE))

    def table(self, name: str) -> pd.DataFrame | None:
        """The side table ``name`` of this generation, or None."""
        rel = self.manifest.get("tables", {}).get(name)
        return None if rel is None else _read_parquet(self.path / rel).to_pandas()


class BarStore:
    """A bar store directory. Open an existing one with :meth:`open`; create with :meth:`write`.

    Reads go through :meth:`current`, the generation committed now; the shortcuts below
    (``files``, ``tickers``, ``read``…) each look it up again, so code that reads several
    things from one generation takes one :class:`Generation` and keeps it."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path).expanduser()

    # -- reading ---------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> BarStore:
        """Open an existing store; raise :class:`StoreError` with the fix if there is none."""
        store = cls(path)
        if not store.exists():
            hint = "it is not a bar store" if store.path.exists() else "it does not exist"
            raise StoreError(
                f"no bar store at {store.path} ({hint}); create one with "
                f"'technic demo-data --store {store.path}' or 'technic import FILE --store "
                f"{store.path}'"
            )
        return store

    def exists(self) -> bool:
        """Whether a generation has been committed here."""
        return (self.path / MANIFEST).is_file()

    def current(self) -> Generation:
        """The generation committed now, its manifest parsed once."""
        try:
            manifest = json.loads((self.path / MANIFEST).read_text())
        except FileNotFoundError:
            raise StoreError(f"no bar store at {self.path}") from None
        except json.JSONDecodeError as exc:
            raise StoreError(f"corrupt store manifest {self.path / MANIFEST}: {exc}") from None
        return Generation(self.path, _checked_manifest(manifest, self.path / MANIFEST))

    @property
    def manifest(self) -> dict[str, Any]:
        return self.current().manifest

    @property
    def files(self) -> list[StoreFile]:
        return list(self.current().files)

    @property
    def tickers(self) -> list[str]:
        return list(self.current().tickers)

    @property
    def data_version(self) -> str:
        return self.current().data_version

    @property
    def store_id(self) -> str | None:
        return self.current().store_id

    def select(self, tickers: list[str] | None = None) -> list[tuple[StoreFile, tuple[str, ...]]]:
        return self.current().select(tickers)

    def universe(self) -> pd.DataFrame:
        return self.current().universe

    def reference(self) -> pd.DataFrame:
        if not self.exists():
            return conform_universe(pd.DataFrame(columns=list(UNIVERSE_COLUMNS))).set_index(TICKER)
        return self.current().reference

    def read(self, tickers: list[str] | None = None) -> pd.DataFrame:
        return self.current().read(tickers)

    def dates(self) -> pd.DatetimeIndex:
        """The distinct bar dates in the store, sorted (empty when there is no store)."""
        if not self.exists():
            return pd.DatetimeIndex([], dtype=DATE_DTYPE)
        return self.current().dates()

    def table(self, name: str) -> pd.DataFrame | None:
        return self.current().table(name) if self.exists() else None

    def write_universe(
        self, universe: pd.DataFrame, *, fill_only: tuple[str, ...] = ()
    ) -> pd.DataFrame:
        """Merge ``universe`` into the reference table (atomic rename) and return it.

        A value of ``universe`` replaces the stored one, except that missing values never erase
        a stored value and the columns named in ``fill_only`` only fill stored gaps.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        return self._write_universe(universe, merge=True, fill_only=fill_only)

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
        # merging keeps the side tables (the splits applied still describe the rows); a
        # replaced store starts without them
        self._swap_manifest(generation, entries, summary, carry=merge)
        return summary

    def update(
        self,
        bars: pd.DataFrame | None = None,
        *,
        rescale: Callable[[pd.DataFrame], tuple[pd.DataFrame, int]] | None = None,
        rescale_tickers: set[str] | frozenset[str] = frozenset(),
        tables: dict[str, pd.DataFrame] | None = None,
        meta: dict[str, Any] | None = None,
        sources: tuple[str, ...] = (),
        rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    ) -> WriteSummary:
        """Merge ``bars`` into the store, rewriting only the files they (or ``rescale``) touch.

        New rows win over stored rows with the same (ticker, date). A new ticker goes into the
        file whose ticker range it sorts into; a file that grows past twice ``rows_per_file``
        is split. ``rescale(frame) -> (frame, rows changed)`` is applied to the stored rows of
        every file holding one of ``rescale_tickers`` before the new rows join (split
        adjustments). ``tables`` replace side tables of the same name, ``meta`` is merged into
        the manifest's ``sync`` record; all of it becomes visible in one manifest swap.
        """
        new = _empty_long() if bars is None or bars.empty else conform_bars(bars, source="bars")
        new = new.sort_values([TICKER, DATE], kind="stable", ignore_index=True)
        exists = (self.path / MANIFEST).is_file()
        old_entries: list[dict[str, Any]] = self.manifest["files"] if exists else []
        firsts = np.array([e["tickers"][0] for e in old_entries], dtype=object)
        holder = {t: i for i, e in enumerate(old_entries) for t in e["tickers"]}
        n_slots = max(len(old_entries), 1)
        # the file each new row goes to: its ticker's file, else the one it sorts into
        new_tickers = new[TICKER].to_numpy(dtype=object)
        slot = np.searchsorted(firsts, new_tickers, side="right") - 1 if len(firsts) else None
        slot = np.zeros(len(new), dtype=np.int64) if slot is None else np.clip(slot, 0, None)
        touched = set(np.unique(slot).tolist()) if len(new) else set()
        touched |= {holder[t] for t in rescale_tickers if t in holder}
        starts = np.searchsorted(slot, np.arange(n_slots + 1)) if len(new) else None

        generation = self._next_generation()
        bar_dir = self.path / "bars"
        bar_dir.mkdir(parents=True, exist_ok=True)

        def merge_slot(i: int) -> tuple[list[dict[str, Any]], int, int, int]:
            part = new.iloc[starts[i] : starts[i + 1]] if starts is not None else new.iloc[:0]
            ours = rescale_tickers & set(old_entries[i]["tickers"]) if i < len(old_entries) else ()
            rescaled = 0
            if i >= len(old_entries):
                stored = _ARROW_SCHEMA.empty_table()
            elif rescale is not None and ours:
                frame, rescaled = rescale(read_file(self.path / old_entries[i]["path"]))
                stored = _to_arrow(frame.reset_index())
            else:
                stored = _read_table(self.path / old_entries[i]["path"])
            merged, replaced, dups = _merge_sorted(stored, _to_arrow(part))
            chunks = _split(merged, rows_per_file)
            names = [
                f"g{generation:06d}-{i:05d}" + (f"-{k}" if k else "") for k in range(len(chunks))
            ]
            out = [
                self._write_table(c, bar_dir / f"{n}.parquet")
                for c, n in zip(chunks, names, strict=True)
            ]
            return out, replaced, dups, rescaled

        order = sorted(touched)
        with ThreadPoolExecutor(max_workers=min(2, max(len(order), 1))) as pool:
            results = dict(zip(order, pool.map(merge_slot, order), strict=True))

        entries: list[dict[str, Any]] = []
        replaced = dups = rescaled = 0
        for i in range(n_slots):
            if i not in results:
                if i < len(old_entries):
                    entries.append(old_entries[i])
                continue
            written_entries, r, d, a = results[i]
            replaced, dups, rescaled = replaced + r, dups + d, rescaled + a
            entries.extend(written_entries)
        written = {}
        for name, frame in (tables or {}).items():
            rel = f"{TABLES}/g{generation:06d}-{name}.parquet"
            (self.path / TABLES).mkdir(parents=True, exist_ok=True)
            _atomic_parquet(pa.Table.from_pandas(frame, preserve_index=False), self.path / rel)
            written[name] = rel
        summary = WriteSummary(
            rows=sum(e["rows"] for e in entries),
            tickers=sum(len(e["tickers"]) for e in entries),
            files=len(entries),
            rows_replaced=replaced,
            duplicate_dates=dups,
            sources=sources,
            extra={"rows_added": len(new) - replaced - dups, "rows_rescaled": rescaled},
        )
        self._swap_manifest(generation, entries, summary, tables=written, meta=meta)
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
            entries.append(self._write_table(_to_arrow(chunk), bar_dir / name))
            lo = hi
        return entries

    @staticmethod
    def _write_table(table: pa.Table, path: Path) -> dict[str, Any]:
        """Write one file of sorted, whole tickers; return its manifest entry."""
        _atomic_parquet(table, path)
        tickers = table.column(TICKER).combine_chunks()
        changed = pc.not_equal(tickers[1:], tickers[:-1]).to_numpy(zero_copy_only=False)
        first = np.r_[0, np.flatnonzero(changed) + 1]
        span = pc.min_max(table.column(DATE))
        return {
            "path": f"bars/{path.name}",
            "tickers": tickers.take(pa.array(first)).to_pylist(),
            "rows": table.num_rows,
            "start": str(span["min"].as_py().date()),
            "end": str(span["max"].as_py().date()),
        }

    def _write_universe(
        self, universe: pd.DataFrame, *, merge: bool, fill_only: tuple[str, ...] = ()
    ) -> pd.DataFrame:
        new = conform_universe(universe)
        path = self.path / UNIVERSE
        if merge and path.is_file():
            old = conform_universe(_read_universe(path)).set_index(TICKER)
            new = new.set_index(TICKER)
            for col in fill_only:
                if col in new and col in old:
                    stored = old[col].reindex(new.index)
                    new[col] = stored.where(stored.notna(), new[col])
            # column by column: a new value wins, a missing one keeps the stored value
            new = new.combine_first(old).reset_index()
            new = conform_universe(new)
        new = new.sort_values(TICKER, ignore_index=True)
        _atomic_parquet(pa.Table.from_pandas(new, preserve_index=False), path)
        return new

    def _swap_manifest(
        self,
        generation: int,
        entries: list[dict[str, Any]],
        summary: WriteSummary,
        *,
        carry: bool = True,
        tables: dict[str, str] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        digest = hashlib.sha256(
            json.dumps(
                [[(e["path"], e["rows"], e["tickers"]) for e in entries], tables or {}]
            ).encode()
        ).hexdigest()[:16]
        previous = self.manifest if (self.path / MANIFEST).is_file() else None
        kept = previous if carry and previous is not None else {}
        manifest = {
            "format": FORMAT,
            "store_id": kept.get("store_id") or uuid.uuid4().hex,
            "generation": generation,
            "data_version": f"g{generation}-{digest}",
            "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "rows": summary.rows,
            "tickers": summary.tickers,
            "last_write": summary.as_dict(),
            "files": entries,
        }
        all_tables = {**kept.get("tables", {}), **(tables or {})}
        if all_tables:
            manifest["tables"] = all_tables
        sync = {**kept.get("sync", {}), **(meta or {})}
        if sync:
            manifest["sync"] = sync
        tmp = self.path / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, self.path / MANIFEST)
        keep = {e["path"] for e in entries} | set(all_tables.values())
        if previous is not None:
            keep |= {f["path"] for f in previous["files"]}
            keep |= set(previous.get("tables", {}).values())
        for folder in ("bars", TABLES):
            for stale in (self.path / folder).glob("g*.parquet"):
                if f"{folder}/{stale.name}" not in keep:
                    stale.unlink(missing_ok=True)


def parquet_filters(
    tickers: tuple[str, ...] | None = None,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> list[tuple[str, str, Any]] | None:
    """Parquet row filters (pyarrow's and cuDF's format) for tickers and a date range."""
    filters: list[tuple[str, str, Any]] = []
    if tickers is not None:
        filters.append((TICKER, "in", list(tickers)))
    if start is not None:
        filters.append((DATE, ">=", pd.Timestamp(start)))
    if end is not None:
        filters.append((DATE, "<=", pd.Timestamp(end)))
    return filters or None


def read_file(
    path: Path,
    tickers: tuple[str, ...] | None = None,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Read one store file into a bars frame (ticker index), optionally filtered."""
    frame = _read_parquet(path, filters=parquet_filters(tickers, start, end)).to_pandas()
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
    for col in REFERENCE_EXTRA:
        if col == "active" and col in df:
            out[col] = _flags(df[col])
        elif col in df:
            out[col] = df[col].astype(TICKER_DTYPE)
    out = out.drop_duplicates(TICKER, keep="last")
    return out


def _flags(values: pd.Series) -> pd.Series:
    """Booleans from bools, 0/1 or yes/no/true/false strings; anything else is missing."""
    if values.dtype == "boolean" or values.dtype == bool:
        return values.astype("boolean")
    text = values.astype("string").str.strip().str.lower()
    truth = {"true": True, "1": True, "1.0": True, "yes": True, "y": True}
    truth |= {"false": False, "0": False, "0.0": False, "no": False, "n": False}
    return text.map(truth).astype("boolean")


def _empty_long() -> pd.DataFrame:
    """Zero bars in the long layout (ticker column)."""
    return empty_bars().reset_index()


def _to_arrow(bars: pd.DataFrame) -> pa.Table:
    """Long bars (ticker column) as an Arrow table of the store's schema."""
    return pa.Table.from_pandas(bars, schema=_ARROW_SCHEMA, preserve_index=False)


def _read_table(path: Path) -> pa.Table:
    return _read_parquet(path).cast(_ARROW_SCHEMA)


def _read_parquet(path: Path, **options: Any) -> pa.Table:
    """One Parquet file of the store, its page checksums verified. Files written before the
    store wrote checksums have none, and read as before."""
    try:
        return pq.read_table(path, page_checksum_verification=True, **options)
    except FileNotFoundError:
        raise StoreError(
            f"store file {path} is missing though {MANIFEST} lists it; restore it or {_REBUILD}"
        ) from None
    except (OSError, pa.ArrowInvalid) as exc:
        raise StoreError(
            f"store file {path} is damaged ({_first_line(exc)}); restore it or {_REBUILD}"
        ) from None


def _read_universe(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path, page_checksum_verification=True)
    except (OSError, pa.ArrowInvalid) as exc:
        raise StoreError(
            f"reference table {path} is damaged ({_first_line(exc)}); delete it and import the "
            "reference table again ('technic import FILE --universe TABLE')"
        ) from None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _checked_manifest(manifest: Any, path: Path) -> dict[str, Any]:
    """``manifest`` when it has what readers rely on, else a StoreError saying what it lacks."""
    problem = None
    if not isinstance(manifest, dict):
        problem = "it is not a JSON object"
    elif not isinstance(manifest.get("files"), list):
        problem = "it has no 'files' list"
    elif "data_version" not in manifest:
        problem = "it has no 'data_version'"
    else:
        for i, entry in enumerate(manifest["files"]):
            lacking = [k for k in FILE_ENTRY_KEYS if not isinstance(entry, dict) or k not in entry]
            if lacking:
                problem = f"file entry {i} has no {', '.join(map(repr, lacking))}"
                break
    if problem is not None:
        raise StoreError(f"corrupt store manifest {path}: {problem}; restore it or {_REBUILD}")
    return manifest


def _merge_sorted(stored: pa.Table, new: pa.Table) -> tuple[pa.Table, int, int]:
    """Sorted bars of ``stored`` and ``new``: a new row wins over a stored one with its
    (ticker, date) key, and among new rows the last wins. Returns (bars, replaced, dups).

    Arrow and NumPy throughout (a lexsort on integer ticker ranks and dates): a one-day merge
    into a 400k-row file costs tens of milliseconds, not the seconds of a pandas string sort.
    """
    if new.num_rows == 0:
        return stored, 0, 0
    both = pa.concat_tables([stored, new]).combine_chunks()
    encoded = both.column(TICKER).chunk(0).dictionary_encode() if both.num_rows else None
    rank = np.empty(len(encoded.dictionary), dtype=np.int64)
    rank[pc.sort_indices(encoded.dictionary).to_numpy()] = np.arange(len(rank))
    code = rank[encoded.indices.to_numpy()]
    date = both.column(DATE).chunk(0).cast(pa.int64()).to_numpy()
    order = np.lexsort((np.arange(len(code)), date, code))
    code, date = code[order], date[order]
    last = np.r_[(code[1:] != code[:-1]) | (date[1:] != date[:-1]), True]
    is_new = order >= stored.num_rows
    replaced = int((~last & ~is_new).sum())
    dups = int((~last & is_new).sum())
    keep = order[last]
    if np.array_equal(keep, np.arange(both.num_rows)):
        return both, replaced, dups
    return both.take(pa.array(keep)), replaced, dups


def _split(bars: pa.Table, rows_per_file: int) -> list[pa.Table]:
    """One file's bars, split at ticker boundaries once it holds over twice ``rows_per_file``."""
    n = bars.num_rows
    if n <= 2 * rows_per_file:
        return [bars] if n else []
    tickers = bars.column(TICKER).combine_chunks()
    changed = pc.not_equal(tickers[1:], tickers[:-1]).to_numpy(zero_copy_only=False)
    starts = np.r_[0, np.flatnonzero(changed) + 1]
    parts = -(-n // rows_per_file)
    target = np.arange(1, parts) * (n / parts)
    cuts = np.unique(starts[np.clip(np.searchsorted(starts, target), 0, len(starts) - 1)])
    bounds = np.r_[0, cuts[cuts > 0], n]
    return [bars.slice(a, b - a) for a, b in itertools.pairwise(bounds) if b > a]


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    # Snappy: prices barely compress, and it decodes ~40% faster than zstd here. Dictionary
    # pages only where values repeat (tickers, dates): on random-walk float columns they only
    # cost time (a 400k-row bar file writes in ~85 ms instead of ~400 ms, reads ~35% faster
    # and comes out ~20% smaller).
    repeats = [TICKER, DATE] if DATE in table.column_names else True
    pq.write_table(
        table,
        tmp,
        compression="snappy",
        row_group_size=65_536,
        use_dictionary=repeats,
        write_page_checksum=True,  # readers verify them: a damaged page fails, not scans
    )
    os.replace(tmp, path)
