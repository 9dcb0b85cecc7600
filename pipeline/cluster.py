"""TECHNIC_CLUSTER → a Dask client: ``local``, ``cuda``, ``tcp://host:port`` or ``sync``.

``local`` starts a distributed LocalCluster (dashboard on :8787, or a free port when that one is
taken) with one single-threaded worker per core unless TECHNIC_MAX_WORKERS says otherwise.
``sync`` returns no client: Dask's synchronous scheduler runs everything in this process, which
is what a debugger wants. ``cuda`` needs dask-cuda; without it (or without a GPU) Technic says
so once and runs on the local CPU cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator

import dask
from distributed import Client, LocalCluster

from pipeline.config import Settings, get_settings
from pipeline.errors import ConfigError
from pipeline.features import warm_up

log = logging.getLogger(__name__)

# Dask's nanny sets MALLOC_TRIM_THRESHOLD_=64KiB, which also turns off glibc's adaptive mmap
# threshold: every partition-sized array then comes from a fresh mmap and page-faults, which
# doubled the indicator stage here. Workers keep and reuse up to this much freed memory.
WORKER_MALLOC = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 256 * 2**20,
    "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 64 * 2**20,
}


def start_client(settings: Settings | None = None) -> Client | None:
    """Start (or connect to) the cluster the settings name, with the scan's kernels loaded on
    every worker; ``None`` means Dask's local schedulers."""
    settings = settings or get_settings()
    mode = settings.effective_cluster
    if mode == "sync":
        return None
    if mode.startswith("tcp://"):
        try:
            client = Client(mode, timeout="10s")
        except OSError as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {mode}: {exc}") from None
        client.run(warm_up)
        return client
    if mode == "cuda":
        log.warning(
            "TECHNIC_CLUSTER=cuda is not available in this build; running on the local CPU cluster"
        )
    workers, threads = settings.workers
    with dask.config.set(WORKER_MALLOC):
        cluster = LocalCluster(
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=threads,
            processes=True,
            dashboard_address=settings.dashboard_address,
            silence_logs=logging.ERROR,
        )
    client = Client(cluster)
    client.run(warm_up)
    return client


@contextlib.contextmanager
def client_session(settings: Settings | None = None) -> Iterator[Client | None]:
    """A client for one command: started here, closed (with its local cluster) on exit."""
    client = start_client(settings)
    try:
        yield client
    finally:
        if client is not None:
            cluster = client.cluster
            client.close()
            if cluster is not None:
                cluster.close()


def describe(client: Client | None) -> str:
    """One line for operators: where the scan runs and the dashboard link."""
    if client is None:
        return "sync scheduler (no cluster, no dashboard)"
    info = client.scheduler_info(n_workers=-1)
    workers = info.get("workers", {})
    threads = sum(w.get("nthreads", 0) for w in workers.values())
    return f"{len(workers)} workers, {threads} threads, dashboard {client.dashboard_link}"


class SharedClient:
    """The Dask client of a long-running process (the service): started on first use, so
    the process starts fast and a scan-less deployment never starts a cluster; closed with
    the process."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._client: Client | None = None
        self._started = False
        self._lock = threading.Lock()

    def __call__(self) -> Client | None:
        with self._lock:
            if not self._started:
                self._client = start_client(self.settings)
                self._started = True
            return self._client

    def info(self) -> dict[str, object]:
        """Where scans run: the cluster setting, whether it has started, its workers and
        dashboard link."""
        out: dict[str, object] = {
            "cluster": self.settings.effective_cluster,
            "started": self._started,
            "workers": [],
            "dashboard": None,
        }
        client = self._client
        if client is None:
            return out
        info = client.scheduler_info(n_workers=-1)
        out["scheduler"] = info.get("address")
        out["dashboard"] = client.dashboard_link
        out["workers"] = [
            {
                "address": address,
                "name": str(worker.get("name")),
                "threads": worker.get("nthreads"),
                "memory_limit": worker.get("memory_limit"),
            }
            for address, worker in sorted(info.get("workers", {}).items())
        ]
        return out

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            self._started = False
        if client is not None:
            cluster = client.cluster
            client.close()
            if cluster is not None:
                cluster.close()
