"""``technic live``: during NYSE sessions, the market snapshot every interval, rescored and
published as the live snapshot.

Each update fetches Polygon's full-market snapshot (one request), rescores the universe on the
forming bars (:class:`pipeline.live.scan.LiveScanner`) and publishes the result atomically
(:func:`pipeline.snapshots.publish_live`). When the snapshot cannot be had (the client has
retried with backoff: 429s, timeouts, truncated bodies), the last live snapshot is published
again marked ``stale`` with its age, and the next interval tries again. Redis away: the loop
goes on and publishes when it is back. Outside sessions (the exchange calendar, half days
included) the loop idles; after the close the session's last live snapshot stays until the
nightly scan publishes the daily one.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from pipeline import snapshots
from pipeline.config import Settings
from pipeline.errors import ProviderError, TechnicError
from pipeline.live.scan import LiveScanner
from pipeline.scan import ScanResult
from pipeline.sources.polygon import MarketSnapshot, PolygonClient

log = logging.getLogger(__name__)


@dataclass
class Update:
    """One pass of the loop: the snapshot published (None when there was none to publish),
    whether it is stale, and the seconds each part took."""

    result: ScanResult | None
    stale: bool
    published: bool
    timings: dict[str, float]
    error: str | None = None


class LiveLoop:
    """The live loop of one store; ``client`` makes the Polygon client (tests swap it)."""

    def __init__(
        self,
        settings: Settings,
        store: str | None = None,
        client: Callable[[], PolygonClient] | None = None,
        publish: bool = True,
    ):
        self.settings = settings
        self.scanner = LiveScanner(store, settings)
        if client is None:
            PolygonClient.from_settings(settings)  # no key: a one-line ConfigError now
        self.client = client or (lambda: PolygonClient.from_settings(settings))
        self.publish = publish
        self.last: ScanResult | None = None
        self.last_fresh: float | None = None  # monotonic time of the last fresh update

    async def fetch(self) -> MarketSnapshot:
        async with self.client() as client:
            return await client.market_snapshot()

    def once(self) -> Update:
        """Fetch, rescore and publish once (the session is the data's)."""
        tic = time.perf_counter()
        try:
            market = asyncio.run(self.fetch())
        except ProviderError as exc:
            return self._stale(str(exc), time.perf_counter() - tic)
        fetched = time.perf_counter()
        base = snapshots.latest_id(settings=self.settings) if self.publish else None
        result, _ = self.scanner.rescore(market, base_snapshot=base)
        scored = time.perf_counter()
        previous = self.last.snapshot if self.last is not None else None
        published = self.publish and snapshots.publish_live(
            result, previous=previous, settings=self.settings
        )
        done = time.perf_counter()
        self.last, self.last_fresh = result, time.monotonic()
        timings = {
            "fetch": fetched - tic,
            "rescore": scored - fetched,
            "publish": done - scored,
            "total": done - tic,
        }
        log.info("[LIVE] %s (%s)", result.snapshot["log"], _seconds(timings))
        return Update(result, False, published, timings)

    def _stale(self, error: str, seconds: float) -> Update:
        """The last live snapshot again, marked stale with its age."""
        log.warning("[LIVE] market snapshot unavailable: %s", error)
        if self.last is None or self.last_fresh is None:
            return Update(None, True, False, {"total": seconds}, error)
        age = round(time.monotonic() - self.last_fresh)
        document = dict(self.last.snapshot)
        document["snapshot_id"] = _next_id(document["snapshot_id"])
        document.update(stale=True, stale_seconds=age)
        document["log"] = f"{self.last.snapshot['log']} (stale: {age} s old, Polygon failing)"
        stale = ScanResult(
            table=self.last.table,
            snapshot=document,
            timings=self.last.timings,
            hygiene=self.last.hygiene,
            statuses=self.last.statuses,
        )
        published = self.publish and snapshots.publish_live(stale, settings=self.settings)
        return Update(stale, True, published, {"total": seconds}, error)

    def run(
        self, stop: threading.Event | None = None, now: Callable[[], datetime] | None = None
    ) -> None:
        """Update every ``live_interval`` seconds during sessions, idle outside them, until
        ``stop`` is set."""
        from pipeline import trading_calendar

        stop = stop or threading.Event()
        clock = now or (lambda: datetime.now().astimezone())
        delay = timedelta(minutes=self.settings.polygon_delay)
        was_open = False
        while not stop.is_set():
            started = time.monotonic()
            if trading_calendar.session_window(clock(), delay) is not None:
                try:
                    self.once()
                except TechnicError as exc:  # a bad store or state: said, then tried again
                    log.error("[LIVE] update failed: %s", exc)
                was_open = True
            elif was_open:
                was_open = False
                snapshots.hold_live(settings=self.settings)
                self.last = self.last_fresh = None  # the next session starts from the daily one
                log.info("[LIVE] session over: its last live snapshot stays until the daily one")
            stop.wait(max(self.settings.live_interval - (time.monotonic() - started), 0.0))


def _next_id(sid: str) -> str:
    day = sid.split("-", 1)[0]
    return f"{day}-{pd.Timestamp.now(tz='UTC'):%H%M%S}-{uuid.uuid4().hex[:6]}"


def _seconds(timings: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.3f} s" for k, v in timings.items())
