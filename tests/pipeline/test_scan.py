"""run_scan end to end on the demo store: schedulers, hygiene, the app's JSON, as-of, filters."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from distributed import Client
from distributed import client as distributed_client

from pipeline.config import Settings
from pipeline.errors import ConfigError, StoreError, UnknownSectorError, UnknownTickerError
from pipeline.scan import STAGES, ScanResult, run_scan
from pipeline.store import BarStore
from pipeline.vocabulary import SIGNALS

SCANNER_BUNDLE = ("results", "movers", "ideas", "log", "universe_size", "symbols_scanned")
FLAGS = {"HIGH_ATR", "LOW_LIQUIDITY", "PENNY_STOCK", "SHORT_HISTORY", "EXTENDED", "OVERBOUGHT"}
AS_OF = pd.Timestamp("2026-08-14")


@contextlib.contextmanager
def without_default_client() -> Iterator[None]:
    """Hide the session's distributed client so run_scan(client=None) uses Dask's local
    schedulers, as it does in a process without a cluster."""
    saved = dict(distributed_client._global_clients)
    distributed_client._global_clients.clear()
    token = distributed_client._current_client.set(None)
    try:
        with pytest.raises(ValueError):
            Client.current()
        yield
    finally:
        distributed_client._current_client.reset(token)
        distributed_client._global_clients.update(saved)


@contextlib.contextmanager
def captured_logs(name: str) -> Iterator[list[str]]:
    records: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: records.append(record.getMessage())
    logger = logging.getLogger(name)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@pytest.fixture(scope="module")
def scan_settings(tmp_path_factory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("data"), dashboard_address=":0")


@pytest.fixture(scope="module")
def cluster_scan(demo_store: Path, dask_client, scan_settings: Settings):
    with captured_logs("pipeline.scan") as logs:
        result = run_scan(demo_store, client=dask_client, settings=scan_settings)
    return result, logs


@pytest.fixture(scope="module")
def result(cluster_scan) -> ScanResult:
    return cluster_scan[0]


@pytest.fixture(scope="module")
def document(result: ScanResult) -> dict:
    return json.loads(result.to_json())


@pytest.fixture(scope="module")
def expected_status(demo_universe) -> pd.Series:
    """Each ticker's status computed independently from the generated bars."""
    bars = demo_universe.bars.drop_duplicates(["ticker", "date"], keep="last")
    prices = bars[["open", "high", "low", "close"]]
    clean = (
        np.isfinite(prices).all(axis=1)
        & (prices > 0).all(axis=1)
        & (bars["high"] >= bars["low"])
        & (bars["volume"] >= 0)
    )
    per = bars[clean].groupby("ticker")["date"].agg(["size", "max"])
    scan_date = bars["date"].max()
    status = pd.Series("ok", index=per.index, dtype=object)
    status[per["max"] < scan_date - pd.Timedelta(days=10)] = "stale"
    status[per["size"] < 60] = "short_history"
    status["SPY"] = "benchmark"
    return status


# --- schedulers -------------------------------------------------------------------------------


def test_cluster_threads_and_sync_give_the_same_scan(
    demo_store: Path, cluster_scan, scan_settings: Settings
) -> None:
    on_cluster, cluster_logs = cluster_scan
    sync_settings = scan_settings.model_copy(update={"cluster": "sync"})
    with without_default_client(), captured_logs("pipeline.scan") as local_logs:
        threaded = run_scan(demo_store, settings=scan_settings)
        synchronous = run_scan(demo_store, settings=sync_settings)
    assert "workers=2x1" in cluster_logs[-1]
    assert all("workers=threads" in line for line in local_logs)
    for other in (threaded, synchronous):
        pd.testing.assert_frame_equal(other.table, on_cluster.table)
        assert other.snapshot["results"] == on_cluster.snapshot["results"]
        assert other.hygiene == on_cluster.hygiene
        pd.testing.assert_series_equal(other.statuses, on_cluster.statuses)


