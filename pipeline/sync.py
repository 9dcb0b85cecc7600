"""``technic sync``: fill a bar store from Polygon, one grouped-daily request per trading day.

A sync covers the NYSE sessions from ``since`` to ``until`` (default: the newest finished
session). It asks only for sessions that have no bar in the store yet, so the first run is a
backfill (``--years``, default ``TECHNIC_SYNC_YEARS``), later runs are incremental, and a run
that finds nothing missing fetches no day at all.

Resumable and idempotent: fetched days are written in batches of ``TECHNIC_SYNC_BATCH_DAYS``
through :meth:`BarStore.update`, each batch one atomic manifest swap. A sync killed at any
point leaves the store as of its last completed batch; the rerun asks again for exactly the
days that are still missing, and a (ticker, date) key never appears twice. A day that comes
back empty (data not published yet, or an unscheduled closure) or malformed after every retry
is not written and is asked for again by the next sync.

Splits are fetched for the whole span of the store and recorded in the store's
``adjustments`` table in the same write that applies them (see :mod:`pipeline.adjustments`).
The ticker reference list refreshes the universe table (name, type, exchange, active flag);
``--details`` also fetches market cap and SIC sector/industry for tickers that lack them.
Tickers whose known Polygon type is not in ``TECHNIC_SYNC_TYPES`` are not stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

from pipeline import adjustments
from pipeline.cache import BarCache
from pipeline.config import Settings
from pipeline.errors import ConfigError, ProviderAuthError, ProviderError, StoreError
from pipeline.schema import TICKER
from pipeline.sources.polygon import PolygonClient
from pipeline.storage import Location
from pipeline.store import BarStore
from pipeline.trading_calendar import last_finished_session, sessions

log = logging.getLogger(__name__)

LOCK = ".sync.lock"
Progress = Callable[[str, int, int], None]
STAGES = ("fetch", "write", "details")


@dataclass
class SyncSummary:
    """What one sync did; :meth:`lines` is what the CLI prints."""

    store: str
    since: date
    until: date
    sessions: int = 0
    days_missing: int = 0
    days_written: list[date] = field(default_factory=list)
    days_empty: list[date] = field(default_factory=list)
    days_failed: dict[date, str] = field(default_factory=dict)
    tickers_added: list[str] = field(default_factory=list)
    tickers_delisted: list[str] = field(default_factory=list)
    tickers_skipped: int = 0
    rows_written: int = 0
    splits_applied: int = 0
    rows_adjusted: int = 0
    details: int = 0
    store_rows: int = 0
    store_tickers: int = 0
    requests: int = 0
    requests_by_kind: dict[str, int] = field(default_factory=dict)
    cache_hits: int = 0
    retries: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The human summary: what was fetched and written, then anything left to do."""
        fetched = len(self.days_written) + len(self.days_empty)
        out = [
            f"Synced {self.since} … {self.until} ({self.sessions} sessions) into {self.store}: "
            f"{len(self.days_written)} of {self.days_missing} missing days written, "
            f"{self.rows_written:,} rows, {len(self.tickers_added):,} tickers added, "
            f"{len(self.tickers_delisted):,} delisted, {self.splits_applied} splits applied "
            f"({self.rows_adjusted:,} rows adjusted)",
            f"Store: {self.store_rows:,} rows, {self.store_tickers:,} tickers. Provider: "
            f"{self.requests:,} requests, {self.cache_hits:,} from cache, {self.retries:,} "
            f"retries; {fetched} days fetched in {self.seconds:.1f} s",
        ]
        if self.tickers_skipped:
            out.append(
                f"Skipped {self.tickers_skipped:,} tickers of other types (TECHNIC_SYNC_TYPES)"
            )
        if self.days_empty:
            out.append(
                f"No bars yet for {len(self.days_empty)} session(s) "
                f"({_preview(self.days_empty)}); the next sync asks again"
            )
        out.extend(self.notes)
        return out

    @property
    def failed(self) -> ProviderError | None:
        """The error to end with when days could not be fetched, else None."""
        if not self.days_failed:
            return None
        day, reason = next(iter(sorted(self.days_failed.items())))
        return ProviderError(
            f"{len(self.days_failed)} day(s) could not be fetched and were not written "
            f"(first: {day}: {reason}); rerun 'technic sync' to fetch them"
        )


