"""The bar store: round trips, merge semantics, generations, errors and the universe table,
on a local disk and in a bucket (``store_url``: both backends)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import StoreError, UnknownTickerError
from pipeline.frame import load_bars
from pipeline.schema import BAR_COLUMNS, BAR_DTYPES, TICKER, TICKER_DTYPE, validate_bars
from pipeline.store import UNIVERSE_COLUMNS, BarStore, conform_universe
from tests.conftest import random_walk


def make_bars(spec: dict[str, tuple[str, int]], *, base: float = 10.0) -> pd.DataFrame:
    """Long bars: ``spec`` maps ticker → (first business day, number of days); rows shuffled."""
    parts = []
    for i, (ticker, (start, days)) in enumerate(spec.items()):
        close = base + i + np.arange(days, dtype="float64")
        parts.append(
            pd.DataFrame(
                {
                    "ticker": ticker,
                    "date": pd.bdate_range(start, periods=days),
                    "open": close - 0.5,
                    "high": close + 1.0,
                    "low": close - 1.0,
                    "close": close,
                    "volume": np.full(days, 1000, dtype="int64"),
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)


SPEC = {
    "MSFT": ("2024-01-01", 30),
    "AAPL": ("2024-01-01", 25),
    "ZZ": ("2024-01-15", 10),
    "IBM": ("2024-01-01", 30),
    "GE": ("2024-01-03", 12),
}


@pytest.fixture
def store(store_url: str) -> BarStore:
    store = BarStore(store_url)
    store.write(make_bars(SPEC), rows_per_file=40)
    return store


@pytest.fixture
def other(store_url: str) -> BarStore:
    """An empty store beside ``store`` on the same backend."""
    return BarStore(store_url + "-other")


def bar_files(store: BarStore) -> set[str]:
    return {key.rsplit("/", 1)[-1] for key, _ in store.location.listing("bars")}


def parquet(store: BarStore, key: str) -> pa.Table:
    return pq.read_table(pa.BufferReader(store.location.get(key)))


# --- write then read --------------------------------------------------------------------------


def test_read_back_follows_the_contract(store: BarStore) -> None:
    bars = store.read()
    assert bars.index.name == TICKER
    assert bars.index.dtype == TICKER_DTYPE
    assert list(bars.columns) == list(BAR_COLUMNS)
    assert bars.dtypes.to_dict() == BAR_DTYPES
    validate_bars(bars)
    assert list(pd.unique(bars.index)) == sorted(SPEC)


def test_read_back_equals_the_input(store: BarStore) -> None:
    expected = make_bars(SPEC).sort_values(["ticker", "date"], ignore_index=True)
    got = store.read().reset_index()
    assert len(got) == sum(days for _, days in SPEC.values())
    np.testing.assert_array_equal(got["ticker"].to_numpy(str), expected["ticker"].to_numpy(str))
    np.testing.assert_array_equal(got["date"].to_numpy(), expected["date"].to_numpy())
    for col in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(got[col].to_numpy(), expected[col].to_numpy("float64"))


def test_each_file_holds_whole_sorted_tickers(store: BarStore) -> None:
    files = store.files
    assert len(files) > 1  # rows_per_file=40 splits the 107 rows
    seen: list[str] = []
    for f in files:
        part = parquet(store, f.key).to_pandas()
        tickers = list(pd.unique(part["ticker"]))
        assert tickers == list(f.tickers)
        assert not set(tickers) & set(seen)  # no ticker spans two files
        seen.extend(tickers)
        keys = pd.MultiIndex.from_frame(part[["ticker", "date"]])
        assert keys.is_monotonic_increasing
    assert seen == sorted(SPEC)
    assert store.tickers == sorted(SPEC)


def test_a_ticker_larger_than_rows_per_file_gets_a_file_of_its_own(other: BarStore) -> None:
    store = other
    store.write(make_bars(SPEC), rows_per_file=5)
    assert [f.tickers for f in store.files] == [(t,) for t in sorted(SPEC)]


def test_manifest_lists_files_with_ticker_ranges(store: BarStore) -> None:
    manifest = json.loads(store.location.get(store.current().name))
    assert manifest["rows"] == sum(days for _, days in SPEC.values())
    assert manifest["tickers"] == len(SPEC)
    for entry in manifest["files"]:
        table = parquet(store, entry["path"]).to_pandas()
        assert entry["rows"] == len(table)
        assert entry["tickers"] == list(pd.unique(table["ticker"]))
        assert entry["start"] == str(table["date"].min().date())
        assert entry["end"] == str(table["date"].max().date())
    firsts = [e["tickers"][0] for e in manifest["files"]]
    lasts = [e["tickers"][-1] for e in manifest["files"]]
    assert all(last < first for last, first in zip(lasts, firsts[1:], strict=False))


def test_read_selected_tickers_only(store: BarStore) -> None:
    bars = store.read(["ibm", "ZZ"])
    assert list(pd.unique(bars.index)) == ["IBM", "ZZ"]
    assert len(bars) == SPEC["IBM"][1] + SPEC["ZZ"][1]


def test_tickers_are_upper_cased_and_stripped_on_write(other: BarStore) -> None:
    bars = make_bars({" aapl ": ("2024-01-01", 3)})
    store = other
    store.write(bars)
    assert store.tickers == ["AAPL"]


# --- merge semantics --------------------------------------------------------------------------


def test_second_write_merges_and_new_rows_win(store: BarStore) -> None:
    before = store.read()
    update = make_bars({"AAPL": ("2024-01-29", 10), "NEW": ("2024-01-01", 4)}, base=500.0)
    summary = store.write(update)
    aapl_dates = set(before.loc["AAPL", "date"])
    overlap = int(update["date"][update["ticker"] == "AAPL"].isin(aapl_dates).sum())
    assert overlap == 5  # 2024-01-29 .. 2024-02-02 existed already
    assert summary.rows_replaced == overlap
    assert summary.duplicate_dates == 0
    after = store.read()
    assert summary.rows == len(after) == len(before) + 10 - overlap + 4
    assert summary.tickers == len(SPEC) + 1
    aapl = after.loc["AAPL"].set_index("date")["close"]
    new_rows = update[update["ticker"] == "AAPL"].sort_values("date")
    got = aapl.loc[new_rows["date"].astype("datetime64[ns]")].to_numpy()
    np.testing.assert_array_equal(got, new_rows["close"].to_numpy())
    untouched = before.loc["MSFT"].reset_index(drop=True)
    pd.testing.assert_frame_equal(after.loc["MSFT"].reset_index(drop=True), untouched)


def test_duplicates_inside_one_input_keep_the_last_and_are_counted(other: BarStore) -> None:
    bars = make_bars({"AAA": ("2024-01-01", 5)}).sort_values("date", ignore_index=True)
    dup = bars.iloc[[2, 2, 4]].copy()
    dup["close"] = [111.0, 222.0, 333.0]
    store = other
    summary = store.write(pd.concat([bars, dup], ignore_index=True))
    assert summary.duplicate_dates == 3
    assert summary.rows_replaced == 0
    got = store.read().set_index("date")["close"]
    assert len(got) == 5
    assert got[bars["date"][2]] == 222.0
    assert got[bars["date"][4]] == 333.0


def test_merge_false_replaces_the_store(store: BarStore) -> None:
    summary = store.write(make_bars({"ONLY": ("2024-01-01", 5)}), merge=False)
    assert store.tickers == ["ONLY"]
    assert summary.rows == 5
    assert summary.rows_replaced == 0


def test_write_summary_is_kept_in_the_manifest(store: BarStore) -> None:
    summary = store.write(make_bars({"AAPL": ("2024-01-01", 2)}), sources=("feed.csv",))
    assert store.manifest["last_write"] == summary.as_dict()
    assert store.manifest["last_write"]["sources"] == ["feed.csv"]
    assert summary.rows_replaced == 2


def test_bad_prices_are_kept_in_the_store(other: BarStore) -> None:
    bars = make_bars({"BAD": ("2024-01-01", 6)}).sort_values("date", ignore_index=True)
    bars.loc[0, "close"] = 0.0
    bars.loc[1, "low"] = -1.0
    bars.loc[2, "open"] = np.nan
    bars.loc[3, ["high", "low"]] = [5.0, 9.0]
    bars.loc[4, "volume"] = -10
    store = other
    store.write(bars)
    got = store.read().reset_index(drop=True)
    assert len(got) == 6
    assert got.loc[0, "close"] == 0.0
    assert got.loc[1, "low"] == -1.0
    assert np.isnan(got.loc[2, "open"])
    assert (got.loc[3, "high"], got.loc[3, "low"]) == (5.0, 9.0)
    assert got.loc[4, "volume"] == -10.0


# --- generations ------------------------------------------------------------------------------


def test_previous_generation_survives_one_write_and_goes_after_two(store: BarStore) -> None:
    store.grace = 0  # replaced generations go at once (default: an hour later)
    first = bar_files(store)
    assert first and all(name.startswith("g000001-") for name in first)
    store.write(make_bars({"AAPL": ("2024-03-01", 3)}), rows_per_file=40)
    second = bar_files(store) - first
    assert first <= bar_files(store)  # readers that hold gen 1 can still open its files
    assert {f.name for f in store.files} == second
    store.write(make_bars({"AAPL": ("2024-04-01", 3)}), rows_per_file=40)
    on_disk = bar_files(store)
    assert not first & on_disk
    assert second <= on_disk
    assert store.manifest["generation"] == 3
    assert len(store.location.listing("manifests")) == 2  # the current one and its predecessor
    if store.location.local:
        assert not list(Path(store.url).rglob(".*tmp"))


def test_data_version_changes_on_every_write(store: BarStore) -> None:
    versions = [store.data_version]
    for _ in range(2):  # identical content still makes a new generation
        store.write(make_bars({"AAPL": ("2024-01-01", 2)}))
        versions.append(store.data_version)
    assert len(set(versions)) == 3


def test_the_store_identity_lasts_while_the_store_grows(store: BarStore) -> None:
    """Made at creation, kept by every write that adds to the store (a merge, an update),
    new when the store is replaced: what a model's card names as its universe."""
    first = store.store_id
    assert first and len(first) == 32
    store.write(make_bars({"AAPL": ("2024-03-01", 2)}))
    store.update(make_bars({"NEW": ("2024-03-01", 3)}))
    assert store.store_id == first
    store.write(make_bars({"AAPL": ("2024-01-01", 5)}), merge=False)
    assert store.store_id not in (None, first)


