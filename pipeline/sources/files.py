"""Bars and reference tables from long-format CSV or Parquet files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from pipeline.errors import DataError
from pipeline.schema import conform_bars

READERS = {".csv": pd.read_csv, ".txt": pd.read_csv, ".parquet": pd.read_parquet}
TICKER_ALIASES = ("ticker", "symbol")


def _read(path: Path) -> pd.DataFrame:
    path = Path(path).expanduser()
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        return reader(path)
    except (ValueError, OSError, pa.ArrowException, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot read ({str(exc).splitlines()[0]})") from None


def read_bars(path: Path) -> pd.DataFrame:
    """Long-format bars (ticker or symbol, date, open, high, low, close, volume; any case) in
    the frame contract's column layout."""
    frame = _read(path)
    frame = frame.rename(columns={c: str(c).strip().lower() for c in frame.columns})
    if "ticker" not in frame and "symbol" in frame:
        frame = frame.rename(columns={"symbol": "ticker"})
    return conform_bars(frame, source=str(path))


def read_table(path: Path) -> pd.DataFrame:
    """A reference table as it is (the store conforms its columns)."""
    return _read(path)
