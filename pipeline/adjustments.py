"""Stock-split adjustments: one rule for every bar, old or new.

The store holds prices in the share units of its newest applied split. A bar dated ``d`` of a
ticker is stored as the provider's unadjusted bar times the factor of every *recorded* split
of that ticker executed after ``d``::

    price  = raw price  × Π split_from / split_to
    volume = raw volume × Π split_to / split_from

The same rule is applied to bars already in the store when a split is first recorded, and to
bars fetched later (incremental days, or an older backfill), so a ticker's history has no seam
at the split whatever order its days arrived in. The adjustments table in the store lists the
splits applied (see :data:`COLUMNS`); a split is identified by (ticker, execution_date) and
applied exactly once, in the same atomic store write that records it.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipeline.schema import DATE, DATE_DTYPE, PRICE_COLUMNS, TICKER, TICKER_DTYPE

log = logging.getLogger(__name__)

NAME = "adjustments"  # the store table
KEY = (TICKER, "execution_date")
COLUMNS = (TICKER, "execution_date", "split_from", "split_to", "price_factor", "applied_at")


def empty() -> pd.DataFrame:
    """A zero-row adjustments table."""
    return conform(pd.DataFrame({c: [] for c in COLUMNS}))


def conform(splits: pd.DataFrame, applied_at: str | None = None) -> pd.DataFrame:
    """Splits (ticker, execution_date, split_from, split_to) in the table's layout.

    Rows with a non-positive or missing ratio are dropped (they cannot be applied).
    """
    out = pd.DataFrame(
        {
            TICKER: splits[TICKER].astype(TICKER_DTYPE).str.strip().str.upper(),
            "execution_date": pd.to_datetime(splits["execution_date"]).astype(DATE_DTYPE),
            "split_from": pd.to_numeric(splits["split_from"], errors="coerce").astype("float64"),
            "split_to": pd.to_numeric(splits["split_to"], errors="coerce").astype("float64"),
        }
    )
    ok = (out["split_from"] > 0) & (out["split_to"] > 0) & out["execution_date"].notna()
    out = out[ok.fillna(False).to_numpy()].copy()
    out["price_factor"] = out["split_from"] / out["split_to"]
    if "applied_at" in splits:
        out["applied_at"] = splits.loc[out.index, "applied_at"].astype("string")
    else:
        out["applied_at"] = pd.array([applied_at] * len(out), dtype="string")
    out = out.drop_duplicates(list(KEY), keep="last")
    return out.sort_values(list(KEY), ignore_index=True)


def new_splits(recorded: pd.DataFrame, fetched: pd.DataFrame) -> pd.DataFrame:
    """The splits of ``fetched`` not yet in ``recorded``.

    A fetched split whose (ticker, date) is recorded with another ratio is a provider
    correction; it is logged and not applied (re-sync the ticker's history to take it).
    """
    if fetched.empty:
        return fetched.iloc[:0]
    merged = fetched.merge(
        recorded[[*KEY, "price_factor"]], on=list(KEY), how="left", suffixes=("", "_rec")
    )
    known = merged["price_factor_rec"].notna().to_numpy()
    changed = known & ~np.isclose(merged["price_factor"], merged["price_factor_rec"])
    for row in merged[changed].itertuples(index=False):
        log.warning(
            "split of %s on %s changed at the provider (factor %.6g, applied %.6g): kept the "
            "applied one",
            row.ticker,
            f"{row.execution_date:%Y-%m-%d}",
            row.price_factor,
            row.price_factor_rec,
        )
    return fetched[~known].reset_index(drop=True)


def factors(tickers: pd.Series, dates: pd.Series, splits: pd.DataFrame) -> np.ndarray:
    """The price factor of each bar: the product of ``split_from / split_to`` over the splits
    of its ticker executed after its date (1.0 for most bars)."""
    out = np.ones(len(tickers))
    if splits.empty or not len(tickers):
        return out
    split_tickers = pd.Index(splits[TICKER].unique())
    hit = split_tickers.get_indexer(pd.Index(tickers)) >= 0
    if not hit.any():
        return out
    rows = pd.DataFrame(
        {
            "_row": np.flatnonzero(hit),
            TICKER: np.asarray(tickers, dtype=object)[hit],
            DATE: np.asarray(dates)[hit],
        }
    )
    pairs = rows.merge(
        splits[[TICKER, "execution_date", "price_factor"]].astype({TICKER: object}), on=TICKER
    )
    pairs = pairs[pairs[DATE].to_numpy() < pairs["execution_date"].to_numpy()]
    if pairs.empty:
        return out
    product = pairs.groupby("_row")["price_factor"].prod()
    out[product.index.to_numpy()] = product.to_numpy()
    return out


def apply(bars: pd.DataFrame, splits: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """``bars`` (ticker column or index) with ``splits`` applied, and how many rows changed."""
    if splits.empty or bars.empty:
        return bars, 0
    tickers = bars.index.to_series() if TICKER not in bars.columns else bars[TICKER]
    factor = factors(tickers, bars[DATE], splits)
    changed = factor != 1.0
    if not changed.any():
        return bars, 0
    out = bars.copy()
    for col in PRICE_COLUMNS:
        out[col] = out[col].to_numpy() * factor
    out["volume"] = out["volume"].to_numpy() / factor
    return out, int(changed.sum())