def test_scan_perf_line_is_logged(cluster_scan) -> None:
    _, logs = cluster_scan
    line = [m for m in logs if m.startswith("[SCAN PERF]")]
    assert len(line) == 1
    assert re.fullmatch(
        r"\[SCAN PERF\] 300 symbols via dask in \d+\.\d\ds \(\d+\.\d{5}s/symbol, "
        r"workers=2x1, gpu=False\)",
        line[0],
    )


# --- hygiene and statuses ---------------------------------------------------------------------


def test_hygiene_counts_match_the_planted_mess(result: ScanResult, demo_universe, demo_store):
    mess, counts = demo_universe.mess, result.hygiene
    for reason in ("non_positive_price", "non_finite_price", "high_below_low"):
        assert counts[reason] == mess[reason] > 0, reason
    # duplicate dates were resolved when the store was written, so none reach the scan
    assert counts["duplicate_date"] == 0
    assert BarStore(demo_store).manifest["last_write"]["duplicate_dates"] == mess["duplicate_date"]
    assert counts["rows_in"] == len(demo_universe.bars) - mess["duplicate_date"]
    assert counts["bad_volume"] == 0  # zero-volume days are valid bars
    dropped = sum(counts[r] for r in ("non_positive_price", "non_finite_price", "high_below_low"))
    assert counts["rows_clean"] == counts["rows_in"] - dropped
    assert counts["tickers_in"] == len(demo_universe.universe)
    assert counts["tickers_short_history"] == mess["short_history_tickers"]
    assert 0 < counts["tickers_stale"] <= mess["delisted_tickers"]
    assert counts["tickers_no_clean_bars"] == 0
    assert result.snapshot["hygiene"] == counts


def test_statuses_match_an_independent_count(result: ScanResult, expected_status) -> None:
    got = result.statuses.sort_index()
    pd.testing.assert_series_equal(
        got, expected_status.sort_index(), check_names=False, check_index_type=False
    )
    stale = set(got.index[got == "stale"])
    assert result.hygiene["tickers_stale"] == len(stale)
    assert not stale & set(result.table.index)


def test_the_snapshot_says_why_each_unscored_ticker_has_no_row(
    result: ScanResult, document: dict, expected_status
) -> None:
    listed = {t: status for status, tickers in document["unscored"].items() for t in tickers}
    expected = expected_status[expected_status != "ok"]
    assert listed == expected.to_dict()
    assert document["universe_rules"] == {"min_history": 60, "stale_days": 10}


def test_tickers_the_scans_filters_leave_out_are_listed_as_filtered(
    demo_store: Path, result: ScanResult, scan_settings: Settings
) -> None:
    sync = scan_settings.model_copy(update={"cluster": "sync"})
    got = run_scan(demo_store, sectors=["Energy"], settings=sync).snapshot
    filtered = set(got["unscored"]["filtered"])
    scored = set(result.table.index)
    assert filtered == scored - {r["ticker"] for r in got["results"]}
    assert filtered and not filtered & set(result.table.index[result.table["Sector"] == "Energy"])


def test_sectors_by_the_names_of_other_taxonomies(
    demo_store: Path, result: ScanResult, scan_settings: Settings
) -> None:
    """The app's Randomize names (Yahoo's) select the demo universe's GICS sectors."""
    sync = scan_settings.model_copy(update={"cluster": "sync"})
    got = run_scan(demo_store, sectors=["Technology", "Healthcare"], settings=sync)
    assert set(got.table["Sector"]) == {"Information Technology", "Health Care"}
    assert got.snapshot["filters"]["sectors"] == ["Health Care", "Information Technology"]


def test_universe_size_and_symbols_scanned(result: ScanResult, document: dict) -> None:
    statuses = result.statuses
    assert document["universe_size"] == len(statuses) - 1 == 300  # the benchmark is not counted
    assert document["symbols_scanned"] == (statuses == "ok").sum() == len(result.table)
    assert document["log"] == (
        f"Scanned {document['symbols_scanned']:,} of 300 symbols as of 2026-11-20 in "
        f"{result.timings['total']:.1f} s"
    )
    assert "SPY" not in result.table.index


# --- the app's JSON ---------------------------------------------------------------------------


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_float_list(value) -> bool:
    return isinstance(value, list) and all(is_number(v) for v in value)


