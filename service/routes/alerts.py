"""/v1/alerts: webhook subscriptions (write key), the alert stream (Server-Sent Events) and
the dead letters. See :mod:`pipeline.alerts` for the rules and the delivery guarantees."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from pipeline.alerts import store
from pipeline.alerts.rules import DEFAULT_TOP, MAX_TOP, RULES
from pipeline.errors import ConfigError
from pipeline.vocabulary import SIGNALS
from service.auth import OPTIONAL_KEY, ReadKey, WriteKey
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

router = APIRouter(tags=["alerts"])
WRITE = {401: WRITE_KEY, 403: WRITES_OFF}
SUB_ID = Path(pattern=r"^[0-9a-f]{16}$", description="Subscription id, as POST returned it.")
EVENT_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
BLOCK_MS = 5_000


class Subscription(BaseModel):
    """POST /v1/alerts body."""

    model_config = ConfigDict(extra="forbid")

    rule: Literal[RULES] = Field(  # type: ignore[valid-type]
        description="`top`: entered or left the top N rows; `signal`: a signal changed; "
        "`new_52w_high`; `unusual_volume` (≥ 2× the 20-day average)."
    )
    url: str = Field(description="The webhook: an http:// or https:// address.")
    top: int | None = Field(None, ge=1, le=MAX_TOP, description=f"For `top`: N ({DEFAULT_TOP}).")
    to: str | None = Field(
        None, description=f"For `signal`: only changes to this signal ({SIGNALS.describe()})."
    )
    tickers: list[str] | None = Field(None, max_length=1000, description="Only these tickers.")


def _conn(request: Request):
    conn = request.app.state.redis
    if conn is None:
        raise ApiError(503, "redis_unavailable", "alerts need Redis, which is not connected")
    return conn, store.Keys(request.app.state.settings.redis_prefix)


@router.post(
    "/v1/alerts",
    status_code=201,
    dependencies=[WriteKey],
    responses=documented({**WRITE, 400: UNREADABLE, 413: TOO_LARGE, 422: INVALID, 503: REDIS_GONE}),
)
def subscribe(request: Request, body: Subscription) -> Response:
    """Subscribe a webhook to a rule. The answer holds the subscription's signing ``secret``,
    shown this once: each delivery's ``X-Technic-Signature`` is ``t=<unix time>,v1=<hex
    HMAC-SHA256 of "<t>.<body>">`` with it."""
    conn, keys = _conn(request)
    try:
        sub = store.subscribe(conn, keys, body.model_dump(exclude_none=True))
    except ConfigError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    response = json_response(sub, status_code=201)
    response.headers["Location"] = f"/v1/alerts/{sub['id']}"
    return response


@router.get(
    "/v1/alerts",
    dependencies=[WriteKey],
    responses=documented({**WRITE, 503: REDIS_GONE}),
)
def list_subscriptions(request: Request) -> list[dict[str, Any]]:
    """Every subscription (without secrets), oldest first."""
    conn, keys = _conn(request)
    return [store.public(sub) for sub in store.subscriptions(conn, keys)]


@router.delete(
    "/v1/alerts/{sub_id}",
    status_code=204,
    dependencies=[WriteKey],
    responses=documented({**WRITE, 404: "`unknown_subscription`", 422: INVALID, 503: REDIS_GONE}),
)
def unsubscribe(request: Request, sub_id: Annotated[str, SUB_ID]) -> Response:
    """Remove a subscription; deliveries already under way finish."""
    conn, keys = _conn(request)
    if not store.unsubscribe(conn, keys, sub_id):
        raise ApiError(404, "unknown_subscription", f"no subscription {sub_id}")
    return Response(status_code=204)


@router.get(
    "/v1/alerts/dead",
    dependencies=[WriteKey],
    responses=documented({**WRITE, 503: REDIS_GONE}),
)
def dead_letters(request: Request) -> list[dict[str, Any]]:
    """Deliveries that failed every try, newest first (the last 100)."""
    conn, keys = _conn(request)
    return store.dead_letters(conn, keys)


@router.get(
    "/v1/alerts/stream",
    dependencies=[ReadKey],
    response_class=EventSourceResponse,
    openapi_extra=OPTIONAL_KEY,
    responses={
        200: {"content": {"text/event-stream": {}}},
        **documented({401: READ_KEY, 422: INVALID, 503: REDIS_GONE}, media_type="application/json"),
    },
)
async def stream(request: Request) -> EventSourceResponse:
    """Every published snapshot's changes as Server-Sent Events (event ``alerts``, data: the
    snapshot's ids and its ``events``), from now on or after the ``Last-Event-ID`` header."""
    _conn(request)
    last = request.headers.get("last-event-id", "$")
    if last != "$" and not EVENT_ID.match(last):
        raise ApiError(
            422, "invalid_request", "Last-Event-ID: not an event id", field="last-event-id"
        )
    await request.app.state.events.ping()  # Redis away: a 503 now, not a broken stream later
    return EventSourceResponse(_events(request, last), ping=15)


async def _events(request: Request, last: str) -> AsyncIterator[ServerSentEvent]:
    events = request.app.state.events
    key = store.Keys(request.app.state.settings.redis_prefix).events
    if last == "$":  # "from now on": the stream's newest id, so nothing is skipped later
        newest = await events.xrevrange(key, count=1)
        last = newest[0][0].decode() if newest else "0-0"
    while not await request.is_disconnected():
        found = await events.xread({key: last}, count=100, block=BLOCK_MS)
        for entry_id, fields in found[0][1] if found else []:
            last = entry_id.decode()
            yield ServerSentEvent(fields[b"data"].decode(), event="alerts", id=last)
