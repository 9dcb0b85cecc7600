"""Model artifacts (XGBoost's own format, JSON card, no pickle) and the scan with and without a
model: AlphaScore, win_prob_10d, the blend and the snapshot's ``model`` entry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import scoring
from pipeline.alpha import artifact, panel, train
from pipeline.config import Settings
from pipeline.errors import ModelError
from pipeline.scan import run_scan
from pipeline.store import BarStore
from tests.pipeline.alpha.conftest import FAST

AS_OF = pd.Timestamp("2026-09-15")


@pytest.fixture(scope="module")
def trained(demo_store: Path, tmp_path_factory) -> train.TrainResult:
    models = tmp_path_factory.mktemp("models")
    settings = Settings(data_dir=models.parent, cluster="sync", dashboard_address=":0")
    return train.train(demo_store, FAST, settings=settings, models_dir=models)


@pytest.fixture(scope="module")
def models_dir(trained: train.TrainResult) -> Path:
    return trained.path.parent


def test_artifact_is_xgboost_ubj_and_a_json_card_without_pickle(trained) -> None:
    files = sorted(p.name for p in trained.path.iterdir())
    assert files == [artifact.CARD_FILE, artifact.MODEL_FILE]
    raw = (trained.path / artifact.MODEL_FILE).read_bytes()
    assert raw[:1] == b"{" and not raw.startswith(b"\x80")  # UBJSON object, not a pickle
    card = json.loads((trained.path / artifact.CARD_FILE).read_text())
    assert card["features"] == list(panel.FEATURES)
    assert card["feature_version"] == panel.FEATURE_VERSION
    assert card["horizon"] == 5
    assert card["data"]["data_version"] == BarStore.open(card["data"]["store"]).data_version
    assert {"xgboost", "numpy", "pandas", "scikit-learn"} <= set(card["libraries"])
    assert card["windows"]["rolling"] == [5, 10, 20, 60]
    assert card["windows"]["walk_forward"]["gap_sessions"] >= 5
    for key in ("ic_mean", "ic_std", "ic_tstat", "n_dates"):
        assert key in card["metrics"]["model"]
        assert key in card["metrics"]["baselines"]["random"]
    assert card["calibration"]["calibrator"]["method"] == "isotonic"


def test_model_round_trips(trained) -> None:
    model = artifact.load(trained.path)
    assert model.card == trained.card
    x = panel.matrix(trained.run.data.iloc[:500])
    before = train.predict(model.booster(), x)
    again = artifact.load(trained.path)
    np.testing.assert_array_equal(train.predict(again.booster(), x), before)
    assert np.isfinite(before).all()


def copy_model(src: Path, dst_dir: Path, edit) -> Path:
    dst = dst_dir / (src.name + "-edited")
    shutil.copytree(src, dst)
    card = json.loads((dst / artifact.CARD_FILE).read_text())
    edit(card)
    (dst / artifact.CARD_FILE).write_text(json.dumps(card))
    return dst


def test_a_model_for_other_features_is_refused_with_a_clear_message(trained, tmp_path) -> None:
    def drop_feature(card):
        card["features"] = [*card["features"][1:], "raw_close"]
        card["created_at"] = "2999-01-01T00:00:00+00:00"  # newest

    bad = copy_model(trained.path, tmp_path, drop_feature)
    with pytest.raises(ModelError) as info:
        artifact.load(bad)
    message = str(info.value)
    assert "other features" in message and "ret_1d" in message and "raw_close" in message
    assert "technic train" in message and "\n" not in message
    # newest() skips it for the older compatible model ...
    shutil.copytree(trained.path, tmp_path / trained.path.name)
    model, _ = artifact.newest(tmp_path)
    assert model is not None and model.version == trained.card["version"]
    # ... and with only the bad one there is none, and the reason says why
    shutil.rmtree(tmp_path / trained.path.name)
    model, reason = artifact.newest(tmp_path)
    assert model is None and "other features" in reason


def test_a_damaged_model_file_is_refused(trained, tmp_path) -> None:
    bad = copy_model(trained.path, tmp_path, lambda card: None)
    (bad / artifact.MODEL_FILE).write_bytes(b"{}")
    with pytest.raises(ModelError, match="sha256"):
        artifact.load(bad)


def with_skill(t: float):
    """A card edit: the pooled out-of-sample IC's Newey–West t is ``t``."""

    def edit(card):
        card["metrics"]["model"]["ic_tstat_nw"] = t

    return edit


