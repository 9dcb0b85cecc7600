"""``technic``: the operators' command line.

``technic demo-data``   write the synthetic demo universe into a bar store
``technic import``      import long-format CSV or Parquet bars into a bar store
``technic scan``        scan a store: live progress, the top rows, a snapshot on disk
``technic sync``        backfill, then update, a store from Polygon (one request per day)
``technic universe``    import a reference list (sector, industry, market cap) into a store
``technic train``       walk-forward train the ML alpha model on a store and save it
``technic evaluate``    the model's honest out-of-sample report against baselines
``technic backtest``    every past daily scan of a store and the returns that followed

Human output goes to stderr (progress, logs, the dashboard link) and stdout (the table);
``scan --json`` prints only the snapshot JSON on stdout. Bad input is one line on stderr and
exit status 2, never a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from pipeline.errors import ConfigError, StoreError, TechnicError
from pipeline.vocabulary import TRADE_STYLES

if TYPE_CHECKING:
    import pandas as pd
    from rich.progress import Progress
    from rich.table import Table

    from pipeline.config import Settings


def get_settings() -> Settings:
    """The settings, imported on first use (pydantic is not needed for ``--help``)."""
    from pipeline.config import get_settings as settings

    return settings()


def one_shot(settings: Settings, *, dashboard: bool = False) -> Settings:
    """The settings of a command that runs once and exits: unless TECHNIC_CLUSTER (or
    TECHNIC_USE_GPU) says otherwise, a thread per core in this process. Spawning a
    local cluster's worker processes, each importing the engine again, costs a one-shot scan
    more than their parallelism wins back (``python -m bench.startup``); the Numba kernels
    release the GIL. A performance report (``dashboard``) needs the cluster."""
    chosen = {"cluster", "use_gpu"} & settings.model_fields_set
    if chosen or dashboard or settings.use_gpu:
        return settings
    return settings.model_copy(update={"cluster": "threads"})


app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain one-line usage errors, not Rich panels
    help="Technic: full-universe stock scans on Dask.",
)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 120)
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Bar store: a directory or s3://bucket/prefix [default: $TECHNIC_DATA_DIR/store].",
    ),
]


def _store(url: str | None) -> str:
    from pipeline.storage import Location

    return Location.parse(url).url if url else get_settings().store_url


DEMO_TICKERS, DEMO_DAYS, DEMO_SEED, DEMO_END = 6000, 504, 7, "2026-11-20"


@app.command("demo-data")
def demo_data(
    store: StoreOption = None,
    tickers: Annotated[int, typer.Option(min=1, help="Stock tickers (plus SPY).")] = DEMO_TICKERS,
    days: Annotated[int, typer.Option(min=100, help="Business days of history.")] = DEMO_DAYS,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same data.")] = DEMO_SEED,
    end: Annotated[str, typer.Option(help="Last business day (YYYY-MM-DD).")] = DEMO_END,
    force: Annotated[bool, typer.Option(help="Replace an existing store.")] = False,
) -> None:
    """Write the deterministic synthetic demo universe into a bar store."""
    from pipeline.store import BarStore

    path = _store(store)
    if BarStore(path).exists() and not force:
        raise StoreError(f"a bar store already exists at {path}; pass --force to replace it")
    _write_demo(path, tickers, days, seed, end)


def _write_demo(path: Path, tickers: int, days: int, seed: int, end: str) -> None:
    from pipeline.sources.synthetic import generate_universe
    from pipeline.store import BarStore

    with err.status(f"Generating {tickers:,} tickers × {days} days (seed {seed})…"):
        demo = generate_universe(tickers, days, seed=seed, end=end)
    with err.status(f"Writing {len(demo.bars):,} rows to {path}…"):
        summary = BarStore(path).write(
            demo.bars,
            demo.universe,
            merge=False,
            sources=(f"synthetic demo (seed {seed})",),
            extra={"mess": demo.mess},
        )
    mess = ", ".join(f"{k} {v}" for k, v in demo.mess.items() if v)
    err.print(
        f"Wrote {summary.rows:,} rows, {summary.tickers:,} tickers in {summary.files} files "
        f"to {path}\nPlanted mess: {mess}"
    )


@app.command("import")
def import_files(
    files: Annotated[list[Path], typer.Argument(help="Long-format CSV or Parquet files.")],
    store: StoreOption = None,
    universe: Annotated[
        Path | None,
        typer.Option(help="Reference table (ticker, sector, industry, market_cap, name)."),
    ] = None,
) -> None:
    """Import bars (ticker, date, open, high, low, close, volume) into a bar store."""
    import pandas as pd

    from pipeline.sources.files import read_bars, read_table
    from pipeline.store import BarStore

    path = _store(store)
    frames = []
    for file in files:
        with err.status(f"Reading {file}…"):
            frames.append(read_bars(file))
    bars = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    ref = read_table(universe) if universe is not None else None
    with err.status(f"Writing {len(bars):,} rows to {path}…"):
        summary = BarStore(path).write(bars, ref, sources=tuple(str(f) for f in files))
    err.print(
        f"Imported {len(bars):,} rows; the store now holds {summary.rows:,} rows, "
        f"{summary.tickers:,} tickers in {summary.files} files at {path} "
        f"(duplicate dates dropped: {summary.duplicate_dates:,}, rows replaced: "
        f"{summary.rows_replaced:,})"
    )


def _day(value: str | None, option: str):
    """A YYYY-MM-DD option value as a date (None stays None); a bad one is a usage error."""
    from datetime import date

    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option
        ) from None


@app.command("sync")
def sync_command(
    store: StoreOption = None,
    since: Annotated[
        str | None,
        typer.Option(help="First day (YYYY-MM-DD) [default: the store's first bar, else --years]."),
    ] = None,
    years: Annotated[
        int | None,
        typer.Option(
            min=1, help="Years back from --until [default: $TECHNIC_SYNC_YEARS, new store]."
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Last day [default: the newest finished NYSE session].")
    ] = None,
    details: Annotated[
        bool,
        typer.Option(
            "--details",
            help="Also fetch market cap and SIC sector/industry of tickers lacking them "
            "(one request per ticker).",
        ),
    ] = False,
) -> None:
    """Fill the store from Polygon: missing trading days only, one request per day."""
    from pipeline.sync import sync

    if since is not None and years is not None:
        raise typer.BadParameter("use either --since or --years, not both", param_hint="--since")
    first, last = _day(since, "--since"), _day(until, "--until")
    settings = get_settings()
    path = _store(store)
    with _progress() as bar:
        tasks: dict[str, int] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                if stage == "details" and not details:
                    return
                tasks[stage] = bar.add_task(stage, total=None)
            bar.update(tasks[stage], completed=done, total=total)

        summary = sync(
            path,
            settings=settings,
            since=first,
            until=last,
            years=years,
            details=details,
            progress=report,
        )
    for line in summary.lines():
        err.print(line, soft_wrap=True, markup=False)
    if summary.failed is not None:
        raise summary.failed


@app.command()
def scan(
    store: StoreOption = None,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Scan the built-in demo universe ($TECHNIC_DATA_DIR/demo), creating it on "
            "first use (6,000 tickers × 504 days plus SPY).",
        ),
    ] = False,
    sector: Annotated[
        list[str] | None,
        typer.Option(
            "--sector",
            help="Keep this sector (repeatable): the store's own name, a GICS sector or an "
            "alias (Technology, Healthcare, Financial Services...).",
        ),
    ] = None,
    ticker: Annotated[
        list[str] | None, typer.Option("--ticker", help="Scan only this ticker (repeatable).")
    ] = None,
    min_price: Annotated[float | None, typer.Option(min=0, help="Minimum last close.")] = None,
    min_dollar_volume: Annotated[
        float | None, typer.Option(min=0, help="Minimum 20-day average dollar volume.")
    ] = None,
    top: Annotated[int, typer.Option(min=0, help="Rows to show in the table.")] = 20,
    as_of: Annotated[
        str | None, typer.Option(help="Scan as of this date, using only bars up to it.")
    ] = None,
    trade_style: Annotated[
        str | None,
        typer.Option(help=f"Trade style (case-insensitive): {TRADE_STYLES.describe()}."),
    ] = None,
    account_size: Annotated[
        float | None, typer.Option(min=0, help="Account size for position sizes.")
    ] = None,
    risk_pct: Annotated[float | None, typer.Option(min=0, help="Percent risked per trade.")] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print only the snapshot JSON on stdout.")
    ] = False,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Snapshot directory [default: $TECHNIC_DATA_DIR/snapshots]."),
    ] = None,
    publish: Annotated[
        bool, typer.Option("--publish", help="Publish the snapshot to Redis (queued if down).")
    ] = False,
    profile: Annotated[
        Path | None,
        typer.Option(
            "--profile",
            help="Write a Dask performance report of the scan (HTML: task stream, worker "
            "profiles, bandwidth) to this file.",
        ),
    ] = None,
) -> None:
    """Scan the store, print the top rows and write the snapshot (JSON + Parquet)."""
    from pipeline.scan import STAGES, execute, prepare
    from pipeline.store import BarStore

    settings = one_shot(get_settings(), dashboard=profile is not None)
    if demo and store is not None:
        raise typer.BadParameter("use either --demo or --store, not both", param_hint="--demo")
    path = settings.data_dir.expanduser() / "demo" if demo else _store(store)
    if demo and not BarStore(path).exists():
        _write_demo(path, DEMO_TICKERS, DEMO_DAYS, DEMO_SEED, DEMO_END)
    request = prepare(  # every bad option fails here, before a cluster starts
        path,
        tickers=ticker,
        sectors=sector,
        min_price=min_price,
        min_dollar_volume=min_dollar_volume,
        as_of=as_of,
        account_size=account_size,
        risk_pct=risk_pct,
        trade_style=trade_style,
        settings=settings,
    )
    if profile is not None and settings.effective_cluster in ("sync", "threads"):
        raise typer.BadParameter(
            f"a performance report needs a Dask cluster; TECHNIC_CLUSTER is "
            f"{settings.effective_cluster}",
            param_hint="--profile",
        )
    with _session(settings) as client:
        err.print(f"[bold]Cluster:[/] {_describe(client, settings)}", soft_wrap=True)
        with _profiled(profile), _progress() as bar:
            tasks = {s: bar.add_task(s.replace("_", " "), total=None) for s in STAGES}

            def report(stage: str, done: int, total: int) -> None:
                bar.update(tasks[stage], completed=done, total=total)

            scan_started = time.perf_counter()
            result = execute(request, client=client, settings=settings, progress=report)
            scan_ended = time.perf_counter()
    json_path, parquet_path = result.write(out_dir or settings.snapshot_dir)
    if profile is not None:
        err.print(f"Performance report: {profile} (open it in a browser)", soft_wrap=True)
    if json_output:
        sys.stdout.buffer.write(result.to_json() + b"\n")
        sys.stdout.flush()
    else:
        out.print(_table(result.table, top))
    err.print(result.snapshot["log"], soft_wrap=True)
    err.print(f"Snapshot: {json_path} and {parquet_path.name}", soft_wrap=True)
    if publish:
        from pipeline import snapshots

        done = snapshots.publish(result, settings=settings)
        if done.published:
            extra = f" (and {len(done.pushed)} queued)" if done.pushed else ""
            if not done.latest:
                extra += (
                    "; not the latest: a snapshot of a later date is (undo a bad one with "
                    "'technic snapshots delete' or 'technic snapshots repoint')"
                )
            err.print(f"Published {done.snapshot_id} to Redis{extra}", soft_wrap=True)
    _command_perf(scan_started, scan_ended)


def _session(settings: Settings):
    """The command's Dask client, or none for threads or sync (``distributed`` is not
    even imported for those)."""
    if settings.effective_cluster in ("threads", "sync"):
        return contextlib.nullcontext(None)
    from pipeline.cluster import client_session

    return client_session(settings)


def _describe(client: object, settings: Settings) -> str:
    if client is None:
        from pipeline.scan import local_scheduler

        return local_scheduler(settings)
    from pipeline.cluster import describe

    return describe(client)


def _command_perf(scan_started: float, scan_ended: float) -> None:
    """The line after ``[SCAN PERF]`` (which times the scan alone): what the command spent
    around it, from the process's start: interpreter and imports, settings, the store's
    generation, the cluster (start-up); snapshot files, output, publishing and closing the
    cluster (after)."""
    import psutil

    now = time.perf_counter()
    alive = time.time() - psutil.Process().create_time()
    startup = alive - (now - scan_started)
    logging.getLogger("pipeline.cli").info(
        "[COMMAND PERF] start-up %.2fs, scan %.2fs, after the scan %.2fs (process %.2fs)",
        startup,
        scan_ended - scan_started,
        now - scan_ended,
        alive,
    )


def _profiled(path: Path | None):
    """A Dask performance report around the scan when ``path`` is given."""
    if path is None:
        return contextlib.nullcontext()
    from distributed import performance_report

    path.expanduser().parent.mkdir(parents=True, exist_ok=True)
    return performance_report(filename=str(path.expanduser()))


def _progress() -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal,
    )


TABLE_COLUMNS = (  # title, column (None: the ticker), format, shown on narrow terminals
    ("#", "rank", "{:d}", True),
    ("Ticker", None, "{}", True),
    ("Signal", "Signal", "{}", True),
    ("Tech", "TechRating", "{:.1f}", True),
    ("Tier", "Tier", "{}", True),
    ("Merit", "merit_score", "{:.0f}", False),
    ("Close", "close", "{:,.2f}", True),
    ("1d %", "ret_1d", "{:+.2%}", True),
    ("RSI", "rsi14", "{:.0f}", False),
    ("ATR %", "atr14_pct", "{:.1%}", False),
    ("Stop", "stop", "{:,.2f}", False),
    ("Target", "target", "{:,.2f}", False),
    ("Sector", "Sector", "{}", True),
)


def _table(table: pd.DataFrame, top: int) -> Table:
    """The top rows; on a narrow terminal fewer columns, and only Sector is truncated."""
    from rich.table import Table

    view = Table(title=f"Top {min(top, len(table))} of {len(table):,}", header_style="bold")
    columns = [c for c in TABLE_COLUMNS if c[3] or out.width >= 120]
    rows = [
        [
            "–" if (v := ticker if col is None else row[col]) is None or v != v else fmt.format(v)
            for _, col, fmt, _ in columns
        ]
        for ticker, row in table.head(top).iterrows()
    ]
    for i, (title, _, _, _) in enumerate(columns):
        width = max([len(title), *(len(r[i]) for r in rows)])
        left = title in {"Ticker", "Signal", "Sector"}
        view.add_column(
            title,
            justify="left" if left else "right",
            no_wrap=True,
            min_width=None if title == "Sector" else width,
        )
    for cells in rows:
        view.add_row(*cells)
    return view


HorizonOption = Annotated[
    int, typer.Option("--horizon", help="Label horizon in sessions: 5 or 10.")
]
RoundsOption = Annotated[int, typer.Option(min=1, help="Boosting rounds per model.")]


def _alpha_setup(store: Path | None, horizon: int, rounds: int):
    """Validate the alpha commands' options before any cluster starts."""
    from pipeline.alpha.labels import HORIZONS
    from pipeline.store import BarStore

    if horizon not in HORIZONS:  # before the heavier imports below
        raise ConfigError(
            f"horizon must be one of {', '.join(map(str, HORIZONS))} sessions, got {horizon!r}"
        )
    path = _store(store)
    BarStore.open(path)  # a missing store fails here, in one line
    from pipeline.alpha.train import Config

    return path, Config(horizon=horizon, rounds=rounds)


