"""Where scans run: backend selection and fallback, a remote scheduler that loses a worker
mid-scan, and the performance report."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from distributed import Client

from pipeline.cluster import client_session, cuda_threads, gpu_status
from pipeline.config import Settings
from pipeline.scan import run_scan
from tests.conftest import run_cli

DASK = str(Path(sys.executable).with_name("dask"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_gpu_status_says_what_is_missing() -> None:
    found, reason = gpu_status()
    if found:
        pytest.skip(f"this machine has a usable GPU ({reason})")
    assert reason and any(word in reason for word in ("dask-cuda", "cupy", "CUDA"))


@pytest.mark.parametrize(
    ("max_workers", "cores", "gpus", "threads"),
    [(None, 16, 1, 16), (None, 16, 4, 4), (None, 2, 4, 1), ("1x3", 16, 1, 3), ("4", 16, 2, 8)],
)
def test_cuda_workers_share_the_cores_among_the_gpus(max_workers, cores, gpus, threads) -> None:
    settings = Settings(max_workers=max_workers)
    assert cuda_threads(settings, cores, gpus) == threads


def test_cuda_without_a_gpu_says_so_once_and_scans_on_the_cpu(
    demo_store: Path, tmp_path: Path, caplog
) -> None:
    found, reason = gpu_status()
    if found:
        pytest.skip(f"this machine has a usable GPU ({reason}): nothing falls back")
    settings = Settings(
        data_dir=tmp_path, use_redis=False, cluster="cuda", dashboard_address=":0", max_workers="2"
    )
    caplog.set_level(logging.WARNING, logger="pipeline.cluster")
    with client_session(settings) as first:
        assert first is not None and len(first.scheduler_info()["workers"]) == 2
        result = run_scan(demo_store, client=first, settings=settings)
    with client_session(settings):
        pass
    said = [r.getMessage() for r in caplog.records if "TECHNIC_CLUSTER=cuda" in r.getMessage()]
    assert said == [f"TECHNIC_CLUSTER=cuda: {reason}; running on the local CPU cluster instead"]
    reference = run_scan(demo_store, settings=settings.model_copy(update={"cluster": "sync"}))
    pd.testing.assert_frame_equal(result.table, reference.table)


@pytest.fixture
def remote_cluster(tmp_path: Path):
    """A real ``dask scheduler`` and two ``dask worker`` processes on loopback (no nanny, so
    killing a worker's process kills the worker)."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "dask.log"
    procs = []
    scheduler = [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port)]
    scheduler += ["--dashboard-address", ":0"]
    worker = [DASK, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"]
    worker += ["--memory-limit", "0"]
    with logs.open("w") as log:
        procs.append(subprocess.Popen(scheduler, stdout=log, stderr=log))
        for name in ("w1", "w2"):
            procs.append(subprocess.Popen([*worker, "--name", name], stdout=log, stderr=log))
    try:
        deadline = time.monotonic() + 60
        with Client(address, timeout="30s") as probe:
            while len(probe.scheduler_info()["workers"]) < 2:
                assert time.monotonic() < deadline, logs.read_text()[-3000:]
                time.sleep(0.1)
        yield address, procs[1:]
    finally:
        for proc in reversed(procs):
            proc.kill()
            proc.wait(10)


def test_a_remote_scan_survives_losing_a_worker(
    many_partitions: Path, tmp_path: Path, remote_cluster
) -> None:
    address, workers = remote_cluster
    settings = Settings(data_dir=tmp_path, use_redis=False, cluster=address)
    killed: list[tuple[str, int, int]] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "indicators" and done == 3 and not killed:
            os.kill(workers[0].pid, signal.SIGKILL)
            killed.append((stage, done, total))

    with client_session(settings) as client:
        assert client is not None and client.scheduler.address == address
        result = run_scan(many_partitions, client=client, settings=settings, progress=progress)
        survivors = client.scheduler_info()["workers"]
    assert killed and killed[0][2] >= 50  # killed with most partitions still to compute
    assert workers[0].wait(10) == -signal.SIGKILL
    assert [w["name"] for w in survivors.values()] == ["w2"]
    reference = run_scan(many_partitions, settings=settings.model_copy(update={"cluster": "sync"}))
    pd.testing.assert_frame_equal(result.table, reference.table, rtol=1e-9)
    assert result.snapshot["results"] == reference.snapshot["results"]


def test_scan_writes_a_performance_report(demo_store: Path, tmp_path: Path) -> None:
    report = tmp_path / "reports" / "scan.html"
    done = run_cli("scan", "--store", str(demo_store), "--profile", str(report), data_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"Performance report: {report}" in done.stderr
    html = report.read_text()
    assert "Dask Performance Report" in html and "Task Stream" in html
    refused = run_cli(
        "scan", "--store", str(demo_store), "--profile", str(report),
        data_dir=tmp_path, env={"TECHNIC_CLUSTER": "sync"},
    )  # fmt: skip
    assert refused.returncode == 2
    assert "a performance report needs a Dask cluster" in refused.stderr