@pytest.fixture(scope="module")
def skilled_models(trained, tmp_path_factory) -> Path:
    """The trained model with a card that shows skill (t = 3): random walks give none, and
    only a model that shows some is blended."""
    models = tmp_path_factory.mktemp("skilled")
    copy_model(trained.path, models, with_skill(3.0))
    return models


@pytest.fixture(scope="module")
def with_model(demo_store: Path, skilled_models: Path, dask_client, tmp_path_factory):
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("scan"),
        models_dir=skilled_models,
        dashboard_address=":0",
    )
    return run_scan(demo_store, client=dask_client, settings=settings)


def test_a_model_without_out_of_sample_skill_is_shown_not_blended(
    demo_store: Path, trained, tmp_path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    copy_model(trained.path, models, with_skill(0.5))
    settings = Settings(data_dir=tmp_path, models_dir=models, cluster="sync")
    result = run_scan(demo_store, settings=settings)
    entry = result.snapshot["model"]
    assert entry["alpha"] == trained.card["version"] and entry["alpha_weight"] == 0.0
    assert "Newey–West t of 0.50" in entry["reason"] and "not blended" in entry["reason"]
    t = result.table
    assert t["AlphaScore"].notna().any()
    pd.testing.assert_series_equal(
        t["composite_score"], scoring.pct(t["TechRating"]).round(2), check_names=False
    )


def test_scan_uses_the_model_and_records_its_version(with_model, trained) -> None:
    entry = with_model.snapshot["model"]
    assert entry["alpha"] == trained.card["version"] == entry["version"]
    assert entry["alpha_weight"] == 0.35 and entry["reason"] is None
    assert entry["horizon"] == 5
    table = with_model.table
    alpha = table["AlphaScore"].dropna()
    assert len(alpha) > 0.5 * len(table)
    assert alpha.mean() == pytest.approx(0.0, abs=0.01)
    assert alpha.std(ddof=0) == pytest.approx(1.0, abs=0.01)
    prob = table["win_prob_10d"].dropna()
    assert len(prob) == len(alpha) and prob.between(0, 1).all()
    # AlphaScore is missing exactly where the ticker is outside the model's universe
    outside = (table["close"] < panel.UNIVERSE["min_price"]) | (
        table["bars"] < panel.UNIVERSE["min_bars"]
    )
    assert table.loc[outside, "AlphaScore"].isna().all()
    results = with_model.snapshot["results"]
    assert any(r["AlphaScore"] is not None for r in results)
    assert any(r["win_prob_10d"] is not None for r in results)


def test_the_ml_part_moves_the_ranking(with_model) -> None:
    t = with_model.table
    expected = 0.65 * scoring.pct(t["TechRating"]) + 0.35 * scoring.pct(t["AlphaScore"]).fillna(
        50.0
    )
    np.testing.assert_allclose(t["composite_score"], expected.round(2))
    tech_order = t["TechRating"].rank(method="first", ascending=False)
    moved = (t["rank"] != tech_order).mean()
    assert moved > 0.5
    top = t.head(20)
    assert (top["AlphaScore"].fillna(0) > 0).mean() > 0.5


def test_scan_alpha_at_t_ignores_bars_after_t(
    demo_store: Path, demo_universe, trained, models_dir: Path, tmp_path
) -> None:
    bars = demo_universe.bars.copy()
    later = (bars["date"] > AS_OF).to_numpy()
    rng = np.random.default_rng(5)
    factor = rng.uniform(0.3, 3.0, later.sum())
    for col in ("open", "high", "low", "close"):
        bars.loc[later, col] = bars.loc[later, col].to_numpy() * factor
    bars.loc[later, "volume"] = rng.uniform(100, 1e7, later.sum()).round()
    moved = tmp_path / "moved"
    BarStore(moved).write(bars, demo_universe.universe, rows_per_file=20_000)
    version = trained.card["version"]  # named: the moved store is another universe
    settings = Settings(
        data_dir=tmp_path, models_dir=models_dir, cluster="sync", alpha_model=version
    )
    a = run_scan(demo_store, as_of=AS_OF, settings=settings).table
    b = run_scan(moved, as_of=AS_OF, settings=settings).table
    assert a["AlphaScore"].notna().sum() > 100
    for col in ("alpha_raw", "AlphaScore", "win_prob_10d", "composite_score"):
        pd.testing.assert_series_equal(a[col], b.loc[a.index, col])


def test_scan_without_a_model_says_why(demo_store: Path, tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, cluster="sync", models_dir=tmp_path / "none")
    result = run_scan(demo_store, settings=settings)
    entry = result.snapshot["model"]
    assert entry["alpha"] is None and entry["alpha_weight"] == 0.0
    assert "no trained model" in entry["reason"] and "AlphaScore" in entry["reason"]
    assert result.table["AlphaScore"].isna().all() and result.table["win_prob_10d"].isna().all()
    np.testing.assert_allclose(
        result.table["composite_score"], scoring.pct(result.table["TechRating"]).round(2)
    )


def test_scan_with_ml_alpha_off_ignores_the_model(demo_store: Path, models_dir, tmp_path) -> None:
    settings = Settings(
        data_dir=tmp_path, cluster="sync", models_dir=models_dir, use_ml_alpha=False
    )
    entry = run_scan(demo_store, settings=settings).snapshot["model"]
    assert entry["alpha"] is None and "TECHNIC_USE_ML_ALPHA=0" in entry["reason"]


def test_a_model_trained_on_another_universe_is_never_blended_silently(
    demo_store: Path, demo_universe, trained, models_dir: Path, tmp_path
) -> None:
    """Same bars, another store: the model's card names the demo store, so the scan refuses
    it (and says why) unless the user names the model; a copy of the store itself (its
    manifest and identity travel with it) is the same universe."""
    other = tmp_path / "other"
    BarStore(other).write(demo_universe.bars, demo_universe.universe, rows_per_file=20_000)
    settings = Settings(data_dir=tmp_path, models_dir=models_dir, cluster="sync")
    refused = run_scan(other, settings=settings)
    entry = refused.snapshot["model"]
    assert entry["alpha"] is None and entry["alpha_weight"] == 0.0
    assert "trained on this store's universe" in entry["reason"]
    assert str(demo_store) in entry["reason"] and "TECHNIC_ALPHA_MODEL" in entry["reason"]
    assert refused.table["AlphaScore"].isna().all()

    named = Settings(
        data_dir=tmp_path, models_dir=models_dir, cluster="sync", alpha_model=str(trained.path)
    )
    entry = run_scan(other, settings=named).snapshot["model"]
    assert entry["alpha"] == trained.card["version"] and entry["named"] is True
    assert entry["trained_on_store"] == str(demo_store)

    copy = tmp_path / "copy"
    shutil.copytree(demo_store, copy)
    assert BarStore.open(copy).store_id == BarStore.open(demo_store).store_id
    entry = run_scan(copy, settings=settings).snapshot["model"]
    assert entry["alpha"] == trained.card["version"] and entry["named"] is False


def test_a_named_model_that_does_not_exist_is_one_line(demo_store: Path, tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, cluster="sync", alpha_model="nope")
    with pytest.raises(ModelError, match="TECHNIC_ALPHA_MODEL='nope' names no model"):
        run_scan(demo_store, settings=settings)