def _alpha_table(report: dict) -> Table:
    from rich.table import Table

    view = Table(
        title=f"Out of sample {report['oos_start']} .. {report['oos_end']}, "
        f"{report['horizon']}-day forward return, pooled over {len(report['folds'])} folds",
        header_style="bold",
    )
    for title in ("score", "IC mean", "IC std", "IC IR", "t", "t (NW)", "hit", "D10−D1", "dates"):
        view.add_column(title, justify="left" if title == "score" else "right")
    rows = {"model": report["model"], **report["baselines"]}

    def fmt(value, spec: str) -> str:
        return "–" if value is None else format(value, spec)

    for name, m in rows.items():
        view.add_row(
            name, fmt(m["ic_mean"], "+.4f"), fmt(m["ic_std"], ".4f"), fmt(m["ic_ir"], "+.3f"),
            fmt(m["ic_tstat"], "+.2f"), fmt(m["ic_tstat_nw"], "+.2f"), fmt(m["hit_rate"], ".1%"),
            fmt(m["decile_spread"], "+.2%"), str(m["n_dates"]),
        )  # fmt: skip
    return view


def _alpha_progress(stages: tuple[str, ...]):
    bar = _progress()
    tasks = {s: bar.add_task(s, total=None) for s in stages}

    def report(stage: str, done: int, total: int) -> None:
        if stage in tasks:
            bar.update(tasks[stage], completed=done, total=total)

    return bar, report


