"""The ``technic`` console script, run for real in a subprocess."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.sources.synthetic import generate_universe
from pipeline.store import BarStore
from tests.conftest import run_cli, shared_file

SCANNER_BUNDLE = {"results", "movers", "ideas", "log", "universe_size", "symbols_scanned"}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SP500_TICKERS = [
    "AAPL", "AMD", "AOS", "BHF", "DHR", "ES", "FTV", "GE", "JPM", "KO",
    "MSFT", "NWL", "O", "PG", "REGN", "T", "UA", "VRTX", "WRK", "XOM",
]  # fmt: skip


def clean(text: str) -> str:
    return ANSI.sub("", text)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, clean(proc.stderr)
    assert "Traceback" not in proc.stderr
    return proc


def assert_user_error(proc: subprocess.CompletedProcess, *needles: str, prefix: str = "error:"):
    """Exit status 2, one error line on stderr (the last one), no traceback, nothing on stdout."""
    err = clean(proc.stderr)
    assert "Traceback" not in err, err
    assert proc.returncode == 2, (proc.returncode, err)
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(prefix)]
    assert len(errors) == 1 and errors[0] == lines[-1], err
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    assert proc.stdout.strip() == ""
    return errors[0]


@pytest.fixture
def sync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scans in this test run on Dask's synchronous scheduler (no cluster to start)."""
    monkeypatch.setenv("TECHNIC_CLUSTER", "sync")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("technic-data")


@pytest.fixture(scope="module")
def small_store(data_dir: Path) -> Path:
    """``technic demo-data`` on a small universe (the quickstart's first command, in small)."""
    path = data_dir / "small"
    proc = ok(
        run_cli(
            "demo-data",
            "--store",
            str(path),
            "--tickers",
            "40",
            "--days",
            "150",
            "--seed",
            "3",
            data_dir=data_dir,
        )
    )
    assert "Planted mess" in proc.stderr
    return path


# --- demo-data + scan: the quickstart in small -------------------------------------------------


def test_demo_data_writes_the_store(small_store: Path) -> None:
    store = BarStore.open(small_store)
    assert len(store.tickers) == 41 and "SPY" in store.tickers
    assert store.manifest["last_write"]["mess"]["duplicate_date"] > 0
    assert store.universe()["sector"].notna().all()
    again = generate_universe(40, 150, seed=3)
    assert store.manifest["rows"] == len(again.bars) - again.mess["duplicate_date"]


def test_scan_json_prints_only_the_snapshot(small_store: Path, data_dir: Path) -> None:
    proc = ok(run_cli("scan", "--store", str(small_store), "--json", data_dir=data_dir))
    document = json.loads(proc.stdout)  # stdout holds nothing else
    assert set(document) >= SCANNER_BUNDLE
    assert document["universe_size"] == 40
    assert 0 < document["symbols_scanned"] == len(document["results"]) <= 40
    assert "NaN" not in proc.stdout and "Infinity" not in proc.stdout
    snapshots = data_dir / "snapshots"
    stem = document["snapshot_id"]
    assert (snapshots / f"{stem}.parquet").is_file()
    assert json.loads((snapshots / f"{stem}.json").read_bytes()) == document
    err = clean(proc.stderr)
    assert "[SCAN PERF] 40 symbols via dask" in err
    assert f"Snapshot: {snapshots / stem}.json" in err


def test_a_one_shot_scan_runs_on_threads_unless_a_cluster_is_named(
    small_store: Path, tmp_path: Path
) -> None:
    """No worker processes to spawn for one scan: Dask's threaded scheduler, same table."""
    threads = ok(run_cli("scan", "--store", str(small_store), "--json", data_dir=tmp_path))
    assert re.search(r"^Cluster: threads \(\d+ in this process, no dashboard\) *$",
                     clean(threads.stderr), re.MULTILINE)  # fmt: skip
    assert "workers=threads x" in threads.stderr
    named = ok(
        run_cli(
            "scan", "--store", str(small_store), "--json", data_dir=tmp_path,
            env={"TECHNIC_CLUSTER": "local"},
        )
    )  # fmt: skip
    assert "Cluster: 2 workers" in clean(named.stderr)
    assert json.loads(threads.stdout)["results"] == json.loads(named.stdout)["results"]


