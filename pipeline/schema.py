"""The frame contract, as code.

Bars: index ``ticker`` (string); columns ``date`` (datetime64[ns]), ``open``, ``high``, ``low``,
``close``, ``volume`` (float64); sorted by (ticker, date); every partition holds complete
tickers. Every ``map_partitions`` over bars takes its ``meta`` from here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.errors import DataError

TICKER = "ticker"
DATE = "date"
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
BAR_COLUMNS: tuple[str, ...] = (DATE, *PRICE_COLUMNS, "volume")
DATE_DTYPE = np.dtype("datetime64[ns]")
TICKER_DTYPE = pd.StringDtype("pyarrow")  # what Dask's string conversion produces
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
    try:
        dates = pd.to_datetime(df[DATE])
    except (ValueError, TypeError) as exc:
        raise DataError(f"{source}: column 'date' has unparsable values ({exc})") from None
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
    out[DATE] = dates.astype(DATE_DTYPE)
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
