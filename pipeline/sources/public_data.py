"""Real market data from public files: the US universe a backtest or a notebook studies.

The files are the Parquet conversions described in ``shared/data/README.md`` (daily bars of
7,163 US stocks 2014-06..2017-11, SPY and ^GSPC, and reference snapshots of sectors,
industries and market caps). :func:`import_us_universe` writes them into a bar store once.
Sectors and market caps come from the oldest reference snapshot (2021-02-02): later than the
bars, so a market-cap rank looks ahead (sectors rarely change).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.errors import StoreError
from pipeline.store import BarStore

BARS = ("us_stocks_ohlcv.parquet", "benchmarks_ohlcv.parquet")
REFERENCE = "us_tickers_sector_industry.parquet"
SNAPSHOT = "2021-02-02"


def import_us_universe(data: Path, store: str | Path) -> str:
    """The store at ``store`` holding the public US universe from ``data``, written on first
    use (an existing store is left as it is). Returns the store's location."""
    if BarStore(store).exists():
        return str(store)
    data = Path(data).expanduser()
    missing = [name for name in BARS if not (data / name).exists()]
    if missing:
        raise StoreError(f"the public data is not in {data} ({', '.join(missing)} missing)")
    bars = pd.concat([pd.read_parquet(data / name) for name in BARS], ignore_index=True)
    universe = None
    if (data / REFERENCE).exists():
        table = pd.read_parquet(data / REFERENCE)
        table = table[table["snapshot_date"].astype(str) == SNAPSHOT]
        columns = ["ticker", "name", "sector", "industry", "market_cap"]
        universe = table[columns].drop_duplicates("ticker", keep="last")
    BarStore(store).write(bars, universe, merge=False, sources=BARS)
    return str(store)
