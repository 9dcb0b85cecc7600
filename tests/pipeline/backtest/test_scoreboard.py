"""The latest backtest's base rates travel into scans, their snapshots and the app's API."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from pipeline import snapshots
from pipeline.backtest import backtest, scoreboard
from pipeline.backtest.summary import summarize
from pipeline.config import Settings
from pipeline.scan import run_scan
from tests.service.server import running


@pytest.fixture(scope="module")
def board(demo_store: Path, tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("board-home"), cluster="sync")
    result = backtest(demo_store, start="2026-06-01", horizons=(1, 10), settings=settings)
    measured = summarize(result).document["scoreboard"]
    scoreboard.save(measured, result.store, settings)
    return settings, measured


def test_the_scoreboard_counts_every_row_with_a_10_day_return(board, demo_store) -> None:
    _, measured = board
    assert measured["horizon"] == 10 and measured["from"] >= "2026-06-01"
    rows = measured["signal"]
    assert set(rows) <= {"Strong Long", "Long", "Neutral", "Avoid", "Short"}
    assert all(0.0 <= r["win_rate"] <= 1.0 and r["count"] > 0 for r in rows.values())
    assert set(measured["Tier"]) <= {"CORE", "SATELLITE", "WATCH"}


def test_a_scan_of_that_store_carries_it_and_fills_win_prob_from_it(board, demo_store) -> None:
    settings, measured = board
    result = run_scan(demo_store, settings=settings)
    document = result.snapshot
    assert document["scoreboard"]["signal"] == measured["signal"]
    assert "win rate of the row's signal" in document["win_prob_source"]
    rates = {k: v["win_rate"] for k, v in measured["signal"].items()}
    for row in document["results"][:50]:
        assert row["win_prob_10d"] == rates[row["signal"]]
    assert all("rose 10d later in" in idea["meta"] for idea in document["ideas"])


def test_a_scan_of_another_store_goes_without(board, demo_universe, tmp_path) -> None:
    settings, _ = board
    from pipeline.store import BarStore

    other = tmp_path / "other"
    BarStore(other).write(demo_universe.bars, demo_universe.universe, rows_per_file=20_000)
    document = run_scan(other, settings=settings).snapshot
    assert document["scoreboard"] is None and document["win_prob_source"] is None
    assert all(row["win_prob_10d"] is None for row in document["results"][:20])


def test_the_app_reads_it_at_v1_scoreboard(board, demo_store, redis_server, tmp_path) -> None:
    settings, measured = board
    served = settings.model_copy(
        update={
            "store": demo_store,
            "use_redis": True,
            "redis_url": redis_server.url,
            "redis_prefix": f"board-{uuid.uuid4().hex[:8]}:v1",
        }
    )
    result = run_scan(demo_store, settings=served)
    assert snapshots.publish(result, settings=served).published
    with running(served) as base:
        body = httpx.get(f"{base}/v1/scoreboard", timeout=30).json()
    assert body["snapshot_id"] == result.snapshot["snapshot_id"]
    assert body["scoreboard"]["signal"] == measured["signal"] and body["reason"] is None
