"""``technic sync`` against a real local HTTP server speaking Polygon's JSON.

The fake market (tests/fake_polygon.py) has a reverse split early, a 4-for-1 split in the
middle of history, a warrant the sync must skip, a ticker delisted halfway and one listed
late; its sessions are the real NYSE sessions of Nov–Dec 2024 (Thanksgiving and Christmas
closed).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline import adjustments
from pipeline.cli import app
from pipeline.config import Settings
from pipeline.errors import ConfigError, ProviderAuthError, StoreError
from pipeline.schema import validate_bars
from pipeline.sources.files import read_table
from pipeline.store import BarStore
from pipeline.sync import LOCK, resolve_range, sync
from pipeline.trading_calendar import sessions
from tests.conftest import run_cli, shared_file
from tests.fake_polygon import KEY, FakePolygon, Market, Split

START, MIDDLE, END = date(2024, 11, 1), date(2024, 11, 15), date(2024, 12, 31)
SPLIT = Split("SPLT", date(2024, 11, 27), 1, 4)
REVERSE = Split("REV", date(2024, 11, 12), 10, 1)
HOLIDAYS = ("2024-11-28", "2024-12-25")


def make_market() -> Market:
    return Market.generate(
        12,
        START,
        END,
        seed=3,
        splits=(REVERSE, SPLIT),
        types={"WARR": "WARRANT"},
        delisted=("GONE",),
        late={"NEWC": date(2024, 12, 2)},
    )


MARKET = make_market()
SESSIONS = sessions(START, END)


@pytest.fixture(scope="module")
def server():
    with FakePolygon(MARKET, page_size=5) as fake:
        yield fake


@pytest.fixture
def fake(server: FakePolygon):
    server.reset()
    MARKET.unpublished.clear()
    yield server
    MARKET.unpublished.clear()


def settings_for(fake: FakePolygon, **kwargs) -> Settings:
    base = dict(
        polygon_api_key=KEY,
        polygon_base_url=fake.url,
        polygon_rpm=0,
        polygon_attempts=3,
        polygon_backoff=0.01,
        polygon_backoff_max=0.05,
        polygon_timeout=2.0,
        use_redis=False,
        sync_batch_days=15,
    )
    return Settings(**(base | kwargs))


def stored(path: Path) -> pd.DataFrame:
    frame = BarStore(path).read().reset_index()
    return frame.astype({"ticker": object})


def expected(horizon: date, days: list[date] | None = None) -> pd.DataFrame:
    frame = MARKET.expected(horizon, days)
    return frame[frame["ticker"] != "WARR"].reset_index(drop=True).astype({"ticker": object})


def assert_store_is(path: Path, want: pd.DataFrame) -> None:
    got = stored(path)
    assert not got.duplicated(["ticker", "date"]).any()
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)
    for f in BarStore(path).files:
        part = pd.read_parquet(f.url).set_index("ticker")
        part.index = part.index.astype("string[pyarrow]")
        validate_bars(part)


# --- backfill, incremental, idempotent ----------------------------------------------------------


def test_backfill_then_incremental_fetch_each_day_once(fake: FakePolygon, tmp_path: Path) -> None:
    path = tmp_path / "store"
    settings = settings_for(fake)
    first = sync(path, settings=settings, since=START, until=MIDDLE)
    first_days = sessions(START, MIDDLE)
    assert first.days_written == first_days and first.days_missing == len(first_days)
    assert fake.count("grouped") == len(first_days)
    assert_store_is(path, expected(MIDDLE, first_days))

    fake.reset()
    second = sync(path, settings=settings, until=END)  # since: the store's first day
    new_days = [d for d in SESSIONS if d > MIDDLE]
    assert second.since == START and second.days_written == new_days
    requested = [p.rsplit("/", 1)[1] for p, _, _ in fake.log if "grouped" in p]
    assert sorted(requested) == [f"{d}" for d in new_days]  # only the missing days
    assert not set(HOLIDAYS) & set(requested)  # the calendar skips exchange holidays
    assert_store_is(path, expected(END))
    assert second.rows_written == len(expected(END)) - len(expected(MIDDLE, first_days))


def test_a_rerun_fetches_no_day_and_leaves_the_store_alone(
    fake: FakePolygon, tmp_path: Path
) -> None:
    path = tmp_path / "store"
    settings = settings_for(fake)
    sync(path, settings=settings, since=START, until=END)
    version = BarStore(path).data_version
    fake.reset()
    again = sync(path, settings=settings, since=START, until=END)
    assert again.days_missing == 0 and again.days_written == [] and again.rows_written == 0
    assert fake.count("grouped") == 0
    assert BarStore(path).data_version == version


def test_splits_leave_no_seam_and_are_recorded_once(fake: FakePolygon, tmp_path: Path) -> None:
    path = tmp_path / "store"
    summary = sync(path, settings=settings_for(fake), since=START, until=END)
    assert summary.splits_applied == 2
    bars = BarStore(path).read(["SPLT"])
    ratio = bars["close"].iloc[1:].to_numpy() / bars["close"].iloc[:-1].to_numpy()
    assert np.abs(np.log(ratio)).max() < 0.2  # a 4-for-1 seam would be log(4) = 1.39
    table = BarStore(path).table(adjustments.NAME)
    assert list(table["ticker"]) == ["REV", "SPLT"]
    assert list(table["price_factor"]) == [10.0, 0.25]
    assert table["applied_at"].notna().all()


def test_a_split_published_late_adjusts_the_whole_history_once(
    fake: FakePolygon, tmp_path: Path
) -> None:
    path = tmp_path / "store"
    settings = settings_for(fake)
    MARKET.unpublished.add(SPLIT)
    late = sync(path, settings=settings, since=START, until=END)
    assert late.splits_applied == 1  # only the reverse split is listed yet
    assert_store_is(path, expected(SPLIT.execution_date - pd.Timedelta(days=1)))  # seam kept

    MARKET.unpublished.clear()
    fake.reset()
    found = sync(path, settings=settings, since=START, until=END)
    before = sum(1 for d in SESSIONS if d < SPLIT.execution_date)
    assert found.splits_applied == 1 and found.rows_adjusted == before
    assert fake.count("grouped") == 0
    assert_store_is(path, expected(END))
    version = BarStore(path).data_version
    assert sync(path, settings=settings, since=START, until=END).splits_applied == 0
    assert BarStore(path).data_version == version
    assert_store_is(path, expected(END))


def test_a_backfill_reaching_back_before_a_recorded_split_is_adjusted(
    fake: FakePolygon, tmp_path: Path
) -> None:
    path = tmp_path / "store"
    settings = settings_for(fake)
    sync(path, settings=settings, since=date(2024, 12, 2), until=END)  # after the split
    sync(path, settings=settings, since=START, until=END)  # older days arrive later
    assert_store_is(path, expected(END))


# --- failures -----------------------------------------------------------------------------------


def test_a_day_that_stays_malformed_is_reported_and_never_written(
    fake: FakePolygon, tmp_path: Path
) -> None:
    path = tmp_path / "store"
    settings = settings_for(fake)
    bad = date(2024, 11, 6)
    fake.fault(f"stocks/{bad}", "truncate", times=None)
    summary = sync(path, settings=settings, since=START, until=MIDDLE)
    assert list(summary.days_failed) == [bad]
    assert "truncated or invalid JSON" in summary.days_failed[bad]
    assert fake.count(f"stocks/{bad}") == settings.polygon_attempts
    assert pd.Timestamp(bad) not in BarStore(path).dates()
    error = summary.failed
    assert error is not None and "1 day(s) could not be fetched" in str(error)

    fake.reset()  # the provider is healthy again: the rerun fetches just that day
    healed = sync(path, settings=settings, since=START, until=MIDDLE)
    assert healed.days_written == [bad] and healed.failed is None
    assert fake.count("grouped") == 1
    assert_store_is(path, expected(MIDDLE, sessions(START, MIDDLE)))


def test_a_429_storm_and_500s_slow_the_sync_but_lose_no_day(
    fake: FakePolygon, tmp_path: Path
) -> None:
    path = tmp_path / "store"
    fake.fault("grouped", "status", (429, {"Retry-After": "0"}), times=25)
    fake.fault("grouped", "status", 500, times=5)
    fake.fault("splits", "status", 502, times=1)
    summary = sync(path, settings=settings_for(fake, polygon_attempts=12), since=START, until=END)
    assert summary.retries == 31 and summary.failed is None
    assert summary.days_written == SESSIONS
    assert_store_is(path, expected(END))


def test_an_empty_session_is_not_written_and_asked_for_again(
    fake: FakePolygon, tmp_path: Path
) -> None:
    path = tmp_path / "store"
    settings = settings_for(fake)
    empty = date(2024, 11, 7)
    fake.empty_days.add(empty)
    summary = sync(path, settings=settings, since=START, until=MIDDLE)
    assert summary.days_empty == [empty] and summary.failed is None
    assert any("No bars yet" in line for line in summary.lines())
    assert pd.Timestamp(empty) not in BarStore(path).dates()
    fake.reset()
    assert sync(path, settings=settings, since=START, until=MIDDLE).days_written == [empty]


def test_a_refused_key_stops_the_sync_before_any_write(fake: FakePolygon, tmp_path: Path) -> None:
    path = tmp_path / "store"
    with pytest.raises(ProviderAuthError, match="POLYGON_API_KEY"):
        sync(path, settings=settings_for(fake, polygon_api_key="nope"), since=START, until=END)
    assert not BarStore(path).exists()


def test_a_second_sync_of_the_same_store_is_refused(fake: FakePolygon, tmp_path: Path) -> None:
    path = tmp_path / "store"
    path.mkdir()
    with open(path / LOCK, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(StoreError, match="another 'technic sync'"):
            sync(path, settings=settings_for(fake), since=START, until=END)
    assert fake.count() == 0


# --- universe -----------------------------------------------------------------------------------


def test_universe_tracks_types_added_and_delisted_tickers(
    fake: FakePolygon, tmp_path: Path
) -> None:
    path = tmp_path / "store"
    settings = settings_for(fake)
    first = sync(path, settings=settings, since=START, until=MIDDLE)
    assert "WARR" not in BarStore(path).tickers and first.tickers_skipped == 1
    assert "NEWC" not in first.tickers_added and "GONE" in first.tickers_added
    assert first.tickers_delisted == ["GONE"]
    reference = BarStore(path).reference()
    assert not reference.loc["GONE", "active"] and reference.loc["T000", "active"]
    assert (
        reference.loc["WARR", "type"] == "WARRANT" and reference.loc["T000", "name"] == "T000 Corp"
    )

    second = sync(path, settings=settings, until=END)
    assert second.tickers_added == ["NEWC"] and second.tickers_delisted == []  # said once
    assert list(BarStore(path).universe().columns) == ["name", "sector", "industry", "market_cap"]


def test_details_fill_market_cap_and_sector_without_overriding_the_users(
    fake: FakePolygon, tmp_path: Path
) -> None:
    path = tmp_path / "store"
    settings = settings_for(fake)
    sync(path, settings=settings, since=MIDDLE, until=MIDDLE)
    BarStore(path).write_universe(pd.DataFrame({"ticker": ["T000"], "sector": ["Technology"]}))
    summary = sync(path, settings=settings, since=MIDDLE, until=MIDDLE, details=True)
    universe = BarStore(path).universe()
    listed = universe.drop(index="GONE")  # delisted: no details asked for
    assert summary.details == len(listed) and fake.count("/v3/reference/tickers/") == len(listed)
    assert listed["market_cap"].notna().all() and np.isnan(universe.loc["GONE", "market_cap"])
    assert universe.loc["T000", "sector"] == "Technology"  # the user's, kept
    assert universe.loc["T001", "sector"] in {"Manufacturing", "Finance, Insurance and Real Estate"}


def test_universe_import_then_the_scan_reads_its_sectors(tmp_path: Path, demo_store: Path) -> None:
    import shutil

    from pipeline.scan import prepare

    path = tmp_path / "store"
    shutil.copytree(demo_store, path)
    tickers = BarStore(path).tickers[:3]
    cap_before = BarStore(path).universe().loc[tickers[2], "market_cap"]
    listing = tmp_path / "list.csv"
    pd.DataFrame(
        {"Symbol": tickers, "Sector": ["Alpha Sector"] * 3, "market_cap": [1e9, 2e9, "n/a"]}
    ).to_csv(listing, index=False)
    result = CliRunner().invoke(app, ["universe", "import", str(listing), "--store", str(path)])
    assert result.exit_code == 0, result.output
    assert "Imported 3 rows" in result.output and "of the store's 301 tickers" in result.output
    universe = BarStore(path).universe()
    assert (universe.loc[tickers, "sector"] == "Alpha Sector").all()
    assert universe.loc[tickers[0], "market_cap"] == 1e9
    assert universe.loc[tickers[2], "market_cap"] == cap_before  # "n/a" erases nothing
    request = prepare(path, sectors=["alpha sector"], settings=Settings(data_dir=tmp_path))
    assert request.sectors == {"Alpha Sector"}


def test_universe_import_of_the_real_reference_list(tmp_path: Path) -> None:
    bars = pd.read_parquet(
        shared_file("us_stocks_ohlcv.parquet"),
        filters=[("ticker", "in", ["AAPL", "MSFT", "GE", "F"])],
    )
    path = tmp_path / "store"
    BarStore(path).write(bars, sources=("real",))  # what 'technic import' does
    listing = shared_file("us_tickers_sector_industry.parquet")
    BarStore(path).write_universe(read_table(listing))  # what 'technic universe import' does
    universe = BarStore(path).universe()
    assert universe["sector"].notna().all() and (universe["market_cap"] > 0).all()


# --- range --------------------------------------------------------------------------------------


def test_range_rules(tmp_path: Path) -> None:
    store = BarStore(tmp_path / "none").dates()  # a new store: no dates
    settings = Settings(sync_years=2)
    now = pd.Timestamp("2026-11-24 12:00", tz="America/New_York").to_pydatetime()
    since, until = resolve_range(
        store, since=None, until=None, years=None, settings=settings, now=now
    )
    assert until == date(2026, 11, 23)  # today's session has not closed yet
    assert since == date(2024, 11, 24)
    assert resolve_range(store, since=None, until=None, years=1, settings=settings, now=now)[
        0
    ] == date(2025, 11, 24)
    with pytest.raises(ConfigError, match="either --since or --years"):
        resolve_range(store, since=START, until=None, years=1, settings=settings, now=now)
    with pytest.raises(ConfigError, match="in the future"):
        resolve_range(
            store, since=None, until=date(2026, 12, 1), years=None, settings=settings, now=now
        )
    with pytest.raises(ConfigError, match="after the last session"):
        resolve_range(
            store, since=date(2026, 11, 24), until=None, years=None, settings=settings, now=now
        )


# --- Redis: a repeated backfill ----------------------------------------------------------------


def test_a_repeated_backfill_within_the_ttl_makes_no_provider_call(
    fake: FakePolygon, tmp_path: Path, redis_server
) -> None:
    settings = settings_for(fake, use_redis=True, redis_url=redis_server.url, cache_ttl=60)
    settings = settings.model_copy(update={"redis_prefix": f"test-{uuid.uuid4().hex[:8]}"})
    first = sync(tmp_path / "a", settings=settings, since=START, until=END)
    assert first.requests > len(SESSIONS) and first.cache_hits == 0
    sent = len(fake.log)
    again = sync(tmp_path / "b", settings=settings, since=START, until=END)
    assert len(fake.log) == sent  # not one request reached the provider
    # every day, the ticker list (all its pages in one value) and the splits came from Redis
    assert again.requests == 0 and again.cache_hits == len(SESSIONS) + 2
    pd.testing.assert_frame_equal(stored(tmp_path / "a"), stored(tmp_path / "b"))


# --- crash and resume ---------------------------------------------------------------------------


def test_killed_mid_sync_then_rerun_every_day_exactly_once(
    fake: FakePolygon, tmp_path: Path, store_url: str, request: pytest.FixtureRequest
) -> None:
    """On a local disk and in a bucket: the batches a killed sync committed stay, and the
    rerun fetches exactly the days still missing."""
    path = store_url
    bucket = request.getfixturevalue("s3_server") if path.startswith("s3://") else {}
    env = {
        **bucket,
        "POLYGON_API_KEY": KEY,
        "POLYGON_BASE_URL": fake.url,
        "TECHNIC_POLYGON_RPM": "0",
        "TECHNIC_BATCH_SIZE": "1",
        "TECHNIC_SYNC_BATCH_DAYS": "4",
    }
    fake.delay = 0.03
    args = ["sync", "--store", str(path), "--since", f"{START}", "--until", f"{END}"]
    days = SESSIONS
    exe = Path(sys.executable).with_name("technic")
    proc = subprocess.Popen(
        [str(exe), *args],
        env={**os.environ, "TECHNIC_DATA_DIR": str(tmp_path), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    generation = 0
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(StoreError, KeyError):
            generation = BarStore(path).manifest["generation"]
        if generation >= 2:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    partial = BarStore(path).dates()
    assert 8 <= len(partial) < len(days)  # some batches landed, not all
    assert not stored(path).duplicated(["ticker", "date"]).any()

    fake.reset()
    done = run_cli(*args, data_dir=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    left = len(days) - len(partial)
    assert f"{left} of {left} missing days written" in done.stderr  # the summary
    assert "tickers added" in done.stderr and "splits applied" in done.stderr
    assert KEY not in done.stderr + done.stdout
    requested = [p.rsplit("/", 1)[1] for p, _, _ in fake.log if "grouped" in p]
    assert sorted(requested) == [f"{d}" for d in days if pd.Timestamp(d) not in partial]
    assert_store_is(path, expected(END))


# --- the command line ---------------------------------------------------------------------------


def test_cli_sync_with_a_refused_key_is_one_line_without_the_key(
    fake: FakePolygon, tmp_path: Path
) -> None:
    secret = "sk-live-should-never-print"
    env = {"POLYGON_API_KEY": secret, "POLYGON_BASE_URL": fake.url, "TECHNIC_POLYGON_RPM": "0"}
    proc = run_cli(
        "sync", "--store", str(tmp_path / "s"), "--years", "1", data_dir=tmp_path, env=env
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert (
        lines[-1].startswith("error:")
        and "HTTP 401" in lines[-1]
        and "POLYGON_API_KEY" in lines[-1]
    )
    assert secret not in proc.stderr + proc.stdout


def test_cli_sync_bad_dates_are_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    for args, needle in (
        (["--since", "2024-13-01"], "is not a date"),
        (["--since", "2024-01-02", "--years", "1"], "either --since or --years"),
    ):
        result = runner.invoke(app, ["sync", "--store", str(tmp_path / "s"), *args])
        assert result.exit_code == 2 and needle in result.output
    assert not (tmp_path / "s").exists()
