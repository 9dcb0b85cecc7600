"""JSON errors with a stable ``error`` code; no stack trace ever reaches a client."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from pipeline.errors import TechnicError, UnknownNameError, clip
from service.schemas import ErrorBody

log = logging.getLogger(__name__)
DETAIL_LIMIT = 1000  # characters of an error's detail: user values in it are clipped too
CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def json_response(body: object, status_code: int = 200) -> Response:
    """``body`` serialised with orjson (NaN becomes null)."""
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status_code,
        media_type="application/json",
    )


class ApiError(Exception):
    """An error the API returns as ``{"error": code, "detail": message}``."""

    def __init__(self, status: int, code: str, detail: str, **extra: object):
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra


def error_response(status: int, code: str, detail: str, **extra: object) -> Response:
    """The service's error body (:class:`ErrorBody`); ``detail`` and ``field`` are clipped,
    so no error repeats a whole request."""
    if isinstance(extra.get("field"), str):
        extra["field"] = clip(extra["field"])
    return json_response({"error": code, "detail": clip(detail, DETAIL_LIMIT), **extra}, status)


def documented(errors: dict[int, str], *, media_type: str | None = None) -> dict[int | str, Any]:
    """``responses=`` for a route: each status with its error codes (``errors``) and the
    :class:`ErrorBody` schema. ``media_type`` names the JSON type for routes whose own
    responses are not JSON (FastAPI would give a ``model`` the route's type)."""
    if media_type is None:
        return {s: {"model": ErrorBody, "description": d} for s, d in errors.items()}
    content = {media_type: {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    return {s: {"description": d, "content": content} for s, d in errors.items()}


def no_snapshot() -> ApiError:
    return ApiError(
        503,
        "no_snapshot",
        "no scan snapshot has been published yet; run 'technic scan --publish'",
    )


def redis_unavailable() -> ApiError:
    return ApiError(
        503, "redis_unavailable", "Redis cannot be reached and no snapshot is held; retry shortly"
    )


def install(app: FastAPI) -> None:
    """Map every error to JSON; a Redis failure is a 503 ``redis_unavailable``, never a 500
    (the client reconnects by itself, so the next request may succeed)."""

    @app.exception_handler(redis.RedisError)
    async def _redis(request: Request, exc: redis.RedisError) -> Response:
        log.warning("Redis failed on %s %s: %s", request.method, request.url.path, exc)
        return error_response(
            503, "redis_unavailable", "Redis cannot be reached right now; retry shortly"
        )

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.detail, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        extra: dict[str, Any] = {}
        if first.get("type") == "json_invalid":  # its loc is ("body", character position)
            field = "body"
            at = first.get("loc", ("body", "?"))[-1]
            reason = (first.get("ctx") or {}).get("error", "")
            detail = f"body is not valid JSON (at character {at}): {reason}".rstrip(": ")
        else:
            field = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
            message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
            detail = f"{clip(field)}: {message}"
            cause = (first.get("ctx") or {}).get("error")
            if isinstance(cause, UnknownNameError):
                extra["valid"] = cause.valid
        return error_response(422, "invalid_request", detail, field=field, **extra)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        code = CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(TechnicError)
    async def _technic(request: Request, exc: TechnicError) -> Response:
        return error_response(400, "bad_request", str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error")


# What each status means, for ``documented`` (docs/api.md has the whole table).
UNREADABLE = "`bad_request`: the body cannot be read as JSON text (e.g. it is not UTF-8)"
INVALID = "`invalid_request`: a parameter or body field is invalid (`field` names it)"
SNAPSHOT_GONE = (
    "`no_snapshot`: nothing has been published yet; `redis_unavailable`: Redis cannot be "
    "reached and no snapshot is held"
)
REDIS_GONE = "`redis_unavailable`: this needs Redis, which cannot be reached"
READ_KEY = "`unauthorized`: TECHNIC_READ_API_KEYS is set and X-API-Key is none of them"
WRITE_KEY = "`unauthorized`: X-API-Key is missing or wrong"
WRITES_OFF = "`writes_disabled`: TECHNIC_API_KEY is not set, so this server takes no writes"
