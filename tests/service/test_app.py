"""The app's endpoints on a real uvicorn server over loopback, against a real Redis snapshot
(contract: ../shared/app-contract.md)."""

from __future__ import annotations

import socket
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from pipeline import snapshots
from pipeline.config import Settings
from pipeline.scan import run_scan
from tests.service.server import serve

RESULT_TYPES = {
    "ticker": str, "signal": str, "rrr": (int, float, str), "entry": (int, float),
    "stop": (int, float), "target": (int, float), "note": str, "sparkline": list,
    "ICS": (int, float), "Tier": str, "PlayStyle": str, "IsUltraRisky": bool, "Profile": str,
    "ProfileLabel": str, "Sector": str, "Industry": str, "TechRating": (int, float),
    "ATR14_pct": (int, float), "option_strategies": list, "merit_score": (int, float),
    "merit_band": str, "merit_flags": str, "merit_summary": str,
}  # fmt: skip
NULLABLE = ("win_prob_10d", "QualityScore", "AlphaScore", "EventSummary", "EventFlags",
            "FundamentalSnapshot")  # fmt: skip


@pytest.fixture(scope="module")
def published(redis_server, demo_store: Path, tmp_path_factory):
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("svc"),
        store=demo_store,
        use_redis=True,
        redis_url=redis_server.url,
        redis_prefix=f"svc-{uuid.uuid4().hex[:8]}:v1",
        cache_ttl=0,
    )
    result = run_scan(demo_store, settings=settings)
    assert snapshots.publish(result, settings=settings).published
    return settings, result


@pytest.fixture(scope="module")
def api(published):
    server, thread, base = serve(published[0])
    with httpx.Client(base_url=base, timeout=30) as client:
        yield client
    server.should_exit = True
    thread.join(10)


def test_default_scan_answers_the_published_rows_and_says_what_it_applied(api, published) -> None:
    response = api.post("/v1/scan", json={})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body, document = response.json(), published[1].snapshot
    assert body["results"] == document["results"] and body["ideas"] == document["ideas"]
    assert body["filters"]["trade_style"] == document["trade_style"]
    assert body["filters"]["min_TechRating"] == 0 and body["filters"]["sectors"] is None
    assert body["filters"]["scan"] == document["filters"]
    assert body["log"].startswith(document["log"])
    assert f"Showing {len(document['results']):,} of" in body["log"]