def test_snapshot_has_the_scanner_bundle(document: dict) -> None:
    assert set(SCANNER_BUNDLE) <= set(document)
    assert isinstance(document["log"], str) and document["log"]
    assert isinstance(document["universe_size"], int)
    assert isinstance(document["symbols_scanned"], int)
    assert document["as_of"] == "2026-11-20"
    assert document["snapshot_id"].startswith("20261120-")
    assert set(document["timings"]) == {*STAGES, "total"}


def test_snapshot_json_has_no_nan_or_infinity(result: ScanResult) -> None:
    def refuse(constant: str):
        raise AssertionError(f"{constant} in the snapshot JSON")

    json.loads(result.to_json(), parse_constant=refuse)


def test_every_result_row_has_the_contract_fields(document: dict) -> None:
    rows = document["results"]
    assert len(rows) == document["symbols_scanned"] > 200
    checks = {
        "ticker": lambda v: isinstance(v, str) and v,
        "signal": lambda v: v in SIGNALS,
        "rrr": lambda v: is_number(v) or isinstance(v, str),
        "entry": lambda v: is_number(v) and v > 0,
        "stop": is_number,
        "target": is_number,
        "note": lambda v: isinstance(v, str) and v,
        "sparkline": lambda v: is_float_list(v) and 0 < len(v) <= 30,
        "ICS": lambda v: is_number(v) and 0 <= v <= 100,
        "Tier": lambda v: v in {"CORE", "SATELLITE", "WATCH"},
        "win_prob_10d": lambda v: v is None,
        "QualityScore": lambda v: v is None,
        "PlayStyle": lambda v: v in {"Stable", "Hybrid", "Explosive"},
        "IsUltraRisky": lambda v: isinstance(v, bool),
        "Profile": lambda v: v in {"conservative", "moderate", "aggressive"},
        "ProfileLabel": lambda v: v in {"Conservative", "Moderate", "Aggressive"},
        "Sector": lambda v: isinstance(v, str) and v,
        "Industry": lambda v: isinstance(v, str) and v,
        "TechRating": lambda v: is_number(v) and 0 <= v <= 100,
        "AlphaScore": lambda v: v is None,
        "ATR14_pct": lambda v: is_number(v) and 0 < v < 1,
        "EventSummary": lambda v: v is None or isinstance(v, str),
        "EventFlags": lambda v: v is None or isinstance(v, str),
        "FundamentalSnapshot": lambda v: v is None or isinstance(v, str),
        "option_strategies": lambda v: v == [],
        "merit_score": lambda v: is_number(v) and 0 <= v <= 100,
        "merit_band": lambda v: v in {"A+", "A", "B", "C", "D"},
        "merit_flags": lambda v: isinstance(v, str) and (v == "" or set(v.split("|")) <= FLAGS),
        "merit_summary": lambda v: isinstance(v, str) and v.endswith("."),
    }
    for row in rows:
        missing = set(checks) - set(row)
        assert not missing, missing
        bad = {field: row[field] for field, ok in checks.items() if not ok(row[field])}
        assert not bad, (row["ticker"], bad)


def test_results_are_best_first(document: dict) -> None:
    rows = document["results"]
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    scores = [r["composite_score"] for r in rows]
    assert scores == sorted(scores, reverse=True)


def test_null_model_fields_say_why(document: dict) -> None:
    model = document["model"]
    assert model["alpha"] is None and model["alpha_weight"] == 0.0
    assert "AlphaScore" in model["reason"] and "win_prob_10d" in model["reason"]


def test_sparkline_is_the_last_closes_oldest_first(document: dict, demo_store: Path) -> None:
    rows = {r["ticker"]: r for r in document["results"]}
    picked = list(rows)[:5]
    bars = BarStore(demo_store).read(picked)
    for ticker in picked:
        closes = bars.loc[[ticker]]
        closes = closes[closes["close"] > 0]["close"].to_numpy()[-30:]
        np.testing.assert_allclose(rows[ticker]["sparkline"], closes, atol=5e-5)
        assert rows[ticker]["sparkline"][-1] == pytest.approx(rows[ticker]["close"], abs=5e-5)