# --- errors -----------------------------------------------------------------------------------


def test_select_names_every_missing_ticker(store: BarStore) -> None:
    with pytest.raises(UnknownTickerError) as info:
        store.select(["AAPL", "nope", "ALSO_NOPE"])
    assert info.value.missing == ["ALSO_NOPE", "NOPE"]
    assert "NOPE" in str(info.value) and "ALSO_NOPE" in str(info.value)
    assert "AAPL" not in str(info.value)


def test_select_is_case_insensitive(store: BarStore) -> None:
    picked = store.select(["aapl", " zz "])
    assert sorted(t for _, hit in picked for t in hit) == ["AAPL", "ZZ"]


@pytest.mark.parametrize("make_dir", [False, True], ids=["missing", "not-a-store"])
def test_open_without_a_store_says_how_to_create_one(other: BarStore, make_dir: bool) -> None:
    if make_dir:
        other.location.put("notes.txt", b"hello")
    with pytest.raises(StoreError) as info:
        BarStore.open(other.url)
    message = str(info.value)
    assert other.url in message
    assert "technic demo-data --store" in message
    assert "technic import" in message
    assert "\n" not in message


def test_corrupt_manifest_is_a_store_error(store: BarStore) -> None:
    store.location.put(store.current().name, b"{not json")
    with pytest.raises(StoreError, match="corrupt store manifest"):
        store.read()