@app.command()
def train(
    store: StoreOption = None,
    horizon: HorizonOption = 5,
    rounds: RoundsOption = 100,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Models directory [default: $TECHNIC_MODELS_DIR]."),
    ] = None,
) -> None:
    """Walk-forward train the alpha model on the store; save the model and its card."""
    from pipeline.alpha.train import STAGES
    from pipeline.alpha.train import train as run_train
    from pipeline.cluster import client_session, describe

    settings = get_settings()
    path, cfg = _alpha_setup(store, horizon, rounds)
    with client_session(settings) as client:
        err.print(f"[bold]Cluster:[/] {describe(client)}", soft_wrap=True)
        bar, report = _alpha_progress(STAGES)
        with bar:
            result = run_train(
                path, cfg, client=client, settings=settings, progress=report, models_dir=out_dir
            )
    out.print(_alpha_table(result.run.report))
    cal = result.card["calibration"]["out_of_sample"]
    err.print(
        f"win_prob_10d calibration (out of sample): Brier {cal['brier']}, AUC {cal['auc']}, "
        f"base-rate Brier {cal['brier_base_rate']}",
        soft_wrap=True,
    )
    err.print(
        f"Model {result.card['version']} written to {result.path} "
        f"(trained in {result.run.timings['total']:.1f}s)",
        soft_wrap=True,
    )


