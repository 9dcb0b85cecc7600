"""The OpenAPI document agrees with the service: every status each route answers (driven here on
real uvicorn servers in each state: a snapshot, none, no Redis, read keys) is documented with
the body it really has, and reads do not claim to need a key."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from pipeline import snapshots
from pipeline.config import Settings
from service.schemas import ErrorBody, HealthBody
from tests.service.server import running

KEY = "openapi-write-key"
BIG = b"x" * (2**20 + 1)
JSON = {"Content-Type": "application/json"}
UNKNOWN_JOB = "/v1/scans/0123456789abcdef"
Case = tuple[str, str, str, dict[str, Any]]  # method, route template, path, request kwargs


@pytest.fixture(scope="module")
def settings(redis_server, demo_store, dask_client, tmp_path_factory) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("openapi"),
        store=demo_store,
        use_redis=True,
        redis_url=redis_server.url,
        redis_prefix=f"openapi-{uuid.uuid4().hex[:8]}:v1",
        api_key=KEY,
        cluster=dask_client.scheduler.address,
    )


@pytest.fixture(scope="module")
def schema(settings) -> dict[str, Any]:
    with running(settings) as base:
        return httpx.get(f"{base}/openapi.json").json()


def _call(base: str, cases: list[Case]) -> list[tuple[str, str, httpx.Response]]:
    with httpx.Client(base_url=base, timeout=120) as client:
        return [(m, route, client.request(m, path, **kw)) for m, route, path, kw in cases]


def _with_snapshot(settings: Settings, demo_scan) -> list[tuple[str, str, httpx.Response]]:
    """Every route on a server holding a snapshot, with good and bad input."""
    assert snapshots.publish(demo_scan, settings=settings).published
    write = {"X-API-Key": KEY}
    with running(settings) as base, httpx.Client(base_url=base, timeout=120) as client:
        job = client.post("/v1/scans", json={}, headers=write)
        assert job.status_code == 202, job.text
        path = f"/v1/scans/{job.json()['id']}"
        cancelled = client.delete(path, headers=write)
        deadline = time.monotonic() + 120
        while client.get(path).json()["status"] not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, "the scan job did not finish"
            time.sleep(0.2)
        etag = client.post("/v1/scan", json={}).headers["etag"]
        hook = {"rule": "top", "url": "https://example.test/hook"}
        sub = client.post("/v1/alerts", json=hook, headers=write).json()["id"]
        with client.stream("GET", "/v1/alerts/stream") as answer:  # 200: its headers will do
            stream = httpx.Response(answer.status_code, headers=answer.headers, content=b"")
        ticker = demo_scan.snapshot["results"][0]["ticker"]
        cases: list[Case] = [
            ("POST", "/v1/scan", "/v1/scan", {"json": {}}),
            ("POST", "/v1/scan", "/v1/scan", {"json": {}, "headers": {"If-None-Match": etag}}),
            ("POST", "/v1/scan", "/v1/scan", {"content": b"\xff", "headers": JSON}),
            ("POST", "/v1/scan", "/v1/scan", {"json": {"max_symbols": 0}}),
            ("POST", "/v1/scan", "/v1/scan", {"json": {"sectors": ["Crypto"]}}),
            ("POST", "/v1/scan", "/v1/scan", {"content": BIG, "headers": JSON}),
            ("GET", "/v1/scan", "/v1/scan", {}),
            ("GET", "/v1/scans/latest", "/v1/scans/latest", {}),
            ("GET", "/v1/scans/latest", "/v1/scans/latest", {"params": {"limit": 0}}),
            ("GET", "/v1/scans/latest", "/v1/scans/latest", {"params": {"sort": "ticker"}}),
            ("GET", "/v1/scans", "/v1/scans", {}),
            ("GET", "/v1/scans", "/v1/scans", {"params": {"days": 0}}),
            ("GET", "/v1/scans/diff", "/v1/scans/diff", {"params": {"from": "latest"}}),
            ("GET", "/v1/scans/diff", "/v1/scans/diff", {"params": {"from": "1999-01-01"}}),
            ("GET", "/v1/scans/diff", "/v1/scans/diff", {}),
            ("GET", "/v1/symbol/{ticker}/history", f"/v1/symbol/{ticker}/history", {}),
            ("GET", "/v1/symbol/{ticker}/history", "/v1/symbol/A/history?days=0", {}),
            ("GET", "/v1/universe_stats", "/v1/universe_stats", {}),
            ("GET", "/v1/scoreboard", "/v1/scoreboard", {}),
            ("GET", "/v1/symbol", "/v1/symbol", {"params": {"symbol": ticker}}),
            ("GET", "/v1/symbol", "/v1/symbol", {}),
            ("GET", "/v1/symbol/{ticker}", f"/v1/symbol/{ticker}", {}),
            ("GET", "/v1/symbol/{ticker}", "/v1/symbol/NOSUCHTICKER", {}),
            ("GET", "/v1/symbol/{ticker}", f"/v1/symbol/{ticker}?days=0", {}),
            ("POST", "/v1/copilot", "/v1/copilot", {"json": {"question": "how is the market?"}}),
            ("POST", "/v1/copilot", "/v1/copilot", {"json": {}}),
            ("POST", "/v1/copilot", "/v1/copilot", {"content": BIG, "headers": JSON}),
            ("GET", "/v1/cluster", "/v1/cluster", {}),
            ("POST", "/v1/scans", "/v1/scans", {"json": {}}),
            ("POST", "/v1/scans", "/v1/scans", {"json": {"tickers": ["A"]}, "headers": write}),
            ("POST", "/v1/scans", "/v1/scans", {"content": BIG, "headers": {**JSON, **write}}),
            ("GET", "/v1/scans/{job_id}", path, {}),
            ("GET", "/v1/scans/{job_id}", UNKNOWN_JOB, {}),
            ("GET", "/v1/scans/{job_id}", "/v1/scans/not-a-job", {}),
            ("GET", "/v1/scans/{job_id}/events", f"{path}/events", {}),
            ("GET", "/v1/scans/{job_id}/events", f"{UNKNOWN_JOB}/events", {}),
            (
                "GET", "/v1/scans/{job_id}/events", f"{path}/events",
                {"headers": {"Last-Event-ID": "nope"}},
            ),
            ("DELETE", "/v1/scans/{job_id}", path, {"headers": write}),
            ("DELETE", "/v1/scans/{job_id}", path, {}),
            ("POST", "/v1/scans", "/v1/scans", {"content": b"\xff", "headers": {**JSON, **write}}),
            ("POST", "/v1/copilot", "/v1/copilot", {"content": b"\xff", "headers": JSON}),
            ("DELETE", "/v1/scans/{job_id}", UNKNOWN_JOB, {"headers": write}),
            ("DELETE", "/v1/scans/{job_id}", "/v1/scans/not-a-job", {"headers": write}),
            ("GET", "/health", "/health", {}),
            ("GET", "/health/ready", "/health/ready", {}),
            ("POST", "/v1/alerts", "/v1/alerts", {"json": hook, "headers": write}),
            ("POST", "/v1/alerts", "/v1/alerts", {"json": hook}),
            ("POST", "/v1/alerts", "/v1/alerts", {"json": {**hook, "rule": "moon"},
                                                  "headers": write}),
            ("POST", "/v1/alerts", "/v1/alerts", {"content": b"\xff",
                                                  "headers": {**JSON, **write}}),
            ("POST", "/v1/alerts", "/v1/alerts", {"content": BIG, "headers": {**JSON, **write}}),
            ("GET", "/v1/alerts", "/v1/alerts", {"headers": write}),
            ("GET", "/v1/alerts", "/v1/alerts", {}),
            ("GET", "/v1/alerts/dead", "/v1/alerts/dead", {"headers": write}),
            ("GET", "/v1/alerts/dead", "/v1/alerts/dead", {}),
            ("DELETE", "/v1/alerts/{sub_id}", f"/v1/alerts/{sub}", {"headers": write}),
            ("DELETE", "/v1/alerts/{sub_id}", f"/v1/alerts/{sub}", {"headers": write}),
            ("DELETE", "/v1/alerts/{sub_id}", f"/v1/alerts/{sub}", {}),
            ("DELETE", "/v1/alerts/{sub_id}", "/v1/alerts/nope", {"headers": write}),
            ("GET", "/v1/alerts/stream", "/v1/alerts/stream",
             {"headers": {"Last-Event-ID": "nope"}}),
        ]  # fmt: skip
        got = [(m, route, client.request(m, p, **kw)) for m, route, p, kw in cases]
        return [
            ("POST", "/v1/scans", job),
            ("DELETE", "/v1/scans/{job_id}", cancelled),
            ("GET", "/v1/alerts/stream", stream),
            *got,
        ]


def _reads_and_jobs(route_paths: list[tuple[str, str, str]]) -> list[Case]:
    return [(m, route, path, {}) for m, route, path in route_paths]


READS = [
    ("GET", "/v1/scan", "/v1/scan"),
    ("GET", "/v1/scans/latest", "/v1/scans/latest"),
    ("GET", "/v1/universe_stats", "/v1/universe_stats"),
    ("GET", "/v1/scoreboard", "/v1/scoreboard"),
    ("GET", "/v1/symbol", "/v1/symbol?symbol=A"),
    ("GET", "/v1/symbol/{ticker}", "/v1/symbol/A"),
    ("GET", "/v1/cluster", "/v1/cluster"),
]
ALERTS = [  # writes but the stream: 403 where writes are off, 503 without Redis
    ("POST", "/v1/alerts", "/v1/alerts"),
    ("GET", "/v1/alerts", "/v1/alerts"),
    ("GET", "/v1/alerts/dead", "/v1/alerts/dead"),
    ("DELETE", "/v1/alerts/{sub_id}", "/v1/alerts/0123456789abcdef"),
]
REDIS_READS = [
    ("GET", "/v1/alerts/stream", "/v1/alerts/stream"),
    ("GET", "/v1/scans", "/v1/scans"),
    ("GET", "/v1/scans/diff", "/v1/scans/diff?from=latest"),
    ("GET", "/v1/symbol/{ticker}/history", "/v1/symbol/A/history"),
    ("GET", "/v1/scans/{job_id}", UNKNOWN_JOB),
    ("GET", "/v1/scans/{job_id}/events", f"{UNKNOWN_JOB}/events"),
]


@pytest.fixture(scope="module")
def answers(settings, demo_scan) -> list[tuple[str, str, httpx.Response]]:
    """(method, route, response) of every case, on servers in each state."""
    got = _with_snapshot(settings, demo_scan)
    empty = settings.model_copy(
        update={"redis_prefix": f"openapi-empty-{uuid.uuid4().hex[:8]}:v1", "api_key": None}
    )
    with running(empty) as base:  # nothing published, writes off
        got += _call(base, [
            *_reads_and_jobs(READS),
            ("POST", "/v1/scan", "/v1/scan", {"json": {}}),
            ("POST", "/v1/copilot", "/v1/copilot", {"json": {"question": "hi"}}),
            ("POST", "/v1/scans", "/v1/scans", {"json": {}}),
            ("DELETE", "/v1/scans/{job_id}", UNKNOWN_JOB, {}),
            ("GET", "/health/ready", "/health/ready", {}),
            *(
                (m, route, path, {"json": {"rule": "top", "url": "https://x.test/"}})
                for m, route, path in ALERTS
            ),
        ])  # fmt: skip
    no_redis = settings.model_copy(update={"use_redis": False, "redis_url": None})
    with running(no_redis) as base:
        got += _call(base, [
            *_reads_and_jobs(REDIS_READS),
            ("POST", "/v1/scans", "/v1/scans", {"json": {}, "headers": {"X-API-Key": KEY}}),
            ("DELETE", "/v1/scans/{job_id}", UNKNOWN_JOB, {"headers": {"X-API-Key": KEY}}),
            ("GET", "/health", "/health", {}),
            *(
                (m, route, path, {"json": {"rule": "top", "url": "https://x.test/"},
                                  "headers": {"X-API-Key": KEY}})
                for m, route, path in ALERTS
            ),
        ])  # fmt: skip
    keyed = settings.model_copy(update={"read_api_keys": ["reader"]})
    with running(keyed) as base:
        got += _call(base, [
            *_reads_and_jobs([*READS, *REDIS_READS]),
            ("POST", "/v1/scan", "/v1/scan", {"json": {}}),
            ("POST", "/v1/copilot", "/v1/copilot", {"json": {"question": "hi"}}),
        ])  # fmt: skip
    return got


def test_every_status_a_route_answers_is_documented_with_its_body(schema, answers) -> None:
    seen: dict[tuple[str, str], set[int]] = {}
    for method, route, response in answers:
        seen.setdefault((method, route), set()).add(response.status_code)
        documented = schema["paths"][route][method.lower()]["responses"]
        where = f"{method} {route} answered {response.status_code}: {response.text[:200]}"
        assert str(response.status_code) in documented, where
        if response.status_code in (204, 304):  # no body
            assert not response.content, where
            continue
        media = response.headers["content-type"].split(";")[0]
        assert media in documented[str(response.status_code)]["content"], where
        if response.status_code >= 400:
            model = HealthBody if route.startswith("/health") else ErrorBody
            model.model_validate_json(response.content)
            ref = documented[str(response.status_code)]["content"][media]["schema"]["$ref"]
            assert ref == f"#/components/schemas/{model.__name__}", where
    # every operation of the document was driven, to each of its error statuses
    for route, operations in schema["paths"].items():
        for method, operation in operations.items():
            expected = {int(s) for s in operation["responses"]}
            assert seen.get((method.upper(), route)) == expected, (method, route)


WRITES = {
    ("post", "/v1/scans"),
    ("delete", "/v1/scans/{job_id}"),
    *((m.lower(), route) for m, route, _ in ALERTS),
}


def test_reads_may_send_the_key_writes_must(schema) -> None:
    for route, operations in schema["paths"].items():
        for method, operation in operations.items():
            security = operation.get("security")
            if route.startswith("/health"):
                assert security is None
            elif (method, route) in WRITES:
                assert security == [{"APIKeyHeader": []}], (method, route)
            else:
                assert {} in security and {"APIKeyHeader": []} in security, (method, route)


def test_error_bodies_are_documented_as_they_are(schema) -> None:
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    body = schema["components"]["schemas"]["ErrorBody"]
    assert body["required"] == ["error", "detail"]
    assert body["properties"]["detail"]["type"] == "string"
