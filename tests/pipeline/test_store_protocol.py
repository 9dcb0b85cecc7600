"""The bar store's commit protocol under stress, on a local disk and in a bucket: the
conditional pointer write, concurrent writers (threads and real ``technic import``
processes), a change that cannot be rebased, readers during a swap, a writer killed before
the swap, a corrupt or absent pointer, a store written before the pointer existed, and the
manifest's list of dates.

Real parts only: a real directory or a real S3-protocol server (moto on loopback), real
threads and processes, the real ``technic`` console script.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import StoreError
from pipeline.sources.synthetic import generate_universe
from pipeline.storage import Conflict, Location
from pipeline.store import (
    LEGACY_MANIFEST,
    LEGACY_UNIVERSE,
    MANIFESTS,
    POINTER,
    POINTER_FORMAT,
    BarStore,
    Generation,
    StoreConflict,
)
from tests.conftest import REPO, run_cli
from tests.pipeline.test_cli import assert_user_error, ok
from tests.pipeline.test_store import SPEC, make_bars
from tests.pipeline.test_store_update import day_bars

FOLDERS = ("manifests", "bars", "meta")


# --- helpers ------------------------------------------------------------------------------------


def objects(store: BarStore) -> set[str]:
    """Every object of the store's generations' folders (the pointer left out)."""
    return {key for folder in FOLDERS for key, _ in store.location.listing(folder)}


def committed(store: BarStore) -> set[str]:
    """The objects named by every manifest still in the store."""
    found: set[str] = set()
    for key, _ in store.location.listing(MANIFESTS):
        found |= named(store._generation(key))
    return found


def named(generation: Generation) -> set[str]:
    """The objects ``generation`` consists of (no root universe.parquet unless it has one)."""
    universe = generation.manifest.get("universe")
    return (generation.objects - {LEGACY_UNIVERSE}) | ({universe} if universe else set())


def assert_files_exist(store: BarStore) -> None:
    """Every object the current manifest names is there."""
    generation = store.current()
    for key in named(generation):
        assert store.location.exists(key), f"{key} is named by {generation.name} but missing"


def assert_exactly_once(bars: pd.DataFrame) -> None:
    keys = bars.reset_index()[["ticker", "date"]]
    assert not keys.duplicated().any(), keys[keys.duplicated(keep=False)]


@contextlib.contextmanager
def rebases() -> Iterator[list[str]]:
    """The store's "rebasing" log lines while the block runs (a handler of its own, so the
    logging set-up of other tests does not matter)."""
    said: list[str] = []

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "rebasing" in record.getMessage():
                said.append(record.getMessage())

    logger = logging.getLogger("pipeline.store")
    handler, level, disabled = Handler(logging.INFO), logger.level, logger.disabled
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.disabled = False
    try:
        yield said
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.disabled = disabled


def one_line(exc: BaseException) -> str:
    message = str(exc)
    assert message and "\n" not in message, message
    return message


def s3_env(store_url: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """What a child process needs to reach the store (nothing for a local one)."""
    return request.getfixturevalue("s3_server") if store_url.startswith("s3://") else {}


@pytest.fixture
def seeded(store_url: str) -> BarStore:
    """Generation 1: SPEC in two files (AAPL GE IBM | MSFT ZZ)."""
    store = BarStore(store_url)
    store.write(make_bars(SPEC), rows_per_file=40)
    return store


# --- 1. the conditional put --------------------------------------------------------------------


def test_conditional_put_creates_once_and_replaces_only_the_version_read(store_url: str) -> None:
    location = Location.parse(store_url)
    location.make()
    assert location.get_versioned("ptr") is None
    location.put_if("ptr", b"first", None)
    with pytest.raises(Conflict):
        location.put_if("ptr", b"second", None)  # If-None-Match: * on an existing object
    data, first_tag = location.get_versioned("ptr")
    assert data == b"first" and first_tag

    location.put_if("ptr", b"second", first_tag)  # still the version read: replaced
    data, second_tag = location.get_versioned("ptr")
    assert data == b"second" and second_tag != first_tag

    with pytest.raises(Conflict):
        location.put_if("ptr", b"stale", first_tag)  # a writer that read the old version
    assert location.get_versioned("ptr") == (b"second", second_tag)
    with pytest.raises(Conflict):
        location.put_if("ptr", b"again", None)

    location.put_if("ptr", b"third", second_tag)
    assert location.get_versioned("ptr")[0] == b"third"
    location.put("plain", b"made by an ordinary put")
    with pytest.raises(Conflict):  # however it was made, an object that is there is there
        location.put_if("plain", b"x", None)
    assert location.get("plain") == b"made by an ordinary put"


# --- 2. concurrent writers in one process --------------------------------------------------------


WRITERS = 4


def test_concurrent_writers_all_rebase_and_every_row_lands_once(
    seeded: BarStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = seeded.url
    barrier = threading.Barrier(WRITERS)
    # the writers' first pointer moves wait for each other, so all four try to commit on the
    # same base: exactly one wins that round and three must rebase (later rounds race freely)
    first_round = threading.Barrier(WRITERS)
    arrived: set[int] = set()
    put_if = Location.put_if

    def together(self: Location, key: str, data: bytes, etag: str | None) -> None:
        me = threading.get_ident()
        if me not in arrived:
            arrived.add(me)
            first_round.wait(timeout=30)
        put_if(self, key, data, etag)

    monkeypatch.setattr(Location, "put_if", together)
    specs = {f"T{i}": (f"2024-0{i + 1}-01", 20 + i) for i in range(WRITERS)}

    def writer(i: int) -> int:
        bars = make_bars({f"T{i}": specs[f"T{i}"]}, base=100.0 * (i + 1))
        barrier.wait(timeout=30)
        return BarStore(url).write(bars, rows_per_file=40).rows

    with rebases() as said, ThreadPoolExecutor(WRITERS) as pool:
        results = list(pool.map(writer, range(WRITERS)))  # re-raises a writer's error

    assert len(results) == WRITERS
    assert len(said) >= WRITERS - 1  # the three losers of the first round rebased
    store = BarStore.open(url)
    generation = store.current()
    assert generation.number == 1 + WRITERS
    bars = store.read()
    assert_exactly_once(bars)
    expected = {
        **{t: days for t, (_, days) in SPEC.items()},
        **{t: d for t, (_, d) in specs.items()},
    }
    assert bars.index.value_counts().sort_index().to_dict() == dict(sorted(expected.items()))
    for i in range(WRITERS):
        got = bars.loc[f"T{i}"].sort_values("date")
        want = make_bars({f"T{i}": specs[f"T{i}"]}, base=100.0 * (i + 1)).sort_values("date")
        np.testing.assert_array_equal(got["close"].to_numpy(), want["close"].to_numpy())
    assert generation.manifest["rows"] == len(bars)
    assert_files_exist(store)
    # every commit is one generation, numbered 1..5; the losers took their objects back
    numbers = sorted(store._generation(k).number for k, _ in store.location.listing(MANIFESTS))
    assert numbers == list(range(1, WRITERS + 2))
    assert objects(store) <= committed(store)


# --- 3. concurrent `technic import` processes ---------------------------------------------------


ROUNDS = 3


def test_concurrent_imports_through_the_cli(
    store_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = {**s3_env(store_url, request), "TECHNIC_CLUSTER": "sync", "CACHE_TTL": "0"}
    demo = generate_universe(2 * ROUNDS * 2, 120, seed=4)
    bars = demo.bars.drop_duplicates(["ticker", "date"], keep="last").reset_index(drop=True)
    tickers = sorted(set(bars["ticker"]))
    assert len(tickers) == 2 * ROUNDS * 2 + 1  # plus SPY
    csvs = []
    for k, chunk in enumerate(np.array_split(np.array(tickers), 2 * ROUNDS)):
        part = bars[bars["ticker"].isin(chunk)]
        path = tmp_path / f"import-{k}.csv"
        part.assign(date=part["date"].dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
        csvs.append(path)

    def import_csv(path: Path) -> subprocess.CompletedProcess:
        return run_cli("import", str(path), "--store", store_url, data_dir=tmp_path, env=env)

    for r in range(ROUNDS):
        with ThreadPoolExecutor(2) as pool:  # two processes started together, one store
            procs = list(pool.map(import_csv, csvs[2 * r : 2 * r + 2]))
        for proc in procs:
            ok(proc)
        store = BarStore.open(store_url)
        assert store.current().number == 2 * (r + 1)
        assert_files_exist(store)

    stored = BarStore.open(store_url).read()
    assert_exactly_once(stored)
    assert sorted(pd.unique(stored.index)) == tickers
    assert len(stored) == len(bars)
    want = bars.sort_values(["ticker", "date"], ignore_index=True)
    got = stored.reset_index().sort_values(["ticker", "date"], ignore_index=True)
    np.testing.assert_allclose(got["close"].to_numpy(), want["close"].to_numpy())

    proc = ok(run_cli("scan", "--store", store_url, "--json", data_dir=tmp_path, env=env))
    document = json.loads(proc.stdout)
    assert document["universe_size"] == len(tickers) - 1  # SPY is the benchmark
    assert document["hygiene"]["rows_in"] == len(bars)


# --- 4. a change that cannot be rebased ---------------------------------------------------------


def test_a_rescaling_update_that_loses_the_race_fails_and_leaves_nothing(
    seeded: BarStore,
) -> None:
    before = objects(seeded)
    rival = BarStore(seeded.url)
    lock = threading.Lock()
    calls: list[int] = []

    def rescale(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
        with lock:
            if not calls:  # another writer commits while this one is rescaling
                rival.write(make_bars({"RIVAL": ("2024-02-01", 5)}), rows_per_file=40)
            calls.append(len(frame))
        frame = frame.copy()
        frame[["open", "high", "low", "close"]] /= 2
        return frame, len(frame)

    with pytest.raises(StoreConflict) as info:
        seeded.update(
            day_bars(["AAPL", "ZZ", "NEWCO"], "2024-02-20"),
            rescale=rescale,
            rescale_tickers={"AAPL"},
            rows_per_file=40,
        )
    message = one_line(info.value)
    assert "another writer committed" in message and seeded.url in message
    assert calls  # the rescale did run: the update wrote its files before the conflict

    store = BarStore.open(seeded.url)
    winner = store.current()
    assert winner.number == 2 and "RIVAL" in winner.tickers and "NEWCO" not in winner.tickers
    assert objects(store) == before | named(winner)  # nothing of the update remains
    bars = store.read()
    assert pd.Timestamp("2024-02-20") not in set(bars["date"])
    original = make_bars(SPEC).set_index("ticker").loc["AAPL"].sort_values("date")
    got = bars.loc["AAPL"].sort_values("date")["close"].to_numpy()
    np.testing.assert_array_equal(got, original["close"].to_numpy())  # not rescaled


# --- 5. a reader during a swap -------------------------------------------------------------------


def test_a_reader_keeps_its_generation_while_writers_move_on(seeded: BarStore) -> None:
    generation = seeded.current()
    rows = generation.read()
    for k in range(2):
        seeded.write(make_bars({"AAPL": (f"2024-0{k + 3}-01", 3)}), rows_per_file=40)
    assert seeded.current().number == 3
    pd.testing.assert_frame_equal(generation.read(), rows)  # kept for an hour by default
    assert seeded.generation(generation.data_version) is not None


def test_with_no_grace_a_generation_two_commits_old_is_gone(store_url: str) -> None:
    store = BarStore(store_url, grace=0)
    store.write(make_bars(SPEC), rows_per_file=40)
    generation = store.current()
    rows = generation.read()
    store.write(make_bars({"AAPL": ("2024-03-01", 3)}), rows_per_file=40)
    pd.testing.assert_frame_equal(generation.read(), rows)  # the previous one: always kept
    store.write(make_bars({"AAPL": ("2024-04-01", 3)}), rows_per_file=40)
    left = objects(store)
    assert not (generation.objects & left)
    assert store.generation(generation.data_version) is None
    with pytest.raises(StoreError, match="is missing though its manifest lists it") as info:
        generation.read()
    message = one_line(info.value)
    assert any(f.url in message for f in generation.files)


# --- 6. a writer killed before the swap ----------------------------------------------------------


KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pipeline import storage
    from pipeline.store import BarStore
    from tests.pipeline.test_store import make_bars

    def die(self, key, data, etag):  # the files and manifest are up; the pointer never moves
        os.kill(os.getpid(), signal.SIGKILL)

    storage.Location.put_if = die
    BarStore(sys.argv[1]).write(make_bars({"KILLED": ("2024-01-01", 50)}), rows_per_file=40)
    """
)


