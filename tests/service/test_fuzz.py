"""OpenAPI-driven fuzzing (schemathesis) of every endpoint of a real uvicorn server holding
real snapshots: whatever the input, no response is a 5xx, and every response is one the
OpenAPI document describes (its status, content type and body schema)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import orjson

from pipeline import snapshots
from pipeline.config import Settings
from pipeline.scan import run_scan
from tests.service.server import running

KEY = "fuzz-write-key"
CHECKS = ",".join((
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
))  # fmt: skip


def test_no_input_makes_a_server_error(redis_server, demo_store, dask_client, tmp_path) -> None:
    config = Settings(
        data_dir=tmp_path,
        store=demo_store,
        use_redis=True,
        redis_url=redis_server.url,
        redis_prefix=f"fuzz-{uuid.uuid4().hex[:8]}:v1",
        cache_ttl=0,
        api_key=KEY,
        cluster=dask_client.scheduler.address,
    )
    for as_of in ("2026-11-13", None):  # two snapshots, so diffs and history have content
        result = run_scan(demo_store, as_of=as_of, settings=config)
        assert snapshots.publish(result, settings=config).published
    events = tmp_path / "events.ndjson"
    cli = Path(sys.executable).with_name("schemathesis")
    with running(config) as base:
        run = subprocess.run(
            [
                str(cli), "run", f"{base}/openapi.json",
                "--checks", CHECKS,
                "--max-examples", "25",
                "--seed", "20261124",
                "--header", f"X-API-Key: {KEY}",
                "--request-timeout", "30",
                "--phases", "examples,coverage,fuzzing",
                "--report", "ndjson", "--report-ndjson-path", str(events),
            ],
            capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    statuses = [
        interaction["response"]["status_code"]
        for line in events.read_text().splitlines()
        for interaction in _interactions(orjson.loads(line))
    ]
    assert len(statuses) > 200, "the fuzzer barely ran"
    assert not [s for s in statuses if s >= 500]
    assert {200, 422} <= set(statuses)


def _interactions(event: object):
    """Every recorded request/response pair in one NDJSON event, wherever it nests."""
    if isinstance(event, dict):
        response = event.get("response")
        if isinstance(response, dict) and "status_code" in response:
            yield event
        for value in event.values():
            yield from _interactions(value)
    elif isinstance(event, list):
        for value in event:
            yield from _interactions(value)
