"""Scan jobs: a scan started on request, run in the background, published when it finishes.

One scan runs at a time per Redis namespace, whichever process asked: ``P:job:active`` holds
the running job's id (SET NX) with a lease the running process keeps renewing, so a second
request gets the running job back and a crashed process frees the slot when its lease ends.

A job's state lives in Redis, so every service worker process answers for every job::

    P:job:<id>          JSON: status, stage, partitions done/total, elapsed, ETA, outcome
    P:job:<id>:events   stream of every state change (what Server-Sent Events replay)
    P:job:<id>:cancel   set by a cancel request; the scan stops at its next progress tick
    P:job:active        the running job's id, while it runs

States: ``queued`` → ``running`` → ``succeeded`` | ``failed`` | ``cancelled``. A terminal
state is written before the active slot is freed, so a job that is neither terminal nor the
slot's holder belonged to a process that stopped mid-scan, and reads as failed.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
import redis

from pipeline import snapshots
from pipeline.config import Settings
from pipeline.errors import TechnicError

if TYPE_CHECKING:
    from distributed import Client

    from pipeline.scan import ScanRequest

log = logging.getLogger(__name__)

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
JOB_TTL = 7 * 86_400  # seconds a job's state and events stay readable
EVENTS_KEPT = 1_000  # newest state changes kept per job (progress writes are throttled)
# Share of a scan's time per stage, for the ETA until this process has timed a scan.
DEFAULT_SHARES = {"read": 0.25, "indicators": 0.6, "alpha": 0.05, "cross_section": 0.10}
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class ScanCancelled(TechnicError):
    """The job was cancelled while its scan ran."""


class JobKeys:
    """Key names of scan jobs under one prefix."""

    def __init__(self, prefix: str):
        self.active = f"{prefix}:job:active"
        self._base = f"{prefix}:job:"

    def state(self, job_id: str) -> str:
        return f"{self._base}{job_id}"

    def events(self, job_id: str) -> str:
        return f"{self._base}{job_id}:events"

    def cancel(self, job_id: str) -> str:
        return f"{self._base}{job_id}:cancel"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def progress(stage: str, done: int, total: int, shares: dict[str, float]) -> float:
    """Fraction of the scan done: the finished stages' shares plus the current stage's part."""
    if stage not in shares:
        return 0.0
    stages = list(shares)  # in the scan's order (pipeline.scan.STAGES)
    before = sum(shares[s] for s in stages[: stages.index(stage)])
    part = min(done / total, 1.0) if total else 0.0
    return (before + shares[stage] * part) / sum(shares.values())


def eta(elapsed: float, fraction: float) -> float | None:
    """Seconds left if the rest goes as fast as what is done; None until 5% is done."""
    if fraction < 0.05:
        return None
    return round(elapsed * (1.0 - fraction) / fraction, 2)


@dataclass
class _Tracker:
    """The scan's progress callback for one job: updates its state, writes it to Redis
    (every stage change, every stage end, else at most every ``min_interval`` seconds) and
    stops the scan once the job is cancelled."""

    jobs: ScanJobs
    state: dict[str, Any]
    scan_started: float | None = None
    last_write: float = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if self.scan_started is None:
            self.scan_started = now
        fraction = progress(stage, done, total, self.jobs.shares)
        changed = stage != self.state["stage"]
        self.state.update(
            status="running",
            stage=stage,
            done=done,
            total=total,
            progress=round(fraction, 4),
            eta=eta(now - self.scan_started, fraction),
            elapsed=_elapsed(self.state),
        )
        if changed or done >= total or now - self.last_write >= self.jobs.min_interval:
            self.last_write = now
            self.jobs.write(self.state)
        if self.jobs.cancelled(self.state["id"]):
            raise ScanCancelled("cancelled")


class ScanJobs:
    """Starts, tracks and cancels scan jobs in one Redis namespace.

    ``client`` returns the Dask client to scan with (its owner starts it on first use), or
    None for Dask's local schedulers.
    """

    def __init__(
        self,
        conn: redis.Redis,
        settings: Settings,
        client: Callable[[], Client | None],
        *,
        lease: float = 30.0,
        min_interval: float = 0.1,
    ):
        self.conn = conn
        self.settings = settings
        self.keys = JobKeys(settings.redis_prefix)
        self.client = client
        self.lease = lease
        self.min_interval = min_interval
        self.shares = dict(DEFAULT_SHARES)
        self._threads: dict[str, threading.Thread] = {}
        self._release = conn.register_script(_RELEASE)
        self._renew = conn.register_script(_RENEW)

    def submit(self, request: ScanRequest, options: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Start a scan job, or return the one already running: (its state, whether it was
        started by this call). ``options`` are echoed in the state."""
        job_id = uuid.uuid4().hex[:16]
        for _ in range(3):
            if self.conn.set(self.keys.active, job_id, nx=True, px=int(self.lease * 1000)):
                break
            holder = self.conn.get(self.keys.active)
            found = self.get(holder.decode()) if holder else None
            if found is not None and found["status"] not in TERMINAL:
                return found, False
            # the running job ended between the two reads: try to take the slot again
        else:
            raise TechnicError("scans keep starting and ending; try again")
        state: dict[str, Any] = {
            "id": job_id,
            "status": "queued",
            "stage": "queued",
            "done": 0,
            "total": 0,
            "progress": 0.0,
            "eta": None,
            "elapsed": 0.0,
            "created_at": _now(),
            "finished_at": None,
            "snapshot_id": None,
            "as_of": None,
            "error": None,
            "request": options,
        }
        self.write(state)
        thread = threading.Thread(
            target=self._run, args=(state, request), name=f"scan-job-{job_id}", daemon=True
        )
        self._threads[job_id] = thread
        thread.start()
        return self.get(job_id) or state, True

    def get(self, job_id: str) -> dict[str, Any] | None:
        """A job's state, or None if there is no such job (or it expired)."""
        data = self.conn.get(self.keys.state(job_id))
        if data is None:
            return None
        state = orjson.loads(data)
        if state["status"] not in TERMINAL:
            holder = self.conn.get(self.keys.active)
            if holder is None or holder.decode() != job_id:
                state.update(
                    status="failed",
                    error="the process running this scan stopped before it finished",
                )
            else:
                state["elapsed"] = _elapsed(state)
        return state

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        """Ask a job to stop at its next progress tick; returns its state as it is now."""
        state = self.get(job_id)
        if state is not None and state["status"] not in TERMINAL:
            self.conn.set(self.keys.cancel(job_id), b"1", ex=JOB_TTL)
        return state

    def cancelled(self, job_id: str) -> bool:
        return bool(self.conn.exists(self.keys.cancel(job_id)))

    def write(self, state: dict[str, Any]) -> None:
        """Store the state and append it to the job's event stream, in one transaction."""
        data = orjson.dumps(state)
        events = self.keys.events(state["id"])
        with self.conn.pipeline(transaction=True) as tx:
            tx.set(self.keys.state(state["id"]), data, ex=JOB_TTL)
            tx.xadd(events, {"state": data}, maxlen=EVENTS_KEPT, approximate=True)
            tx.expire(events, JOB_TTL)
            tx.execute()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the jobs this process runs."""
        for thread in list(self._threads.values()):
            thread.join(timeout)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Cancel the jobs this process runs and wait for them to stop."""
        for job_id in list(self._threads):
            self.conn.set(self.keys.cancel(job_id), b"1", ex=JOB_TTL)
        self.join(timeout)

    def _run(self, state: dict[str, Any], request: ScanRequest) -> None:
        job_id = state["id"]
        stop = threading.Event()
        threading.Thread(target=self._heartbeat, args=(job_id, stop), daemon=True).start()
        try:
            state.update(status="running", stage="starting")
            self.write(state)
            client = self.client()
            if self.cancelled(job_id):
                raise ScanCancelled("cancelled")
            from pipeline.scan import execute  # the scan's kernels: loaded by the first job

            result = execute(
                request, client=client, settings=self.settings, progress=_Tracker(self, state)
            )
            state.update(stage="publish", progress=1.0, eta=0.0, elapsed=_elapsed(state))
            self.write(state)
            published = snapshots.publish(result, settings=self.settings, conn=self.conn)
            if result.timings.get("total"):
                self.shares = {s: max(result.timings.get(s, 0.0), 1e-3) for s in self.shares}
            state.update(
                status="succeeded",
                snapshot_id=published.snapshot_id,
                as_of=result.snapshot["as_of"],
                published=published.published,
                latest=published.latest,
                rows=len(result.table),
                timings=result.timings,
            )
        except ScanCancelled:
            state.update(status="cancelled")
        except TechnicError as exc:
            state.update(status="failed", error=str(exc))
        except Exception:
            log.exception("scan job %s failed", job_id)
            state.update(status="failed", error="internal error (see the service log)")
        finally:
            stop.set()
            state.update(finished_at=_now(), elapsed=_elapsed(state), eta=None)
            try:
                self.write(state)
            finally:
                self._release(keys=[self.keys.active], args=[job_id])
                self._threads.pop(job_id, None)
            log.info("scan job %s %s in %.2fs", job_id, state["status"], state["elapsed"])

    def _heartbeat(self, job_id: str, stop: threading.Event) -> None:
        """Renew the active slot's lease while the scan runs."""
        while not stop.wait(self.lease / 3):
            try:
                self._renew(keys=[self.keys.active], args=[job_id, int(self.lease * 1000)])
            except redis.RedisError as exc:
                log.warning("scan job %s: could not renew its lease (%s)", job_id, exc)


def _elapsed(state: dict[str, Any]) -> float:
    """Seconds since the job was created."""
    return round(time.time() - datetime.fromisoformat(state["created_at"]).timestamp(), 3)
