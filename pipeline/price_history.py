"""A ticker's price history as the app's chart draws it: the bars the scan trusted.

The same hygiene as the scan (:func:`pipeline.hygiene.trusted`): no bar with a missing, zero
or negative price, high below low or a bad volume is drawn, so the chart never plunges to 0
where the scan saw nothing. Volumes are whole numbers (the older app parses them as ints).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipeline import hygiene
from pipeline.schema import DATE
from pipeline.store import Generation


def trusted_bars(store: Generation, ticker: str, end: pd.Timestamp | str | None) -> pd.DataFrame:
    """``ticker``'s clean bars up to ``end`` (every bar when None), oldest first.

    Raises :class:`~pipeline.errors.UnknownTickerError` for a ticker the store lacks and
    :class:`~pipeline.errors.StoreError` when the store cannot be read.
    """
    bars = hygiene.trusted(store.read([ticker]))
    if end is not None:
        bars = bars[bars[DATE] <= pd.Timestamp(end)]
    return bars


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