def test_movers_shape(document: dict, result: ScanResult) -> None:
    movers = document["movers"]
    assert 0 < len(movers) <= 10
    assert len({m["ticker"] for m in movers}) == len(movers)
    for m in movers:
        assert set(m) >= {"ticker", "delta", "note", "isPositive", "sparkline"}
        assert re.fullmatch(r"[+-]\d+\.\d\d%", m["delta"])
        assert isinstance(m["isPositive"], bool)
        assert m["isPositive"] == (m["delta"][0] == "+")
        assert isinstance(m["note"], str) and m["note"]
        assert is_float_list(m["sparkline"]) and m["sparkline"]
        row = result.table.loc[m["ticker"]]
        assert row["close"] >= 1.0 and row["avg_dollar_volume_20d"] >= 1e6
    gains = [float(m["delta"][:-1]) for m in movers if m["isPositive"]]
    assert gains == sorted(gains, reverse=True)


def test_ideas_shape(document: dict) -> None:
    ideas = document["ideas"]
    rows = {r["ticker"]: r for r in document["results"]}
    assert len(ideas) <= 3
    for idea in ideas:
        assert all(
            isinstance(idea[k], str) and idea[k] for k in ("title", "ticker", "meta", "plan")
        )
        assert is_float_list(idea["sparkline"]) and idea["sparkline"]
        assert idea["ticker"] in idea["title"]
        row = rows[idea["ticker"]]
        assert row["signal"] in {"Long", "Strong Long"}
        assert row["Tier"] in {"CORE", "SATELLITE"}
        assert f"Entry {row['entry']:g}" in idea["plan"]


# --- as of ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rewritten_store(demo_store: Path, tmp_path_factory) -> Path:
    """A copy of the demo store whose every bar after AS_OF is changed wildly, with new rows,
    a new ticker and bad prints after AS_OF."""
    path = tmp_path_factory.mktemp("asof") / "store"
    shutil.copytree(demo_store, path)
    store = BarStore(path)
    bars = store.read().reset_index()
    later = bars["date"] > AS_OF
    bars.loc[later, ["open", "high", "low", "close"]] *= 10.0
    bars.loc[later, "volume"] *= 3.0
    last = bars[bars["date"] == bars["date"].max()]
    extra_days = pd.bdate_range(bars["date"].max() + pd.Timedelta(days=1), periods=5)
    extra = pd.concat([last.assign(date=day, close=last["close"] * 2) for day in extra_days])
    newcomer = last.assign(ticker="ZZZZ")
    bad = bars[later].groupby("ticker").head(1).assign(close=-1.0)
    store.write(pd.concat([bars, extra, newcomer], ignore_index=True), merge=False)
    store.write(bad)  # merged: these replace real rows after AS_OF with bad prints
    return path


def test_as_of_scan_ignores_later_bars(
    demo_store: Path, rewritten_store: Path, dask_client, scan_settings: Settings
) -> None:
    original = run_scan(demo_store, as_of=AS_OF, client=dask_client, settings=scan_settings)
    rewritten = run_scan(
        rewritten_store, as_of="2026-08-14", client=dask_client, settings=scan_settings
    )
    spy_before = BarStore(demo_store).read(["SPY"])
    spy_after = BarStore(rewritten_store).read(["SPY"])
    assert len(spy_after) == len(spy_before) + 5
    assert spy_after["close"].iloc[-1] > 15 * spy_before["close"].iloc[-1]
    assert (BarStore(rewritten_store).read()["close"] == -1.0).sum() > 200
    pd.testing.assert_frame_equal(rewritten.table, original.table)
    assert rewritten.snapshot["results"] == original.snapshot["results"]
    assert rewritten.snapshot["movers"] == original.snapshot["movers"]
    assert rewritten.snapshot["ideas"] == original.snapshot["ideas"]
    assert rewritten.snapshot["regime"] == original.snapshot["regime"]
    assert rewritten.hygiene == original.hygiene
    pd.testing.assert_series_equal(rewritten.statuses, original.statuses)
    assert "ZZZZ" not in rewritten.statuses.index


