"""Bad input a careless user or a failing disk gives the ``technic`` console script: each is
one error line with exit status 2 that says what to fix, never a traceback or a silent scan."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipeline.sources.synthetic import generate_universe
from pipeline.store import BarStore
from tests.conftest import run_cli
from tests.pipeline.test_cli import assert_user_error, clean, ok
from tests.pipeline.test_hygiene import SPIKE_ROWS
from tests.pipeline.test_store import damage_page

HEADER = "ticker,date,open,high,low,close,volume\n"

CLUSTER = {"TECHNIC_CLUSTER": "local"}  # the worker-process path (a one-shot default is threads)


@pytest.fixture
def sync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TECHNIC_CLUSTER", "sync")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A small store (20 tickers and SPY, one file) with a reference table."""
    demo = generate_universe(20, 300, seed=5)
    path = tmp_path / "store"
    BarStore(path).write(demo.bars, demo.universe)
    return path


def import_file(tmp_path: Path, name: str, content: str | pd.DataFrame):
    path = tmp_path / name
    if isinstance(content, pd.DataFrame):
        content.to_parquet(path, index=False)
    else:
        path.write_text(HEADER + content)
    return path, run_cli("import", str(path), "--store", str(tmp_path / "s"), data_dir=tmp_path)


# --- dates on import ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "needles"),
    [
        ("AAA,2020-01-02,1,2,0.5,1.5,100\nAAA,3000-01-01,1,2,0.5,1.5,100\n", ("3000-01-01",)),
        ("AAA,1850-06-01,1,2,0.5,1.5,100\n", ("1850-06-01",)),
    ],
    ids=["year-3000", "year-1850"],
)
def test_dates_outside_1900_to_2100_are_refused(tmp_path: Path, rows: str, needles) -> None:
    path, proc = import_file(tmp_path, "far.csv", rows)
    assert_user_error(proc, str(path), *needles, "outside the years 1900–2100")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("dates", "guess"),
    [
        ([1_700_000_000, 1_700_086_400], "epoch seconds?"),
        ([1_700_000_000_000, 1_700_086_400_000], "epoch milliseconds?"),
        ([20231114, 20231115], "YYYYMMDD?"),
    ],
    ids=["epoch-seconds", "epoch-ms", "yyyymmdd"],
)
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_numbers_as_dates_are_refused_with_the_fix(
    tmp_path: Path, dates: list[int], guess: str, suffix: str
) -> None:
    bars = pd.DataFrame(
        {"ticker": "AAA", "date": dates, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5}
    ).assign(volume=100)
    content = bars if suffix == "parquet" else bars.to_csv(index=False).split("\n", 1)[1]
    path, proc = import_file(tmp_path, f"epoch.{suffix}", content)
    assert_user_error(
        proc, str(path), f"holds numbers like {dates[0]} ({guess})", "write dates as YYYY-MM-DD"
    )
    assert not (tmp_path / "s").exists()


# --- a damaged store ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda m: {}, "it has no 'files' list"),
        (lambda m: {**m, "files": [{k: v for k, v in m["files"][0].items() if k != "tickers"}]},
         "file entry 0 has no 'tickers'"),
    ],
    ids=["empty", "entry-without-tickers"],
)  # fmt: skip
def test_scan_of_a_bad_manifest(store: Path, tmp_path: Path, sync: None, edit, needle) -> None:
    manifest = store / BarStore(store).current().name
    manifest.write_text(json.dumps(edit(json.loads(manifest.read_text()))))
    proc = run_cli("scan", "--store", str(store), data_dir=tmp_path)
    assert_user_error(proc, f"corrupt store manifest {manifest}", needle, "rebuild the store")


def test_scan_of_a_truncated_universe(store: Path, tmp_path: Path, sync: None) -> None:
    table = store / BarStore(store).manifest["universe"]
    table.write_bytes(table.read_bytes()[: table.stat().st_size // 2])
    proc = run_cli("scan", "--store", str(store), data_dir=tmp_path)
    assert_user_error(proc, f"reference table {table} is damaged", "technic import")


def test_scan_with_a_deleted_bar_file_on_the_cluster(store: Path, tmp_path: Path) -> None:
    """The worker that fails to read the file logs no "Compute Failed" traceback block."""
    (gone,) = BarStore.open(store).files
    Path(gone.url).unlink()
    proc = run_cli("scan", "--store", str(store), data_dir=tmp_path, env=CLUSTER)
    assert "Cluster: 2 workers" in clean(proc.stderr)
    assert "Compute Failed" not in proc.stderr
    assert_user_error(proc, f"store file {gone.url} is missing", "rebuild the store")


def test_scan_of_a_bar_file_with_a_damaged_page_on_the_cluster(store: Path, tmp_path: Path) -> None:
    bar_store = BarStore.open(store)
    (file,) = bar_store.files
    damage_page(bar_store, file.key, "open")
    proc = run_cli("scan", "--store", str(store), data_dir=tmp_path, env=CLUSTER)
    assert "Compute Failed" not in proc.stderr
    assert_user_error(proc, f"store file {file.url} is damaged", "checksum")


# --- absurd prices ------------------------------------------------------------------------------


def test_price_spikes_are_counted_by_the_scans_hygiene(tmp_path: Path, sync: None) -> None:
    demo = generate_universe(6, 120, seed=9).bars.drop_duplicates(["ticker", "date"])
    bars = pd.concat([demo, pd.DataFrame(SPIKE_ROWS)], ignore_index=True)
    path = tmp_path / "bars.csv"
    bars.assign(date=pd.to_datetime(bars["date"]).dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    store = str(tmp_path / "s")
    ok(run_cli("import", str(path), "--store", store, data_dir=tmp_path))
    proc = ok(run_cli("scan", "--store", store, "--json", data_dir=tmp_path))
    hygiene = json.loads(proc.stdout)["hygiene"]
    assert hygiene["price_spike"] == 4  # SPK's four bad prints; SPL's, FST's, LST's splits stay
    assert hygiene["rows_in"] == len(bars)
