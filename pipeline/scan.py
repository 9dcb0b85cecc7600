"""The scan: bar store → partitions → features at the latest bar → scores → snapshot.

Stages (each timed, each reporting partitions done to an optional progress callback):

``read``           the store's files into partitions (persisted on the workers; cuDF frames
                   in GPU memory on the cuda cluster where cuDF is installed), plus the
                   benchmark's closes; without a cluster (TECHNIC_CLUSTER=threads or
                   sync) the files are only planned here and read by the next stage
``indicators``     ``map_partitions(latest_features)``: hygiene, indicators, features and
                   signals per partition; only one row per ticker comes back. Without a
                   cluster, the same function is mapped over the files on a thread per core
                   (or one after another for sync) in this process: no task graph, and no
                   ``dask.dataframe`` or ``distributed`` import for a one-shot command
``alpha``          the ML model: the newest compatible one in TECHNIC_MODELS_DIR trained on
                   this store's universe (or the one TECHNIC_ALPHA_MODEL names) is looked
                   up before ``indicators``, whose tasks also compute its features at each
                   ticker's latest bar and score them (``inplace_predict``), so only one raw
                   score per ticker comes back; the snapshot's ``model`` entry names it. With
                   no model (or TECHNIC_USE_ML_ALPHA=0) AlphaScore and win_prob_10d are null,
                   the blend weight is 0 and ``model.reason`` says why
``cross_section``  statuses, scores, ranks, filters and the snapshot document (pandas on the
                   small cross-section)
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline import cudf_frame, features, hygiene, redis_conn, scoring, snapshots, universe_rules
from pipeline.backtest import scoreboard
from pipeline.cache import BarCache, count_outcomes
from pipeline.config import Settings, TradeStyle, get_settings
from pipeline.errors import ConfigError, StoreError
from pipeline.frame import BarReads, load_bars, plan_reads
from pipeline.schema import DATE, parse_day
from pipeline.segments import Benchmark
from pipeline.snapshots.document import Snapshot
from pipeline.storage import Location
from pipeline.store import BarStore, Generation
from pipeline.vocabulary import TRADE_STYLES, match_sectors

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
STAGES = ("read", "indicators", "alpha", "cross_section")


@dataclass
class ScanResult(Snapshot):
    """A finished scan: its snapshot (the ranked table and the document), per-stage timings,
    the hygiene counts and each ticker's status."""

    timings: dict[str, float]
    hygiene: dict[str, int]
    statuses: pd.Series = field(repr=False)


@dataclass(frozen=True)
class ScanRequest:
    """Validated scan options: :func:`prepare` builds one, :func:`execute` runs it."""

    store: str
    generation: Generation = field(repr=False, compare=False)
    tickers: list[str] | None
    sectors: set[str] | None
    min_price: float | None
    min_dollar_volume: float | None
    as_of: pd.Timestamp | None
    account_size: float
    risk_pct: float
    trade_style: TradeStyle

    def filters(self) -> dict[str, Any]:
        return {
            "tickers": self.tickers,
            "sectors": sorted(self.sectors) if self.sectors else None,
            "min_price": self.min_price,
            "min_dollar_volume": self.min_dollar_volume,
        }


