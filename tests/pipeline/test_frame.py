"""load_bars: the store as a Dask DataFrame indexed by ticker with known divisions."""

from __future__ import annotations

from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from pipeline.errors import StoreError, TechnicError, UnknownTickerError
from pipeline.frame import load_bars
from pipeline.schema import (
    BAR_COLUMNS,
    BAR_DTYPES,
    TICKER,
    TICKER_DTYPE,
    empty_bars,
    validate_bars,
)
from pipeline.segments import segment_bounds
from pipeline.store import BarStore


@pytest.fixture(scope="module")
def store(demo_store: Path) -> BarStore:
    return BarStore.open(demo_store)


def partitions(frame: dd.DataFrame) -> list[pd.DataFrame]:
    return [frame.get_partition(i).compute() for i in range(frame.npartitions)]


# --- the whole store --------------------------------------------------------------------------


def test_one_partition_per_file_with_known_divisions(store: BarStore) -> None:
    frame = load_bars(store.url)
    files = store.files
    assert len(files) > 1
    assert frame.npartitions == len(files)
    assert frame.known_divisions
    assert frame.divisions == (*[f.tickers[0] for f in files], files[-1].tickers[-1])


def test_meta_has_the_contract_columns_and_dtypes(store: BarStore) -> None:
    frame = load_bars(store.url)
    meta = frame._meta
    assert meta.index.name == TICKER
    assert list(meta.columns) == list(empty_bars().columns) == list(BAR_COLUMNS)
    assert meta.dtypes.to_dict() == BAR_DTYPES
    assert len(meta) == 0


def test_meta_and_partitions_keep_the_contract_index_dtype(store: BarStore) -> None:
    frame = load_bars(store.url)
    assert frame._meta.index.dtype == empty_bars().index.dtype == TICKER_DTYPE
    assert frame.get_partition(0).compute().index.dtype == TICKER_DTYPE


def test_each_partition_is_one_file_and_passes_validation(store: BarStore) -> None:
    frame = load_bars(store.url)
    for part, f, lo, hi in zip(
        partitions(frame), store.files, frame.divisions[:-1], frame.divisions[1:], strict=True
    ):
        validate_bars(part)
        assert list(pd.unique(part.index)) == list(f.tickers)
        assert len(part) == f.rows
        assert part.index.min() >= lo and part.index.max() <= hi


def test_computed_frame_holds_every_row(store: BarStore) -> None:
    frame = load_bars(store.url).compute()
    assert len(frame) == store.manifest["rows"]
    assert sorted(pd.unique(frame.index)) == store.tickers
    assert frame.dtypes.to_dict() == BAR_DTYPES


def test_graph_only_reads_files(store: BarStore) -> None:
    frame = load_bars(store.url)
    kinds = {type(node).__name__ for node in frame.expr.walk()}
    assert "FromMap" in kinds
    forbidden = ("Shuffle", "SetIndex", "Sort", "Repartition", "GroupBy", "Merge")
    assert not {k for k in kinds if any(word in k for word in forbidden)}, kinds
    graph = frame.optimize().__dask_graph__()
    assert len(graph) == frame.npartitions  # one read task per file, nothing else


# --- selections -------------------------------------------------------------------------------


def test_ticker_subset_keeps_known_divisions(store: BarStore) -> None:
    files = store.files
    wanted = [files[0].tickers[3], files[0].tickers[5], files[-1].tickers[-2]]
    frame = load_bars(store.url, tickers=[t.lower() for t in wanted])
    assert frame.npartitions == 2  # files without a wanted ticker are not read
    assert frame.divisions == (wanted[0], wanted[2], wanted[2])
    bars = frame.compute()
    assert list(pd.unique(bars.index)) == wanted
    expected = store.read(wanted)
    assert len(bars) == len(expected)
    np.testing.assert_array_equal(bars["close"].to_numpy(), expected["close"].to_numpy())


def test_start_and_end_are_inclusive(store: BarStore) -> None:
    everything = store.read()
    dates = np.sort(everything["date"].unique())
    start, end = pd.Timestamp(dates[10]), pd.Timestamp(dates[40])
    bars = load_bars(store.url, start=start, end=f"{end:%Y-%m-%d}").compute()
    assert bars["date"].min() == start
    assert bars["date"].max() == end
    expected = everything[(everything["date"] >= start) & (everything["date"] <= end)]
    assert len(bars) == len(expected)
    for part in partitions(load_bars(store.url, start=start, end=end)):
        validate_bars(part)


def test_end_before_any_bar_gives_empty_partitions(store: BarStore) -> None:
    frame = load_bars(store.url, end="1990-01-01")
    assert frame.npartitions == len(store.files)
    assert len(frame.compute()) == 0


def test_unknown_ticker_raises(store: BarStore) -> None:
    with pytest.raises(UnknownTickerError, match="NOPE"):
        load_bars(store.url, tickers=[store.tickers[0], "nope"])


def test_missing_store_raises(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="technic demo-data"):
        load_bars(tmp_path / "none")


def test_empty_ticker_list_is_a_clear_error_or_empty(store: BarStore) -> None:
    try:
        frame = load_bars(store.url, tickers=[])
    except TechnicError:
        return
    assert len(frame.compute()) == 0


# --- segment bounds ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype",
    [TICKER_DTYPE, "string[pyarrow]", "string[python]", object],
    ids=["str", "arrow", "python-string", "object"],
)
def test_segment_bounds_mark_each_ticker_run(dtype) -> None:
    index = pd.Index(["A", "A", "A", "BB", "C", "C"], dtype=dtype, name=TICKER)
    np.testing.assert_array_equal(segment_bounds(index), [0, 3, 4, 6])
    assert segment_bounds(index).dtype == np.int64


@pytest.mark.parametrize("dtype", [TICKER_DTYPE, object], ids=["arrow", "object"])
def test_segment_bounds_of_tiny_indexes(dtype) -> None:
    np.testing.assert_array_equal(segment_bounds(pd.Index([], dtype=dtype)), [0])
    np.testing.assert_array_equal(segment_bounds(pd.Index(["X"], dtype=dtype)), [0, 1])
    np.testing.assert_array_equal(segment_bounds(pd.Index(["X", "Y"], dtype=dtype)), [0, 1, 2])


def test_segment_bounds_of_a_chunked_arrow_index() -> None:
    left = pd.array(["A", "A", "B"], dtype="string[pyarrow]")
    right = pd.array(["B", "C"], dtype="string[pyarrow]")
    index = pd.Index(pd.concat([pd.Series(left), pd.Series(right)]).array, name=TICKER)
    np.testing.assert_array_equal(segment_bounds(index), [0, 2, 4, 5])


def test_segment_bounds_match_a_loaded_partition(store: BarStore) -> None:
    part = load_bars(store.url).get_partition(0).compute()
    bounds = segment_bounds(part.index)
    sizes = part.groupby(level=0, sort=False).size()
    np.testing.assert_array_equal(np.diff(bounds), sizes.to_numpy())
    assert list(part.index[bounds[:-1]]) == list(sizes.index)
