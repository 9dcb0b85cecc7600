"""A ticker's price history as the app's chart draws it: the bars the scan trusted.

The same hygiene as the scan (:func:`pipeline.hygiene.trusted`): no bar with a missing, zero
or negative price, high below low or a bad volume is drawn, so the chart never plunges to 0
where the scan saw nothing. Volumes are whole numbers (the older app parses them as ints).

:class:`RecentBars` holds the last sessions of every ticker of one generation in memory, read
in one pass over the store's files, so a service whose store is in a bucket answers a chart
without a round trip (a store file is the smallest thing a bucket serves, and it holds
hundreds of tickers).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.schema import DATE, empty_bars
from pipeline.segments import run_starts, segment_bounds
from pipeline.store import Generation, StoreFile, read_bytes, read_file

RECENT_SESSIONS = 260  # a year of sessions: the detail screen asks for 90 days
_MARGIN = 5  # sessions read before the window, so hygiene sees each bar's predecessor


def trusted_bars(store: Generation, ticker: str, end: pd.Timestamp | str | None) -> pd.DataFrame:
    """``ticker``'s clean bars up to ``end`` (every bar when None), oldest first.

    Raises :class:`~pipeline.errors.UnknownTickerError` for a ticker the store lacks and
    :class:`~pipeline.errors.StoreError` when the store cannot be read.
    """
    stop = None if end is None else pd.Timestamp(end)
    parts = [read_file(f, hit, None, stop) for f, hit in store.select([ticker])]
    from pipeline import hygiene  # Numba kernels: loaded by the first chart, not at import

    return hygiene.trusted(pd.concat(parts))


@dataclass(frozen=True)
class RecentBars:
    """The trusted bars of every ticker of one generation up to ``end``, the last
    ``sessions`` sessions of the store, in memory (``frame`` grouped by ticker)."""

    data_version: str
    end: pd.Timestamp | None
    sessions: int
    frame: pd.DataFrame
    spans: dict[str, tuple[int, int, bool]]  # ticker → rows lo:hi, whole history held
    seconds: float  # how long loading took

    @classmethod
    def load(
        cls, generation: Generation, end: pd.Timestamp | str | None, sessions: int = RECENT_SESSIONS
    ) -> RecentBars:
        """Read the window from every file of ``generation`` (a few files at a time)."""
        tic = time.perf_counter()
        stop = None if end is None else pd.Timestamp(end)
        dates = generation.dates()
        if stop is not None:
            dates = dates[dates <= stop]
        start = dates[-(sessions + _MARGIN)] if len(dates) > sessions + _MARGIN else None

        def window(file: StoreFile) -> tuple[pd.DataFrame, set[str]]:
            """The file's bars in the window, and its tickers whose whole history that is."""
            data = read_bytes(file)
            dates = read_file(file, data=data, columns=[DATE])
            starts = run_starts(dates.index.to_numpy())
            firsts = dates[DATE].to_numpy()[starts]
            whole = {
                str(t)
                for t, first in zip(dates.index[starts], firsts, strict=True)
                if start is None or first >= start
            }
            return read_file(file, None, start, stop, data=data), whole

        with ThreadPoolExecutor(max_workers=4) as pool:
            found = list(pool.map(window, generation.files))
        raw = pd.concat([bars for bars, _ in found]) if found else empty_bars()
        complete = set().union(*(whole for _, whole in found))
        from pipeline import hygiene

        frame = hygiene.trusted(raw)
        bounds = segment_bounds(frame.index)
        spans = {
            str(t): (int(a), int(b), str(t) in complete)
            for t, a, b in zip(frame.index[bounds[:-1]], bounds[:-1], bounds[1:], strict=True)
        }
        return cls(generation.data_version, stop, sessions, frame, spans, time.perf_counter() - tic)

    def bars(self, ticker: str, days: int) -> pd.DataFrame | None:
        """``ticker``'s last ``days`` trusted bars, exactly as from its whole history, or
        None when the window cannot say (a ticker it lacks, or one with fewer trusted bars
        in the window than asked for whose history starts before the window)."""
        span = self.spans.get(ticker)
        if span is None:
            return None
        lo, hi, complete = span
        # the window's first bar lacks its left neighbour (the spike rule looks at both):
        # only bars after it are certain, unless the ticker's whole history is in the window
        if not complete and hi - lo - 1 < days:
            return None
        return self.frame.iloc[max(lo, hi - days) : hi]


def chart_rows(bars: pd.DataFrame) -> list[dict[str, Any]]:
    """Bars as the app's history rows: ``date`` (YYYY-MM-DD), ``Open``, ``High``, ``Low``,
    ``Close`` (floats) and ``Volume`` (an integer)."""
    volume = np.rint(bars["volume"].to_numpy()).astype(np.int64).tolist()
    dates = bars[DATE].dt.strftime("%Y-%m-%d").tolist()
    columns = [bars[c].to_numpy().tolist() for c in ("open", "high", "low", "close")]
    return [
        {"date": d, "Open": o, "High": h, "Low": lo, "Close": c, "Volume": v}
        for d, o, h, lo, c, v in zip(dates, *columns, volume, strict=True)
    ]


def with_forming_bar(
    rows: list[dict[str, Any]], day: str, bar: list[float] | None, days: int
) -> list[dict[str, Any]]:
    """Chart ``rows`` ending with today's forming bar ``[open, high, low, close, volume]`` of
    a live snapshot dated ``day`` (when newer than the last row), still ``days`` rows at most."""
    if bar is None or (rows and rows[-1]["date"] >= day):
        return rows
    o, h, lo, c, v = bar
    today = {"date": day, "Open": o, "High": h, "Low": lo, "Close": c, "Volume": round(v)}
    return [*rows, today][-days:]
