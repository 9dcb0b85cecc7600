"""Unbounded inputs on a real uvicorn server: a request body over the limit is refused while it
streams in (never buffered), and no error repeats a huge value back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import psutil
import pytest

from pipeline import snapshots
from pipeline.config import Settings
from service.limits import MAX_BODY
from tests.service.server import running

KEY = "limits-write-key"
CHUNK = 64 * 2**10


@pytest.fixture(scope="module")
def api(redis_server, demo_store, demo_scan, tmp_path_factory) -> Iterator[httpx.Client]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("limits"),
        store=demo_store,
        use_redis=True,
        redis_url=redis_server.url,
        redis_prefix=f"limits-{uuid.uuid4().hex[:8]}:v1",
        api_key=KEY,
    )
    assert snapshots.publish(demo_scan, settings=settings).published
    with running(settings) as base, httpx.Client(base_url=base, timeout=120) as client:
        yield client


def _stream(total: int) -> Iterator[bytes]:
    """``total`` bytes of a JSON body, in chunks (never held whole)."""
    yield b'{"sectors": ["'
    for _ in range(total // CHUNK):
        yield b"x" * CHUNK
    yield b'"]}'


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
def test_a_200_mb_body_is_refused_while_it_streams(api, declared) -> None:
    server = psutil.Process()  # the server runs in this process (a thread)
    size = 200 * 2**20
    headers = {"Content-Type": "application/json"}
    if declared:
        headers["Content-Length"] = str(size + 17)
    before = server.memory_info().rss
    response = api.post("/v1/scan", content=_stream(size), headers=headers)
    grown = server.memory_info().rss - before
    assert response.status_code == 413, response.text[:300]
    assert response.json() == {
        "error": "payload_too_large",
        "detail": f"request body over the limit of {MAX_BODY:,} bytes",
    }
    assert grown < 32 * 2**20, f"RSS grew by {grown / 2**20:.0f} MB"
    # the server goes on serving
    assert api.post("/v1/scan", json={"max_symbols": 1}).status_code == 200


def test_bodies_under_the_limit_still_reach_the_routes(api) -> None:
    sector = "x" * (MAX_BODY - 100)
    response = api.post("/v1/scan", json={"sectors": [sector]})
    assert response.status_code == 422
    assert response.json()["field"] == "sectors"


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/v1/scan", {"json": {"sectors": ["x" * 10**6]}}),
        ("POST", "/v1/scan", {"json": {"trade_style": "x" * 10**6}}),
        ("POST", "/v1/scans", {"json": {"y" * 10**6: 1}, "headers": {"X-API-Key": KEY}}),
        ("POST", "/v1/copilot", {"json": {"question": "q", "symbol": "s" * 10**6}}),
        ("GET", "/v1/scans/latest", {"params": {"sector": "x" * 60_000}}),
        ("GET", "/v1/scans/latest", {"params": {"sort": "z" * 60_000}}),
        ("GET", "/v1/scans/latest", {"params": [("sector", f"s{i}" * 1000) for i in range(20)]}),
        ("GET", "/v1/scans/diff", {"params": {"from": "f" * 60_000}}),
        ("GET", "/v1/symbol/" + "T" * 60_000, {}),
        ("GET", "/v1/scans/" + "a" * 60_000, {}),
    ],
    ids=[
        "sector", "trade_style", "unknown field", "copilot symbol", "query sector", "sort",
        "20 sectors", "diff from", "ticker path", "job id",
    ],
)  # fmt: skip
def test_errors_never_repeat_a_huge_value(api, method, path, kwargs) -> None:
    response = api.request(method, path, **kwargs)
    assert 400 <= response.status_code < 500, response.text[:300]
    assert len(response.content) < 2048, response.text[:300]
    assert set(response.json()) <= {"error", "detail", "field", "valid"}


def test_truncated_json_names_the_body(api) -> None:
    response = api.post(
        "/v1/scan", content=b'{"trade_style": "Sw', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request" and body["field"] == "body"
    assert body["detail"].startswith("body is not valid JSON (at character 16)")