@app.command()
def evaluate(
    store: StoreOption = None,
    horizon: HorizonOption = 5,
    rounds: RoundsOption = 100,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print only the report JSON on stdout.")
    ] = False,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Report directory [default: $TECHNIC_DATA_DIR/reports/…]."),
    ] = None,
) -> None:
    """Walk-forward out-of-sample report of the alpha model against baselines (JSON + PNG)."""
    from datetime import UTC, datetime

    import orjson

    from pipeline.alpha.evaluate import plots
    from pipeline.alpha.train import STAGES
    from pipeline.alpha.train import run as run_walk_forward
    from pipeline.cluster import client_session, describe

    settings = get_settings()
    path, cfg = _alpha_setup(store, horizon, rounds)
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-h{horizon}"
    target = (out_dir or settings.data_dir.expanduser() / "reports" / stamp).expanduser()
    with client_session(settings) as client:
        err.print(f"[bold]Cluster:[/] {describe(client)}", soft_wrap=True)
        bar, report = _alpha_progress(STAGES[:2])
        with bar:
            result = run_walk_forward(path, cfg, client=client, settings=settings, progress=report)
    document = {
        **result.report,
        "store": {"path": str(path), "data_version": _data_version(path)},
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
    }
    document["plots"] = plots(document, result.oos, result.dates, target)
    document["report"] = str(target / "report.json")
    blob = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    (target / "report.json").write_bytes(blob + b"\n")
    if json_output:
        sys.stdout.buffer.write(blob + b"\n")
        sys.stdout.flush()
    else:
        out.print(_alpha_table(result.report))
    err.print(f"Report: {document['report']} and {len(document['plots'])} plots", soft_wrap=True)