# --- the universe table -----------------------------------------------------------------------


def universe_frame(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["ticker", "sector", "market_cap"])


def test_universe_has_one_row_per_store_ticker(other: BarStore) -> None:
    store = other
    ref = universe_frame([("AAPL", "Tech", 3e12), ("GONE", "Energy", 1e9), ("AAPL", "IT", 3e12)])
    store.write(make_bars(SPEC), ref)
    universe = store.universe()
    assert universe.index.name == TICKER
    assert list(universe.index) == sorted(SPEC)
    assert list(universe.columns) == list(UNIVERSE_COLUMNS[1:])
    assert universe.loc["AAPL", "sector"] == "IT"  # the last duplicate wins
    assert pd.isna(universe.loc["MSFT", "sector"])
    assert "GONE" not in universe.index


def test_universe_merges_across_writes(other: BarStore) -> None:
    store = other
    store.write(make_bars(SPEC), universe_frame([("AAPL", "IT", 1.0), ("MSFT", "IT", 2.0)]))
    store.write(
        make_bars({"NEW": ("2024-01-01", 3)}),
        universe_frame([("MSFT", "Software", 3.0), ("NEW", "Energy", 4.0)]),
    )
    universe = store.universe()
    assert len(universe) == len(SPEC) + 1
    assert universe.loc["AAPL", "sector"] == "IT"
    assert universe.loc["MSFT", "sector"] == "Software"
    assert universe.loc["MSFT", "market_cap"] == 3.0
    assert universe.loc["NEW", "sector"] == "Energy"


