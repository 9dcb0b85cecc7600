"""Labels: forward returns over a fixed number of sessions, and their cross-sectional rank.

The label of ``(ticker, t)`` for horizon ``h`` is ``close[t+h]/close[t] − 1`` where ``t+h`` is
the ``h``-th session after ``t`` of the market calendar and the ticker has a clean bar on it
(otherwise NaN: a halted or delisted ticker gets no label rather than a longer one). It reads
the close at ``t`` (the entry) and at ``t+h``; nothing before ``t`` and nothing after ``t+h``.
``fwd_rank_{h}d`` is its percentile rank (0–1] among the eligible rows of date ``t``: the
model's target, free of the market's direction.

The calendar is the set of dates on which at least :data:`SESSION_SHARE` of the largest
cross-section trades (the most tickers on any date), so stray prints on a weekend or
holiday (the real data has 45 Saturday rows) and the decades of an index series that predate
the stock universe (^GSPC from 1927 in the real store) are neither sessions nor labelled rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.segments import segment_bounds

HORIZONS: tuple[int, ...] = (5, 10)
SESSION_SHARE = 0.2


def calendar(dates: np.ndarray) -> np.ndarray:
    """Ascending session dates of a panel's ``date`` column (see the module docstring)."""
    days, counts = np.unique(dates, return_counts=True)
    if len(days) == 0:
        return days
    return days[counts >= SESSION_SHARE * counts.max()]


def forward_return(
    close: np.ndarray, session: np.ndarray, bounds: np.ndarray, horizon: int
) -> np.ndarray:
    """``close[i+h]/close[i] − 1`` where row ``i+h`` is the same ticker exactly ``horizon``
    sessions later (``session``: each row's index in the calendar), else NaN."""
    n = len(close)
    j = np.arange(n) + horizon
    seg_end = np.repeat(bounds[1:], np.diff(bounds))
    jj = np.minimum(j, n - 1)
    ok = (j < seg_end) & (session[jj] - session == horizon)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ok, close[jj] / close - 1.0, np.nan)


def add_labels(panel: pd.DataFrame, horizons: tuple[int, ...] = HORIZONS) -> pd.DataFrame:
    """The panel (ticker index, sorted by ticker then date) restricted to session dates, with
    ``fwd_ret_{h}d`` and ``fwd_rank_{h}d`` for each horizon and a ``session`` column."""
    dates = panel["date"].to_numpy()
    sessions = calendar(dates)
    on_session = np.isin(dates, sessions)
    if not on_session.all():
        panel = panel[on_session]
        dates = dates[on_session]
    panel = panel.copy()
    session = np.searchsorted(sessions, dates)
    panel["session"] = session.astype(np.int32)
    bounds = segment_bounds(panel.index)
    close = panel["close"].to_numpy()
    eligible = panel["eligible"].to_numpy()
    for h in horizons:
        fwd = forward_return(close, session, bounds, h)
        panel[f"fwd_ret_{h}d"] = fwd
        usable = pd.Series(np.where(eligible, fwd, np.nan), index=panel.index)
        ranks = usable.groupby(session).rank(pct=True)
        panel[f"fwd_rank_{h}d"] = ranks.to_numpy()
    return panel