def _preview(days: list[date], limit: int = 5) -> str:
    shown = ", ".join(str(d) for d in days[:limit])
    return shown + (f", … ({len(days) - limit} more)" if len(days) > limit else "")


def resolve_range(
    stored: pd.DatetimeIndex,
    *,
    since: date | None,
    until: date | None,
    years: int | None,
    settings: Settings,
    now: datetime | None = None,
) -> tuple[date, date]:
    """The sessions a sync covers: explicit dates, else ``years`` back from ``until``, else
    from the store's first bar (``stored``: its dates) or ``TECHNIC_SYNC_YEARS`` back for a
    new store."""
    if since is not None and years is not None:
        raise ConfigError("give either --since or --years, not both")
    newest = last_finished_session(now)
    today = (now or datetime.now(UTC)).date()
    if until is not None and until > today:
        raise ConfigError(
            f"--until {until} is in the future; the newest finished session is {newest}"
        )
    end = min(until, newest) if until is not None else newest
    if since is None:
        if years is None and len(stored):
            since = stored[0].date()
        else:
            back = years if years is not None else settings.sync_years
            since = (pd.Timestamp(end) - pd.DateOffset(years=back) + pd.Timedelta(days=1)).date()
    if since > end:
        raise ConfigError(f"--since {since} is after the last session to sync ({end})")
    return since, end


@contextlib.contextmanager
def _lock(location: Location) -> Iterator[None]:
    """One sync per local store at a time (an OS lock: released even if the process is
    killed). A bucket has no such lock: there the commit protocol keeps concurrent writers
    apart (see :mod:`pipeline.store`)."""
    import fcntl

    if not location.local:
        yield
        return
    path = Path(location.url)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / LOCK, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"another 'technic sync' is writing to {path}; wait for it") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _allowed_types(settings: Settings) -> set[str]:
    return {t.strip().upper() for t in settings.sync_types.split(",") if t.strip()}


def _excluded(types: pd.Series, settings: Settings) -> set[str]:
    """Tickers whose known type is not kept (the benchmark always is)."""
    allowed = _allowed_types(settings)
    known = types.dropna().astype(str).str.upper()
    out = set(known.index[~known.isin(allowed)])
    out.discard(settings.benchmark.upper())
    return out