def test_universe_without_a_reference_table_is_all_missing(store: BarStore) -> None:
    universe = store.universe()
    assert list(universe.index) == sorted(SPEC)
    assert universe.isna().all().all()


def test_conform_universe_maps_aliases() -> None:
    raw = pd.DataFrame(
        {
            "Symbol": [" brk.b", "aapl"],
            "GICS_Sector": ["Financials", "Information Technology"],
            "GICS_Sub_Industry": ["Multi-Sector Holdings", "Hardware"],
            "Name": ["Berkshire", "Apple"],
            "market_cap": ["9e11", "n/a"],
            "extra": [1, 2],
        }
    )
    out = conform_universe(raw)
    assert list(out.columns) == list(UNIVERSE_COLUMNS)
    assert list(out["ticker"]) == ["BRK.B", "AAPL"]
    assert list(out["sector"]) == ["Financials", "Information Technology"]
    assert list(out["industry"]) == ["Multi-Sector Holdings", "Hardware"]
    assert out["market_cap"].iloc[0] == 9e11 and np.isnan(out["market_cap"].iloc[1])


def test_conform_universe_prefers_an_explicit_ticker_column() -> None:
    raw = pd.DataFrame({"ticker": ["A"], "symbol": ["B"], "sector": ["X"], "gics_sector": ["Y"]})
    out = conform_universe(raw)
    assert list(out["ticker"]) == ["A"]
    assert list(out["sector"]) == ["X"]


def test_conform_universe_accepts_a_ticker_index() -> None:
    raw = pd.DataFrame({"sector": ["X"]}, index=pd.Index(["abc"], name="ticker"))
    assert list(conform_universe(raw)["ticker"]) == ["ABC"]


def test_conform_universe_without_tickers_raises() -> None:
    with pytest.raises(StoreError, match="ticker"):
        conform_universe(pd.DataFrame({"name": ["x"]}))