def test_scan_prints_a_table_and_operator_lines(small_store: Path, tmp_path: Path) -> None:
    proc = ok(
        run_cli(
            "scan", "--store", str(small_store), "--top", "5", data_dir=tmp_path,
            env={"TECHNIC_CLUSTER": "local"},
        )
    )  # fmt: skip
    out, err = clean(proc.stdout), clean(proc.stderr)
    assert re.search(r"Top 5 of \d+", out)
    assert "Ticker" in out and "Signal" in out
    [snapshot] = (tmp_path / "snapshots").glob("*.json")
    top = [row["ticker"] for row in json.loads(snapshot.read_bytes())["results"][:6]]
    assert all(re.search(rf"\b{t}\b", out) for t in top[:5])
    assert not re.search(rf"\b{top[5]}\b", out)
    assert re.search(
        r"^\[SCAN PERF\] 40 symbols via dask in \d+\.\d\ds \(\d+\.\d{5}s/symbol, "
        r"workers=2x1, gpu=False\) *$",
        err,
        re.MULTILINE,
    ), err
    assert re.search(r"^Cluster: 2 workers, 2 threads, dashboard http://\S+ *$", err, re.MULTILINE)
    assert re.search(r"^Scanned \d+ of 40 symbols as of 2026-11-20 in ", err, re.MULTILINE)
    assert "[SCAN PERF]" not in out


def test_scan_writes_the_snapshot_where_out_says(
    small_store: Path, tmp_path: Path, sync: None
) -> None:
    out_dir = tmp_path / "elsewhere"
    proc = ok(
        run_cli(
            "scan", "--store", str(small_store), "--json", "--out", str(out_dir), data_dir=tmp_path
        )
    )
    stem = json.loads(proc.stdout)["snapshot_id"]
    assert sorted(p.name for p in out_dir.iterdir()) == [f"{stem}.json", f"{stem}.parquet"]
    assert not (tmp_path / "snapshots").exists()
    assert "Cluster: sync scheduler" in clean(proc.stderr)


def test_scan_options_reach_the_scan(small_store: Path, tmp_path: Path, sync: None) -> None:
    sector = BarStore(small_store).universe()["sector"].value_counts().index[0]
    proc = ok(
        run_cli(
            "scan",
            "--store",
            str(small_store),
            "--json",
            "--sector",
            sector.upper(),
            "--as-of",
            "2026-10-30",
            "--trade-style",
            "Day trading",
            "--account-size",
            "5000",
            "--risk-pct",
            "2",
            data_dir=tmp_path,
        )
    )
    document = json.loads(proc.stdout)
    assert document["as_of"] == "2026-10-30"
    assert document["trade_style"] == "Day trading"
    assert document["account"] == {"account_size": 5000.0, "risk_pct": 2.0}
    assert document["results"] and {r["Sector"] for r in document["results"]} == {sector}
    assert {r["rrr"] for r in document["results"]} == {1.5}


def test_scan_demo_uses_an_existing_demo_store(tmp_path: Path, sync: None) -> None:
    demo = generate_universe(20, 120, seed=5)
    store = BarStore(tmp_path / "demo")
    store.write(demo.bars, demo.universe)
    version = store.data_version
    pointer = Path(store.url) / "CURRENT"
    pointer_mtime = pointer.stat().st_mtime_ns
    proc = ok(run_cli("scan", "--demo", "--json", data_dir=tmp_path))
    document = json.loads(proc.stdout)
    assert document["universe_size"] == 20
    assert document["store"]["path"] == store.url
    assert store.data_version == version
    assert pointer.stat().st_mtime_ns == pointer_mtime
    assert "Generating" not in proc.stderr


# --- error paths ------------------------------------------------------------------------------


def test_missing_store(tmp_path: Path) -> None:
    proc = run_cli("scan", "--store", str(tmp_path / "none"), data_dir=tmp_path)
    assert_user_error(proc, "no bar store at", "technic demo-data --store", "technic import")


def test_missing_default_store_names_the_data_dir(tmp_path: Path) -> None:
    proc = run_cli("scan", data_dir=tmp_path)
    assert_user_error(proc, str(tmp_path / "store"), "does not exist")


def test_unknown_ticker(small_store: Path, tmp_path: Path) -> None:
    proc = run_cli("scan", "--store", str(small_store), "--ticker", "NOPE", data_dir=tmp_path)
    assert_user_error(proc, "unknown ticker", "NOPE")
    assert not (tmp_path / "snapshots").exists()


def test_unknown_sector_lists_the_valid_sectors(
    small_store: Path, tmp_path: Path, sync: None
) -> None:
    proc = run_cli("scan", "--store", str(small_store), "--sector", "Crypto", data_dir=tmp_path)
    line = assert_user_error(proc, "unknown sector(s): Crypto", "valid sectors:")
    for sector in BarStore(small_store).universe()["sector"].unique():
        assert sector in line


def test_bad_as_of_date(small_store: Path, tmp_path: Path, sync: None) -> None:
    proc = run_cli("scan", "--store", str(small_store), "--as-of", "2026-13-45", data_dir=tmp_path)
    assert_user_error(proc, "bad date '2026-13-45'", "YYYY-MM-DD")