def test_as_of_scan_is_a_scan_of_the_past(
    demo_store: Path, result: ScanResult, dask_client, scan_settings: Settings
) -> None:
    past = run_scan(demo_store, as_of=AS_OF, client=dask_client, settings=scan_settings)
    assert past.snapshot["as_of"] == "2026-08-14"
    assert past.table["last_date"].max() == AS_OF
    assert past.hygiene["rows_in"] < result.hygiene["rows_in"]
    assert not past.table["close"].equals(result.table["close"])


def test_empty_as_of_is_a_config_error(demo_store: Path, scan_settings: Settings) -> None:
    with pytest.raises(ConfigError):
        run_scan(demo_store, as_of="", settings=scan_settings)


def test_unparsable_as_of_is_a_config_error(demo_store: Path, scan_settings: Settings) -> None:
    with pytest.raises(ConfigError, match="bad date 'yesterday-ish'"):
        run_scan(demo_store, as_of="yesterday-ish", settings=scan_settings)


# --- filters ----------------------------------------------------------------------------------


def test_sectors_filter_is_case_insensitive(
    demo_store: Path, result: ScanResult, dask_client, scan_settings: Settings
) -> None:
    got = run_scan(
        demo_store,
        sectors=["health care", " ENERGY "],
        client=dask_client,
        settings=scan_settings,
    )
    full = result.table
    expected = full[full["Sector"].isin(["Health Care", "Energy"])]
    assert len(got.table) == len(expected) > 0
    assert set(got.table["Sector"]) == {"Health Care", "Energy"}
    # scores and ranks are computed over the whole universe, then filtered
    pd.testing.assert_series_equal(got.table["rank"], expected["rank"])
    pd.testing.assert_series_equal(got.table["TechRating"], expected["TechRating"])
    assert got.snapshot["filters"]["sectors"] == ["Energy", "Health Care"]
    assert got.snapshot["symbols_scanned"] == result.snapshot["symbols_scanned"]
    assert len(got.snapshot["results"]) == len(expected)


def test_unknown_sector_lists_the_valid_names(
    demo_store: Path, demo_universe, scan_settings: Settings
) -> None:
    with pytest.raises(UnknownSectorError) as info:
        run_scan(demo_store, sectors=["Energy", "Crypto"], settings=scan_settings)
    valid = sorted(demo_universe.universe["sector"].unique())
    assert info.value.unknown == ["Crypto"]
    assert info.value.valid == valid
    message = str(info.value)
    assert "Crypto" in message and all(name in message for name in valid)


def test_min_price_filter(
    demo_store: Path, result: ScanResult, dask_client, scan_settings: Settings
) -> None:
    floor = float(result.table["close"].median())
    got = run_scan(demo_store, min_price=floor, client=dask_client, settings=scan_settings)
    assert (got.table["close"] >= floor).all()
    assert len(got.table) == (result.table["close"] >= floor).sum()
    assert got.snapshot["filters"]["min_price"] == floor


def test_min_dollar_volume_filter(
    demo_store: Path, result: ScanResult, dask_client, scan_settings: Settings
) -> None:
    floor = float(result.table["avg_dollar_volume_20d"].quantile(0.75))
    got = run_scan(demo_store, min_dollar_volume=floor, client=dask_client, settings=scan_settings)
    assert (got.table["avg_dollar_volume_20d"] >= floor).all()
    assert len(got.table) == (result.table["avg_dollar_volume_20d"] >= floor).sum()


def test_tickers_narrow_the_universe(
    demo_store: Path, result: ScanResult, dask_client, scan_settings: Settings
) -> None:
    picked = list(result.table.index[::40])
    got = run_scan(
        demo_store, tickers=[t.lower() for t in picked], client=dask_client, settings=scan_settings
    )
    assert sorted(got.statuses.index) == sorted(picked)
    assert sorted(got.table.index) == sorted(picked)
    assert got.snapshot["universe_size"] == len(picked)
    assert got.hygiene["tickers_in"] == len(picked)
    # the benchmark still feeds relative strength when it is not among the tickers
    np.testing.assert_allclose(got.table.loc[picked, "rs_63d"], result.table.loc[picked, "rs_63d"])


