"""Scan jobs: start a scan on the cluster, follow it (JSON or Server-Sent Events), cancel it.

Writes need the API key (service/auth.py). A scan already running is returned instead of a
second one being started. The scan itself runs in the background (pipeline/jobs.py), never
inside a request.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from pipeline.config import TradeStyle
from pipeline.errors import StoreError, TechnicError
from pipeline.jobs import TERMINAL, ScanJobs
from pipeline.vocabulary import TRADE_STYLES
from service.auth import OPTIONAL_KEY, ReadKey, WriteKey
from service.deps import store_url
from service.errors import (
    INVALID,
    READ_KEY,
    REDIS_GONE,
    UNREADABLE,
    WRITE_KEY,
    WRITES_OFF,
    ApiError,
    documented,
    json_response,
)
from service.limits import TOO_LARGE

router = APIRouter(tags=["scan jobs"])
JOB_ID = Path(pattern=r"^[0-9a-f]{16}$", description="Job id, as POST /v1/scans returned it.")
EVENT_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
BLOCK_MS = 5_000  # how long one read of the event stream waits for news
UNKNOWN_JOB = "`unknown_job`: no such scan job (job states live 7 days)"
WRITE = {401: WRITE_KEY, 403: WRITES_OFF}


class ScanJobRequest(BaseModel):
    """POST /v1/scans body; every field optional."""

    model_config = ConfigDict(extra="forbid")

    as_of: dt.date | None = Field(
        None, description="Scan as of this date (bars up to it only); default the newest."
    )
    trade_style: TradeStyle | None = Field(
        None,
        description="Trade style of the published ranking (case-insensitive): "
        f"{TRADE_STYLES.describe()}; default TECHNIC_TRADE_STYLE.",
    )


def _jobs(request: Request) -> ScanJobs:
    jobs = request.app.state.jobs
    if jobs is None:
        raise ApiError(503, "redis_unavailable", "scan jobs need Redis, which is not connected")
    return jobs


def _found(jobs: ScanJobs, job_id: str) -> dict[str, Any]:
    state = jobs.get(job_id)
    if state is None:
        raise ApiError(404, "unknown_job", f"no scan job {job_id}")
    return state


@router.post(
    "/v1/scans",
    status_code=202,
    dependencies=[WriteKey],
    responses=documented({
        **WRITE,
        400: UNREADABLE,
        413: TOO_LARGE,
        422: f"{INVALID}, or the engine refused the date or style",
        503: f"`store_unavailable`: this server has no bar store to scan; {REDIS_GONE}",
    }),
)  # fmt: skip
def start_scan(request: Request, body: ScanJobRequest | None = None) -> Response:
    """Start a scan of the bar store and publish its snapshot when it finishes (202 with the
    job). If one is already running, that job is returned (``"started": false``)."""
    jobs = _jobs(request)
    body = body or ScanJobRequest()
    settings = request.app.state.settings
    store = store_url(settings, request.app.state.snapshots.current)
    from pipeline.scan import prepare  # the scan's kernels: loaded by the first job

    try:
        scan = prepare(store, as_of=body.as_of, trade_style=body.trade_style, settings=settings)
    except StoreError as exc:
        raise ApiError(503, "store_unavailable", str(exc)) from None
    except TechnicError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    state, started = jobs.submit(scan, body.model_dump(mode="json"))
    response = json_response({**state, "started": started}, status_code=202)
    response.headers["Location"] = f"/v1/scans/{state['id']}"
    return response


@router.get(
    "/v1/scans/{job_id}",
    dependencies=[ReadKey],
    openapi_extra=OPTIONAL_KEY,
    responses=documented({401: READ_KEY, 404: UNKNOWN_JOB, 422: INVALID, 503: REDIS_GONE}),
)
def scan_job(request: Request, job_id: Annotated[str, JOB_ID]) -> dict[str, Any]:
    """Status, stage, partitions done / total, progress (0–1), elapsed and ETA (seconds)."""
    return _found(_jobs(request), job_id)


@router.delete(
    "/v1/scans/{job_id}",
    status_code=202,
    dependencies=[WriteKey],
    responses=documented({
        **WRITE,
        404: UNKNOWN_JOB,
        409: "`job_finished`: the job has already ended",
        422: INVALID,
        503: REDIS_GONE,
    }),
)  # fmt: skip
def cancel_scan(request: Request, job_id: Annotated[str, JOB_ID]) -> Response:
    """Cancel a running job (202: it stops at its next progress step and reads
    ``cancelled``); a job that has already finished is a 409."""
    jobs = _jobs(request)
    state = _found(jobs, job_id)
    if state["status"] in TERMINAL:
        raise ApiError(409, "job_finished", f"scan job {job_id} already {state['status']}")
    jobs.cancel(job_id)
    return json_response({**state, "cancel_requested": True}, status_code=202)


@router.get(
    "/v1/scans/{job_id}/events",
    dependencies=[ReadKey],
    response_class=EventSourceResponse,
    openapi_extra=OPTIONAL_KEY,
    responses={
        200: {"content": {"text/event-stream": {}}},
        **documented(
            {401: READ_KEY, 404: UNKNOWN_JOB, 422: INVALID, 503: REDIS_GONE},
            media_type="application/json",
        ),
    },
)
async def scan_events(request: Request, job_id: Annotated[str, JOB_ID]) -> EventSourceResponse:
    """The job's state as Server-Sent Events: every change from the start (or after the
    ``Last-Event-ID`` header), event ``progress``, then one ``end`` event with the final
    state, after which the stream closes."""
    jobs = _jobs(request)
    _found(jobs, job_id)
    last = request.headers.get("last-event-id", "0-0")
    if not EVENT_ID.match(last):
        raise ApiError(
            422, "invalid_request", "Last-Event-ID: not an event id", field="last-event-id"
        )
    return EventSourceResponse(_stream(request, jobs, job_id, last))


async def _stream(
    request: Request, jobs: ScanJobs, job_id: str, last: str
) -> AsyncIterator[ServerSentEvent]:
    events = request.app.state.events
    key = jobs.keys.events(job_id)
    while True:
        found = await events.xread({key: last}, count=100, block=BLOCK_MS)
        entries = found[0][1] if found else []
        for entry_id, fields in entries:
            last = entry_id.decode()
            data = fields[b"state"]
            state = orjson.loads(data)
            final = state["status"] in TERMINAL
            yield ServerSentEvent(data.decode(), event="end" if final else "progress", id=last)
            if final:
                return
        if not entries:  # nothing new for a while: has the job's process gone?
            state = jobs.get(job_id)
            if state is None or state["status"] in TERMINAL:
                yield ServerSentEvent(orjson.dumps(state).decode(), event="end", id=last)
                return