def test_empty_as_of_date(small_store: Path, tmp_path: Path, sync: None) -> None:
    proc = run_cli("scan", "--store", str(small_store), "--as-of", "", data_dir=tmp_path)
    assert_user_error(proc, "bad date")


def test_bad_trade_style(small_store: Path, tmp_path: Path, sync: None) -> None:
    proc = run_cli(
        "scan", "--store", str(small_store), "--trade-style", "Scalping", data_dir=tmp_path
    )
    assert_user_error(proc, "unknown trade style 'Scalping'", "Short-term swing")


def test_trade_style_and_sector_by_the_apps_short_names(
    small_store: Path, tmp_path: Path, sync: None
) -> None:
    proc = run_cli(
        "scan", "--store", str(small_store), "--trade-style", "day", "--sector", "Technology",
        "--json", data_dir=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    snapshot = json.loads(proc.stdout)
    assert snapshot["trade_style"] == "Day trading"
    assert snapshot["filters"]["sectors"] == ["Information Technology"]
    assert {r["Sector"] for r in snapshot["results"]} == {"Information Technology"}


def test_demo_together_with_store(small_store: Path, tmp_path: Path) -> None:
    proc = run_cli("scan", "--demo", "--store", str(small_store), data_dir=tmp_path)
    assert_user_error(proc, "--demo", "--store", prefix="Error:")
    assert not (tmp_path / "demo").exists()


def test_demo_data_refuses_to_overwrite_without_force(small_store: Path, tmp_path: Path) -> None:
    version = BarStore(small_store).data_version
    proc = run_cli("demo-data", "--store", str(small_store), "--tickers", "5", data_dir=tmp_path)
    assert_user_error(proc, "already exists", "--force")
    assert BarStore(small_store).data_version == version


def test_demo_data_force_replaces_the_store(tmp_path: Path) -> None:
    path = tmp_path / "s"
    args = ("demo-data", "--store", str(path), "--days", "100", "--seed", "1")
    ok(run_cli(*args, "--tickers", "8", data_dir=tmp_path))
    ok(run_cli(*args, "--tickers", "4", "--force", data_dir=tmp_path))
    assert len(BarStore.open(path).tickers) == 5


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        (
            "ticker,date,open,high,low,volume\nAAA,2020-01-02,1,2,0.5,100\n",
            ("missing column(s) close", "expected ticker, date"),
        ),
        (
            "ticker,date,open,high,low,close,volume\nAAA,2020-01-02,1,2,0.5,abc,100\n",
            ("column 'close' has non-numeric values", "'abc'"),
        ),
        (
            "ticker,date,open,high,low,close,volume\nAAA,someday,1,2,0.5,1.5,100\n",
            ("column 'date' has unparsable values",),
        ),
    ],
    ids=["missing-close", "non-numeric-price", "bad-date"],
)
def test_malformed_import_file(tmp_path: Path, content: str, needles: tuple[str, ...]) -> None:
    bad = write_csv(tmp_path / "bad.csv", content)
    proc = run_cli("import", str(bad), "--store", str(tmp_path / "s"), data_dir=tmp_path)
    assert_user_error(proc, str(bad), *needles)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("name", ["nothere.csv", "nothere.parquet"])
def test_import_of_a_missing_file(tmp_path: Path, name: str) -> None:
    proc = run_cli(
        "import", str(tmp_path / name), "--store", str(tmp_path / "s"), data_dir=tmp_path
    )
    assert_user_error(proc, name, "no such file")


def test_import_of_an_unsupported_file_type(tmp_path: Path) -> None:
    sheet = write_csv(tmp_path / "bars.xlsx", "not really a spreadsheet")
    proc = run_cli("import", str(sheet), "--store", str(tmp_path / "s"), data_dir=tmp_path)
    assert_user_error(proc, "unsupported file type '.xlsx'")


def test_import_of_an_unreadable_parquet(tmp_path: Path) -> None:
    broken = write_csv(tmp_path / "broken.parquet", "this is not parquet")
    proc = run_cli("import", str(broken), "--store", str(tmp_path / "s"), data_dir=tmp_path)
    assert_user_error(proc, "broken.parquet", "cannot read")


@pytest.mark.parametrize(
    "args",
    [
        ("scan", "--bogus"),
        ("scan", "--top", "-1"),
        ("demo-data", "--tickers", "abc"),
        ("import",),
        ("nosuchcommand",),
    ],
    ids=["unknown-option", "top-below-min", "non-integer", "missing-argument", "no-command"],
)
def test_usage_errors_are_one_line_without_traceback(tmp_path: Path, args: tuple[str, ...]):
    proc = run_cli(*args, "--store", str(tmp_path / "s"), data_dir=tmp_path)
    assert_user_error(proc, prefix="Error:")