@app.command()
def backtest(
    store: StoreOption = None,
    start: Annotated[
        str | None, typer.Option(help="First session to scan, YYYY-MM-DD [default: the first].")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Last session to scan, YYYY-MM-DD [default: the last].")
    ] = None,
    horizons: Annotated[
        str, typer.Option(help="Forward-return horizons in sessions, comma-separated.")
    ] = "1,5,10,21",
    costs_bps: Annotated[
        float, typer.Option("--costs-bps", help="Trading costs per side, basis points.")
    ] = 10.0,
    trade_style: Annotated[
        str | None,
        typer.Option(
            "--trade-style",
            help=f"{' | '.join(TRADE_STYLES.names)} (aliases accepted) [default: "
            "$TECHNIC_TRADE_STYLE].",
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Output directory [default: $TECHNIC_DATA_DIR/backtests/…]."),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print only the summary JSON on stdout.")
    ] = False,
) -> None:
    """Every past daily scan of the store as one panel, its forward returns, and how each
    signal, tier, band, decile and sector did (panel.parquet, summary.json, report.html)."""
    from datetime import UTC, datetime

    import orjson

    from pipeline.backtest import report as files
    from pipeline.backtest.run import STAGES
    from pipeline.backtest.run import backtest as run_backtest
    from pipeline.backtest.summary import summarize

    settings = get_settings()
    try:
        chosen = tuple(int(h) for h in horizons.split(",") if h.strip())
    except ValueError:
        raise ConfigError(
            f"--horizons: {horizons!r} is not a comma-separated list of sessions, e.g. 1,5,10"
        ) from None
    with _progress() as bar:
        tasks = {s: bar.add_task(s, total=None) for s in STAGES}

        def report(stage: str, done: int, total: int) -> None:
            bar.update(tasks[stage], completed=done, total=total)

        result = run_backtest(
            _store(store),
            start=start,
            end=end,
            horizons=chosen,
            costs_bps=costs_bps,
            trade_style=trade_style,
            settings=settings,
            progress=report,
        )
    summary = summarize(result)
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S}"
    target = out_dir or settings.data_dir.expanduser() / "backtests" / stamp
    paths = files.write(result, summary, target)
    document = summary.document
    if document["scoreboard"]:
        from pipeline.backtest import scoreboard

        saved = scoreboard.save(document["scoreboard"], result.store, settings)
        err.print(f"Scoreboard for the next scans of this store: {saved}", soft_wrap=True)
    if json_output:
        sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
        sys.stdout.flush()
    else:
        out.print(_backtest_table(document))
    err.print(
        f"Backtest {document['start']} → {document['end']}: {document['sessions']:,} sessions, "
        f"{document['rows']:,} rows in {sum(result.timings.values()):.1f}s",
        soft_wrap=True,
    )
    err.print(f"Report: {paths['report']} (panel, summary and plots beside it)", soft_wrap=True)