async def run(
    path: str | os.PathLike[str],
    *,
    settings: Settings,
    since: date | None = None,
    until: date | None = None,
    years: int | None = None,
    details: bool = False,
    client: PolygonClient | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> SyncSummary:
    """Sync the store at ``path`` (see the module docstring); returns the summary.

    Raises :class:`ProviderAuthError` when the key is refused, :class:`ConfigError` for a bad
    range or a missing key. Days that fail after their retries are in ``days_failed``.
    """
    started = time.perf_counter()
    report = progress or (lambda stage, done, total: None)
    store = BarStore(path)
    if client is None:
        client = PolygonClient.from_settings(settings, BarCache.from_settings(settings))
    with _lock(store.location):
        base = store.current() if store.exists() else None
        existed = base is not None and bool(base.files)
        stored_dates = base.dates() if base is not None else pd.DatetimeIndex([])
        first, last = resolve_range(
            stored_dates, since=since, until=until, years=years, settings=settings, now=now
        )
        days = sessions(first, last)
        present = {d.date() for d in stored_dates}
        missing = [d for d in days if d not in present]
        summary = SyncSummary(store.url, first, last, len(days), len(missing))
        before = set(base.tickers) if base is not None else set()
        reference_before = base.reference if base is not None else store.reference()
        recorded = base.table(adjustments.NAME) if base is not None else None
        recorded = adjustments.empty() if recorded is None else adjustments.conform(recorded)
        applied_at = datetime.now(UTC).isoformat(timespec="seconds")

        async with client:
            reference = await _reference(client, summary)
            types = (
                reference.set_index(TICKER)["type"]
                if reference is not None
                else reference_before.get("type", pd.Series(dtype=object))
            )
            excluded = _excluded(types, settings)
            span_start = min(first, stored_dates[0].date()) if len(stored_dates) else first
            fetched = adjustments.conform(await client.splits(span_start, last), applied_at)
            fetched = fetched[fetched["execution_date"] <= pd.Timestamp(last)]
            pending = adjustments.new_splits(recorded, fetched)
            known = adjustments.conform(pd.concat([recorded, pending], ignore_index=True))
            summary.splits_applied = len(pending)
            meta = {"provider": "polygon", "last_sync": applied_at, "until": f"{last}"}

            def write(bars: pd.DataFrame | None, first_write: bool) -> None:
                adjusted, changed = (
                    adjustments.apply(bars, known) if bars is not None else (None, 0)
                )
                rescale_new = first_write and not pending.empty
                result = store.update(
                    adjusted,
                    rescale=(lambda frame: adjustments.apply(frame, pending))
                    if rescale_new
                    else None,
                    rescale_tickers=set(pending[TICKER]) if rescale_new else set(),
                    tables={adjustments.NAME: known}
                    if first_write and (rescale_new or not existed)
                    else None,
                    meta=meta,
                    sources=("polygon grouped daily",),
                )
                summary.rows_written += result.extra["rows_added"] + result.rows_replaced
                summary.rows_adjusted += changed + result.extra["rows_rescaled"]

            wrote = await _fetch_and_write(
                client, missing, excluded, settings, summary, write, report
            )
            if not wrote and not pending.empty and existed:
                await asyncio.to_thread(write, None, True)  # new splits, no new day

            if existed or wrote:
                await _update_universe(
                    store, client, reference, reference_before, details, summary, report
                )

        if store.exists():
            after = store.current()
            summary.store_rows = after.manifest["rows"]
            summary.store_tickers = after.manifest["tickers"]
            summary.tickers_added = sorted(set(after.tickers) - before)
        summary.requests = client.stats.requests
        summary.requests_by_kind = dict(client.stats.by_kind)
        summary.cache_hits = client.stats.cache_hits
        summary.retries = client.stats.retries
        summary.seconds = time.perf_counter() - started
        return summary


async def _reference(client: PolygonClient, summary: SyncSummary) -> pd.DataFrame | None:
    """The active ticker list, or None (with a note) when it cannot be fetched."""
    try:
        return await client.tickers(active=True)
    except ProviderAuthError:
        raise
    except ProviderError as exc:
        summary.notes.append(f"Ticker reference not refreshed: {exc}")
        log.warning("ticker reference not refreshed: %s", exc)
        return None


async def _fetch_and_write(
    client: PolygonClient,
    missing: list[date],
    excluded: set[str],
    settings: Settings,
    summary: SyncSummary,
    write: Callable[[pd.DataFrame | None, bool], None],
    report: Progress,
) -> bool:
    """Fetch ``missing`` days batch by batch (the next batch downloads while one is written);
    returns whether anything was written."""
    size = settings.sync_batch_days
    batches = [missing[i : i + size] for i in range(0, len(missing), size)]
    done = 0
    report("fetch", 0, len(missing))
    report("write", 0, len(batches))

    async def fetch_day(day: date) -> pd.DataFrame | None:
        nonlocal done
        try:
            frame = await client.grouped_daily(day)
        except ProviderAuthError:
            raise
        except ProviderError as exc:
            summary.days_failed[day] = str(exc)
            log.warning("%s", exc)
            frame = None
        done += 1
        report("fetch", done, len(missing))
        return frame

    async def fetch_batch(batch: list[date]) -> list[pd.DataFrame | None]:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(fetch_day(d)) for d in batch]
        return [t.result() for t in tasks]

    wrote = False
    ahead: asyncio.Task | None = None
    try:
        ahead = asyncio.create_task(fetch_batch(batches[0])) if batches else None
        for i, batch in enumerate(batches):
            assert ahead is not None
            frames = await _unwrap(ahead)
            ahead = (
                asyncio.create_task(fetch_batch(batches[i + 1])) if i + 1 < len(batches) else None
            )
            full = []
            for day, frame in zip(batch, frames, strict=True):
                if frame is None:
                    continue
                if frame.empty:
                    summary.days_empty.append(day)
                    continue
                summary.days_written.append(day)
                full.append(frame)
            if full:
                bars = pd.concat(full)
                keep = ~bars.index.isin(list(excluded)) if excluded else None
                if keep is not None:
                    summary.tickers_skipped = max(
                        summary.tickers_skipped, int(bars.index[~keep].nunique())
                    )
                    bars = bars[keep]
                await asyncio.to_thread(write, bars, not wrote)
                wrote = True
            report("write", i + 1, len(batches))
    finally:
        if ahead is not None and not ahead.done():
            ahead.cancel()
            with contextlib.suppress(BaseException):
                await ahead
    return wrote


