"""The bar store in a bucket, as deployed: processes that share nothing but the bucket (and
Redis), each opening it with its own environment's credentials.

1. Several machines: a real ``dask scheduler`` and two ``dask worker`` processes, each with an
   empty home and working directory and only the AWS_* variables, scan a store that exists
   only in the bucket while one worker is killed mid-scan; the secret key appears in no task
   graph, log or snapshot.
2. The Render topology (render.yaml): a cron side (``technic sync --details`` from a Polygon
   speaking server, then ``technic scan --publish``) and a web side (``technic serve``), with
   separate homes and data directories, sharing only the bucket and a Redis server; the app's
   symbol screen and a scan job read the bucket, and the next day's sync fetches one session.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path

import cloudpickle
import httpx
import pandas as pd
import pytest
from distributed import Client

from pipeline.cluster import client_session
from pipeline.config import Settings
from pipeline.frame import load_bars
from pipeline.scan import prepare, run_scan
from pipeline.sources.synthetic import generate_universe
from pipeline.store import BarStore
from pipeline.trading_calendar import sessions
from tests.fake_polygon import KEY, FakePolygon, Market
from tests.service import app_rules

pytestmark = pytest.mark.slow  # several processes and CLIs end to end (about a minute)

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bare_env(home: Path, **extra: str) -> dict[str, str]:
    """A process environment with nothing of this one's but PATH: its own HOME, plus
    ``extra`` (no TECHNIC_* or AWS_* variable unless given)."""
    return {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "HOME": str(home), **extra}


def a_home(tmp_path: Path, name: str) -> Path:
    home = tmp_path / name
    home.mkdir()
    return home


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


# --- 1. a remote Dask cluster reads the bucket --------------------------------------------------


@pytest.fixture
def bucket_only_store(s3_bucket: str) -> str:
    """A store written straight into the bucket (30 files of 20 tickers): no local copy."""
    universe = generate_universe(580, 260, seed=17)
    url = f"{s3_bucket}/store"
    BarStore(url).write(universe.bars, universe.universe, rows_per_file=20 * 260)
    return url


@pytest.fixture
def isolated_cluster(tmp_path: Path, s3_server: dict[str, str]):
    """A ``dask scheduler`` and two ``dask worker`` processes (no nanny) on loopback, each
    started from an empty home and working directory of its own; the workers' environment
    has the bucket's AWS_* variables and nothing else of this process's, the scheduler's not
    even those. Yields the address, the worker processes and every process's log file."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = str(BIN / "dask")
    scheduler = [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port)]
    scheduler += ["--dashboard-address", ":0"]
    worker = [dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"]
    worker += ["--memory-limit", "0"]
    procs: list[subprocess.Popen] = []
    logs: list[Path] = []
    try:
        for name, args, extra in (
            ("scheduler", scheduler, {}),
            ("w1", [*worker, "--name", "w1"], s3_server),
            ("w2", [*worker, "--name", "w2"], s3_server),
        ):
            home = a_home(tmp_path, name)
            logs.append(home / f"{name}.log")
            with logs[-1].open("w") as log:
                procs.append(
                    subprocess.Popen(
                        args, cwd=home, env=bare_env(home, **extra), stdout=log, stderr=log
                    )
                )
        deadline = time.monotonic() + 60
        with Client(address, timeout="30s") as probe:
            while len(probe.scheduler_info()["workers"]) < 2:
                assert time.monotonic() < deadline, "\n".join(p.read_text() for p in logs)
                time.sleep(0.1)
        yield address, procs[1:], logs
    finally:
        for proc in reversed(procs):
            stop(proc)


def test_remote_workers_scan_the_bucket_with_their_own_credentials_and_lose_one(
    bucket_only_store: str, tmp_path: Path, s3_server: dict[str, str], isolated_cluster
) -> None:
    address, workers, logs = isolated_cluster
    secret = s3_server["AWS_SECRET_ACCESS_KEY"].encode()
    url = bucket_only_store
    assert len(BarStore(url).files) >= 25

    # the task graph names the store by URL only: no credential travels to the workers
    frame = load_bars(url)
    graph = cloudpickle.dumps(dict(frame.__dask_graph__()))
    assert url.encode() in graph
    assert secret not in graph
    assert secret not in cloudpickle.dumps(prepare(url, settings=Settings(use_redis=False)))

    settings = Settings(data_dir=a_home(tmp_path, "client"), use_redis=False, cluster=address)
    killed: list[tuple[str, int, int]] = []
    sent: list[bytes] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "indicators" and done == 3 and not killed:
            os.kill(workers[0].pid, signal.SIGKILL)
            killed.append((stage, done, total))

    with client_session(settings) as client:
        assert client is not None and client.scheduler.address == address
        send = client._send_to_scheduler

        def spy(msg: dict) -> None:  # every graph this client submits, as the bytes it sends
            if msg.get("op") == "update-graph":
                expr = msg["expr_ser"]
                sent.append(pickle.dumps(expr.header) + b"".join(map(bytes, expr.frames)))
            send(msg)

        client._send_to_scheduler = spy
        result = run_scan(url, client=client, settings=settings, progress=progress)
        survivors = client.scheduler_info()["workers"]
    assert killed and killed[0][2] >= 25  # killed with most partitions still to compute
    assert workers[0].wait(10) == -signal.SIGKILL
    assert [w["name"] for w in survivors.values()] == ["w2"]
    assert result.snapshot["store"]["path"] == url

    reference = run_scan(url, settings=settings.model_copy(update={"cluster": "sync"}))
    pd.testing.assert_frame_equal(result.table, reference.table, rtol=1e-9)
    assert result.snapshot["results"] == reference.snapshot["results"]

    assert any(url.encode() in graph for graph in sent)  # the spy saw the scan's graphs
    assert all(secret not in graph for graph in sent)
    json_path, parquet_path = result.write(tmp_path / "snapshots")
    assert secret not in json_path.read_bytes() and secret not in result.to_json()
    assert secret not in parquet_path.read_bytes()
    stop(workers[1])
    for log in logs:
        assert secret not in log.read_bytes(), log
        assert not any(log.parent.rglob("*.parquet")), log.parent  # nothing copied locally
    assert b"w2" in logs[0].read_bytes()  # the scheduler's log is the real one


# --- 2. Render: a cron and a web service sharing only the bucket and Redis ----------------------

FIRST, LAST = date(2024, 7, 1), date(2024, 12, 31)
DAYS = sessions(FIRST, LAST)
API_KEY = "deploy-write-key-5e1d"


def render_market() -> Market:
    """20 stocks and SPY over the second half of 2024 (about 128 sessions)."""
    return Market.generate(20, FIRST, LAST, seed=23, types={"SPY": "ETF"})


@pytest.fixture
def polygon():
    with FakePolygon(render_market(), page_size=50) as fake:
        yield fake


def technic(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    """The real console script, from the process's home, in the environment ``env`` only."""
    proc = subprocess.run(
        [str(BIN / "technic"), *args],
        cwd=env["HOME"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"technic {' '.join(args)}: {proc.stderr[-3000:]}"
    return proc


@contextlib.contextmanager
def web_service(env: dict[str, str]):
    """``technic serve`` on a free port, as Render starts it; yields an HTTP client."""
    port = free_port()
    log = Path(env["HOME"]) / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(BIN / "technic"), "serve", "--port", str(port), "--no-access-log"],
            cwd=env["HOME"],
            env=env,
            stdout=out,
            stderr=out,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                with contextlib.suppress(httpx.TransportError):
                    if http.get("/health").status_code == 200:
                        break
                time.sleep(0.1)
            yield http, log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            stop(proc)


def wait_for(check, what: str, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def finished_job(http: httpx.Client, job_id: str) -> dict:
    def done():
        state = http.get(f"/v1/scans/{job_id}").json()
        return state if state["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(done, f"scan job {job_id}", timeout=120)


def serving(http: httpx.Client, snapshot_id: str) -> dict:
    """/health once the web side serves ``snapshot_id`` (it polls Redis every second)."""

    def check():
        body = http.get("/health").json()
        return body if (body["snapshot"] or {}).get("id") == snapshot_id else None

    return wait_for(check, f"snapshot {snapshot_id} to be served", timeout=30)


def test_render_cron_and_web_share_only_the_bucket_and_redis(
    polygon: FakePolygon,
    s3_bucket: str,
    s3_server: dict[str, str],
    redis_server,
    tmp_path: Path,
) -> None:
    url = f"{s3_bucket}/store"
    shared = {  # the technic-settings group and the secrets both services get
        **s3_server,
        "TECHNIC_DATA_DIR": "~/.technic",  # as in render.yaml: under each service's own home
        "TECHNIC_STORE": url,
        "TECHNIC_USE_REDIS": "true",
        "REDIS_URL": redis_server.url,
        "TECHNIC_REDIS_PREFIX": f"render-{uuid.uuid4().hex[:8]}:v1",
        "TECHNIC_CLUSTER": "local",
        "TECHNIC_MAX_WORKERS": "1",
        "TECHNIC_DASHBOARD_ADDRESS": ":0",
    }
    cron_home, web_home = a_home(tmp_path, "cron"), a_home(tmp_path, "web")
    cron = bare_env(
        cron_home,
        **shared,
        POLYGON_API_KEY=KEY,
        POLYGON_BASE_URL=polygon.url,
        TECHNIC_POLYGON_RPM="0",
    )
    web = bare_env(web_home, **shared, TECHNIC_API_KEY=API_KEY, TECHNIC_SNAPSHOT_POLL_INTERVAL="1")
    stock = "T007"

    with web_service(web) as (http, web_log):
        before = http.get("/health").json()
        assert before["status"] == "no_snapshot" and before["store"] is False

        # cron, first run: backfill into the bucket, then scan and publish
        backfill_range = ("--since", f"{FIRST}", "--until", f"{DAYS[-2]}")
        backfill = technic("sync", "--details", *backfill_range, env=cron)
        assert polygon.count("grouped") == len(DAYS) - 1
        assert f"{len(DAYS) - 1} of {len(DAYS) - 1} missing days written" in backfill.stderr
        store = BarStore(url)
        assert len(store.dates()) == len(DAYS) - 1 and store.dates()[-1] == pd.Timestamp(DAYS[-2])
        scanned = technic("scan", "--publish", env={**cron, "CACHE_TTL": "0"})
        published = [line for line in scanned.stderr.splitlines() if line.startswith("Published")]
        assert published, scanned.stderr
        first_id = published[0].split()[1]

        # web: the app's symbol screen, history read from the bucket by the web side
        health = serving(http, first_id)
        assert health["store"] is True and health["status"] == "ok"
        response = http.get(f"/v1/symbol/{stock}", params={"days": 90})
        assert response.status_code == 200, response.text
        detail = app_rules.symbol_detail(response.json(), old_app=True)
        history = detail["history"]
        assert len(history) == 90
        assert history[-1]["date"].startswith(f"{DAYS[-2]}")
        assert history[0]["date"].startswith(f"{DAYS[-91]}")
        assert detail["status"] == "ok" and detail["history_source"]["store"] == url
        assert detail["history_source"]["data_version"] == store.data_version

        # web: a scan job over the bucket, published to the Redis the cron publishes to
        refused = http.post("/v1/scans", json={})
        assert refused.status_code == 401
        started = http.post("/v1/scans", json={}, headers={"X-API-Key": API_KEY})
        assert started.status_code == 202, started.text
        job = finished_job(http, started.json()["id"])
        assert job["status"] == "succeeded", job
        assert job["published"] is True and job["as_of"] == f"{DAYS[-2]}"
        assert job["snapshot_id"] != first_id
        serving(http, job["snapshot_id"])

        # cron, next day: exactly one new session fetched, no re-backfill
        polygon.reset()
        version = store.data_version
        daily = technic("sync", "--details", "--until", f"{DAYS[-1]}", env=cron)
        grouped = [p.rsplit("/", 1)[1] for p, _, _ in polygon.log if "grouped" in p]
        assert grouped == [f"{DAYS[-1]}"]
        assert polygon.count("/range/") == 0 and polygon.count("/reference/tickers/") == 0
        assert "1 of 1 missing days written" in daily.stderr
        dates = BarStore(url).dates()
        assert len(dates) == len(DAYS) and dates[-1] == pd.Timestamp(DAYS[-1])
        assert BarStore(url).data_version != version

        # web: the next scan job reads the new generation from the bucket
        started = http.post("/v1/scans", json={}, headers={"X-API-Key": API_KEY})
        job = finished_job(http, started.json()["id"])
        assert job["status"] == "succeeded" and job["as_of"] == f"{DAYS[-1]}", job
        serving(http, job["snapshot_id"])
        detail = app_rules.symbol_detail(
            http.get(f"/v1/symbol/{stock}", params={"days": 90}).json()
        )
        assert len(detail["history"]) == 90
        assert detail["history"][-1]["date"].startswith(f"{DAYS[-1]}")
        secret = s3_server["AWS_SECRET_ACCESS_KEY"]
        assert secret not in web_log.read_text()
        for done in (backfill, scanned, daily):
            assert secret not in done.stderr + done.stdout and KEY not in done.stderr + done.stdout

    # neither side kept a store of its own: the bucket is the only one
    for home in (cron_home, web_home):
        assert not (home / ".technic" / "store").exists()
        assert not any(home.rglob("manifests"))
    assert list((cron_home / ".technic" / "snapshots").glob("*.json"))