def _backtest_table(summary: dict) -> Table:
    """Per signal, the net mean return and hit rate at every horizon."""
    from rich.table import Table

    horizons = list(summary["horizons"])
    table = Table(title="Net forward return by signal (mean, hit rate)", title_justify="left")
    table.add_column("Signal")
    for h in horizons:
        table.add_column(f"{h}d", justify="right")
    signals = summary["horizons"][horizons[0]]["net"]["by"]["signal"]
    for name in signals:
        cells = []
        for h in horizons:
            row = summary["horizons"][h]["net"]["by"]["signal"].get(name) or {}
            mean, hit = row.get("mean"), row.get("hit_rate")
            cells.append("—" if mean is None else f"{mean:+.2%} · {hit:.0%}")
        table.add_row(name, *cells)
    return table


def _data_version(path: Path) -> str:
    from pipeline.store import BarStore

    return BarStore.open(path).data_version


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
    access_log: Annotated[
        bool, typer.Option(help="Log every request (costly at thousands of requests/s).")
    ] = True,
) -> None:
    """Serve the app's HTTP API (service.main:app) under uvicorn."""
    import uvicorn

    uvicorn.run(
        "service.main:app",
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=access_log,
    )


@app.command("live")
def live_command(
    store: StoreOption = None,
    once: Annotated[
        bool, typer.Option("--once", help="One update now, whatever the clock says, then exit.")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="With --once: print the live snapshot as JSON.")
    ] = False,
) -> None:
    """Live scans: during NYSE sessions, Polygon's market snapshot every
    TECHNIC_LIVE_INTERVAL seconds, rescored and published as the live snapshot."""
    from pipeline.live.loop import LiveLoop

    if json_output and not once:
        raise typer.BadParameter("--json needs --once", param_hint="--json")
    settings = get_settings()
    loop = LiveLoop(settings, _store(store))
    if not once:
        err.print(
            f"Live scans every {settings.live_interval:g} s during NYSE sessions "
            f"({settings.polygon_delay} min delayed data); Ctrl-C stops.",
            markup=False,
        )
        loop.run()
        return
    update = loop.once()
    if update.result is None:
        raise TechnicError(f"no live snapshot: {update.error}")
    if json_output:
        sys.stdout.buffer.write(update.result.to_json() + b"\n")
    else:
        err.print(update.result.snapshot["log"], markup=False, soft_wrap=True)
        if settings.use_redis and not update.published:
            err.print("Redis is not reachable: the live snapshot was not published", markup=False)


