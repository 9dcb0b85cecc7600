"""Scores on small hand-made cross-sections: every formula of pipeline/scoring.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline import scoring, vocabulary
from pipeline.features import latest_features
from pipeline.schema import TICKER
from pipeline.segments import Benchmark

NAN = np.nan


def frame(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    index = pd.Index([f"T{i}" for i in range(n)], name=TICKER)
    return pd.DataFrame({k: np.asarray(v, dtype="float64") for k, v in columns.items()}, index)


def series(values, dtype="float64") -> pd.Series:
    return pd.Series(values, index=[f"T{i}" for i in range(len(values))], dtype=dtype)


# --- building blocks --------------------------------------------------------------------------


def test_pct_is_an_average_rank_percentile() -> None:
    got = scoring.pct(series([10.0, 20.0, 20.0, 40.0]))
    np.testing.assert_allclose(got, [25.0, 62.5, 62.5, 100.0])


def test_pct_leaves_missing_values_out() -> None:
    got = scoring.pct(series([1.0, NAN, 3.0]))
    assert got.iloc[0] == 50.0 and np.isnan(got.iloc[1]) and got.iloc[2] == 100.0


def test_weighted_mean_renormalises_over_present_parts() -> None:
    parts = {"a": series([10.0, NAN, NAN]), "b": series([20.0, 40.0, NAN])}
    got = scoring.weighted_mean(parts, {"a": 0.25, "b": 0.75})
    assert got.iloc[0] == pytest.approx(0.25 * 10 + 0.75 * 20)
    assert got.iloc[1] == pytest.approx(40.0)  # b alone, its weight renormalised to 1
    assert np.isnan(got.iloc[2])


def test_weighted_mean_ignores_weights_of_absent_parts() -> None:
    got = scoring.weighted_mean({"a": series([30.0])}, {"a": 1.0, "unused": 5.0})
    assert got.iloc[0] == 30.0


# --- TechRating -------------------------------------------------------------------------------


def tech_inputs() -> pd.DataFrame:
    return frame(
        dist_sma20=[0.1, 0.1, 0.1, NAN],
        dist_sma50=[0.1, 0.1, -0.1, NAN],
        dist_sma200=[0.1, NAN, -0.1, NAN],
        sma50_vs_sma200=[0.1, NAN, -0.1, NAN],
        ret_21d=[0.1, 0.0, -0.1, NAN],
        ret_63d=[0.2, 0.0, -0.2, NAN],
        ret_126d=[0.3, 0.0, -0.3, NAN],
        rs_63d=[0.05, 0.0, -0.05, NAN],
        plus_di14=[30.0, 0.0, 10.0, NAN],
        minus_di14=[10.0, 0.0, 30.0, NAN],
        adx14=[20.0, 25.0, 80.0, NAN],
        rsi14=[60.0, 80.0, 20.0, NAN],
        mfi14=[70.0, 50.0, 10.0, NAN],
    )


def test_tech_components_follow_their_formulas() -> None:
    parts = scoring.tech_components(tech_inputs(), "Short-term swing")
    assert list(parts.columns) == list(scoring.TECH_WEIGHTS)
    # trend: 25 points per check over the averages the ticker has
    np.testing.assert_allclose(parts["trend"].iloc[:3], [100.0, 100.0, 25.0])
    assert np.isnan(parts["trend"].iloc[3])
    # direction: 50 + 50 * (+DI - -DI)/(+DI + -DI) * min(ADX/40, 1)
    np.testing.assert_allclose(parts["direction"].iloc[:3], [62.5, 50.0, 25.0])
    # rsi: 100 - 2.5 * |RSI - 60| clipped
    np.testing.assert_allclose(parts["rsi"].iloc[:3], [100.0, 50.0, 0.0])
    np.testing.assert_allclose(parts["flow"].iloc[:3], [70.0, 50.0, 10.0])
    np.testing.assert_allclose(parts["momentum"].iloc[:3], [100.0, 200 / 3, 100 / 3])
    np.testing.assert_allclose(parts["relative_strength"].iloc[:3], [100.0, 200 / 3, 100 / 3])


def test_momentum_uses_the_trade_style_horizon() -> None:
    t = tech_inputs().assign(ret_5d=[-0.5, 0.0, 0.5, NAN], ret_21d=[-0.5, 0.0, 0.5, NAN])
    day = scoring.tech_components(t, "Day trading")["momentum"]
    swing = scoring.tech_components(t, "Short-term swing")["momentum"]
    assert day.iloc[2] == 100.0  # day trading reads 5d/21d returns
    assert swing.iloc[0] == 100.0  # swing is dominated by 63d/126d


def test_tech_rating_is_the_weighted_mean_of_components() -> None:
    parts = pd.DataFrame({name: [50.0, 100.0] for name in scoring.TECH_WEIGHTS}, index=["A", "B"])
    parts.loc["B", "relative_strength"] = NAN  # renormalised away
    parts.loc["A", "trend"] = 0.0
    rating = scoring.tech_rating(parts)
    assert rating["A"] == pytest.approx(round(0.75 * 50.0, 1))
    assert rating["B"] == 100.0


@pytest.mark.parametrize(
    ("rating", "trend", "expected"),
    [
        (80.0, 75.0, "Strong Long"),
        (95.0, 74.9, "Long"),
        (65.0, 0.0, "Long"),
        (64.9, 100.0, "Neutral"),
        (35.1, 50.0, "Neutral"),
        (35.0, 50.0, "Avoid"),
        (20.0, 25.1, "Avoid"),
        (20.0, 25.0, "Short"),
        (0.0, 0.0, "Short"),
        (NAN, NAN, "Neutral"),
    ],
)
def test_signal_thresholds(rating: float, trend: float, expected: str) -> None:
    assert scoring.signal(series([rating]), series([trend])).iloc[0] == expected


def test_composite_without_a_model_is_the_tech_percentile() -> None:
    tech = series([10.0, 30.0, 20.0])
    pd.testing.assert_series_equal(scoring.composite(tech, None, 0.35), scoring.pct(tech))
    pd.testing.assert_series_equal(scoring.composite(tech, tech * 2, 0.0), scoring.pct(tech))


def test_composite_blends_percentiles_with_the_alpha_weight() -> None:
    tech = series([10.0, 30.0, 20.0])
    alpha = series([3.0, 1.0, 2.0])
    got = scoring.composite(tech, alpha, 0.35)
    np.testing.assert_allclose(got, 0.65 * scoring.pct(tech) + 0.35 * scoring.pct(alpha))
    assert got.iloc[1] == pytest.approx(0.65 * 100 + 0.35 * 100 / 3)


# --- trade plan -------------------------------------------------------------------------------


def plan(close, atr, signals, style="Short-term swing", account=100_000.0, risk=1.0):
    t = frame(close=close, atr14=atr)
    return scoring.trade_plan(t, series(signals, dtype="object"), style, account, risk)


def test_long_plan_for_the_default_swing_style() -> None:
    p = plan([100.0], [2.5], ["Long"]).iloc[0]
    assert p["entry"] == 100.0
    assert p["stop"] == 100.0 - 2 * 2.5
    assert p["target"] == 100.0 + 2 * (100.0 - 95.0)
    assert p["rrr"] == 2.0
    assert p["position_shares"] == 200  # floor(100,000 * 1% / 5)


def test_short_plan_mirrors_the_long_plan() -> None:
    p = plan([100.0], [2.5], ["Short"]).iloc[0]
    assert (p["stop"], p["target"], p["position_shares"]) == (105.0, 90.0, 200)


@pytest.mark.parametrize("sig", ["Strong Long", "Neutral", "Avoid"])
def test_every_signal_but_short_plans_long(sig: str) -> None:
    p = plan([50.0], [1.0], [sig]).iloc[0]
    assert p["stop"] < p["entry"] < p["target"]


@pytest.mark.parametrize(
    ("style", "stop_atr", "reward"),
    [
        ("Day trading", 1.0, 1.5),
        ("Short-term swing", 2.0, 2.0),
        ("Position / longer-term", 3.0, 3.0),
    ],
)
def test_plan_distances_follow_the_style(style: str, stop_atr: float, reward: float) -> None:
    p = plan([80.0], [2.0], ["Long"], style=style).iloc[0]
    dist = stop_atr * 2.0
    assert p["stop"] == pytest.approx(80.0 - dist)
    assert p["target"] == pytest.approx(80.0 + reward * dist)
    assert p["rrr"] == reward
    assert p["position_shares"] == int(1000 // dist)


def test_shares_are_capped_at_what_the_account_can_buy() -> None:
    p = plan([100.0], [0.01], ["Long"]).iloc[0]  # risk sizing alone would buy 50,000 shares
    assert p["position_shares"] == 1000


def test_shares_follow_account_size_and_risk_pct() -> None:
    p = plan([20.0], [0.5], ["Long"], account=50_000.0, risk=2.0).iloc[0]
    assert p["position_shares"] == 1000  # floor(50,000 * 2% / 1.0)


def test_stop_never_goes_below_one_percent_of_entry() -> None:
    p = plan([10.0], [8.0], ["Long"]).iloc[0]  # 2 ATR = 16 > entry
    assert p["stop"] == pytest.approx(0.1)
    assert p["target"] == pytest.approx(10.0 + 2 * 9.9)
    assert p["position_shares"] == int(1000 // 9.9)


def test_sub_dollar_prices_keep_four_decimals() -> None:
    p = plan([0.51234, 12.34567], [0.0123, 0.1], ["Long", "Long"])
    assert p["entry"].iloc[0] == 0.5123
    assert p["stop"].iloc[0] == 0.4877  # 0.51234 - 0.0246
    assert p["target"].iloc[0] == 0.5615  # 0.51234 + 0.0492
    assert p["entry"].iloc[1] == 12.35


def test_missing_atr_gives_no_position() -> None:
    p = plan([10.0], [NAN], ["Long"]).iloc[0]
    assert p["position_shares"] == 0
    assert np.isnan(p["stop"]) and np.isnan(p["target"])


def test_short_target_stays_positive() -> None:
    p = plan([10.0], [4.0], ["Short"]).iloc[0]
    assert p["target"] > 0


# --- merit ------------------------------------------------------------------------------------


def merit_inputs() -> pd.DataFrame:
    return frame(
        atr14_pct=[0.02, 0.07, 0.06, NAN],
        avg_dollar_volume_20d=[1e7, 1e6, 5e6, NAN],
        close=[50.0, 3.0, 5.0, 50.0],
        bars=[300, 100, 252, 300],
        dist_sma20=[0.05, 0.2, 0.15, NAN],
        rsi14=[55.0, 80.0, 75.0, NAN],
    )


def test_merit_flags_fire_above_their_thresholds() -> None:
    flags = scoring.merit_flags(merit_inputs())
    assert flags.iloc[0] == ""
    assert flags.iloc[1] == "HIGH_ATR|LOW_LIQUIDITY|PENNY_STOCK|SHORT_HISTORY|EXTENDED|OVERBOUGHT"
    assert flags.iloc[2] == ""  # every value sits exactly on its threshold
    assert flags.iloc[3] == ""  # missing inputs raise no flag


def test_merit_score_formula_on_one_row() -> None:
    t = frame(avg_dollar_volume_20d=[1e7], atr14_pct=[0.03], rs_63d=[0.1])
    got = scoring.merit_score(t, series([80.0]), np.array([2])).iloc[0]
    # 0.4*80 + 0.2*pct(liq)=100 + 0.2*(100 - pct(atr)=100) + 0.2*pct(rs)=100, minus 2 flags
    assert got == pytest.approx(32 + 20 + 0 + 20 - 16)


def test_merit_score_renormalises_and_clips() -> None:
    t = frame(avg_dollar_volume_20d=[1e7, 1e7], atr14_pct=[0.03, 0.03], rs_63d=[NAN, NAN])
    got = scoring.merit_score(t, series([80.0, 5.0]), np.array([0, 6]))
    liquidity = 75.0  # tie: average rank of two
    assert got.iloc[0] == pytest.approx(round((32 + 0.2 * liquidity + 0.2 * 25.0) / 0.8, 1))
    assert got.iloc[1] == 0.0


@pytest.mark.parametrize(
    ("score", "band"),
    [(100.0, "A+"), (90.0, "A+"), (89.9, "A"), (80.0, "A"), (79.9, "B"), (65.0, "B"),
     (64.9, "C"), (50.0, "C"), (49.9, "D"), (0.0, "D"), (NAN, "D")],
)  # fmt: skip
def test_merit_bands(score: float, band: str) -> None:
    assert scoring.merit_band(series([score])).iloc[0] == band


def test_merit_summary_mentions_band_trend_momentum_and_flags() -> None:
    text = scoring.merit_summary(
        series(["B", "D"], dtype="object"),
        series([80.0, 10.0]),
        series([0.123, NAN]),
        series([0.02, NAN]),
        series(["HIGH_ATR|OVERBOUGHT", ""], dtype="object"),
    )
    assert text[0] == (
        "B-grade setup: uptrend above its key averages, 63-day return +12.3% "
        "(ahead of the benchmark); watch high ATR, overbought."
    )
    assert text[1] == "D-grade setup: downtrend below its key averages."


# --- tiers, styles, profiles ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ics", "sig", "risky", "expected"),
    [
        (70.0, "Long", False, "CORE"),
        (95.0, "Strong Long", False, "CORE"),
        (70.0, "Strong Long", True, "SATELLITE"),
        (69.9, "Long", False, "SATELLITE"),
        (80.0, "Neutral", False, "SATELLITE"),
        (55.0, "Neutral", True, "SATELLITE"),
        (54.9, "Long", False, "WATCH"),
        (90.0, "Avoid", False, "WATCH"),
        (90.0, "Short", False, "WATCH"),
        (NAN, "Long", False, "WATCH"),
    ],
)
def test_tier_rules(ics: float, sig: str, risky: bool, expected: str) -> None:
    got = scoring.tier(series([ics]), series([sig], "object"), series([risky], "bool"))
    assert got.iloc[0] == expected


def test_play_style_from_atr_pct() -> None:
    got = scoring.play_style(series([0.0, 0.0249, 0.025, 0.0499, 0.05, 0.2, NAN]))
    assert list(got) == [
        "Stable", "Stable", "Hybrid", "Hybrid", "Explosive", "Explosive", "Explosive",
    ]  # fmt: skip


def test_ultra_risky_rules() -> None:
    t = frame(
        close=[0.99, 10.0, 10.0, 10.0, 1.0],
        atr14_pct=[0.02, 0.11, 0.02, 0.02, 0.10],
        avg_dollar_volume_20d=[5e6, 5e6, 9e5, 5e6, 1e6],
    )
    assert list(scoring.ultra_risky(t)) == [True, True, True, False, False]


def test_profile_follows_play_style_and_risk() -> None:
    styles = series(["Stable", "Hybrid", "Explosive", "Stable"], dtype="object")
    risky = series([False, False, False, True], dtype="bool")
    assert list(scoring.profile(styles, risky)) == [
        "conservative", "moderate", "aggressive", "aggressive",
    ]  # fmt: skip


# --- the whole cross-section ------------------------------------------------------------------


@pytest.fixture(scope="module")
def cross_section(demo_universe) -> pd.DataFrame:
    bars = demo_universe.bars.set_index(TICKER)
    spy = bars.loc["SPY"]
    bench = Benchmark(dates=spy["date"].to_numpy(), close=spy["close"].to_numpy())
    latest = latest_features(bars, bench)
    latest = latest[(latest["bars"] >= 60) & (latest.index != "SPY")]
    ref = demo_universe.universe.set_index(TICKER)[["sector", "industry", "market_cap"]]
    return latest.join(ref).rename(columns={"sector": "Sector", "industry": "Industry"})


def test_score_ranks_best_first(cross_section: pd.DataFrame) -> None:
    table = scoring.score(cross_section, style="Short-term swing", account_size=1e5, risk_pct=1.0)
    assert len(table) == len(cross_section)
    assert list(table["rank"]) == list(range(1, len(table) + 1))
    keys = list(zip(-table["composite_score"], -table["TechRating"], table.index, strict=True))
    assert keys == sorted(keys)
    assert table["TechRating"].between(0, 100).all()
    assert table["ICS"].between(0, 100).all()
    assert table["merit_score"].between(0, 100).all()
    assert set(table["Signal"]) <= set(vocabulary.SIGNALS.names)
    assert set(table["Tier"]) <= set(vocabulary.TIERS.names)
    assert set(table["merit_band"]) <= set(vocabulary.MERIT_BANDS.names)
    assert table["AlphaScore"].isna().all() and table["win_prob_10d"].isna().all()
    assert (table["ProfileLabel"] == table["Profile"].str.capitalize()).all()


def test_score_signal_and_tier_agree_with_their_rules(cross_section: pd.DataFrame) -> None:
    table = scoring.score(cross_section, style="Day trading", account_size=1e5, risk_pct=1.0)
    expected_signal = scoring.signal(table["TechRating"], table["tech_trend"])
    pd.testing.assert_series_equal(table["Signal"], expected_signal, check_names=False)
    expected_tier = scoring.tier(table["ICS"], table["Signal"], table["IsUltraRisky"])
    pd.testing.assert_series_equal(table["Tier"], expected_tier, check_names=False)
    long = table["Signal"] != "Short"
    assert (table.loc[long, "stop"] <= table.loc[long, "entry"]).all()
    assert (table["rrr"] == 1.5).all()


# --- market regime ----------------------------------------------------------------------------


def zigzag(slope: float, swing: float, n: int = 300) -> np.ndarray:
    """Closes whose log trends by ``slope`` a day with an alternating ``swing``."""
    t = np.arange(n)
    return 100.0 * np.exp(slope * t + swing * (t % 2))


def test_regime_of_a_rising_series_is_bull() -> None:
    regime = scoring.market_regime(zigzag(0.002, 0.0))
    assert regime["trend"] == "Bull"
    assert regime["volatility"] == "Low"
    assert regime["realized_vol_20d"] == pytest.approx(0.0, abs=1e-6)


def test_regime_of_a_falling_series_is_bear() -> None:
    assert scoring.market_regime(zigzag(-0.002, 0.0))["trend"] == "Bear"


def test_regime_of_a_late_rebound_is_transition() -> None:
    t = np.arange(300)
    log_close = np.where(t < 290, -0.002 * t, -0.58 + 0.06 * (t - 289))
    assert scoring.market_regime(np.exp(log_close))["trend"] == "Transition"


@pytest.mark.parametrize(
    ("annual", "label"), [(0.06, "Low"), (0.16, "Normal"), (0.25, "Elevated"), (0.45, "High")]
)
def test_regime_volatility_labels(annual: float, label: str) -> None:
    swing = annual / (np.sqrt(20 / 19) * np.sqrt(252))  # std (ddof=1) of ±swing log returns
    regime = scoring.market_regime(zigzag(0.001, swing))
    assert regime["volatility"] == label
    assert regime["realized_vol_20d"] == pytest.approx(annual, abs=1e-4)


def test_regime_needs_21_closes() -> None:
    assert scoring.market_regime(np.linspace(10, 20, 20)) == {
        "trend": None,
        "volatility": None,
        "realized_vol_20d": None,
    }
    assert scoring.market_regime(np.linspace(10, 20, 21))["trend"] == "Transition"  # no SMA200


def test_rescore_gives_what_score_gives_for_each_style(cross_section: pd.DataFrame) -> None:
    """``rescore`` (the service's trade-style re-ranking) drops exactly the columns ``score``
    adds and scores again: the same table as scoring the inputs in that style."""
    plan = {"account_size": 50_000.0, "risk_pct": 2.0}
    swing = scoring.score(cross_section, style="Short-term swing", **plan)
    added = set(swing.columns) - set(cross_section.columns)
    assert added == {"rank", *scoring.SCORE_COLUMNS} | {c for c in added if c.startswith("tech_")}
    for style in scoring.STYLES:
        direct = scoring.score(cross_section, style=style, **plan)
        pd.testing.assert_frame_equal(scoring.rescore(swing, style=style, **plan), direct)
