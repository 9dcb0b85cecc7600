"""The real app's requests (../shared/app-contract.md), replayed against a real uvicorn server
over loopback and parsed by the app's own rules: every body it sends answers 200 and does what
its label says."""

from __future__ import annotations

import random
import shutil
import uuid
from pathlib import Path

import httpx
import pytest

from pipeline import snapshots
from pipeline.config import Settings
from pipeline.scan import run_scan
from pipeline.vocabulary import SECTORS, TRADE_STYLES
from service.schemas import IdeasAnswer, ScannerBundle, SymbolDetail
from tests.service import app_rules
from tests.service.server import running, serve


@pytest.fixture(scope="module")
def published(redis_server, demo_store: Path, tmp_path_factory):
    """A snapshot of the demo store published the documented way: the service is told
    nothing about the store (no TECHNIC_STORE) and finds it through the snapshot."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("contract"),
        use_redis=True,
        redis_url=redis_server.url,
        redis_prefix=f"contract-{uuid.uuid4().hex[:8]}:v1",
        cache_ttl=0,
        cluster="sync",
    )
    assert settings.store is None
    result = run_scan(demo_store, settings=settings)
    assert snapshots.publish(result, settings=settings).published
    return settings, result


@pytest.fixture(scope="module")
def app(published):
    server, thread, base = serve(published[0])
    with httpx.Client(base_url=base, timeout=30, headers={"Accept": "application/json"}) as c:
        yield c
    server.should_exit = True
    thread.join(10)


def panel_bodies() -> list[dict]:
    """The filter panel: each style, each GICS chip alone and several at once, every Rating
    step (0–10 by 0.5), lookback 30–365, options modes."""
    bodies = []
    for i, chip in enumerate(app_rules.CHIP_SECTORS):
        style = app_rules.CHIP_STYLES[i % 3]
        bodies.append({"trade_style": style, "sectors": [chip], "min_tech_rating": 0.0})
    bodies.append({"trade_style": "Swing", "sectors": list(app_rules.CHIP_SECTORS[:4])})
    for step in range(21):
        bodies.append(
            {
                "max_symbols": 6000,
                "trade_style": app_rules.CHIP_STYLES[step % 3],
                "min_tech_rating": step / 2,
                "lookback_days": 30 + step * 16,
                "options_mode": "stock_only" if step % 2 else "stock_and_options",
            }
        )
    return bodies


def randomize_bodies(n: int = 30) -> list[dict]:
    rng = random.Random(20261206)
    bodies = []
    for _ in range(n):
        body = {
            "max_symbols": 6000,
            "trade_style": rng.choice(app_rules.CHIP_STYLES),
            "min_tech_rating": float(rng.randint(2, 9)),
            "lookback_days": rng.randint(30, 360),
        }
        sector = rng.choice(app_rules.RANDOMIZE_SECTORS)
        if sector is not None:
            body["sectors"] = [sector]
        bodies.append(body)
    return bodies


def all_bodies() -> list[dict]:
    return [{}, *app_rules.SCAN_BODIES.values(), *panel_bodies(), *randomize_bodies()]


def test_every_body_the_app_sends_answers_and_does_what_it_says(app, published) -> None:
    document = published[1].snapshot
    full = {}  # style → every row, ranked for it
    for body in all_bodies():
        response = app.post("/v1/scan", json=body)
        assert response.status_code == 200, (body, response.text)
        bundle = app_rules.scanner_bundle(response.json())
        ScannerBundle.model_validate(bundle)
        style = TRADE_STYLES.parse(body.get("trade_style") or document["trade_style"])
        assert bundle["trade_style"] == bundle["filters"]["trade_style"] == style
        if style not in full:
            full[style] = app.post("/v1/scan", json={"trade_style": style}).json()["results"]
        rating = body.get("min_tech_rating") or 0.0
        sectors = body.get("sectors")
        wanted = {SECTORS.parse(s) for s in sectors} if sectors else None
        expected = [
            r
            for r in full[style]
            if r["TechRating"] >= 10 * rating and (wanted is None or r["Sector"] in wanted)
        ]
        assert bundle["results"] == expected, body
        assert bundle["filters"]["min_TechRating"] == 10 * rating
        if rating:
            assert f"TechRating ≥ {10 * rating:g} of 100" in bundle["log"]
        for option in ("lookback_days", "options_mode"):
            if option in body:
                assert bundle["filters"][option]["asked"] == body[option]
                assert f"{option} " in bundle["log"] and "changes nothing" in bundle["log"]


def test_presets_narrow_the_list_by_the_0_to_10_rating(app) -> None:
    counts = {
        name: len(app.post("/v1/scan", json=body).json()["results"])
        for name, body in app_rules.SCAN_BODIES.items()
    }
    assert counts["first open"] > counts["aggressive"] > counts["moderate"] > 0
    assert counts["moderate"] > counts["conservative"] > 0


def test_an_unknown_sector_stays_a_422_listing_the_valid_names(app) -> None:
    response = app.post("/v1/scan", json={"sectors": ["Crypto Art"]})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "unknown_sector" and "Information Technology" in body["valid"]


def test_the_ideas_tab(app, published) -> None:
    response = app.get("/v1/scan")
    assert response.status_code == 200
    ideas = app_rules.ideas_tab(response.json())
    IdeasAnswer.model_validate(response.json())
    rows = published[1].snapshot["results"]
    expected = [
        r["ticker"]
        for r in rows
        if r["signal"] in ("Strong Long", "Long") and r["Tier"] in ("CORE", "SATELLITE")
    ]
    assert [i["ticker"] for i in ideas] == expected[: len(ideas)]
    assert 0 < len(ideas) <= 20 and all(i["option"] is None for i in ideas)
    assert ideas[:3] == published[1].snapshot["ideas"]


def test_symbol_detail_draws_the_bars_the_scan_trusted(app, published) -> None:
    document = published[1].snapshot
    for row in document["results"][:5]:
        response = app.get(f"/v1/symbol/{row['ticker']}", params={"days": 90})
        detail = app_rules.symbol_detail(response.json())
        SymbolDetail.model_validate(detail)
        assert detail["status"] == "ok" and detail["tech_rating"] == row["TechRating"]
        history = detail["history"]
        assert len(history) == 90 and history[-1]["date"] == document["as_of"]
        assert all(b["Low"] <= b["High"] and b["Close"] > 0 for b in history)
        assert detail["events"] is None
        assert detail["fundamentals"]["market_cap"] > 0
        assert detail["history_source"]["store"] == document["store"]["path"]


def test_a_ticker_without_a_row_still_opens(app, published, demo_universe) -> None:
    document = published[1].snapshot
    for status in ("short_history", "stale"):
        ticker = document["unscored"][status][0]
        response = app.get(f"/v1/symbol/{ticker}")
        assert response.status_code == 200, response.text
        detail = app_rules.symbol_detail(response.json())
        SymbolDetail.model_validate(detail)
        assert detail["status"] == status and detail["status_detail"]
        assert detail["tech_rating"] is None and detail["merit_band"] is None
        assert detail["history"] and detail["last_price"] == detail["history"][-1]["Close"]
    assert (
        "60 clean bars"
        in app.get(f"/v1/symbol/{document['unscored']['short_history'][0]}").json()["status_detail"]
    )
    benchmark = app.get("/v1/symbol/SPY").json()
    assert benchmark["status"] == "benchmark" and benchmark["history"]
    missing = app.get("/v1/symbol/ZZZZZQ")
    assert missing.status_code == 404 and missing.json()["error"] == "unknown_ticker"


def test_an_unreadable_store_is_a_503_saying_so(redis_server, demo_store, tmp_path) -> None:
    store = tmp_path / "store"
    shutil.copytree(demo_store, store)
    settings = Settings(
        data_dir=tmp_path,
        use_redis=True,
        redis_url=redis_server.url,
        redis_prefix=f"gone-{uuid.uuid4().hex[:8]}:v1",
        cache_ttl=0,
        cluster="sync",
    )
    result = run_scan(store, settings=settings)
    assert snapshots.publish(result, settings=settings).published
    shutil.rmtree(store)
    with running(settings) as base:
        ticker = result.snapshot["results"][0]["ticker"]
        response = httpx.get(f"{base}/v1/symbol/{ticker}", timeout=30)
        assert response.status_code == 503
        assert response.json()["error"] == "store_unavailable"
        assert str(store) in response.json()["detail"]
        assert httpx.get(f"{base}/health", timeout=30).json()["store"] is False


def test_copilot_answers_from_the_snapshot(app, published) -> None:
    document = published[1].snapshot
    row = document["results"][0]
    response = app.post("/v1/copilot", json={"question": f"Why is {row['ticker']} rated so?"})
    assert response.status_code == 200
    text = app_rules.copilot_answer(response.json())
    assert response.json()["role"] == "assistant"
    assert row["ticker"] in text and row["signal"] in text and f"{row['TechRating']:.1f}" in text
    assert document["snapshot_id"] in response.json()["meta"]
    plan = app.post("/v1/copilot", json={"question": "plan?", "symbol": row["ticker"]}).json()
    assert f"entry {row['entry']:g}" in plan["body"]
    help_text = app.post("/v1/copilot", json={"question": "hello", "options_mode": "x"}).json()
    assert "Ask why a ticker is rated" in help_text["body"]


def test_copilot_before_any_snapshot_says_so(redis_server, tmp_path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        use_redis=True,
        redis_url=redis_server.url,
        redis_prefix=f"none-{uuid.uuid4().hex[:8]}:v1",
    )
    with running(settings) as base:
        response = httpx.post(f"{base}/v1/copilot", json={"question": "best setups?"}, timeout=30)
        assert response.status_code == 200
        assert "No scan has been published yet" in app_rules.copilot_answer(response.json())
