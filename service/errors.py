"""JSON errors with a stable ``error`` code; no stack trace ever reaches a client."""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from pipeline.errors import TechnicError, UnknownNameError

log = logging.getLogger(__name__)


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


def no_snapshot() -> ApiError:
    return ApiError(
        503,
        "no_snapshot",
        "no scan snapshot has been published yet; run 'technic scan --publish'",
    )


def install(app: FastAPI) -> None:
    """Map every error to JSON."""

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> Response:
        return json_response(
            {"error": exc.code, "detail": exc.detail, **exc.extra}, status_code=exc.status
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        body: dict[str, object] = {
            "error": "invalid_request",
            "detail": f"{field}: {message}",
            "field": field,
        }
        cause = (first.get("ctx") or {}).get("error")
        if isinstance(cause, UnknownNameError):
            body["valid"] = cause.valid
        return json_response(body, status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return json_response({"error": code, "detail": str(exc.detail)}, exc.status_code)

    @app.exception_handler(TechnicError)
    async def _technic(request: Request, exc: TechnicError) -> Response:
        return json_response({"error": "bad_request", "detail": str(exc)}, status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return json_response(
            {"error": "internal_error", "detail": "internal error"}, status_code=500
        )
