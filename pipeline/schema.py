"""The frame contract, as code.

Bars: index ``ticker`` (string); columns ``date`` (datetime64[ns]), ``open``, ``high``, ``low``,
``close``, ``volume`` (float64); sorted by (ticker, date); every partition holds complete
tickers. Every ``map_partitions`` over bars takes its ``meta`` from here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError, DataError

TICKER = "ticker"
DATE = "date"
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
BAR_COLUMNS: tuple[str, ...] = (DATE, *PRICE_COLUMNS, "volume")
DATE_DTYPE = np.dtype("datetime64[ns]")
TICKER_DTYPE = pd.StringDtype("pyarrow")  # what Dask's string conversion produces
PLAUSIBLE_YEARS = (1900, 2100)  # of an imported bar's date; others are typos or wrong units
ASKED_YEARS = (1900, 2200)  # of a date a user asks about (a scan's as-of, a backtest's range)
EPOCH_UNITS = {
    "s": "epoch seconds",
    "ms": "epoch milliseconds",
    "us": "epoch microseconds",
    "ns": "epoch nanoseconds",
}
BAR_DTYPES: dict[str, np.dtype] = {
    DATE: DATE_DTYPE,
    **{c: np.dtype("float64") for c in (*PRICE_COLUMNS, "volume")},
}


def empty_bars() -> pd.DataFrame:
    """A zero-row bars frame with the contract's index, columns and dtypes (Dask ``meta``)."""
    index = pd.Index([], dtype=TICKER_DTYPE, name=TICKER)
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in BAR_DTYPES.items()}, index=index)


def conform_bars(frame: pd.DataFrame, *, source: str = "input") -> pd.DataFrame:
    """Return ``frame`` in the long format of the contract with ``ticker`` as a column.

    Accepts a ticker index or column, column names in any case, ``date`` as strings, dates or
    timestamps, and integer volume. Raises :class:`DataError` naming what is missing.
    """
    df = frame.reset_index() if frame.index.name and frame.index.name.lower() == TICKER else frame
    df = df.rename(columns={c: str(c).strip().lower() for c in df.columns})
    missing = [c for c in (TICKER, *BAR_COLUMNS) if c not in df.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)}; "
            f"expected {', '.join((TICKER, *BAR_COLUMNS))}"
        )
    out = pd.DataFrame({TICKER: df[TICKER].astype(TICKER_DTYPE).str.strip().str.upper()})
    out[DATE] = _dates(df[DATE], source)
    for col in (*PRICE_COLUMNS, "volume"):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() & df[col].notna()
        if bad.any():
            example = df.loc[bad, col].iloc[0]
            raise DataError(f"{source}: column '{col}' has non-numeric values, e.g. {example!r}")
        out[col] = values.astype("float64")
    if out[TICKER].isna().any() or (out[TICKER] == "").any():
        raise DataError(f"{source}: column 'ticker' has empty values")
    if out[DATE].isna().any():
        raise DataError(f"{source}: column 'date' has empty values")
    return out


def parse_day(value: str | pd.Timestamp, what: str) -> pd.Timestamp:
    """A date a user gave (``what``: "date", "start date"…) as a day; anything else raises a
    one-line :class:`ConfigError`."""
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        stamp = pd.NaT
    lo, hi = ASKED_YEARS
    if pd.isna(stamp) or not lo <= stamp.year <= hi:
        raise ConfigError(f"bad {what} {value!r}; use YYYY-MM-DD between {lo} and {hi}")
    return stamp.normalize()


def _dates(values: pd.Series, source: str) -> pd.Series:
    """``values`` as the contract's dates. Numbers (epoch seconds would import as 1970) and
    years outside ``PLAUSIBLE_YEARS`` raise a :class:`DataError` that says how to fix the file."""
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    numbers = values.dropna() if numeric else values.iloc[:0]
    if len(numbers):
        example = numbers.iloc[0]
        raise DataError(
            f"{source}: column 'date' holds numbers like {example}{_number_hint(example)}; "
            "write dates as YYYY-MM-DD"
        )
    try:
        dates = pd.to_datetime(values)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{source}: column 'date' has unparsable values ({exc})") from None
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
    first, last = PLAUSIBLE_YEARS
    wrong = ~dates.dt.year.between(first, last) & dates.notna()
    if wrong.any():
        raise DataError(
            f"{source}: column 'date' has {dates[wrong].iloc[0].date()}, outside the years "
            f"{first}–{last}; correct or remove the {int(wrong.sum()):,} such row(s)"
        )
    return dates.astype(DATE_DTYPE)


def _number_hint(number: float) -> str:
    """What a number in a date column probably is: YYYYMMDD digits or an epoch count."""
    first, last = PLAUSIBLE_YEARS
    digits = pd.to_datetime(f"{number:.0f}", format="%Y%m%d", errors="coerce")
    if pd.notna(digits) and first <= digits.year <= last:
        return " (YYYYMMDD?)"
    for unit, name in EPOCH_UNITS.items():
        try:
            stamp = pd.Timestamp(number, unit=unit)
        except (ValueError, TypeError, OverflowError):
            continue
        if first <= stamp.year <= last:
            return f" ({name}?)"
    return ""


def validate_bars(frame: pd.DataFrame) -> None:
    """Check that ``frame`` (one partition, ticker index) meets the contract; raise otherwise."""
    if frame.index.name != TICKER:
        raise DataError(f"bars must be indexed by {TICKER!r}, not {frame.index.name!r}")
    if list(frame.columns) != list(BAR_COLUMNS):
        raise DataError(f"bar columns must be {list(BAR_COLUMNS)}, got {list(frame.columns)}")
    for col, dtype in BAR_DTYPES.items():
        if frame[col].dtype != dtype:
            raise DataError(f"bar column {col!r} must be {dtype}, got {frame[col].dtype}")
    keys = pd.MultiIndex.from_arrays([frame.index, frame[DATE]])
    if not keys.is_monotonic_increasing:
        raise DataError("bars must be sorted by (ticker, date)")