# --- import -----------------------------------------------------------------------------------


def bars_csv(path: Path, bars: pd.DataFrame) -> Path:
    """Bars as the CSV a user would export: Symbol header, mixed case, ISO dates."""
    out = bars.rename(columns={"ticker": "Symbol", "date": "Date", "close": "Close"})
    out = out.assign(Date=out["Date"].dt.strftime("%Y-%m-%d"))
    out.to_csv(path, index=False)
    return path


def test_import_csv_then_scan(tmp_path: Path, sync: None) -> None:
    demo = generate_universe(6, 120, seed=9)
    bars = demo.bars.drop_duplicates(["ticker", "date"], keep="last")
    store = tmp_path / "s"
    first = bars_csv(tmp_path / "first.csv", bars)
    proc = ok(run_cli("import", str(first), "--store", str(store), data_dir=tmp_path))
    assert f"Imported {len(bars):,} rows" in clean(proc.stderr)
    assert BarStore.open(store).manifest["rows"] == len(bars)

    latest = bars[bars["date"] >= bars["date"].max() - pd.Timedelta(days=6)]
    second = bars_csv(tmp_path / "second.csv", latest.assign(close=latest["close"] * 1.01))
    proc = ok(run_cli("import", str(second), "--store", str(store), data_dir=tmp_path))
    assert f"rows replaced: {len(latest):,}" in clean(proc.stderr)
    merged = BarStore(store).read()
    assert len(merged) == len(bars)

    proc = ok(run_cli("scan", "--store", str(store), "--json", data_dir=tmp_path))
    document = json.loads(proc.stdout)
    assert document["universe_size"] == 6
    assert {r["Sector"] for r in document["results"]} == {"Unknown"}  # no reference table
    assert document["hygiene"]["rows_in"] == len(bars)


@pytest.fixture(scope="module")
def sp500_files(tmp_path_factory) -> tuple[Path, Path, pd.DataFrame]:
    """20 real S&P 500 tickers (with their NaN and high<low rows) and the 2018 constituents."""
    bars = pd.read_parquet(shared_file("sp500_5yr_ohlcv.parquet"))
    bars = bars[bars["ticker"].isin(SP500_TICKERS)].reset_index(drop=True)
    ref = pd.read_parquet(shared_file("sp500_constituents.parquet"))
    ref = ref[ref["snapshot_date"].astype(str) == "2018-04-02"]
    folder = tmp_path_factory.mktemp("sp500")
    bars.to_parquet(folder / "bars.parquet", index=False)
    ref.to_parquet(folder / "constituents.parquet", index=False)
    return folder / "bars.parquet", folder / "constituents.parquet", bars


def test_import_real_sp500_subset_then_scan(sp500_files, tmp_path: Path, sync: None) -> None:
    bars_file, ref_file, bars = sp500_files
    store = tmp_path / "sp500"
    proc = ok(
        run_cli(
            "import",
            str(bars_file),
            "--store",
            str(store),
            "--universe",
            str(ref_file),
            data_dir=tmp_path,
        )
    )
    assert f"Imported {len(bars):,} rows" in clean(proc.stderr)
    universe = BarStore.open(store).universe()
    assert universe.loc["AAPL", "sector"] == "Information Technology"
    assert universe.loc["AAPL", "name"] == "Apple Inc."

    proc = ok(run_cli("scan", "--store", str(store), "--json", data_dir=tmp_path))
    document = json.loads(proc.stdout)
    assert "benchmark SPY is not in the store" in clean(proc.stderr)
    assert document["as_of"] == "2018-02-07"
    assert document["universe_size"] == 20
    assert document["symbols_scanned"] == 20
    prices = bars[["open", "high", "low", "close"]]
    non_finite = prices.isna().any(axis=1)
    high_below_low = ~non_finite & (bars["high"] < bars["low"])
    hygiene = document["hygiene"]
    assert hygiene["non_finite_price"] == non_finite.sum() == 11  # per ../shared/data/README
    assert hygiene["high_below_low"] == high_below_low.sum() == 1  # AOS 2014-05-19
    assert hygiene["rows_in"] == len(bars)
    rows = {r["ticker"]: r for r in document["results"]}
    assert set(rows) == set(SP500_TICKERS)
    assert rows["JPM"]["Sector"] == "Financials"
    assert rows["AAPL"]["Industry"] == "Unknown"  # the 2018 snapshot has no sub-industry
    assert all(0 <= r["TechRating"] <= 100 for r in rows.values())
    aapl = bars[bars["ticker"] == "AAPL"]["close"].to_numpy()
    np.testing.assert_allclose(rows["AAPL"]["sparkline"], aapl[-30:], atol=5e-5)