def prepare(
    store: str | os.PathLike[str] | None = None,
    *,
    tickers: list[str] | None = None,
    sectors: list[str] | None = None,
    min_price: float | None = None,
    min_dollar_volume: float | None = None,
    as_of: str | pd.Timestamp | None = None,
    account_size: float | None = None,
    risk_pct: float | None = None,
    trade_style: str | None = None,
    settings: Settings | None = None,
) -> ScanRequest:
    """Check every option against the settings and the store; a bad one raises a one-line
    :class:`TechnicError` (unknown ticker or sector, bad date, missing store…)."""
    settings = settings or get_settings()
    path = Location.parse(store).url if store is not None else settings.store_url
    style = TRADE_STYLES.parse(trade_style) if trade_style else settings.trade_style
    account = account_size if account_size is not None else settings.account_size
    risk = risk_pct if risk_pct is not None else settings.risk_pct
    if not (math.isfinite(account) and account > 0) or not 0 < risk <= 100:
        raise ConfigError(
            f"account size must be a finite number > 0 (got {account!r}) and risk % within "
            f"(0, 100] (got {risk!r})"
        )
    for name, value in (("min price", min_price), ("min dollar volume", min_dollar_volume)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    generation = BarStore.open(path).current()
    if tickers is not None:
        if not tickers:
            raise ConfigError("the ticker list is empty; leave it out to scan every ticker")
        tickers = [t.strip().upper() for t in tickers]
        generation.select(tickers)  # raises UnknownTickerError
    return ScanRequest(
        store=path,
        generation=generation,
        tickers=tickers,
        sectors=_sectors(sectors, generation),
        min_price=min_price,
        min_dollar_volume=min_dollar_volume,
        as_of=_session(generation, None if as_of is None else parse_day(as_of, "date")),
        account_size=float(account),
        risk_pct=float(risk),
        trade_style=style,
    )


def run_scan(
    store: str | os.PathLike[str] | None = None,
    *,
    tickers: list[str] | None = None,
    sectors: list[str] | None = None,
    min_price: float | None = None,
    min_dollar_volume: float | None = None,
    as_of: str | pd.Timestamp | None = None,
    account_size: float | None = None,
    risk_pct: float | None = None,
    trade_style: TradeStyle | None = None,
    client: Client | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> ScanResult:
    """Scan the store and return the ranked table, snapshot document and timings.

    ``client`` runs the partitions on a Dask cluster; without one, the scan uses the current
    default distributed client if there is one (unless TECHNIC_CLUSTER is threads or sync),
    else a thread per core in this process. Scores are computed over every ticker read
    (``tickers`` narrows that); ``sectors``, ``min_price`` and ``min_dollar_volume`` then
    filter the ranked rows.
    ``as_of`` scans a past date using only bars up to it.
    """
    settings = settings or get_settings()
    request = prepare(
        store,
        tickers=tickers,
        sectors=sectors,
        min_price=min_price,
        min_dollar_volume=min_dollar_volume,
        as_of=as_of,
        account_size=account_size,
        risk_pct=risk_pct,
        trade_style=trade_style,
        settings=settings,
    )
    return execute(request, client=client, settings=settings, progress=progress)


def execute(
    request: ScanRequest,
    *,
    client: Client | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> ScanResult:
    """Run a prepared scan (see :func:`run_scan`)."""
    settings = settings or get_settings()
    if client is None and settings.effective_cluster not in ("sync", "threads"):
        client = _default_client()
    report = progress or (lambda stage, done, total: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()

    tic = time.perf_counter()
    inputs = _read(request, settings, client, report)
    timings["read"] = time.perf_counter() - tic

    # the model is looked up first: the indicators stage computes its features
    tic = time.perf_counter()
    model, alpha_reason = alpha_model(settings, inputs.store)
    alpha_lookup = time.perf_counter() - tic

    tic = time.perf_counter()
    latest, reads = _indicators(inputs, model, client, settings, report)
    timings["indicators"] = time.perf_counter() - tic

    tic = time.perf_counter()
    alpha_info = model_entry(model, alpha_reason, settings, inputs.store)
    report("alpha", 1, 1)
    timings["alpha"] = alpha_lookup + time.perf_counter() - tic

    tic = time.perf_counter()
    with no_cycle_collection():
        table, statuses, meta = cross_section(
            request,
            inputs.store,
            inputs.benchmark,
            latest,
            model,
            alpha_info["alpha_weight"],
            settings,
        )
        counts = meta["hygiene"]
        meta.update(
            timings=timings,
            model=alpha_info,
            cache={"bars": {**reads, "ttl": inputs.cache.ttl if inputs.cache is not None else 0}},
        )
        document = snapshots.build(table, meta)
    report("cross_section", 1, 1)
    timings["cross_section"] = time.perf_counter() - tic
    timings["total"] = time.perf_counter() - started
    timings.update({k: round(v, 4) for k, v in timings.items()})
    document["log"] = snapshots.status_line(meta)
    _log_scan(meta["universe_size"], timings, reads, inputs, client)
    return ScanResult(
        table=table, snapshot=document, timings=timings, hygiene=counts, statuses=statuses
    )


@dataclass(frozen=True)
class _Inputs:
    """What the read stage found: the store's generation, the benchmark, the partitions."""

    store: Generation
    cache: BarCache | None
    benchmark: Benchmark | None
    device: str
    bars: dd.DataFrame | BarReads  # persisted on the workers with a client; planned without


def _read(
    request: ScanRequest, settings: Settings, client: Client | None, report: Progress
) -> _Inputs:
    generation = request.generation
    bar_cache = _bar_cache(settings, generation)
    device = scan_device(settings) if client is not None else "cpu"
    bars: dd.DataFrame | BarReads
    if client is not None:
        frame = load_bars(
            generation,
            tickers=request.tickers,
            end=request.as_of,
            cache=bar_cache,
            backend="cudf" if device == "cuda" and cudf_frame.available() else "pandas",
        )
        bars = client.persist(frame)
        from distributed import futures_of

        _wait(futures_of(bars), "read", report)
    else:  # no cluster: the indicators stage reads the files (see the module docstring)
        bars = plan_reads(generation, tickers=request.tickers, end=request.as_of, cache=bar_cache)
    return _Inputs(
        store=generation,
        cache=bar_cache,
        benchmark=read_benchmark(generation, settings.benchmark, request.as_of, bar_cache),
        device=device,
        bars=bars,
    )


def _indicators(
    inputs: _Inputs, model: Any, client: Client | None, settings: Settings, report: Progress
) -> tuple[pd.DataFrame, dict[str, int]]:
    """``map_partitions(latest_features)``: one row per ticker (with the model's raw score
    when there is a model), and how the partitions' bars were read."""
    meta, extra = features.empty(), {}
    if model is not None:
        from pipeline.alpha.inference import COLUMNS, LatestAlpha

        meta = meta.assign(**{c: pd.Series([], dtype=t) for c, t in COLUMNS.items()})
        extra = {"extra": LatestAlpha.of(model), "extra_columns": tuple(COLUMNS)}
    if isinstance(inputs.bars, BarReads):
        latest = functools.partial(
            features.latest_features, benchmark=inputs.benchmark, device=inputs.device, **extra
        )
        sync = settings.effective_cluster == "sync"
        return _map_locally(inputs.bars, latest, sync, report)
    latest_frame = inputs.bars.map_partitions(
        features.latest_features,
        benchmark=inputs.benchmark,
        meta=meta,
        device=inputs.device,
        **extra,
    )
    return _gather(latest_frame, client, report)


def model_entry(model: Any, reason: str, settings: Settings, store: Generation) -> dict[str, Any]:
    """The snapshot's ``model`` entry (``named``: chosen by TECHNIC_ALPHA_MODEL). Its
    ``alpha_weight`` is the composite's AlphaScore weight: TECHNIC_ALPHA_WEIGHT when the model's
    card shows out-of-sample skill on this store, else 0 and ``reason`` says why."""
    if model is None:
        return {"alpha": None, "alpha_weight": 0.0, "reason": reason}
    from pipeline.alpha import artifact

    unskilled = model.unskilled(artifact.StoreIdentity(store.store_id, store.url))
    return {
        "alpha": model.version,
        "alpha_weight": settings.alpha_weight if unskilled is None else 0.0,
        "reason": None if unskilled is None else f"{unskilled}: AlphaScore is shown, not blended",
        "named": bool(settings.alpha_model),
        **model.summary(),
    }


def cross_section(
    request: ScanRequest,
    store: Generation,
    benchmark: Benchmark | None,
    latest: pd.DataFrame,
    model: Any,
    weight: float,
    settings: Settings,
) -> tuple[pd.DataFrame, pd.Series, dict[str, Any]]:
    """Statuses, scores, ranks and filters over the latest rows; the ranked table, each
    ticker's status and the snapshot's metadata (timings, model and cache are added later)."""
    cutoff = request.as_of
    stocks = latest[latest.index != settings.benchmark]
    last_bar = (stocks if len(stocks) else latest)["last_date"].max()
    if pd.isna(last_bar):
        when = f" on or before {cutoff:%Y-%m-%d}" if cutoff is not None else ""
        raise StoreError(f"no clean bars to scan in {request.store}{when}")
    scan_date = cutoff if cutoff is not None else last_bar
    statuses = _statuses(latest, scan_date, settings)
    current = int((statuses == "ok").sum())
    if current == 0:
        counts = statuses[statuses != "benchmark"].value_counts()
        why = ", ".join(f"{n} {status}" for status, n in counts.items()) or "no ticker"
        raise StoreError(
            f"nothing to score as of {scan_date:%Y-%m-%d} ({why}); scan a date the store's "
            f"bars cover or sync newer bars"
        )
    if cutoff is None and current < 0.5 * len(stocks):
        log.warning(
            "only %d of %d tickers have bars near %s, the newest date in the store; "
            "if it mixes sources of different dates, pass an as-of date",
            current,
            len(stocks),
            f"{scan_date:%Y-%m-%d}",
        )
    scored = latest[(statuses == "ok").to_numpy()]
    universe = store.universe.reindex(scored.index)
    labels = {"sector": "Sector", "industry": "Industry"}
    scored = scored.assign(
        **{
            labels.get(c, c): universe[c].fillna("Unknown") if c in labels else universe[c]
            for c in universe.columns
        }
    )
    alpha = win_prob = None
    if model is not None:
        from pipeline.alpha.inference import scales

        alpha, win_prob = scales(scored["alpha_raw"], model)
    table = scoring.score(
        scored,
        style=request.trade_style,
        account_size=request.account_size,
        risk_pct=request.risk_pct,
        alpha=alpha,
        alpha_weight=weight if alpha is not None else 0.0,
        win_prob=win_prob,
    )
    table = _filter(table, request.sectors, request.min_price, request.min_dollar_volume)
    board = scoreboard.load(settings, request.store)
    source = "model" if win_prob is not None else None
    if win_prob is None and board is not None:
        table["win_prob_10d"] = table["Signal"].map(scoreboard.win_rates(board)).astype(float)
        source = scoreboard.describe(board)
    universe_size = int((statuses != "benchmark").sum())
    meta = {
        "snapshot_id": _snapshot_id(scan_date),
        "as_of": f"{scan_date:%Y-%m-%d}",
        "data_through": f"{latest['last_date'].max():%Y-%m-%d}",
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "universe_size": universe_size,
        "symbols_scanned": len(scored),
        "rows": len(table),
        "trade_style": request.trade_style,
        "filters": request.filters(),
        "account": {"account_size": request.account_size, "risk_pct": request.risk_pct},
        "hygiene": _hygiene(latest, statuses),
        "regime": (scoring.market_regime(benchmark.close) if benchmark is not None else None),
        "store": {"path": str(request.store), "data_version": store.data_version},
        "unscored": _unscored(statuses, scored.index.difference(table.index)),
        "universe_rules": {"min_history": settings.min_history, "stale_days": settings.stale_days},
        "scoreboard": board,
        "win_prob_source": source,
    }
    return table, statuses, meta


@contextlib.contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Pause the cyclic garbage collector while the cross-section builds its ~10⁵ small,
    acyclic objects (rows, strings): its passes over the whole heap otherwise cost 30–150 ms
    of a 0.1 s stage. Reference counting still frees everything; the collector resumes after."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _log_scan(
    universe_size: int,
    timings: dict[str, float],
    reads: dict[str, int],
    inputs: _Inputs,
    client: Client | None,
) -> None:
    """The operators' lines: the bar cache's outcomes and ``[SCAN PERF]``."""
    if inputs.cache is not None:
        log.info(
            "[CACHE] bars: %d hit, %d miss, %d off (ttl %ds)",
            reads["hit"],
            reads["miss"],
            reads["off"],
            inputs.cache.ttl,
        )
    log.info(
        "[SCAN PERF] %d symbols via dask in %.2fs (%.5fs/symbol, workers=%s, gpu=%s)",
        universe_size,
        timings["total"],
        timings["total"] / max(universe_size, 1),
        _describe_workers(client),
        inputs.device == "cuda",
    )


def alpha_model(settings: Settings, store: Generation) -> tuple[Any, str]:
    """The model to blend, or None and why AlphaScore will be null: the one named by
    TECHNIC_ALPHA_MODEL, else the newest compatible one trained on this store's universe."""
    null = "AlphaScore and win_prob_10d are null"
    if not settings.use_ml_alpha:
        return None, f"ML alpha is off (TECHNIC_USE_ML_ALPHA=0): {null}"
    from pipeline.alpha import artifact

    if settings.alpha_model:
        return artifact.named(settings.alpha_model, settings.models_path), ""
    identity = artifact.StoreIdentity(store.store_id, store.url)
    model, reason = artifact.newest(settings.models_path, identity)
    return model, "" if model is not None else f"{reason}: {null}"


def _session(store: Generation, requested: pd.Timestamp | None) -> pd.Timestamp | None:
    """The scan date for an as-of date: the store's last session with bars on or before it.
    A date past the store's last session scans that session (and says so), so a snapshot is
    never dated after its data; a date before the first bar is refused."""
    if requested is None or not store.files:
        return requested
    first, last = store.first_date, store.last_date
    if requested < first:
        raise ConfigError(
            f"as-of {requested:%Y-%m-%d} is before the store's first bar ({first:%Y-%m-%d}); "
            f"pick a date from {first:%Y-%m-%d} to {last:%Y-%m-%d}"
        )
    if requested >= last:
        if requested > last:
            log.warning(
                "as-of %s is after the store's last session: scanning %s, the newest data",
                f"{requested:%Y-%m-%d}",
                f"{last:%Y-%m-%d}",
            )
        return last
    dates = store.dates()
    return dates[dates <= requested][-1]


def local_scheduler(settings: Settings | None) -> str:
    """Where a scan without a Dask client runs, in words."""
    if settings is not None and settings.effective_cluster == "threads":
        return f"threads ({os.cpu_count()} in this process, no dashboard)"
    return "sync scheduler (no cluster, no dashboard)"


def scan_device(settings: Settings) -> str:
    """Where the indicator kernels run: ``cuda`` on the cuda cluster with a usable GPU here,
    else ``cpu``."""
    if settings.effective_cluster != "cuda":
        return "cpu"
    from pipeline.cluster import gpu_status

    return "cuda" if gpu_status()[0] else "cpu"


def _default_client() -> Client | None:
    from distributed import Client

    try:
        return Client.current()
    except ValueError:
        return None


def _sectors(requested: list[str] | None, store: Generation) -> set[str] | None:
    """The store's own sector names that ``requested`` selects (see
    :func:`pipeline.vocabulary.match_sectors`); None when nothing is requested."""
    universe = {str(s) for s in store.universe["sector"].dropna().unique()}
    found = match_sectors(requested, universe)
    return None if found is None else set(found.selected)


def _bar_cache(settings: Settings, generation: Generation) -> BarCache | None:
    """The raw-bar cache when it is on (CACHE_TTL > 0), its Redis answers and the store is
    remote: a local disk's page cache serves a file faster than a Redis round trip does
    (``python -m bench.cache``), so a local store is read directly."""
    if settings.cache_ttl <= 0 or generation.location.local:
        return None
    if redis_conn.connect(settings) is None:
        return None
    return BarCache.from_settings(settings, redis_conn.target(settings))


def read_benchmark(
    store: Generation, ticker: str, cutoff: pd.Timestamp | None, cache: BarCache | None
) -> Benchmark | None:
    """The benchmark's closes up to ``cutoff`` (all when None) for relative strength and the
    regime; None (with a warning) when the store does not hold it."""
    if ticker not in store.tickers:
        log.warning(
            "benchmark %s is not in the store: relative strength and regime are null", ticker
        )
        return None
    reads = plan_reads(store, tickers=[ticker], end=cutoff, cache=cache)
    bars = pd.concat([reads.read(spec) for spec in reads.specs])
    bars = bars[bars["close"] > 0].sort_values(DATE)
    return Benchmark(dates=bars[DATE].to_numpy(), close=bars["close"].to_numpy())


def _wait(futures: list, stage: str, report: Progress) -> None:
    from distributed import as_completed

    for done, _ in enumerate(as_completed(futures), start=1):
        report(stage, done, len(futures))


def _gather(
    frame: dd.DataFrame, client: Client, report: Progress
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Compute every partition of ``frame`` on the cluster and concatenate them (small: one
    row per ticker); also count how the partitions' bars were read (bar cache outcomes)."""
    futures = client.compute(frame.to_delayed())
    _wait(futures, "indicators", report)
    results = client.gather(futures)
    return pd.concat(results), count_outcomes(results)


def _map_locally(
    reads: BarReads, latest: Callable[[pd.DataFrame], pd.DataFrame], sync: bool, report: Progress
) -> tuple[pd.DataFrame, dict[str, int]]:
    """``latest(read(file))`` for every planned file, in this process: one after another
    (``sync``) or on a thread per core (the Numba kernels release the GIL), in file order."""
    total = len(reads.specs)
    results: list[pd.DataFrame | None] = [None] * total
    if sync:
        for i, spec in enumerate(reads.specs):
            results[i] = latest(reads.read(spec))
            report("indicators", i + 1, total)
    else:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            pending = {
                pool.submit(lambda s: latest(reads.read(s)), spec): i
                for i, spec in enumerate(reads.specs)
            }
            for done, future in enumerate(as_completed(pending), start=1):
                results[pending[future]] = future.result()
                report("indicators", done, total)
    return pd.concat(results), count_outcomes(results)


def _statuses(latest: pd.DataFrame, scan_date: pd.Timestamp, settings: Settings) -> pd.Series:
    """Why each ticker is or is not scored: ok, benchmark, no_clean_bars, short_history,
    stale (last bar more than ``stale_days`` before the scan date)."""
    codes = universe_rules.status_codes(
        latest["bars"].to_numpy(),
        latest["last_date"].to_numpy(),
        scan_date.to_datetime64(),
        min_history=settings.min_history,
        stale_days=settings.stale_days,
    )
    status = np.array(universe_rules.STATUSES, dtype=object)[codes]
    status[latest.index == settings.benchmark] = "benchmark"
    return pd.Series(status, index=latest.index, dtype="object")


def _unscored(statuses: pd.Series, filtered: pd.Index) -> dict[str, list[str]]:
    """The tickers read but not in the table, by why: each status but ``ok``, and
    ``filtered`` for scored tickers the scan's filters left out."""
    out = {
        str(status): sorted(map(str, tickers))
        for status, tickers in statuses[statuses != "ok"].groupby(statuses).groups.items()
    }
    if len(filtered):
        out["filtered"] = sorted(map(str, filtered))
    return out


def _hygiene(latest: pd.DataFrame, statuses: pd.Series) -> dict[str, int]:
    counts = {"rows_in": int(latest["rows_in"].sum())}
    for reason in hygiene.REASONS:
        counts[reason] = int(latest[f"dropped_{reason}"].sum())
    counts["rows_clean"] = counts["rows_in"] - sum(counts[r] for r in hygiene.REASONS)
    counts["tickers_in"] = len(latest)
    for status in ("ok", "short_history", "stale", "no_clean_bars"):
        counts[f"tickers_{status}"] = int((statuses == status).sum())
    return counts


def _filter(
    table: pd.DataFrame,
    sectors: set[str] | None,
    min_price: float | None,
    min_dollar_volume: float | None,
) -> pd.DataFrame:
    keep = pd.Series(True, index=table.index)
    if sectors:
        keep &= table["Sector"].isin(sectors)
    if min_price is not None:
        keep &= table["close"] >= min_price
    if min_dollar_volume is not None:
        keep &= table["avg_dollar_volume_20d"] >= min_dollar_volume
    return table[keep]


def _snapshot_id(scan_date: pd.Timestamp) -> str:
    return f"{scan_date:%Y%m%d}-{datetime.now(UTC):%H%M%S}-{uuid.uuid4().hex[:6]}"


def _describe_workers(client: Client | None) -> str:
    if client is None:
        return f"threads x{os.cpu_count()}"
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    threads = {w.get("nthreads", 1) for w in workers.values()}
    return f"{len(workers)}x{max(threads) if threads else 0}"