@pytest.mark.parametrize(
    ("manifest", "problem"),
    [
        ({}, "it has no 'files' list"),
        ({"data_version": "g1", "files": [{"path": "bars/x.parquet", "rows": 1}]}, "'tickers'"),
    ],
    ids=["empty", "entry-without-tickers"],
)
def test_manifest_missing_what_readers_need_is_a_store_error(
    store: BarStore, manifest: dict, problem: str
) -> None:
    name = store.current().name
    store.location.put(name, json.dumps(manifest).encode())
    with pytest.raises(StoreError, match="corrupt store manifest") as info:
        store.read()
    assert store.location.display(name) in str(info.value)
    assert problem in str(info.value)


def test_truncated_universe_is_a_store_error_naming_it(other: BarStore) -> None:
    store = other
    store.write(make_bars(SPEC), universe_frame([("AAPL", "Tech", 3e12)]))
    key = store.manifest["universe"]
    store.location.put(key, store.location.get(key)[:300])
    for read in (store.universe, store.reference):
        with pytest.raises(StoreError, match="is damaged") as info:
            read()
        assert store.location.display(key) in str(info.value)


def test_missing_bar_file_is_a_store_error_naming_it(store: BarStore) -> None:
    gone = store.files[1]
    store.location.delete([gone.key])
    with pytest.raises(StoreError, match="is missing though its manifest lists it") as info:
        store.read()
    assert gone.url in str(info.value)
    assert "rebuild the store" in str(info.value)


def damage_page(store: BarStore, key: str, column: str = "open", size: int = 4096) -> None:
    """Overwrite ``size`` bytes in the middle of ``column``'s first column chunk with random
    bytes, as a bad disk sector would: page data, which decodes to garbage unchecked."""
    data = bytearray(store.location.get(key))
    meta = pq.ParquetFile(pa.BufferReader(bytes(data))).metadata.row_group(0)
    names = [meta.column(i).path_in_schema for i in range(meta.num_columns)]
    chunk = meta.column(names.index(column))
    at = chunk.data_page_offset + chunk.total_compressed_size // 2 - size // 2
    data[at : at + size] = np.random.default_rng(0).bytes(size)
    store.location.put(key, bytes(data))


def random_walk_bars(tickers: tuple[str, ...], days: int) -> pd.DataFrame:
    """Long bars whose prices are random walks: incompressible, like real prices."""
    dates = pd.bdate_range("1950-01-02", periods=days)
    return pd.concat(
        [
            pd.DataFrame({"ticker": t, "date": dates, **random_walk(days, seed=i)})
            for i, t in enumerate(tickers)
        ],
        ignore_index=True,
    )


@pytest.fixture
def big_store(other: BarStore) -> BarStore:
    """One file of 40,000 rows: each price column's first page holds 160 KB of values."""
    store = other
    store.write(random_walk_bars(("AAA", "BBB"), 20_000))
    return store


@pytest.mark.parametrize("column", ["open", "close", "volume"])
def test_random_bytes_in_a_page_fail_the_checksum(big_store: BarStore, column: str) -> None:
    (file,) = big_store.files
    damage_page(big_store, file.key, column)
    with pytest.raises(StoreError, match="is damaged") as info:
        big_store.read()
    assert file.url in str(info.value)
    assert "checksum" in str(info.value)
    with pytest.raises(StoreError, match="is damaged"):
        load_bars(big_store.url).compute(scheduler="sync")


def test_a_store_written_without_page_checksums_still_reads(big_store: BarStore) -> None:
    before = big_store.read()
    (file,) = big_store.files
    sink = pa.BufferOutputStream()
    pq.write_table(parquet(big_store, file.key), sink)  # as stores were written before
    big_store.location.put(file.key, sink.getvalue().to_pybytes())
    pd.testing.assert_frame_equal(big_store.read(), before)
    pd.testing.assert_frame_equal(load_bars(big_store.url).compute(scheduler="sync"), before)
