"""Calibration sanity and the report's statistics against plain definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.alpha import calibrate, evaluate


def test_isotonic_calibration_beats_the_base_rate_and_is_reliable() -> None:
    rng = np.random.default_rng(0)
    score = rng.normal(size=40_000)
    truth = 1 / (1 + np.exp(-1.5 * score))
    outcome = (rng.random(score.size) < truth).astype(float)
    fold = np.repeat(np.arange(4), 10_000)
    out = calibrate.walk_forward(score, outcome, fold)
    assert out["n"] == 30_000  # fold 0 has no earlier folds to calibrate on
    assert out["brier"] < out["brier_base_rate"] - 0.02
    assert out["auc"] > 0.75
    for row in out["reliability"]:
        assert abs(row["mean_pred"] - row["frac_pos"]) < 0.04
    cal = calibrate.fit(score, outcome)
    probs = cal(np.linspace(-3, 3, 50))
    assert np.all(np.diff(probs) >= 0) and probs.min() >= 0 and probs.max() <= 1
    np.testing.assert_allclose(cal(np.array([0.0])), [0.5], atol=0.03)
    again = calibrate.Calibrator.from_dict(cal.to_dict())
    np.testing.assert_array_equal(again(score[:100]), cal(score[:100]))
    assert np.isnan(cal(np.array([np.nan]))).all()


def test_a_useless_score_calibrates_to_the_base_rate() -> None:
    rng = np.random.default_rng(1)
    score = rng.normal(size=20_000)
    outcome = (rng.random(score.size) < 0.55).astype(float)
    probs = calibrate.fit(score, outcome)(score)
    assert abs(probs.mean() - 0.55) < 0.01
    assert probs.std() < 0.03


def test_daily_ic_is_spearman_per_date() -> None:
    rng = np.random.default_rng(2)
    session = np.repeat(np.arange(6), 50)
    a, b = rng.normal(size=300), rng.normal(size=300)
    b[::7] = np.nan
    ic = evaluate.daily_ic(session, a, b)
    for s in range(6):
        sel = (session == s) & np.isfinite(b)
        assert ic[s] == pytest_approx(stats.spearmanr(a[sel], b[sel]).statistic)


def pytest_approx(value: float):
    import pytest

    return pytest.approx(value, abs=1e-12)


def test_newey_west_without_lags_is_the_plain_standard_error() -> None:
    x = np.random.default_rng(3).normal(size=200)
    assert evaluate.newey_west_se(x, 0) == pytest_approx(x.std() / np.sqrt(200))
    # positively autocorrelated series: the HAC error is larger
    y = np.convolve(x, np.ones(5), mode="valid")
    assert evaluate.newey_west_se(y, 4) > evaluate.newey_west_se(y, 0) * 1.5


def test_perfect_score_has_full_ic_positive_spread_and_stable_top() -> None:
    session = np.repeat(np.arange(10), 100)
    ticker = np.tile(np.arange(100), 10)
    ret = np.tile(np.linspace(-0.05, 0.05, 100), 10)
    m = evaluate.metrics(session, ticker, ret.copy(), ret, horizon=5)
    assert m["ic_mean"] == pytest_approx(1.0)
    assert m["hit_rate"] == 1.0
    assert m["decile_spread"] > 0.08
    assert m["turnover"] == 0.0
    assert m["decile_returns"] == sorted(m["decile_returns"])
    flipped = evaluate.metrics(session, ticker, -ret, ret, horizon=5)
    assert flipped["ic_mean"] == pytest_approx(-1.0)
    assert flipped["decile_spread"] < -0.08


def test_baselines_read_only_the_past() -> None:
    close = np.exp(np.linspace(0, 1, 300))
    frame = pd.DataFrame(
        {"close": close, "ret_5d": np.zeros(300)}, index=pd.Index(["A"] * 300, name="ticker")
    )
    scores = evaluate.baseline_scores(frame)
    mom = scores["momentum_12_1"]
    assert np.isnan(mom[:252]).all()
    assert mom[260] == pytest_approx(close[260 - 21] / close[260 - 252] - 1)
