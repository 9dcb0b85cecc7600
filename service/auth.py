"""API keys: writes need TECHNIC_API_KEY (refused while it is unset); reads are open unless
TECHNIC_READ_API_KEYS names keys. Keys travel in the ``X-API-Key`` header and are compared in
constant time."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from pydantic import SecretStr

from service.errors import ApiError

API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="Technic API key.")


def _matches(given: str, keys: list[SecretStr]) -> bool:
    """Whether ``given`` equals one of ``keys``; every key is compared, in constant time."""
    found = False
    for key in keys:
        found |= secrets.compare_digest(given.encode(), key.get_secret_value().encode())
    return found


async def require_write_key(
    request: Request, key: Annotated[str | None, Security(API_KEY)]
) -> None:
    """Writes: the request's key must equal TECHNIC_API_KEY; with none set, writes are off."""
    expected = request.app.state.settings.api_key
    if expected is None or not expected.get_secret_value():
        raise ApiError(
            403, "writes_disabled", "this server takes no writes: TECHNIC_API_KEY is not set"
        )
    if key is None or not _matches(key, [expected]):
        raise ApiError(401, "unauthorized", "missing or wrong X-API-Key")


async def require_read_key(request: Request, key: Annotated[str | None, Security(API_KEY)]) -> None:
    """Reads: open unless TECHNIC_READ_API_KEYS is set; then one of those keys (or the write
    key) is needed."""
    settings = request.app.state.settings
    if not settings.read_api_keys:
        return
    accepted = [*settings.read_api_keys, *([settings.api_key] if settings.api_key else [])]
    if key is None or not _matches(key, accepted):
        raise ApiError(401, "unauthorized", "missing or wrong X-API-Key")


WriteKey = Depends(require_write_key)
ReadKey = Depends(require_read_key)
OPTIONAL_KEY = {"security": [{}]}
"""``openapi_extra`` of a read route: FastAPI appends this empty requirement to the key's, so
the OpenAPI document says a read may send the key or not (reads are open unless
TECHNIC_READ_API_KEYS is set), while writes require it."""