def test_unknown_ticker_raises(demo_store: Path, scan_settings: Settings) -> None:
    with pytest.raises(UnknownTickerError, match="NOPE"):
        run_scan(demo_store, tickers=["SPY", "nope"], settings=scan_settings)


@pytest.mark.parametrize(
    "kwargs",
    [{"trade_style": "Scalping"}, {"account_size": 0.0}, {"risk_pct": 0.0}, {"risk_pct": 101.0}],
)
def test_bad_options_are_config_errors(
    demo_store: Path, scan_settings: Settings, kwargs: dict
) -> None:
    with pytest.raises(ConfigError):
        run_scan(demo_store, settings=scan_settings, **kwargs)


def test_account_options_size_the_positions(
    demo_store: Path, result: ScanResult, dask_client, scan_settings: Settings
) -> None:
    got = run_scan(
        demo_store,
        account_size=10_000.0,
        risk_pct=2.0,
        trade_style="Position / longer-term",
        client=dask_client,
        settings=scan_settings,
    )
    table = got.table
    dist = (3.0 * table["atr14"]).clip(upper=0.99 * table["close"])
    expected = np.floor(np.minimum(200.0 / dist, 10_000.0 / table["close"])).astype("int64")
    np.testing.assert_array_equal(table["position_shares"], expected)
    assert (table["rrr"] == 3.0).all()
    assert got.snapshot["trade_style"] == "Position / longer-term"
    assert got.snapshot["account"] == {"account_size": 10_000.0, "risk_pct": 2.0}


def test_missing_store_is_a_store_error(tmp_path: Path, scan_settings: Settings) -> None:
    with pytest.raises(StoreError, match="technic demo-data"):
        run_scan(tmp_path / "none", settings=scan_settings)


def test_store_without_clean_bars_is_a_store_error(
    tmp_path: Path, demo_universe, scan_settings: Settings
) -> None:
    bars = demo_universe.bars.head(500).copy()  # two or three tickers
    bars["close"] = 0.0
    BarStore(tmp_path / "bad").write(bars)
    with without_default_client(), pytest.raises(StoreError, match="no clean bars to scan"):
        run_scan(tmp_path / "bad", settings=scan_settings)


# --- progress ---------------------------------------------------------------------------------


def assert_stage_completes(events: list[tuple[str, int, int]], stage: str) -> None:
    mine = [(done, total) for s, done, total in events if s == stage]
    assert mine, f"stage {stage} never reported"
    assert [done for done, _ in mine] == list(range(1, len(mine) + 1))
    assert {total for _, total in mine} == {len(mine)}


def test_progress_reports_every_stage_on_a_cluster(
    demo_store: Path, dask_client, scan_settings: Settings
) -> None:
    events: list[tuple[str, int, int]] = []
    run_scan(
        demo_store,
        client=dask_client,
        settings=scan_settings,
        progress=lambda *e: events.append(e),
    )
    for stage in STAGES:
        assert_stage_completes(events, stage)
    files = len(BarStore(demo_store).files)
    assert events[[s for s, _, _ in events].index("read")][2] == files
    assert [s for s, _, _ in events if s != "read"][-1] == "cross_section"


def test_progress_without_a_cluster(demo_store: Path, scan_settings: Settings) -> None:
    events: list[tuple[str, int, int]] = []
    with without_default_client():
        run_scan(demo_store, settings=scan_settings, progress=lambda *e: events.append(e))
    for stage in ("indicators", "alpha", "cross_section"):
        assert_stage_completes(events, stage)
    files = len(BarStore(demo_store).files)
    assert [total for s, _, total in events if s == "indicators"][-1] == files
    assert events[-1] == ("cross_section", 1, 1)


# --- writing the snapshot ---------------------------------------------------------------------


