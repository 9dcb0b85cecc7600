"""TECHNIC_CLUSTER → a Dask client: ``local``, ``cuda``, ``tcp://host:port`` or ``sync``.

``local`` starts a distributed LocalCluster (dashboard on :8787, or a free port when that one is
taken) with one single-threaded worker per core unless TECHNIC_MAX_WORKERS says otherwise.
``sync`` returns no client: Dask's synchronous scheduler runs everything in this process, which
is what a debugger wants. ``cuda`` needs the ``gpu`` extra (dask-cuda, CuPy, numba-cuda) and a
GPU; without them Technic says so once and runs on the local CPU cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator

import dask
from distributed import Client, LocalCluster, WorkerPlugin

from pipeline.config import Settings, get_settings
from pipeline.errors import ConfigError, TechnicError
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
    if mode in ("sync", "threads"):  # Dask's local schedulers: nothing to start
        return None
    if mode.startswith("tcp://"):
        try:
            client = Client(mode, timeout="10s")
        except OSError as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {mode}: {exc}") from None
        return _prepared(client)
    if mode == "cuda":
        found, reason = gpu_status()
        if found:
            return _cuda_client(settings)
        _say_once(f"TECHNIC_CLUSTER=cuda: {reason}; running on the local CPU cluster instead")
    workers, threads = settings.workers
    with dask.config.set(WORKER_MALLOC):
        cluster = LocalCluster(
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=threads,
            processes=True,
            dashboard_address=settings.dashboard_address,
            silence_logs=logging.ERROR,
        )
    return _prepared(Client(cluster))


def _prepared(client: Client, *device: str) -> Client:
    """``client`` with the scan's kernels compiled on every worker, whose logs keep quiet
    about the user's errors."""
    client.register_plugin(QuietUserErrors(), name="technic-quiet-user-errors")
    client.run(warm_up, *device)
    return client


class QuietUserErrors(WorkerPlugin):
    """Drops a worker's "Compute Failed … Traceback" log of a task that raised a
    :class:`TechnicError` (a missing or damaged store file): the client raises it again and
    the CLI prints it as one line, so the worker's copy is only noise on stderr."""

    def setup(self, worker: object) -> None:
        logging.getLogger("distributed.worker").addFilter(_not_a_user_error)


_RAISED = re.compile(r"^Exception: +\W?(\w+)\(", re.MULTILINE)  # "StoreError('…')"


def _not_a_user_error(record: logging.LogRecord) -> bool:
    if not str(record.msg).startswith("Compute Failed"):
        return True
    raised = _RAISED.search(record.getMessage())
    return raised is None or raised.group(1) not in _names(TechnicError)


def _names(cls: type) -> set[str]:
    """The names of ``cls`` and its subclasses."""
    return {cls.__name__}.union(*(_names(sub) for sub in cls.__subclasses__()))


_said: set[str] = set()


def _say_once(message: str) -> None:
    if message not in _said:
        _said.add(message)
        log.warning(message)


def gpu_status() -> tuple[bool, str]:
    """Whether this machine can run the cuda cluster: (True, device names) or (False, why
    not: no dask-cuda, CuPy or numba-cuda, no CUDA device)."""
    for module in ("dask_cuda", "cupy", "numba_cuda"):
        try:
            __import__(module)
        except ImportError:
            return False, f"{module.replace('_', '-')} is not installed"
        except Exception as exc:  # a broken CUDA install raises on import
            return False, f"{module} cannot load ({type(exc).__name__}: {exc})"
    import cupy

    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError without a driver or device
        return False, f"no usable CUDA device ({exc})"
    if count == 0:
        return False, "no CUDA device"
    names = []
    for index in range(count):
        name = cupy.cuda.runtime.getDeviceProperties(index)["name"]
        names.append(name.decode() if isinstance(name, bytes) else str(name))
    return True, ", ".join(names)


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def cuda_threads(settings: Settings, cores: int, gpus: int) -> int:
    """Threads per GPU worker: TECHNIC_MAX_WORKERS's threads when it names them ('1x8'), else
    the machine's cores shared among its GPUs. A partition's host work (reading, cleaning
    pandas partitions, the latest-bar features) then overlaps other partitions' kernels
    instead of queueing behind them on dask-cuda's default single thread."""
    return settings.worker_threads or max(1, cores // max(gpus, 1))


def _cuda_client(settings: Settings) -> Client:
    """A dask-cuda LocalCUDACluster: one worker per GPU (:func:`cuda_threads` threads each),
    an RMM pool, cuDF spilling where cuDF is installed."""
    import cupy
    from dask_cuda import LocalCUDACluster

    options: dict[str, object] = {}
    if _importable("cudf"):
        options["enable_cudf_spill"] = True
    if _importable("rmm") and settings.gpu_pool > 0:
        options["rmm_pool_size"] = settings.gpu_pool
    threads = cuda_threads(settings, os.cpu_count() or 1, cupy.cuda.runtime.getDeviceCount())
    cluster = LocalCUDACluster(
        threads_per_worker=threads,
        dashboard_address=settings.dashboard_address,
        silence_logs=logging.ERROR,
        **options,
    )
    return _prepared(Client(cluster), "cuda")


@contextlib.contextmanager
def client_session(settings: Settings | None = None) -> Iterator[Client | None]:
    """A client for one command: started here, closed (with its local cluster) on exit."""
    client = start_client(settings)
    try:
        yield client
    finally:
        close(client)


def close(client: Client | None) -> None:
    """Close a client and the local cluster it started, if any (a remote scheduler stays).

    While a local cluster shuts down, a worker whose heartbeat is in flight logs the closed
    connection as an error with a traceback (dask/distributed#7105); that is expected there, so
    the workers' and this process's Dask logs are quiet for the shutdown only."""
    if client is None:
        return
    cluster = client.cluster
    if cluster is None:
        client.close()
        return
    with contextlib.suppress(Exception):  # workers already gone: nothing to quiet
        client.run(_quiet_dask_logs)
    client.close()
    dask_log = logging.getLogger("distributed")
    level = dask_log.level
    dask_log.setLevel(logging.CRITICAL)
    try:
        cluster.close()
    finally:
        dask_log.setLevel(level)


def _quiet_dask_logs() -> None:
    logging.getLogger("distributed").setLevel(logging.CRITICAL)


def describe(client: Client | None, settings: Settings | None = None) -> str:
    """One line for operators: where the scan runs and the dashboard link."""
    if client is None:
        from pipeline.scan import local_scheduler

        return local_scheduler(settings)
    info = client.scheduler_info(n_workers=-1)
    workers = info.get("workers", {})
    threads = sum(w.get("nthreads", 0) for w in workers.values())
    return f"{len(workers)} workers, {threads} threads, dashboard {client.dashboard_link}"