def test_a_writer_killed_before_the_swap_changes_nothing_and_its_orphans_go_later(
    seeded: BarStore, request: pytest.FixtureRequest
) -> None:
    url = seeded.url
    first = seeded.current()
    rows = first.read()
    env = {**os.environ, **s3_env(url, request)}
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, url],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == -9, proc.stderr

    store = BarStore.open(url)
    assert store.current().name == first.name
    pd.testing.assert_frame_equal(store.read(), rows)
    orphans = objects(store) - first.objects
    orphan_bars = {k for k in orphans if k.startswith("bars/")}
    assert len(orphan_bars) >= 2  # 105 rows of SPEC and KILLED at 40 rows a file
    assert any(k.startswith(f"{MANIFESTS}/") for k in orphans)
    listed = {k for k, _ in store.location.listing("bars")}
    assert len(listed) > len(first.files)

    store.write(make_bars({"AAPL": ("2024-03-01", 3)}), rows_per_file=40)  # default grace
    second = store.current()
    assert orphans <= objects(store)  # younger than an hour: perhaps still being uploaded
    assert "KILLED" not in second.tickers

    BarStore(url, grace=0).write(make_bars({"AAPL": ("2024-04-01", 3)}), rows_per_file=40)
    third = store.current()
    assert not (orphans & objects(store))
    # what remains is exactly the current generation and its predecessor (the first
    # generation was replaced too, and with no grace it goes as well)
    assert objects(store) == named(third) | named(second)
    assert store.location.exists(POINTER)
    assert len(store.read()) == len(rows) + 6