def test_write_puts_json_and_parquet_atomically(result: ScanResult, tmp_path: Path) -> None:
    out = tmp_path / "snaps" / "nested"
    json_path, parquet_path = result.write(out)
    stem = result.snapshot["snapshot_id"]
    assert sorted(p.name for p in out.iterdir()) == [f"{stem}.json", f"{stem}.parquet"]
    assert json_path.read_bytes() == result.to_json()
    assert json.loads(json_path.read_bytes())["results"] == json.loads(result.to_json())["results"]
    assert parquet_path.stat().st_size > 0


def test_parquet_snapshot_holds_the_table(result: ScanResult, tmp_path: Path) -> None:
    _, parquet_path = result.write(tmp_path)
    back = pq.read_table(parquet_path).to_pandas(ignore_metadata=True)
    table = result.table
    assert len(back) == len(table)
    assert list(back["ticker"]) == list(table.index)
    assert set(table.columns) <= set(back.columns)
    for column in ("rank", "TechRating", "composite_score", "ICS", "merit_score", "close"):
        np.testing.assert_array_equal(back[column].to_numpy(), table[column].to_numpy())
    for column in ("Signal", "Tier", "merit_band", "Sector", "note"):
        assert list(back[column]) == list(table[column])
    first = np.asarray(back["sparkline"].iloc[0], dtype=float)
    np.testing.assert_allclose(first[-5:], document_sparkline(result)[-5:], atol=5e-5)


def document_sparkline(result: ScanResult) -> list[float]:
    return result.snapshot["results"][0]["sparkline"]


def test_parquet_snapshot_round_trips_with_pandas(result: ScanResult, tmp_path: Path) -> None:
    _, parquet_path = result.write(tmp_path)
    back = pd.read_parquet(parquet_path).set_index("ticker")
    assert list(back.index) == list(result.table.index)
    np.testing.assert_array_equal(back["TechRating"], result.table["TechRating"])


def test_timings_cover_every_stage(result: ScanResult) -> None:
    assert set(result.timings) == {*STAGES, "total"}
    assert all(v >= 0 and math.isfinite(v) for v in result.timings.values())
    assert result.timings["total"] >= result.timings["indicators"]


def _extended(bars: pd.DataFrame, ticker: str, days: int) -> pd.DataFrame:
    """``bars`` plus ``days`` more business days of ``ticker`` after its last bar."""
    last = bars[bars["ticker"] == ticker].iloc[-1]
    dates = pd.bdate_range(last["date"] + pd.offsets.BDay(1), periods=days)
    extra = pd.DataFrame({**last.to_dict(), "date": dates}).astype(bars.dtypes.to_dict())
    return pd.concat([bars, extra], ignore_index=True)


def test_scan_date_ignores_a_benchmark_that_runs_past_the_stocks(
    tmp_path: Path, demo_universe, dask_client, scan_settings: Settings
) -> None:
    bars = _extended(demo_universe.bars, "SPY", 30)
    BarStore(tmp_path / "s").write(bars, demo_universe.universe)
    result = run_scan(tmp_path / "s", client=dask_client, settings=scan_settings)
    stocks_end = demo_universe.bars["date"].max()
    assert result.snapshot["as_of"] == f"{stocks_end:%Y-%m-%d}"
    assert result.hygiene["tickers_ok"] > 0.8 * result.snapshot["universe_size"]


def test_a_store_mixing_dates_warns_and_as_of_fixes_it(
    tmp_path: Path, demo_universe, dask_client, scan_settings: Settings
) -> None:
    bars = _extended(demo_universe.bars, demo_universe.bars["ticker"].iloc[0], 60)
    BarStore(tmp_path / "s").write(bars, demo_universe.universe)
    with captured_logs("pipeline.scan") as logs:
        stale = run_scan(tmp_path / "s", client=dask_client, settings=scan_settings)
    assert stale.hygiene["tickers_stale"] > 0.5 * stale.snapshot["universe_size"]
    assert any("pass an as-of date" in line for line in logs)
    end = demo_universe.bars["date"].max()
    fixed = run_scan(tmp_path / "s", as_of=end, client=dask_client, settings=scan_settings)
    assert fixed.hygiene["tickers_ok"] > 0.8 * fixed.snapshot["universe_size"]
