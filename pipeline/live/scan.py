"""The scan during the session: today's forming bars on top of the committed state.

:class:`LiveScanner` reads the store once per generation (the nightly sync makes a new one),
keeps the live state (:mod:`pipeline.live.state`), and rescores the universe on each market
snapshot with the daily scan's own cross-section: the same statuses, scores, ranks, filters
and document, plus what makes it live (``live``, ``as_of_time``, ``delayed_minutes``,
``base_snapshot``, the ``log`` line "live, 15 min delayed, 10:32 ET").
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from pipeline import hygiene, scan, snapshots
from pipeline.config import Settings, get_settings
from pipeline.errors import StoreError
from pipeline.live import state as live_state
from pipeline.sources.polygon import NEW_YORK, MarketSnapshot

log = logging.getLogger(__name__)


class LiveScanner:
    """Live scans of one store; :meth:`rescore` per market snapshot."""

    def __init__(
        self, store: str | os.PathLike[str] | None = None, settings: Settings | None = None
    ):
        self.settings = settings or get_settings()
        self.store = store
        self.request: scan.ScanRequest | None = None
        self.state: live_state.LiveState | None = None

    def refresh(self, session: date | None = None) -> bool:
        """(Re)build the state when the store has a new generation; whether it did. With a
        ``session``, first check that the store reaches the session before it."""
        request = scan.prepare(self.store, settings=self.settings)
        if session is not None:
            _check_behind(request.generation, session)
        current = request.generation.data_version
        if self.state is not None and self.state.info.get("data_version") == current:
            return False
        tic = time.perf_counter()
        generation = request.generation
        cleaned = hygiene.clean(generation.read())
        benchmark = scan.read_benchmark(generation, self.settings.benchmark, None, None)
        built = live_state.build(cleaned, benchmark)
        self.state = replace(built, info={"data_version": current})
        self.request = request
        log.info(
            "[LIVE] state of %d tickers built from %s in %.1f s",
            len(built.tickers),
            current,
            time.perf_counter() - tic,
        )
        return True

    def rescore(
        self, market: MarketSnapshot, base_snapshot: str | None = None
    ) -> tuple[scan.ScanResult, live_state.Step]:
        """The scan as of ``market``'s forming bars (the state is left as it was)."""
        self.refresh(market.session)  # a new generation after a sync; the store's reach
        assert self.state is not None and self.request is not None
        settings, state = self.settings, self.state
        started = time.perf_counter()
        spy = settings.benchmark
        bench_bar = None
        if spy in market.bars.index:
            bench_bar = (market.bars.at[spy, "date"], float(market.bars.at[spy, "close"]))
        step = live_state.update(state, market.bars, bench_bar)
        stepped = time.perf_counter()
        request = replace(self.request, as_of=pd.Timestamp(market.session))
        benchmark = state.benchmark.with_bar(bench_bar) if state.benchmark else None
        with scan.no_cycle_collection():
            table, statuses, meta = scan.cross_section(
                request, request.generation, benchmark, step.latest, None, 0.0, settings
            )
            local = market.updated.tz_convert(NEW_YORK)
            meta.update(
                model={"alpha_weight": 0.0, "reason": "live scans rank without the model"},
                cache={},
                live=True,
                as_of_time=local.isoformat(timespec="seconds"),
                delayed_minutes=settings.polygon_delay,
                base_snapshot=base_snapshot,
                live_counts={
                    "tickers": market.tickers,
                    "moved": int(step.moved.sum()),
                    **step.held,
                },
                forming_bars=_forming_bars(state, step),
                timings={},
            )
            document = snapshots.build(table, meta)
        done = time.perf_counter()
        meta["timings"].update(
            update=round(stepped - started, 4),
            cross_section=round(done - stepped, 4),
            total=round(done - started, 4),
        )
        document["log"] = status_line(meta, local)
        result = scan.ScanResult(
            table=table,
            snapshot=document,
            timings=meta["timings"],
            hygiene=meta["hygiene"],
            statuses=statuses,
        )
        return result, step

    def commit(self, step: live_state.Step) -> None:
        """Append a closed session's bars to the state (used where no nightly sync runs)."""
        assert self.state is not None
        self.state = live_state.commit(self.state, step)


def _check_behind(generation, session) -> None:
    """A forming bar extends the history by one session: the store must end at the session
    before it, or the live rows would skip a day (the nightly sync did not run)."""
    from pipeline import trading_calendar

    last = generation.last_date
    before = trading_calendar.sessions(session - timedelta(days=14), session)
    previous = [d for d in before if d < session]
    if last is None or not previous or last.date() < previous[-1]:
        have = f"{last:%Y-%m-%d}" if last is not None else "no bars"
        raise StoreError(
            f"the store ends {have}, before {previous[-1] if previous else 'the session'} "
            f"(the session before {session}): sync it first ('technic sync'), then live scans "
            "go on"
        )


def _forming_bars(state: live_state.LiveState, step: live_state.Step) -> dict[str, list]:
    """Today's bar so far per ticker that took one: [open, high, low, close, volume] (the
    symbol detail's chart ends with it)."""
    moved = step.moved
    columns = [step.bars[c][moved] for c in ("open", "high", "low", "close", "volume")]
    rows = np.column_stack(columns).tolist() if moved.any() else []
    return dict(zip(state.tickers[moved].astype(str), rows, strict=True))


def status_line(meta: dict[str, Any], local: pd.Timestamp) -> str:
    """'Live, 15 min delayed, 10:32 ET: 5,646 of 6,000 symbols (0.08 s)'."""
    delay = meta["delayed_minutes"]
    lag = f"{delay} min delayed" if delay else "real time"
    return (
        f"live, {lag}, {local:%H:%M} ET: scanned {meta['symbols_scanned']:,} of "
        f"{meta['universe_size']:,} symbols in {meta['timings']['total']:.2f} s"
    )
