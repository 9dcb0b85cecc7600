"""Labels read only the h sessions after t; walk-forward folds are purged by the horizon."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from pipeline.alpha import labels
from pipeline.alpha.folds import walk_forward
from pipeline.errors import ConfigError
from pipeline.segments import segment_bounds


def toy_panel(close: dict[str, list[float]], dates: pd.DatetimeIndex) -> pd.DataFrame:
    rows = []
    for ticker, values in close.items():
        for d, c in zip(dates, values, strict=True):
            if c == c:  # NaN: the ticker has no bar that day
                rows.append((ticker, d, c))
    frame = pd.DataFrame(rows, columns=["ticker", "date", "close"]).set_index("ticker")
    frame["eligible"] = True
    return frame


def test_label_reads_only_the_bars_from_t_to_t_plus_h() -> None:
    dates = pd.bdate_range("2026-01-05", periods=30)
    rng = np.random.default_rng(0)
    base = {t: list(rng.uniform(10, 20, 30)) for t in ("A", "B", "C")}
    out = labels.add_labels(toy_panel(base, dates), horizons=(5,))
    a = out.loc["A"]
    expected = np.array(base["A"][5:]) / np.array(base["A"][:-5]) - 1
    np.testing.assert_allclose(a["fwd_ret_5d"].to_numpy()[:-5], expected)
    assert np.isnan(a["fwd_ret_5d"].to_numpy()[-5:]).all()
    t = 10
    for changed, moves in ((t - 1, False), (t + 1, False), (t + 5, True), (t + 6, False)):
        moved = {k: list(v) for k, v in base.items()}
        moved["A"][changed] *= 1.5
        label = labels.add_labels(toy_panel(moved, dates), horizons=(5,)).loc["A"]
        same = label["fwd_ret_5d"].iloc[t] == a["fwd_ret_5d"].iloc[t]
        assert same != moves, changed


def test_a_missing_session_gives_no_label_rather_than_a_longer_one() -> None:
    dates = pd.bdate_range("2026-01-05", periods=20)
    close = {t: [10.0 + i for i in range(20)] for t in ("A", "B", "C")}
    close["A"][7] = float("nan")  # halted on session 7
    a = labels.add_labels(toy_panel(close, dates), horizons=(5,)).loc["A"]
    by_date = a.set_index("date")["fwd_ret_5d"]
    assert np.isnan(by_date[dates[2]])  # would need session 7
    assert by_date[dates[8]] == pytest.approx(close["A"][13] / close["A"][8] - 1)


def test_stray_weekend_prints_are_not_sessions() -> None:
    dates = pd.bdate_range("2026-01-05", periods=20)
    frame = toy_panel({t: [10.0 + i for i in range(20)] for t in "ABCDEF"}, dates)
    saturday = pd.DataFrame(
        {"date": [pd.Timestamp("2026-01-10")], "close": [99.0], "eligible": [True]},
        index=pd.Index(["A"], name="ticker"),
    )
    frame = pd.concat([frame, saturday]).reset_index().sort_values(["ticker", "date"])
    out = labels.add_labels(frame.set_index("ticker"), horizons=(5,))
    assert pd.Timestamp("2026-01-10") not in set(out["date"])
    assert out["fwd_ret_5d"].notna().sum() == 6 * 15


def test_an_index_series_older_than_the_universe_adds_no_sessions() -> None:
    old = pd.bdate_range("1990-01-01", periods=400)
    new = pd.bdate_range("2026-01-05", periods=30)
    frame = toy_panel({t: [10.0 + i for i in range(30)] for t in "ABCDEF"}, new)
    index = pd.DataFrame(
        {"date": old.append(new), "close": 100.0, "eligible": True},
        index=pd.Index(["^GSPC"] * 430, name="ticker"),
    )
    frame = pd.concat([index, frame])
    sessions = labels.calendar(frame["date"].to_numpy())
    assert len(sessions) == 30 and sessions[0] == new[0]


def test_ranks_are_per_date_among_eligible_rows() -> None:
    dates = pd.bdate_range("2026-01-05", periods=12)
    rng = np.random.default_rng(1)
    frame = toy_panel({t: list(rng.uniform(10, 20, 12)) for t in "ABCDE"}, dates)
    frame.loc["E", "eligible"] = False
    out = labels.add_labels(frame, horizons=(5,))
    ranked = out.dropna(subset=["fwd_rank_5d"])
    assert set(ranked.index) == set("ABCD")
    for _, day in ranked.groupby("date"):
        assert sorted(day["fwd_rank_5d"]) == [0.25, 0.5, 0.75, 1.0]
        assert (day["fwd_rank_5d"].rank() == day["fwd_ret_5d"].rank()).all()


@pytest.mark.parametrize("window", ["expanding", "rolling"])
@pytest.mark.parametrize("horizon", [5, 10])
def test_folds_are_purged_by_at_least_the_horizon(window: str, horizon: int) -> None:
    folds = walk_forward(
        3, 700, horizon, test_days=63, min_train_days=120, window=window, train_days=200
    )
    assert len(folds) >= 8
    for f in folds:
        assert f.gap >= horizon
        # the last training label ends (t + h) before the first test session
        assert f.train_end + horizon < f.test_start
        assert f.train_start >= 3
        if window == "rolling":
            assert f.train_end - f.train_start + 1 <= 200
    tests = [(f.test_start, f.test_end) for f in folds]
    assert tests[0][0] == 3 + 120 + horizon and tests[-1][1] == 700
    for (_, e), (s, _) in itertools.pairwise(tests):
        assert s == e + 1  # contiguous, never overlapping
    assert all(e - s + 1 >= 63 / 2 for s, e in tests)


def test_fold_layout_errors_are_one_line() -> None:
    with pytest.raises(ConfigError, match="shorter than the label horizon"):
        walk_forward(0, 500, 10, gap=5)
    with pytest.raises(ConfigError, match="too little labelled history"):
        walk_forward(0, 100, 5, min_train_days=126)


def test_forward_return_respects_segments() -> None:
    close = np.arange(1.0, 13.0)
    index = pd.Index(["A"] * 6 + ["B"] * 6)
    session = np.tile(np.arange(6), 2)
    out = labels.forward_return(close, session, segment_bounds(index), 2)
    assert np.isnan(out[4:6]).all() and np.isnan(out[10:]).all()
    np.testing.assert_allclose(out[:4], close[2:6] / close[:4] - 1)