snapshots_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Inspect, push, repoint and delete published snapshots.",
)
app.add_typer(snapshots_app, name="snapshots")
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


def _print_json(value: object) -> None:
    import orjson

    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")


@snapshots_app.command("list")
def snapshots_list(
    days: Annotated[int, typer.Option(min=1, help="How many days back.")] = 30,
    ticker: Annotated[
        str | None, typer.Option(help="Only the scans this ticker appeared in.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Published snapshots, newest first (or one ticker's membership history)."""
    from rich.table import Table

    from pipeline import snapshots

    rows = snapshots.history(ticker, days=days, settings=get_settings())
    if json_output:
        _print_json(rows)
        return
    view = Table(header_style="bold", title=f"{ticker or 'Snapshots'}: last {days} days")
    if ticker:
        for title in ("As of", "Snapshot", "Rank", "Tier", "Signal", "Band", "Signals"):
            view.add_column(title)
        for r in rows:
            view.add_row(
                r["as_of"], r["snapshot_id"], str(r["rank"]), r["tier"], r["signal"],
                r["merit_band"], ", ".join(r["signals"]),
            )  # fmt: skip
    else:
        for title in ("Snapshot", "As of", "Scanned", "Universe", "Seconds"):
            view.add_column(title)
        for r in rows:
            view.add_row(
                r["snapshot_id"], r["as_of"], f"{r['symbols_scanned']:,}",
                f"{r['universe_size']:,}", f"{r['timings'].get('total', 0):.2f}",
            )  # fmt: skip
    out.print(view)


@snapshots_app.command("show")
def snapshots_show(
    ref: Annotated[str, typer.Argument(help="Snapshot id, as-of date or 'latest'.")] = "latest",
    top: Annotated[int, typer.Option(min=0, help="Rows to show.")] = 20,
    json_output: JsonOption = False,
) -> None:
    """One snapshot: its status line and top rows (or the whole document with --json)."""
    from rich.table import Table

    from pipeline import snapshots

    document = snapshots.get(ref, settings=get_settings())
    if document is None:
        raise snapshots.SnapshotNotFound(f"no snapshot {ref!r} (see 'technic snapshots list')")
    if json_output:
        _print_json(document)
        return
    view = Table(
        header_style="bold", title=f"{document['snapshot_id']} · as of {document['as_of']}"
    )
    for title in ("#", "Ticker", "Signal", "Tech", "Tier", "Merit", "Sector"):
        view.add_column(title)
    for row in document["results"][:top]:
        view.add_row(
            str(row["rank"]), row["ticker"], row["signal"], f"{row['TechRating']:.1f}",
            row["Tier"], f"{row['merit_score']:.0f}", row["Sector"] or "",
        )  # fmt: skip
    out.print(view)
    err.print(document["log"], soft_wrap=True)


@snapshots_app.command("diff")
def snapshots_diff(
    a: Annotated[str, typer.Argument(help="From: snapshot id, as-of date or 'latest'.")],
    b: Annotated[str, typer.Argument(help="To: snapshot id, as-of date or 'latest'.")] = "latest",
    json_output: JsonOption = False,
) -> None:
    """What entered, left or moved between two snapshots, and per tier."""
    from pipeline import snapshots

    change = snapshots.diff(a, b, settings=get_settings())
    if json_output:
        _print_json(change)
        return
    out.print(f"{change['from']} → {change['to']}")
    out.print(
        f"entered {len(change['entered'])}, left {len(change['left'])}, "
        f"moved {len(change['moved'])}"
    )
    for tier, moves in change["tiers"].items():
        entered = ", ".join(moves["entered"][:15]) + (" …" if len(moves["entered"]) > 15 else "")
        left = ", ".join(moves["left"][:15]) + (" …" if len(moves["left"]) > 15 else "")
        out.print(f"{tier}: +{len(moves['entered'])} ({entered}) −{len(moves['left'])} ({left})")


@snapshots_app.command("push")
def snapshots_push() -> None:
    """Publish the snapshots that were queued while Redis was away, oldest first."""
    from pipeline import snapshots

    settings = get_settings()
    waiting = snapshots.pending_paths(settings)
    if not waiting:
        err.print("Nothing queued.")
        return
    done = snapshots.push(settings=settings)
    err.print(f"Published {len(done)} queued snapshot(s): {', '.join(done)}", soft_wrap=True)


@snapshots_app.command("repoint")
def snapshots_repoint(
    ref: Annotated[str, typer.Argument(help="Snapshot id or as-of date to serve as latest.")],
) -> None:
    """Make a snapshot the latest, whatever its date (the app gets it on its next request).
    A later publish of a newer date moves the pointer on as usual."""
    from pipeline import snapshots

    sid = snapshots.repoint(ref, settings=get_settings())
    err.print(f"Latest is now {sid}", soft_wrap=True)


@snapshots_app.command("delete")
def snapshots_delete(
    ref: Annotated[str, typer.Argument(help="Snapshot id or as-of date to remove.")],
) -> None:
    """Remove a snapshot; if it was the latest, the newest remaining one becomes the latest."""
    from pipeline import snapshots

    sid, latest = snapshots.delete(ref, settings=get_settings())
    now = f"latest is now {latest}" if latest else "no snapshot is left to serve"
    err.print(f"Deleted {sid}; {now}", soft_wrap=True)


universe_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="The store's ticker reference table."
)
app.add_typer(universe_app, name="universe")


@universe_app.command("import")
def universe_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV or Parquet with ticker (or symbol) and any of name, sector, industry, "
            "market_cap, active."
        ),
    ],
    store: StoreOption = None,
) -> None:
    """Merge a reference list into the store's universe table (its values win)."""
    from pipeline.sources.files import read_table
    from pipeline.store import BarStore

    path = _store(store)
    frame = read_table(file)
    bar_store = BarStore(path)
    table = bar_store.write_universe(frame)
    listed = set(table["ticker"])
    if bar_store.exists():
        ours = bar_store.universe()
        where = (
            f"{len(listed & set(ours.index)):,} of the store's {len(ours):,} tickers are listed, "
            f"{int(ours['sector'].notna().sum()):,} with a sector"
        )
    else:
        where = "the store has no bars yet"
    err.print(
        f"Imported {len(frame):,} rows from {file}; the universe table at {path} lists "
        f"{len(listed):,} tickers ({where})",
        soft_wrap=True,
        markup=False,
    )


class _ConsoleHandler(logging.Handler):
    """Log lines on stderr through Rich, so they do not tear the live progress display."""

    def emit(self, record: logging.LogRecord) -> None:
        err.print(record.getMessage(), markup=False, soft_wrap=True)


def main() -> None:
    """Entry point of the ``technic`` console script."""
    logger = logging.getLogger("pipeline")
    handler = _ConsoleHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    code: int = 0
    try:
        app()  # standalone: click prints usage errors itself, in one line, with exit status 2
    except (TechnicError, OSError) as exc:
        err.print(f"[red]error:[/] {exc}", soft_wrap=True)
        code = 2
    except SystemExit as exc:
        code = _exit_status(exc.code)
    _exit_now(code)


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    err.print(str(code), soft_wrap=True, markup=False)
    return 1


def _exit_now(code: int) -> None:
    """End the process once its work is done and its output flushed, without the
    interpreter's teardown: unwinding a scan's imports and objects (Dask, Numba, pandas)
    takes about a second that a one-shot command has no use for. Files are closed by then
    (the commands write them in ``with`` blocks) and clusters closed by their sessions."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    logging.shutdown()
    os._exit(code)
