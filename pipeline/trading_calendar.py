"""NYSE trading sessions, from the maintained ``exchange_calendars`` XNYS calendar.

The sync asks a provider for one day of bars per session, so holidays (and the ad-hoc
closures the calendar library tracks, such as national days of mourning) are never requested.
"""

from __future__ import annotations

import warnings
from datetime import date, datetime, timedelta
from functools import lru_cache

import pandas as pd

from pipeline.errors import ConfigError

EXCHANGE = "XNYS"
# A session counts as finished this long after its close: grouped daily bars are published
# shortly after the close, and a day fetched too early comes back empty (then it is retried).
SETTLE = timedelta(minutes=30)


@lru_cache(maxsize=4)
def _calendar(first_year: int):
    import exchange_calendars as xcals

    start = pd.Timestamp(year=first_year, month=1, day=1)
    with warnings.catch_warnings():
        # the library reads tz-aware Series.values, which pandas 3.1 flags for pandas 4
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        return xcals.get_calendar(EXCHANGE, start=max(start, pd.Timestamp("1990-01-01")))


def _for(start: date):
    # The library's default window starts 20 years back; older ranges need their own build.
    return _calendar(min(start.year, date.today().year - 19))


def sessions(start: date, end: date) -> list[date]:
    """The NYSE sessions from ``start`` to ``end``, inclusive, oldest first."""
    if end < start:
        return []
    cal = _for(start)
    first = max(pd.Timestamp(start), cal.first_session)
    last = min(pd.Timestamp(end), cal.last_session)
    if last < first:
        return []
    return [d.date() for d in cal.sessions_in_range(first, last)]


def is_session(day: date) -> bool:
    return bool(_for(day).is_session(pd.Timestamp(day)))


def last_finished_session(now: datetime | None = None) -> date:
    """The newest session whose close is at least ``SETTLE`` in the past."""
    now = pd.Timestamp(now if now is not None else datetime.now().astimezone())
    if now.tzinfo is None:
        now = now.tz_localize("UTC")
    cal = _for(now.date() - timedelta(days=10))
    day = now.tz_convert("America/New_York").date()
    for candidate in reversed(sessions(day - timedelta(days=10), day)):
        if cal.session_close(pd.Timestamp(candidate)) + SETTLE <= now:
            return candidate
    raise ConfigError(f"no finished NYSE session in the 10 days before {day}")  # pragma: no cover


def session_window(
    now: datetime | None = None, delay: timedelta = timedelta(0)
) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """(open, close) of the NYSE session under way at ``now`` (its early close on half days),
    both shifted by the data's ``delay``; None between sessions."""
    now = pd.Timestamp(now if now is not None else datetime.now().astimezone())
    if now.tzinfo is None:
        now = now.tz_localize("UTC")
    day = now.tz_convert("America/New_York").date()
    if not is_session(day):
        return None
    cal = _for(day)
    opens = cal.session_open(pd.Timestamp(day)) + delay
    closes = cal.session_close(pd.Timestamp(day)) + delay
    return (opens, closes) if opens <= now <= closes else None
