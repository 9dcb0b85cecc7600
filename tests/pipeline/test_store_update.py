"""BarStore.update (the sync's writer), side tables, dates and the universe merge."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import adjustments
from pipeline.schema import validate_bars
from pipeline.store import BarStore
from tests.pipeline.test_store import SPEC, make_bars


@pytest.fixture
def store(store_url: str) -> BarStore:
    store = BarStore(store_url)
    store.write(make_bars(SPEC), rows_per_file=40)  # AAPL GE IBM | MSFT ZZ
    return store


def day_bars(tickers: list[str], day: str, close: float = 100.0) -> pd.DataFrame:
    n = len(tickers)
    return pd.DataFrame(
        {
            "ticker": tickers,
            "date": pd.Timestamp(day),
            "open": np.full(n, close),
            "high": np.full(n, close + 1),
            "low": np.full(n, close - 1),
            "close": np.full(n, close),
            "volume": np.full(n, 500.0),
        }
    )


def check_layout(store: BarStore) -> None:
    """Every file sorted, whole tickers, files in ticker order, manifest true to the files."""
    names = []
    for f in store.files:
        part = store.read(list(f.tickers))
        validate_bars(part)
        assert tuple(pd.unique(part.index)) == f.tickers and len(part) == f.rows
        names += f.tickers
    assert names == sorted(names) and len(names) == len(set(names))


def test_update_equals_a_full_rewrite_and_keeps_untouched_files(
    store: BarStore, tmp_path: Path
) -> None:
    copy = BarStore(tmp_path / "copy")
    copy.write(store.read().reset_index(), rows_per_file=40)
    before = {f.name: f.tickers for f in store.files}
    new = day_bars(["ZZ", "MSFT"], "2024-02-20")
    summary = store.update(new, rows_per_file=40)
    copy.write(new, rows_per_file=40)
    pd.testing.assert_frame_equal(store.read(), copy.read())
    after = {f.name: f.tickers for f in store.files}
    assert set(before) & set(after) == {store.files[0].name}  # AAPL GE IBM: not rewritten
    assert summary.extra["rows_added"] == 2 and summary.rows == copy.manifest["rows"]
    check_layout(store)


def test_a_new_ticker_goes_where_it_sorts(store: BarStore) -> None:
    store.update(day_bars(["AAA", "HPQ", "ZZZ", "AAPL"], "2024-02-20"))
    check_layout(store)
    assert set(store.tickers) == set(SPEC) | {"AAA", "HPQ", "ZZZ"}


def test_new_rows_replace_stored_ones_and_duplicates_keep_the_last(store: BarStore) -> None:
    day = "2024-01-02"  # stored for MSFT
    new = pd.concat([day_bars(["MSFT"], day, 1.0), day_bars(["MSFT"], day, 2.0)])
    summary = store.update(new)
    assert summary.rows_replaced == 1 and summary.duplicate_dates == 1
    bars = store.read(["MSFT"])
    assert bars.loc[bars["date"] == day, "close"].tolist() == [2.0]
    assert summary.rows == sum(days for _, days in SPEC.values())


def test_a_file_grown_past_twice_its_size_is_split(tmp_path: Path) -> None:
    store = BarStore(tmp_path / "s")
    store.write(make_bars({"A": ("2024-01-01", 10), "B": ("2024-01-01", 10)}), rows_per_file=20)
    assert len(store.files) == 1
    more = pd.concat([day_bars(["C", "D", "E"], f"2024-03-{d:02d}") for d in range(1, 11)])
    store.update(more, rows_per_file=20)
    assert len(store.files) == 3 and all(f.rows <= 20 for f in store.files)  # 50 rows
    check_layout(store)


def test_rescale_touches_only_the_named_tickers(store: BarStore) -> None:
    split = adjustments.conform(
        pd.DataFrame(
            {
                "ticker": ["IBM"],
                "execution_date": ["2024-01-10"],
                "split_from": [1],
                "split_to": [2],
            }
        )
    )
    ge_before, ibm_before = store.read(["GE"]), store.read(["IBM"])
    summary = store.update(
        None, rescale=lambda f: adjustments.apply(f, split), rescale_tickers={"IBM"}
    )
    ibm = store.read(["IBM"])
    early = (ibm["date"] < "2024-01-10").to_numpy()
    np.testing.assert_allclose(ibm["close"][early], ibm_before["close"][early] / 2)
    np.testing.assert_allclose(ibm["volume"][early], ibm_before["volume"][early] * 2)
    np.testing.assert_array_equal(ibm["close"][~early], ibm_before["close"][~early])
    pd.testing.assert_frame_equal(store.read(["GE"]), ge_before)
    assert summary.extra["rows_rescaled"] == int(early.sum())


def test_side_tables_swap_with_the_generation(store: BarStore) -> None:
    store.grace = 0  # replaced generations go at once (default: an hour later)
    table = pd.DataFrame({"ticker": ["A"], "n": [1]})
    store.update(day_bars(["GE"], "2024-03-01"), tables={"adjustments": table}, meta={"k": 1})
    first = store.manifest["tables"]["adjustments"]
    pd.testing.assert_frame_equal(store.table("adjustments"), table)
    store.update(day_bars(["GE"], "2024-03-04"))  # carried
    assert store.manifest["tables"]["adjustments"] == first and store.manifest["sync"] == {"k": 1}
    store.update(day_bars(["GE"], "2024-03-05"), tables={"adjustments": table.assign(n=2)})
    store.update(day_bars(["GE"], "2024-03-06"))
    assert not store.location.exists(first)  # stale after two generations
    assert store.table("adjustments")["n"].tolist() == [2]
    store.write(day_bars(["GE"], "2024-03-07"))  # an import merges: tables stay
    assert store.table("adjustments") is not None and store.manifest["sync"] == {"k": 1}
    store.write(day_bars(["GE"], "2024-03-08"), merge=False)  # a replaced store starts clean
    assert store.table("adjustments") is None and "sync" not in store.manifest


def test_update_creates_a_store(tmp_path: Path) -> None:
    store = BarStore(tmp_path / "new")
    store.update(day_bars(["B", "A"], "2024-03-01"))
    assert store.exists() and store.tickers == ["A", "B"]
    check_layout(store)


def test_dates_are_the_distinct_bar_dates(store: BarStore, tmp_path: Path) -> None:
    dates = store.dates()
    assert dates.is_monotonic_increasing and dates.is_unique
    assert len(dates) == len(pd.unique(store.read()["date"]))
    assert len(BarStore(tmp_path / "none").dates()) == 0


def test_universe_merges_column_by_column(store: BarStore) -> None:
    store.write_universe(
        pd.DataFrame(
            {"ticker": ["GE", "IBM"], "sector": ["Industrials", "Tech"], "market_cap": [1.0, 2.0]}
        )
    )
    store.write_universe(
        pd.DataFrame(
            {"ticker": ["GE", "IBM"], "sector": ["SIC sector", None], "active": [True, "no"]}
        ),
        fill_only=("sector",),
    )
    ref = store.reference()
    assert ref.loc["GE", "sector"] == "Industrials"  # fill_only: the stored value stays
    assert ref.loc["IBM", "sector"] == "Tech" and ref.loc["IBM", "market_cap"] == 2.0
    assert bool(ref.loc["GE", "active"]) and not bool(ref.loc["IBM", "active"])
    assert "active" not in store.universe().columns  # the scan's view is unchanged
