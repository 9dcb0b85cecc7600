"""Which tickers a scan scores as of a date: the universe rules, for scans and backtests.

A ticker is scored when it has at least ``TECHNIC_MIN_HISTORY`` clean bars up to the date and
its last one is at most ``TECHNIC_STALE_DAYS`` days before it. The benchmark is never scored
(the scan marks it itself).
"""

from __future__ import annotations

import numpy as np

STATUSES: tuple[str, ...] = ("ok", "short_history", "stale", "no_clean_bars")


def status_codes(
    bars: np.ndarray,
    last_date: np.ndarray,
    as_of: np.ndarray | np.datetime64,
    *,
    min_history: int,
    stale_days: int,
) -> np.ndarray:
    """Each ticker's status as an index into :data:`STATUSES`, the first that applies of:
    no clean bar, fewer than ``min_history`` clean bars, a last bar more than ``stale_days``
    days before ``as_of``."""
    stale = np.asarray(last_date) < np.asarray(as_of) - np.timedelta64(stale_days, "D")
    return np.select([bars == 0, bars < min_history, stale], [3, 1, 2], 0)
