"""Walk-forward honesty and power, on stores whose truth is known.

A random walk has nothing to find: the out-of-sample IC must stay inside its noise band (a
leak of future bars into features or training would show up as a large IC). A universe with a
planted short-term reversal has something to find: the out-of-sample IC must reach 0.05.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.alpha import labels, train
from pipeline.alpha.evaluate import BASELINES
from pipeline.config import Settings
from tests.pipeline.alpha.conftest import FAST


def test_random_walk_shows_no_skill_out_of_sample(
    random_walk_store: Path, sync_settings: Settings
) -> None:
    run = train.run(random_walk_store, FAST, settings=sync_settings)
    model = run.report["model"]
    assert model["n_dates"] >= 100
    # inside three Newey–West standard errors (noise_band is 1.96 of them), and small
    assert abs(model["ic_mean"]) <= 3 / 1.96 * model["noise_band"]
    assert abs(model["ic_mean"]) < 0.03
    assert abs(model["decile_spread"]) < 0.01
    for name in BASELINES:  # the baselines are no better: each inside its own band
        base = run.report["baselines"][name]
        assert abs(base["ic_mean"]) <= 3 / 1.96 * base["noise_band"], name


def test_planted_signal_is_found_out_of_sample_on_the_dask_cluster(
    planted_store: Path, dask_client, sync_settings: Settings
) -> None:
    run = train.run(planted_store, FAST, client=dask_client, settings=sync_settings)
    model = run.report["model"]
    assert model["ic_mean"] >= 0.05
    assert model["ic_tstat_nw"] > 3
    assert model["decile_spread"] > 0
    assert model["hit_rate"] > 0.6
    # the planted effect is a reversal: that baseline finds it too, random does not
    assert run.report["baselines"]["short_term_reversal"]["ic_mean"] > 0.05
    assert abs(run.report["baselines"]["random"]["ic_mean"]) < 0.03


def test_out_of_sample_rows_are_unique_and_after_a_purged_gap(
    planted_store: Path, sync_settings: Settings
) -> None:
    run = train.run(planted_store, FAST, settings=sync_settings)
    oos = run.oos
    assert not oos.duplicated(["ticker", "date"]).any()
    assert len(run.folds) >= 2
    for fold in run.folds:
        rows = oos[oos["fold"] == fold.number]
        assert rows["session"].min() >= fold.test_start
        assert rows["session"].max() <= fold.test_end
        assert fold.train_end + FAST.horizon < fold.test_start
    # every out-of-sample row is labelled, in the universe, and scored by the model
    assert oos["score"].notna().all() and oos["fwd_ret_5d"].notna().all()
    report = run.report
    assert len(report["folds"]) == len(run.folds)
    for entry in report["folds"]:
        assert entry["gap_sessions"] >= FAST.horizon
        assert pd.Timestamp(entry["train"][1]) < pd.Timestamp(entry["test"][0])
    pooled = report["model"]
    assert pooled["n_dates"] == sum(f["model"]["n_dates"] for f in report["folds"])
    for key in ("ic_mean", "ic_std", "ic_tstat", "ic_ir", "hit_rate", "turnover"):
        assert np.isfinite(pooled[key]), key
    assert report["calibration"]["n"] > 0


def test_horizon_must_be_5_or_10() -> None:
    import pytest

    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="horizon must be one of 5, 10"):
        train.Config(horizon=7)
    assert labels.HORIZONS == (5, 10)