def test_whole_documents_go_out_gzipped_when_the_client_takes_it(api, published) -> None:
    plain = api.post("/v1/scan", json={}, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    zipped = api.post("/v1/scan", json={}, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["vary"] == "Accept-Encoding"
    assert int(zipped.headers["content-length"]) < len(plain.content) / 3
    assert zipped.content == plain.content  # httpx decompresses
    etag = plain.headers["etag"]
    assert etag.startswith(f'"{published[1].snapshot["snapshot_id"]}-')
    again = api.post("/v1/scan", json={}, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    styled = api.post(
        "/v1/scan", json={"trade_style": "Day trading"}, headers={"If-None-Match": etag}
    )
    assert styled.status_code == 200 and styled.headers["etag"] != etag


def test_trade_style_ranks_and_plans_for_that_horizon(api, published, demo_store) -> None:
    """Another style's answer equals what a scan run in that style publishes."""
    settings, result = published
    own = result.snapshot["trade_style"]
    mine = api.post("/v1/scan", json={"trade_style": own}).json()
    assert mine["results"] == result.snapshot["results"]
    fresh = run_scan(demo_store, settings=settings, trade_style="Day trading").snapshot
    for name in ("Day trading", "day TRADING ", "Day", "intraday"):
        body = api.post("/v1/scan", json={"trade_style": name}).json()
        assert body["trade_style"] == body["filters"]["trade_style"] == "Day trading"
        assert body["filters"]["trade_style_asked"] == name
        assert body["results"] == fresh["results"]
        assert body["ideas"] == fresh["ideas"]
        assert {row["rrr"] for row in body["results"]} == {1.5}
    assert [r["ticker"] for r in fresh["results"]] != [
        r["ticker"] for r in result.snapshot["results"]
    ]
    top = api.post("/v1/scan", json={"trade_style": "Day trading", "max_symbols": 5}).json()
    assert top["results"] == fresh["results"][:5]
    bad = api.post("/v1/scan", json={"trade_style": "Scalping"})
    assert bad.status_code == 422
    assert bad.json()["field"] == "trade_style"
    assert {"Day trading", "Day", "Swing", "Position"} <= set(bad.json()["valid"])


def test_scan_rows_have_every_contract_field(api) -> None:
    bundle = api.post("/v1/scan", json={"max_symbols": 50}).json()
    for key in ("results", "movers", "ideas", "log", "universe_size", "symbols_scanned"):
        assert key in bundle
    assert 0 < len(bundle["results"]) <= 50
    for row in bundle["results"]:
        for field, kinds in RESULT_TYPES.items():
            assert isinstance(row[field], kinds), (field, row[field])
        for field in NULLABLE:
            assert field in row
    for mover in bundle["movers"]:
        assert set(mover) >= {"ticker", "delta", "note", "isPositive", "sparkline"}
    for idea in bundle["ideas"]:
        assert set(idea) >= {"title", "ticker", "meta", "plan", "sparkline"}


def test_scan_filters(api, published) -> None:
    rows = published[1].snapshot["results"]
    sector = rows[0]["Sector"]
    body = {"sectors": [sector.upper()], "min_tech_rating": 5, "max_symbols": 10}
    got = api.post("/v1/scan", json=body).json()["results"]
    expected = [r for r in rows if r["Sector"] == sector and r["TechRating"] >= 50][:10]
    assert [r["ticker"] for r in got] == [r["ticker"] for r in expected]


def test_unknown_sector_is_a_422_listing_valid_names(api, published) -> None:
    response = api.post("/v1/scan", json={"sectors": ["Crypto Art"]})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "unknown_sector" and body["field"] == "sectors"
    assert set(body["valid"]) == {r["Sector"] for r in published[1].snapshot["results"]}


@pytest.mark.parametrize(
    ("method", "path", "payload", "field"),
    [
        ("post", "/v1/scan", {"max_symbols": 0}, "max_symbols"),
        ("post", "/v1/scan", {"min_tech_rating": 10.5}, "min_tech_rating"),
        ("get", "/v1/symbol/AAPL?days=0", None, "query.days"),
        ("get", "/v1/symbol?symbol=%3Cscript%3E", None, "query.symbol"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(api, method, path, payload, field) -> None:
    response = api.request(method.upper(), path, json=payload)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request" and body["field"] == field
    assert "Traceback" not in response.text


def test_universe_stats(api, published) -> None:
    stats = api.get("/v1/universe_stats").json()
    counts = [s["count"] for s in stats["sectors"]]
    assert counts == sorted(counts, reverse=True)
    rows = published[1].snapshot["results"]
    assert sum(counts) == len(rows)
    assert stats["total"] == published[1].snapshot["universe_size"]
    assert {s["name"] for s in stats["sectors"]} == {r["Sector"] for r in rows}


def test_symbol_row_and_absent_symbol(api, published) -> None:
    row = published[1].snapshot["results"][3]
    assert api.get("/v1/symbol", params={"symbol": row["ticker"].lower()}).json()["results"] == [
        row
    ]
    assert api.get("/v1/symbol", params={"symbol": "ZZZZZ"}).json()["results"] == []


def test_symbol_detail_with_history(api, published) -> None:
    row = published[1].snapshot["results"][0]
    detail = api.get(f"/v1/symbol/{row['ticker']}", params={"days": 30}).json()
    assert detail["symbol"] == row["ticker"] and detail["tech_rating"] == row["TechRating"]
    assert detail["merit_band"] == row["merit_band"] and detail["ics_tier"] == row["Tier"]
    history = detail["history"]
    assert len(history) == 30
    assert [h["date"] for h in history] == sorted(h["date"] for h in history)
    assert history[-1]["date"] == published[1].snapshot["as_of"]
    assert history[-1]["Close"] == pytest.approx(row["close"])
    assert set(detail["fundamentals"]) == {"pe", "eps", "roe", "debt_to_equity", "market_cap"}
    missing = api.get("/v1/symbol/ZZZZZ")
    assert missing.status_code == 404 and missing.json()["error"] == "unknown_ticker"


def test_health_reports_the_snapshot(api, published) -> None:
    for path in ("/health", "/health/ready"):
        response = api.get(path)
        body = response.json()
        assert response.status_code == 200
        assert body["status"] == "ok" and body["redis"] is True and body["store"] is True
        assert body["snapshot"]["id"] == published[1].snapshot["snapshot_id"]
    generated = datetime.fromisoformat(published[1].snapshot["generated_at"])
    age = body["snapshot"]["age_seconds"]
    assert abs(age - (datetime.now(UTC) - generated).total_seconds()) < 5


def test_before_any_snapshot_reads_are_a_503_saying_a_scan_is_needed(
    redis_server, tmp_path
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        use_redis=True,
        redis_url=redis_server.url,
        redis_prefix=f"empty-{uuid.uuid4().hex[:8]}:v1",
    )
    server, thread, base = serve(settings)
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            for response in (
                client.post("/v1/scan", json={}),
                client.get("/v1/universe_stats"),
                client.get("/v1/symbol", params={"symbol": "AAPL"}),
                client.get("/health/ready"),
            ):
                assert response.status_code == 503
            live = client.get("/health")  # the process itself is fine: deploys go live
            assert live.status_code == 200 and live.json()["status"] == "no_snapshot"
            body = client.post("/v1/scan", json={}).json()
            assert body["error"] == "no_snapshot" and "technic scan --publish" in body["detail"]
    finally:
        server.should_exit = True
        thread.join(10)


def test_technic_serve_runs_the_api(tmp_path) -> None:
    """``technic serve`` starts uvicorn with the app (no Redis, no snapshot: /health is a
    503)."""
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    exe = Path(sys.executable).with_name("technic")
    env = {"TECHNIC_DATA_DIR": str(tmp_path), "TECHNIC_USE_REDIS": "0", "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, "serve did not start"
                time.sleep(0.1)
        assert response.status_code == 503 and response.json()["status"] == "unavailable"
    finally:
        proc.terminate()
        proc.wait(10)


def test_latest_scan_filters_sorts_and_pages(api, published) -> None:
    rows = published[1].snapshot["results"]
    params = {"tier": ["CORE", "SATELLITE"], "min_price": 5, "sort": "-TechRating"}
    first = api.get("/v1/scans/latest", params={**params, "limit": 7}).json()
    second = api.get("/v1/scans/latest", params={**params, "limit": 7, "offset": 7}).json()
    expected = sorted(
        (r for r in rows if r["Tier"] in {"CORE", "SATELLITE"} and r["close"] >= 5),
        key=lambda r: r["TechRating"],
        reverse=True,
    )
    assert first["total"] == len(expected)
    got = [r["ticker"] for r in first["results"] + second["results"]]
    assert [r["TechRating"] for r in first["results"] + second["results"]] == [
        r["TechRating"] for r in expected[:14]
    ]
    assert len(set(got)) == 14
    cheap = api.get("/v1/scans/latest", params={"max_dollar_volume": 2e6, "limit": 1000}).json()
    assert all(r["dollar_volume_20d"] <= 2e6 for r in cheap["results"])


def test_latest_scan_takes_any_name_of_a_label(api, published) -> None:
    rows = published[1].snapshot["results"]
    params = {"tier": ["core", "Satellite"], "signal": ["strong buy", "Long"], "limit": 1000}
    got = api.get("/v1/scans/latest", params=params).json()
    expected = [
        r["ticker"]
        for r in rows
        if r["Tier"] in ("CORE", "SATELLITE") and r["signal"] in ("Strong Long", "Long")
    ]
    assert [r["ticker"] for r in got["results"]] == expected and expected
    tech = api.get("/v1/scans/latest", params={"sector": "Technology", "limit": 1000}).json()
    assert {r["Sector"] for r in tech["results"]} == {"Information Technology"}
    rated = api.get("/v1/scans/latest", params={"min_tech_rating": 7, "limit": 1000}).json()
    assert rated["total"] == sum(r["TechRating"] >= 70 for r in rows)


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "Sector"},
        {"limit": 1001},
        {"tier": "GOLD"},
        {"min_tech_rating": -1},
        {"min_tech_rating": 11},
    ],
)
def test_latest_scan_rejects_bad_queries(api, params) -> None:
    response = api.get("/v1/scans/latest", params=params)
    assert response.status_code == 422 and response.json()["error"] == "invalid_request"


def test_history_diff_and_symbol_history(api, published, demo_store: Path) -> None:
    settings, result = published
    older = run_scan(demo_store, as_of="2026-11-13", settings=settings)
    assert snapshots.publish(older, settings=settings).published
    listed = api.get("/v1/scans", params={"days": 7}).json()["snapshots"]
    assert {m["snapshot_id"] for m in listed} >= {
        result.snapshot["snapshot_id"],
        older.snapshot["snapshot_id"],
    }
    change = api.get("/v1/scans/diff", params={"from": "2026-11-13", "to": "latest"}).json()
    assert change["from"] == older.snapshot["snapshot_id"]
    assert change["to"] == result.snapshot["snapshot_id"]
    ticker = result.snapshot["results"][0]["ticker"]
    history = api.get(f"/v1/symbol/{ticker}/history").json()["history"]
    assert history[0]["snapshot_id"] in {m["snapshot_id"] for m in listed}
    assert api.get("/v1/scans/diff", params={"from": "1999-01-01"}).status_code == 404


def test_metrics_count_requests_and_describe_the_snapshot(api, published) -> None:
    for _ in range(3):
        assert api.post("/v1/scan", json={}).status_code == 200
    api.get("/v1/symbol/ZZZZZ")
    text = api.get("/metrics").text
    assert 'technic_http_requests_total{method="POST",route="/v1/scan",status="200"}' in text
    assert 'route="/v1/symbol/{ticker}",status="404"' in text
    assert 'technic_http_request_seconds_bucket{le="0.005",route="/v1/scan"}' in text
    assert 'technic_scan_seconds{stage="total"}' in text
    assert "technic_snapshot_age_seconds" in text