async def _unwrap(task: asyncio.Task):
    """The task's result; a TaskGroup's auth error comes out as itself, not as a group."""
    try:
        return await task
    except BaseExceptionGroup as group:
        auth = group.subgroup(ProviderAuthError)
        if auth is not None:
            raise auth.exceptions[0] from None
        raise group.exceptions[0] from None


async def _update_universe(
    store: BarStore,
    client: PolygonClient,
    reference: pd.DataFrame | None,
    before: pd.DataFrame,
    details: bool,
    summary: SyncSummary,
    report: Progress,
) -> None:
    """Refresh the universe table: active flags from the reference list, details on demand."""
    if not store.exists():
        return
    tickers = pd.Index(store.current().tickers)
    if reference is not None:
        listed = reference.set_index(TICKER)
        active = tickers.isin(listed.index)
        was = before.get("active", pd.Series(pd.NA, index=before.index, dtype="boolean"))
        was_inactive = was.reindex(tickers).astype("boolean").eq(False).fillna(False)
        summary.tickers_delisted = sorted(tickers[~active & ~was_inactive.to_numpy()])
        gone = pd.DataFrame({TICKER: tickers[~active], "active": False})
        rows = pd.concat([listed.reset_index(), gone], ignore_index=True)
        store.write_universe(rows, fill_only=("name",))
    if details:
        await _details(store, client, summary, report)


async def _details(
    store: BarStore, client: PolygonClient, summary: SyncSummary, report: Progress
) -> None:
    generation = store.current()
    universe = generation.reference.reindex(list(generation.tickers))
    lacking = universe.index[universe["market_cap"].isna() | universe["sector"].isna()]
    if "active" in universe:
        lacking = lacking[universe.loc[lacking, "active"].fillna(True).to_numpy(dtype=bool)]
    done = 0
    report("details", 0, len(lacking))

    async def one(ticker: str) -> dict | None:
        nonlocal done
        try:
            return await client.ticker_details(ticker)
        except ProviderAuthError:
            raise
        except ProviderError as exc:
            log.warning("%s", exc)
            return None
        finally:
            done += 1
            report("details", done, len(lacking))

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(t)) for t in lacking]
    found = [t.result() for t in tasks if t.result() is not None]
    if found:
        store.write_universe(pd.DataFrame(found), fill_only=("name", "sector", "industry"))
    summary.details = len(found)


def sync(path: str | os.PathLike[str], **kwargs) -> SyncSummary:
    """:func:`run` from synchronous code."""
    return asyncio.run(run(path, **kwargs))
