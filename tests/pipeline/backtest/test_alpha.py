"""With a model, the backtest's AlphaScore and composite are the scan's, blended by its rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.alpha import artifact, train
from pipeline.backtest import backtest
from pipeline.backtest.summary import summarize
from pipeline.config import Settings
from pipeline.scan import run_scan
from pipeline.schema import DATE, TICKER
from tests.pipeline.alpha.conftest import FAST


@pytest.fixture(scope="module")
def settings(demo_store: Path, tmp_path_factory) -> Settings:
    """A model trained on the demo store, its card edited to show skill (random walks give
    none; only a model that shows some is blended)."""
    models = tmp_path_factory.mktemp("backtest-models")
    home = Settings(data_dir=models.parent, cluster="sync")
    trained = train.train(demo_store, FAST, settings=home, models_dir=models)
    card_file = trained.path / artifact.CARD_FILE
    card = json.loads(card_file.read_text())
    card["metrics"]["model"]["ic_tstat_nw"] = 3.0
    card_file.write_text(json.dumps(card))
    return Settings(data_dir=tmp_path_factory.mktemp("bt-alpha"), models_dir=models, cluster="sync")


@pytest.fixture(scope="module")
def result(demo_store: Path, settings: Settings):
    return backtest(demo_store, start="2026-10-01", horizons=(1, 5), settings=settings)


def test_rows_with_a_model_are_the_scan_as_of_their_date(demo_store, settings, result) -> None:
    assert result.model["alpha_weight"] == 0.35 and result.model["reason"] is None
    assert result.model["in_sample"] is True  # trained on these dates: said, not hidden
    days = result.dates
    for day in (days[0], days[-1]):
        scan = run_scan(demo_store, as_of=day, settings=settings).table.sort_index()
        rows = result.panel[result.panel[DATE] == day].set_index(TICKER).sort_index()
        assert list(rows.index.astype(str)) == list(scan.index.astype(str))
        for column in ("AlphaScore", "composite_score", "TechRating"):
            np.testing.assert_array_equal(rows[column].to_numpy(), scan[column].to_numpy())


def test_the_summary_reports_the_composite_with_and_without_alpha(result) -> None:
    document = summarize(result).document
    ic = document["horizons"]["5"]["ic"]
    assert {"composite_score", "composite_without_alpha", "AlphaScore"} <= set(ic)
    assert ic["AlphaScore"]["n_dates"] > 0
    assert document["model"]["alpha"] == result.model["alpha"]