# --- 7. a corrupt or absent pointer --------------------------------------------------------------


def test_a_corrupt_or_dangling_pointer_is_a_one_line_store_error(
    seeded: BarStore, store_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    garbled = seeded
    garbled.location.put(POINTER, b"\x00\x93garbage{")
    with pytest.raises(StoreError, match="corrupt store pointer") as info:
        BarStore.open(garbled.url).current()
    assert garbled.location.display(POINTER) in one_line(info.value)

    dangling = BarStore(store_url + "-dangling")
    dangling.write(make_bars(SPEC))
    gone = f"{MANIFESTS}/g000009-deadbeef.json"
    pointer = {"format": POINTER_FORMAT, "manifest": gone, "previous": None}
    dangling.location.put(POINTER, json.dumps(pointer).encode())
    with pytest.raises(StoreError, match="is missing") as info:
        BarStore.open(dangling.url).current()
    assert dangling.location.display(gone) in one_line(info.value)

    empty = BarStore(store_url + "-empty")
    with pytest.raises(StoreError, match="no bar store at") as info:
        BarStore.open(empty.url)
    assert empty.url in one_line(info.value)

    env = {**s3_env(store_url, request), "TECHNIC_CLUSTER": "sync", "CACHE_TTL": "0"}

    def scan(url: str) -> subprocess.CompletedProcess:
        return run_cli("scan", "--store", url, data_dir=tmp_path, env=env)

    with ThreadPoolExecutor(3) as pool:
        procs = list(pool.map(scan, [garbled.url, dangling.url, empty.url]))
    assert_user_error(procs[0], "corrupt store pointer", garbled.location.display(POINTER))
    assert_user_error(procs[1], "is missing", dangling.location.display(gone))
    assert_user_error(procs[2], "no bar store at", empty.url)


# --- 8. a store written before the pointer (local only) ----------------------------------------


def universe_frame(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["ticker", "sector", "market_cap"])


def make_legacy_store(path: Path, tmp_path: Path) -> BarStore:
    """A store as written before the pointer: root manifest.json (no dates, no universe key,
    a ``g1-<digest>`` data version), bars/g000001-0000k.parquet, root universe.parquet."""
    source = BarStore(tmp_path / "source")
    reference = universe_frame([("AAPL", "IT", 3e12), ("MSFT", "Software", 2.9e12)])
    source.write(make_bars(SPEC), reference, rows_per_file=40)
    generation = source.current()
    (path / "bars").mkdir(parents=True)
    manifest = dict(generation.manifest)
    files = []
    for k, entry in enumerate(manifest["files"]):
        name = f"bars/g000001-{k:05d}.parquet"
        shutil.copyfile(Path(source.url) / entry["path"], path / name)
        files.append({**entry, "path": name})
    shutil.copyfile(Path(source.url) / manifest["universe"], path / LEGACY_UNIVERSE)
    for key in ("dates", "universe"):
        del manifest[key]
    written_at = pd.Timestamp(manifest["written_at"]).isoformat(timespec="seconds")
    manifest.update(
        files=files, generation=1, data_version="g1-0123456789abcdef", written_at=written_at
    )
    (path / LEGACY_MANIFEST).write_text(json.dumps(manifest, indent=1))
    return BarStore(path)


def test_a_legacy_store_reads_then_migrates_on_its_first_commit(tmp_path: Path) -> None:
    path = tmp_path / "legacy"
    store = make_legacy_store(path, tmp_path)
    assert not (path / POINTER).exists() and not (path / MANIFESTS).exists()

    store = BarStore.open(path)
    legacy = store.current()
    assert legacy.name == LEGACY_MANIFEST
    assert store.tickers == sorted(SPEC)
    rows = store.read()
    assert len(rows) == sum(days for _, days in SPEC.values())
    distinct = pd.DatetimeIndex(sorted(set(rows["date"])))
    assert "dates" not in legacy.manifest
    np.testing.assert_array_equal(store.dates().to_numpy(), distinct.to_numpy())
    assert store.universe().loc["AAPL", "sector"] == "IT"
    assert store.universe().loc["MSFT", "market_cap"] == 2.9e12

    store.update(day_bars(["ZZ", "NEWCO"], "2024-02-20"), rows_per_file=40)
    assert (path / POINTER).is_file()
    migrated = store.current()
    assert migrated.name.startswith(f"{MANIFESTS}/g000002-")
    assert migrated.number == 2
    assert migrated.manifest["universe"] == LEGACY_UNIVERSE  # the reference table is kept
    assert store.universe().loc["MSFT", "sector"] == "Software"
    after = store.read()
    kept = after[after["date"] != pd.Timestamp("2024-02-20")]
    pd.testing.assert_frame_equal(kept, rows)
    assert set(after[after["date"] == pd.Timestamp("2024-02-20")].index) == {"ZZ", "NEWCO"}
    assert len(after) == len(rows) + 2
    assert migrated.manifest["dates"] == sorted({f"{d:%Y-%m-%d}" for d in after["date"]})
    assert (path / LEGACY_MANIFEST).is_file()  # the previous generation, for its readers
    pd.testing.assert_frame_equal(legacy.read(), rows)

    store.write(make_bars({"AAPL": ("2024-03-01", 3)}), rows_per_file=40)
    assert not (path / LEGACY_MANIFEST).exists()
    assert (path / LEGACY_UNIVERSE).is_file()  # still the store's reference table
    assert store.universe().loc["AAPL", "sector"] == "IT"
    assert len(store.read()) == len(after) + 3  # three new AAPL days
    assert_files_exist(store)


# --- 9. dates come from the manifest ------------------------------------------------------------


def test_the_manifest_lists_the_distinct_dates_of_the_bars(seeded: BarStore) -> None:
    def check() -> None:
        listed = seeded.manifest["dates"]
        stored = sorted({f"{d:%Y-%m-%d}" for d in seeded.read()["date"]})
        assert listed == stored
        assert list(seeded.dates().strftime("%Y-%m-%d")) == stored

    check()
    seeded.update(day_bars(["ZZ", "AAPL"], "2024-02-20"), rows_per_file=40)
    check()
    seeded.update(day_bars(["NEWCO"], "2023-12-29"), rows_per_file=40)
    check()
    seeded.update(tables={"notes": pd.DataFrame({"a": [1]})})  # no bars: dates unchanged
    check()
    seeded.write_universe(universe_frame([("AAPL", "IT", 1.0)]))
    check()
    seeded.write(make_bars({"LATE": ("2024-06-03", 4)}), rows_per_file=40)
    check()
    seeded.write(make_bars({"ONLY": ("2025-01-01", 2)}), merge=False)
    check()
    assert seeded.manifest["dates"] == ["2025-01-01", "2025-01-02"]


# --- a known race: garbage collection after the pointer moved ----------------------------------


def commit_during_collection(monkeypatch: pytest.MonkeyPatch, rival: Callable[[], object]) -> None:
    """Run ``rival`` (a commit) the moment the next commit begins collecting garbage: after
    its pointer moved, before it lists the store's objects."""
    listing: Callable = Location.listing
    fired: list[bool] = []

    def timed(self: Location, folder: str):
        if not fired:
            fired.append(True)
            rival()
        return listing(self, folder)

    monkeypatch.setattr(Location, "listing", timed)


def test_a_commit_right_after_anothers_survives_its_garbage_collection(
    seeded: BarStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the store was last written over an hour ago (a daily sync's store)
    first = seeded.current()
    seeded.location.put(
        first.name,
        json.dumps({**first.manifest, "written_at": "2020-01-01T00:00:00.000+00:00"}).encode(),
    )
    rival = BarStore(seeded.url)
    commit_during_collection(
        monkeypatch, lambda: rival.write(make_bars({"NEW": ("2024-03-01", 3)}))
    )
    seeded.write(make_bars({"AAPL": ("2024-03-01", 3)}))
    monkeypatch.undo()
    store = BarStore.open(seeded.url)
    assert store.current().number == 3
    assert "NEW" in store.tickers
    assert_files_exist(store)


def minutes_ago(minutes: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat(timespec="milliseconds")


def backdate(store: BarStore, name: str, minutes: float) -> None:
    """Make manifest ``name`` say it was written ``minutes`` ago (time passing, in a test)."""
    manifest = json.loads(store.location.get(name))
    store.location.put(name, json.dumps({**manifest, "written_at": minutes_ago(minutes)}).encode())


def test_a_killed_writers_manifest_does_not_shorten_the_grace_of_a_generation(
    seeded: BarStore,
) -> None:
    first = seeded.current()
    backdate(seeded, first.name, 70)
    # 65 minutes ago a writer based on generation 1 was killed before its pointer move
    files = []
    for k, entry in enumerate(first.manifest["files"]):
        key = f"bars/g000002-deadbeef-{k:05d}.parquet"
        seeded.location.put(key, seeded.location.get(entry["path"]))
        files.append({**entry, "path": key})
    orphan = {**first.manifest, "files": files, "generation": 2, "data_version": "g000002-deadbeef"}
    orphan["written_at"] = minutes_ago(65)
    seeded.location.put("manifests/g000002-deadbeef.json", json.dumps(orphan).encode())
    # 30 minutes ago generation 2 replaced generation 1 (a longer grace stands in for its
    # collection having run then), while a long scan held generation 1
    BarStore(seeded.url, grace=3 * 3600).write(make_bars({"AAPL": ("2024-03-01", 3)}))
    backdate(seeded, seeded.current().name, 30)
    # now generation 3: generation 1 was replaced 30 minutes ago, within the hour's grace
    seeded.write(make_bars({"AAPL": ("2024-04-01", 3)}))
    assert len(first.read()) == sum(days for _, days in SPEC.values())
