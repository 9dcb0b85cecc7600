"""The recent bars behind the app's price charts, held in memory per snapshot's generation.

When a snapshot arrives, the bars of the store generation it was computed from (the last
year of sessions of every ticker, :class:`~pipeline.price_history.RecentBars`) are read in a
background thread, once, and replace the previous set when ready. Until then, and for a
request the window cannot answer, the route reads the ticker's store file itself.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from pipeline.errors import TechnicError
from pipeline.price_history import RecentBars
from pipeline.store import BarStore, Generation

log = logging.getLogger(__name__)

Key = tuple[str, str | None, str | None]  # store URL, data version, as-of


def snapshot_generation(url: str, document: dict[str, Any]) -> Generation:
    """The generation the snapshot was computed from while the store keeps it, else the
    store's current one. Raises :class:`~pipeline.errors.StoreError` when unreadable."""
    store = BarStore.open(url)
    version = (document.get("store") or {}).get("data_version")
    return (store.generation(version) if version else None) or store.current()


class RecentHistory:
    """One :class:`RecentBars` at a time: the latest snapshot's."""

    def __init__(self) -> None:
        self._held: tuple[Key, RecentBars] | None = None
        self._loading: Key | None = None
        self._lock = threading.Lock()

    def get(self, key: Key) -> RecentBars | None:
        """The bars for ``key`` when they are loaded (None while loading or after a
        failure: the caller reads the store)."""
        held = self._held
        return held[1] if held is not None and held[0] == key else None

    def load(self, key: Key, document: dict[str, Any]) -> None:
        """Load and hold ``key``'s bars (in the caller's thread: the service's warm-up runs
        it in the background) unless they are held or loading already."""
        with self._lock:
            if self._loading == key or (self._held is not None and self._held[0] == key):
                return
            self._loading = key
        url, _, as_of = key
        try:
            bars = RecentBars.load(snapshot_generation(url, document), as_of)
        except TechnicError as exc:
            log.warning("recent bars of %s not loaded (%s): charts read the store", url, exc)
            bars = None
        except Exception:  # a background thread must not die silently
            log.exception("recent bars of %s not loaded: charts read the store", url)
            bars = None
        with self._lock:
            if self._loading == key:
                self._loading = None
            if bars is not None:
                self._held = (key, bars)
        if bars is not None:
            log.info(
                "[HISTORY] %d bars of %d tickers in memory (%s, %.2fs)",
                len(bars.frame),
                len(bars.spans),
                bars.data_version,
                bars.seconds,
            )
