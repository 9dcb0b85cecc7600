"""Scores, in one vocabulary: one function per score, each formula documented where it lives.

Everything here works on the small cross-section of a scan (one row per ticker, ~6,000 rows)
and, for a backtest, on a panel of many dates at once: ``by`` names each row's date, and
percentile ranks (``pct``) are then taken within each date, so a panel row gets the numbers a
scan as of its date gives it. Ranks are cross-sectional, 0–100, over the tickers scored on the
date; a missing input leaves its component out and the remaining weights are renormalised, so a
young listing still gets a score from what it has.

Column names are the app's (../shared/app-contract.md) where the app shows the number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.config import TradeStyle
from pipeline.cross_section import Dates, pct_values
from pipeline.vocabulary import BEARISH_SIGNALS, LONG_SIGNALS, MERIT_BAND_FLOORS


@dataclass(frozen=True)
class StylePreset:
    """How a trade style sets the horizon of ranking and the trade plan."""

    momentum: dict[str, float]  # return column → weight in the momentum component
    stop_atr: float  # stop distance in ATR(14)s
    reward_risk: float  # target distance in multiples of the stop distance
    horizon_days: int


# keyed by the canonical names of pipeline.vocabulary.TRADE_STYLES
STYLES: dict[str, StylePreset] = {
    "Day trading": StylePreset({"ret_5d": 0.5, "ret_21d": 0.5}, 1.0, 1.5, 1),
    "Short-term swing": StylePreset(
        {"ret_21d": 0.2, "ret_63d": 0.4, "ret_126d": 0.4}, 2.0, 2.0, 10
    ),
    "Position / longer-term": StylePreset(
        {"ret_63d": 0.2, "ret_126d": 0.4, "ret_252d": 0.4}, 3.0, 3.0, 60
    ),
}

TECH_WEIGHTS = {
    "trend": 0.25,
    "momentum": 0.25,
    "relative_strength": 0.15,
    "direction": 0.15,
    "rsi": 0.10,
    "flow": 0.10,
}
MERIT_FLAG_PENALTY = 8.0
FLAG_LABELS = {
    "HIGH_ATR": "high ATR",
    "LOW_LIQUIDITY": "low liquidity",
    "PENNY_STOCK": "penny stock",
    "SHORT_HISTORY": "short history",
    "EXTENDED": "extended above SMA20",
    "OVERBOUGHT": "overbought",
}


Groups = Dates | None  # a panel's rows by date; None: one cross-section


def pct(values: pd.Series, by: Groups = None) -> pd.Series:
    """Cross-sectional percentile rank, 0–100 (ties share the average rank; NaN stays NaN),
    within each date of ``by`` when given."""
    x = values.to_numpy(dtype="float64")
    return pd.Series(pct_values(x) if by is None else by.pct(x), index=values.index)


def weighted_mean(parts: dict[str, pd.Series], weights: dict[str, float]) -> pd.Series:
    """Row-wise weighted mean of ``parts``, skipping NaN parts and renormalising their weights."""
    total = norm = 0.0
    for name, part in parts.items():  # summed in order, as numpy sums a stack along axis 0
        values = np.asarray(part, dtype="float64")
        present = ~np.isnan(values)
        total = total + np.where(present, values, 0.0) * weights[name]
        norm = norm + present * weights[name]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(norm > 0, total / norm, np.nan)
    return pd.Series(mean, index=next(iter(parts.values())).index)


def tech_components(t: pd.DataFrame, style: TradeStyle, by: Groups = None) -> pd.DataFrame:
    """The six 0–100 components of TechRating.

    - trend: 25 points each for close > SMA20, close > SMA50, close > SMA200, SMA50 > SMA200
      (over the averages the ticker has history for);
    - momentum: pct of the style's weighted return mix (swing: 0.2·r21 + 0.4·r63 + 0.4·r126);
    - relative_strength: pct of the 63-day return relative to the benchmark;
    - direction: 50 + 50 · (+DI − −DI)/(+DI + −DI) · min(ADX/40, 1);
    - rsi: 100 − 2.5·|RSI14 − 60|, clipped to 0–100 (healthy momentum scores best);
    - flow: MFI(14), volume-weighted buying pressure.
    """
    gaps = _columns(t, "dist_sma20", "dist_sma50", "dist_sma200", "sma50_vs_sma200")
    known = ~np.isnan(gaps)
    with np.errstate(invalid="ignore", divide="ignore"):
        trend = (np.where(known, gaps > 0, 0.0).sum(axis=0) / known.sum(axis=0)) * 100.0
    preset = STYLES[style]
    mix = weighted_mean({c: t[c] for c in preset.momentum}, preset.momentum)
    plus, minus, adx, rsi = _columns(t, "plus_di14", "minus_di14", "adx14", "rsi14")
    di_sum = plus + minus
    with np.errstate(invalid="ignore", divide="ignore"):
        balance = np.where(di_sum > 0, (plus - minus) / di_sum, 0.0)
    direction = 50.0 + 50.0 * balance * np.minimum(adx / 40.0, 1.0)
    return pd.DataFrame(
        {
            "trend": trend,
            "momentum": pct(mix, by).to_numpy(),
            "relative_strength": pct(t["rs_63d"], by).to_numpy(),
            "direction": direction,
            "rsi": np.clip(100.0 - 2.5 * np.abs(rsi - 60.0), 0.0, 100.0),
            "flow": t["mfi14"].to_numpy(dtype="float64"),
        },
        index=t.index,
    )


def _columns(t: pd.DataFrame, *names: str) -> np.ndarray:
    """``t``'s ``names`` columns as rows of one float array."""
    return np.stack([t[name].to_numpy(dtype="float64") for name in names])


def tech_rating(components: pd.DataFrame) -> pd.Series:
    """TechRating, 0–100: weighted mean of the components (weights in ``TECH_WEIGHTS``)."""
    parts = {name: components[name] for name in TECH_WEIGHTS}
    return weighted_mean(parts, TECH_WEIGHTS).round(1)


def signal(rating: pd.Series, trend: pd.Series) -> pd.Series:
    """Signal from TechRating and the trend component.

    Strong Long: rating ≥ 80 and trend ≥ 75. Long: rating ≥ 65. Short: rating ≤ 20 and
    trend ≤ 25. Avoid: rating ≤ 35. Neutral otherwise.
    """
    index = rating.index
    rating, trend = (np.asarray(rating, dtype="float64"), np.asarray(trend, dtype="float64"))
    choice = np.select(
        [
            (rating >= 80) & (trend >= 75),
            rating >= 65,
            (rating <= 20) & (trend <= 25),
            rating <= 35,
        ],
        ["Strong Long", "Long", "Short", "Avoid"],
        "Neutral",
    )
    return pd.Series(choice, index=index, dtype="object")


def composite(
    tech: pd.Series, alpha: pd.Series | None, weight: float, by: Groups = None
) -> pd.Series:
    """Composite score, 0–100: ``(1 − w)·pct(TechRating) + w·pct(AlphaScore)``,
    ``w = TECHNIC_ALPHA_WEIGHT`` (default 0.35).

    Both parts are cross-sectional percentiles (0–100 over this scan's scored tickers; the
    AlphaScore percentile over those that have one), so the ML part can move the ranking as
    much as its weight says whatever AlphaScore's own scale (a z-score, see
    :mod:`pipeline.alpha.inference`). Without a model (``alpha`` None) the weight is 0; a row
    without an AlphaScore (outside the model's universe) gets the neutral 50 for that part.
    """
    if alpha is None or weight == 0:
        return pct(tech, by)
    return (1.0 - weight) * pct(tech, by) + weight * pct(alpha, by).fillna(50.0)


def trade_plan(
    t: pd.DataFrame, sig: pd.Series, style: TradeStyle, account_size: float, risk_pct: float
) -> pd.DataFrame:
    """Entry, stop, target, reward/risk and position size for the style.

    Entry is the last close. Long plans (every signal but Short) stop ``stop_atr`` ATR(14)s
    below entry (never below 1% of entry) and target ``reward_risk`` stop distances above it;
    Short plans mirror that (the target never below 1% of entry). Shares =
    floor(account · risk% / stop distance), capped at what the account can buy outright.
    """
    preset = STYLES[style]
    entry, atr = _columns(t, "close", "atr14")
    dist = np.minimum(preset.stop_atr * atr, 0.99 * entry)
    side = np.where(np.asarray(sig) == "Short", -1.0, 1.0)
    stop = entry - side * dist
    target = np.maximum(entry + side * preset.reward_risk * dist, 0.01 * entry)
    risk_dollars = account_size * risk_pct / 100.0
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.floor(np.minimum(risk_dollars / dist, account_size / entry))
    cents = entry >= 1.0
    return pd.DataFrame(
        {
            "entry": _round(entry, cents),
            "stop": _round(stop, cents),
            "target": _round(target, cents),
            "rrr": preset.reward_risk,
            "position_shares": np.nan_to_num(shares, nan=0.0).astype("int64"),
        },
        index=t.index,
    )


def _round(values: np.ndarray, cents: np.ndarray) -> np.ndarray:
    """Prices to the cent, or to 4 decimals below $1."""
    return np.where(cents, values.round(2), values.round(4))


def merit_flags(t: pd.DataFrame) -> pd.Series:
    """Risk flags, '|'-joined (see :func:`merit_flag_hits`)."""
    return flag_names(merit_flag_hits(t), t.index)


def flag_names(hits: np.ndarray, index: pd.Index) -> pd.Series:
    """The rows of :func:`merit_flag_hits` as '|'-joined flag names."""
    return pd.Series(
        ["|".join(names) for names in _selected(hits, list(FLAG_LABELS))],
        index=index,
        dtype="object",
    )


def merit_flag_hits(t: pd.DataFrame) -> np.ndarray:
    """Which risk flags each row raises, one column per flag of :data:`FLAG_LABELS`:
    HIGH_ATR (ATR% > 6%), LOW_LIQUIDITY (20-day average dollar volume < $5M), PENNY_STOCK
    (close < $5), SHORT_HISTORY (< 252 bars), EXTENDED (> 15% above SMA20), OVERBOUGHT
    (RSI14 > 75)."""
    atr, liquidity, close, bars, dist, rsi = _columns(
        t, "atr14_pct", "avg_dollar_volume_20d", "close", "bars", "dist_sma20", "rsi14"
    )
    rules = {  # NaN compares False: a missing input raises no flag
        "HIGH_ATR": atr > 0.06,
        "LOW_LIQUIDITY": liquidity < 5e6,
        "PENNY_STOCK": close < 5.0,
        "SHORT_HISTORY": bars < 252,
        "EXTENDED": dist > 0.15,
        "OVERBOUGHT": rsi > 75,
    }
    return np.stack([np.asarray(rules[name], dtype=bool) for name in FLAG_LABELS], axis=1)


def _selected(hits: np.ndarray, names: list[str]) -> list[tuple[str, ...]]:
    """Per row of a boolean matrix, the names of its true columns (rows share few patterns,
    so each pattern is decoded once)."""
    codes = hits.astype(np.int64) @ (1 << np.arange(hits.shape[1], dtype=np.int64))
    decoded: dict[int, tuple[str, ...]] = {}
    out = []
    for code in codes.tolist():
        if code not in decoded:
            decoded[code] = tuple(n for i, n in enumerate(names) if code >> i & 1)
        out.append(decoded[code])
    return out


def merit_score(
    t: pd.DataFrame, rating: pd.Series, n_flags: np.ndarray, by: Groups = None
) -> pd.Series:
    """MeritScore, 0–100: 0.40·TechRating + 0.20·pct(liquidity) + 0.20·(100 − pct(ATR%))
    + 0.20·pct(relative strength), minus 8 points per merit flag (``n_flags`` per row),
    clipped to 0–100."""
    base = weighted_mean(
        {
            "tech": rating,
            "liquidity": pct(t["avg_dollar_volume_20d"], by),
            "stability": 100.0 - pct(t["atr14_pct"], by),
            "rs": pct(t["rs_63d"], by),
        },
        {"tech": 0.40, "liquidity": 0.20, "stability": 0.20, "rs": 0.20},
    )
    penalty = MERIT_FLAG_PENALTY * np.asarray(n_flags, dtype="float64")
    merit = np.clip(base.to_numpy() - penalty, 0.0, 100.0)
    return pd.Series(merit.round(1), index=t.index)


def merit_band(score: pd.Series) -> pd.Series:
    """A+ ≥ 90, A ≥ 80, B ≥ 65, C ≥ 50, D below (``vocabulary.MERIT_BAND_FLOORS``)."""
    value = score.to_numpy(dtype="float64")
    choice = np.select(
        [value >= floor for floor, _ in MERIT_BAND_FLOORS],
        [band for _, band in MERIT_BAND_FLOORS],
        MERIT_BAND_FLOORS[-1][1],
    )
    return pd.Series(choice, index=score.index, dtype="object")


def ics(t: pd.DataFrame, rating: pd.Series, trend: pd.Series, by: Groups = None) -> pd.Series:
    """ICS (institutional-core score), 0–100: 0.35·TechRating + 0.20·pct(liquidity)
    + 0.15·pct(market cap) + 0.15·(100 − pct(ATR%)) + 0.15·trend."""
    return weighted_mean(
        {
            "tech": rating,
            "liquidity": pct(t["avg_dollar_volume_20d"], by),
            "size": pct(t["market_cap"], by),
            "stability": 100.0 - pct(t["atr14_pct"], by),
            "trend": trend,
        },
        {"tech": 0.35, "liquidity": 0.20, "size": 0.15, "stability": 0.15, "trend": 0.15},
    ).round(1)


def ultra_risky(t: pd.DataFrame) -> pd.Series:
    """IsUltraRisky: close < $1, ATR% > 10%, 20-day average dollar volume < $1M, or one of
    those unknown."""
    close, atr, liquidity = _columns(t, "close", "atr14_pct", "avg_dollar_volume_20d")
    risky = (close < 1.0) | (atr > 0.10) | (liquidity < 1e6)
    return pd.Series(risky | np.isnan(close + atr + liquidity), index=t.index)


def tier(score: pd.Series, sig: pd.Series, risky: pd.Series) -> pd.Series:
    """Tier from ICS: CORE (ICS ≥ 70, a Long signal, not ultra-risky), SATELLITE (ICS ≥ 55,
    not Avoid/Short), WATCH otherwise."""
    labels = np.asarray(sig)
    value, risky = np.asarray(score, dtype="float64"), np.asarray(risky, dtype=bool)
    longish, bearish = np.isin(labels, LONG_SIGNALS), np.isin(labels, BEARISH_SIGNALS)
    choice = np.select(
        [(value >= 70) & longish & ~risky, (value >= 55) & ~bearish],
        ["CORE", "SATELLITE"],
        "WATCH",
    )
    return pd.Series(choice, index=score.index, dtype="object")


def play_style(atr_pct: pd.Series) -> pd.Series:
    """PlayStyle from ATR%: Stable (< 2.5%), Hybrid (< 5%), Explosive."""
    atr = atr_pct.to_numpy(dtype="float64")
    return pd.Series(
        np.select([atr < 0.025, atr < 0.05], ["Stable", "Hybrid"], "Explosive"),
        index=atr_pct.index,
        dtype="object",
    )


def profile(style: pd.Series, risky: pd.Series) -> pd.Series:
    """Risk profile the row fits: conservative (Stable), moderate (Hybrid), aggressive
    (Explosive or ultra-risky)."""
    labels = np.asarray(style)
    choice = np.select(
        [np.asarray(risky, dtype=bool) | (labels == "Explosive"), labels == "Hybrid"],
        ["aggressive", "moderate"],
        "conservative",
    )
    return pd.Series(choice, index=style.index, dtype="str")


def score(
    t: pd.DataFrame,
    *,
    style: TradeStyle,
    account_size: float,
    risk_pct: float,
    alpha: pd.Series | None = None,
    alpha_weight: float = 0.0,
    win_prob: pd.Series | None = None,
) -> pd.DataFrame:
    """Every score for the cross-section ``t`` (features plus Sector/Industry/market_cap),
    ranked best first by the composite score (ties: TechRating, then ticker).

    ``alpha`` (AlphaScore) and ``win_prob`` (win_prob_10d) come from the ML model; without
    one they are null and ``alpha_weight`` is ignored."""
    core = labels(t, style=style, alpha=alpha, alpha_weight=alpha_weight)
    parts, rating, sig, band = core.parts, core.rating, core.signal, core.merit_band
    flags = flag_names(core.flag_hits, t.index)
    style_label = play_style(t["atr14_pct"])
    prof = profile(style_label, core.risky)
    events = active_signals(t)
    scores = pd.DataFrame(
        {
            "TechRating": rating,
            "AlphaScore": np.nan if alpha is None else alpha,
            "composite_score": core.composite,
            "Signal": sig,
            "ICS": core.ics,
            "Tier": core.tier,
            "merit_score": core.merit_score,
            "merit_band": band,
            "merit_flags": flags,
            "merit_summary": merit_summary(band, parts["trend"], t["ret_63d"], t["rs_63d"], flags),
            "PlayStyle": style_label,
            "IsUltraRisky": core.risky,
            "Profile": prof,
            "ProfileLabel": prof.str.capitalize(),
            "win_prob_10d": np.nan if win_prob is None else win_prob,
            "signals": events,
            "note": note(sig, rating, t["rsi14"], t["rel_volume"], events),
        },
        index=t.index,
    )
    plan = trade_plan(t, sig, style, account_size, risk_pct)
    ticker_order = pd.factorize(t.index, sort=True)[0]
    order = np.lexsort((ticker_order, -rating.fillna(-1).to_numpy(), -core.composite.to_numpy()))
    rank = np.empty(len(t), dtype=np.int64)
    rank[order] = np.arange(1, len(t) + 1)
    ranked = pd.DataFrame({"rank": rank}, index=t.index)
    out = pd.concat([ranked, t, parts.add_prefix("tech_"), scores, plan], axis=1)
    return out.iloc[order]


@dataclass(frozen=True)
class Labels:
    """The numbers and labels a scan publishes for each row, before its words and its plan."""

    parts: pd.DataFrame  # the TechRating components
    rating: pd.Series  # TechRating
    signal: pd.Series
    risky: pd.Series  # IsUltraRisky
    ics: pd.Series
    tier: pd.Series
    merit_score: pd.Series
    merit_band: pd.Series
    flag_hits: np.ndarray  # merit_flag_hits
    composite: pd.Series  # composite_score, rounded to 2 places


def labels(
    t: pd.DataFrame,
    *,
    style: TradeStyle,
    alpha: pd.Series | None = None,
    alpha_weight: float = 0.0,
    by: Groups = None,
) -> Labels:
    """TechRating, signal, tier, MeritScore and band, and the composite score of every row of
    ``t``: a scan's cross-section, or with ``by`` a backtest's panel of many dates."""
    parts = tech_components(t, style, by)
    rating = tech_rating(parts)
    sig = signal(rating, parts["trend"])
    hits = merit_flag_hits(t)
    merit = merit_score(t, rating, hits.sum(axis=1), by)
    risky = ultra_risky(t)
    ics_score = ics(t, rating, parts["trend"], by)
    return Labels(
        parts=parts,
        rating=rating,
        signal=sig,
        risky=risky,
        ics=ics_score,
        tier=tier(ics_score, sig, risky),
        merit_score=merit,
        merit_band=merit_band(merit),
        flag_hits=hits,
        composite=composite(rating, alpha, alpha_weight, by).round(2),
    )


# Columns score() adds to its input (besides "rank" and the "tech_" components).
SCORE_COLUMNS = (
    "TechRating", "AlphaScore", "composite_score", "Signal", "ICS", "Tier", "merit_score",
    "merit_band", "merit_flags", "merit_summary", "PlayStyle", "IsUltraRisky", "Profile",
    "ProfileLabel", "win_prob_10d", "signals", "note", "entry", "stop", "target", "rrr",
    "position_shares",
)  # fmt: skip


def rescore(
    table: pd.DataFrame,
    *,
    style: TradeStyle,
    account_size: float,
    risk_pct: float,
    alpha_weight: float = 0.0,
) -> pd.DataFrame:
    """A scored table scored and ranked again for another trade style: the same inputs
    through :func:`score`, keeping its AlphaScore and win_prob_10d."""
    added = {"rank", *SCORE_COLUMNS}
    inputs = table.drop(columns=[c for c in table.columns if c in added or c.startswith("tech_")])
    alpha = table["AlphaScore"] if table["AlphaScore"].notna().any() else None
    out = score(
        inputs,
        style=style,
        account_size=account_size,
        risk_pct=risk_pct,
        alpha=alpha,
        alpha_weight=alpha_weight if alpha is not None else 0.0,
    )
    out["win_prob_10d"] = table["win_prob_10d"].reindex(out.index)
    return out


SIGNAL_LABELS = {
    "new_52w_high": "new 52-week high",
    "new_52w_low": "new 52-week low",
    "golden_cross": "golden cross",
    "death_cross": "death cross",
    "oversold": "oversold",
    "overbought": "overbought",
    "unusual_volume": "unusual volume",
    "breakout_20d": "20-day breakout",
    "macd_bull_cross": "MACD bullish cross",
    "macd_bear_cross": "MACD bearish cross",
    "above_sma200": "above SMA200",
}


def active_signals(t: pd.DataFrame) -> pd.Series:
    """The names of each row's true signals, in :data:`SIGNAL_LABELS` order."""
    hits = t[list(SIGNAL_LABELS)].to_numpy(dtype=bool)
    return pd.Series(
        [list(names) for names in _selected(hits, list(SIGNAL_LABELS))],
        index=t.index,
        dtype="object",
    )


def note(
    sig: pd.Series, rating: pd.Series, rsi: pd.Series, rel_volume: pd.Series, events: pd.Series
) -> list[str]:
    """One-line rationale: signal, TechRating, RSI, relative volume and up to two events."""
    heads = [f"{s}: TechRating {r:.0f}" for s, r in zip(sig.tolist(), rating.tolist(), strict=True)]
    rsis = [f", RSI {x:.0f}" if x == x else "" for x in rsi.tolist()]
    volumes = [f", {x:.1f}x volume" if x == x else "" for x in rel_volume.tolist()]
    shown: dict[tuple[str, ...], str] = {}  # rows share few sets of events: each is named once
    tails = []
    for names in events:
        key = tuple(names)
        if key not in shown:
            labels = [SIGNAL_LABELS[e] for e in key if e != "above_sma200"][:2]
            shown[key] = "".join(f", {label}" for label in labels)
        tails.append(shown[key])
    return [a + b + c + d for a, b, c, d in zip(heads, rsis, volumes, tails, strict=True)]


def merit_summary(
    band: pd.Series, trend: pd.Series, ret_63d: pd.Series, rs_63d: pd.Series, flags: pd.Series
) -> list[str]:
    """One sentence: band, trend, 63-day momentum against the benchmark, and the flags."""
    levels = np.asarray(trend, dtype="float64")
    shapes = np.select(
        [levels >= 75, levels >= 50],
        ["uptrend above its key averages", "mixed trend"],
        "downtrend below its key averages",
    ).tolist()
    heads = [f"{b}-grade setup: {shape}" for b, shape in zip(band.tolist(), shapes, strict=True)]
    relative = np.where(np.asarray(rs_63d) > 0, " (ahead of", " (behind").tolist()
    momentum = [
        ""
        if ret != ret
        else f", 63-day return {ret:+.1%}" + ("" if rs != rs else f"{side} the benchmark)")
        for ret, rs, side in zip(ret_63d.tolist(), rs_63d.tolist(), relative, strict=True)
    ]
    watched: dict[str, str] = {"": "."}  # rows share few sets of flags: each is worded once
    for flagged in flags.tolist():
        if flagged not in watched:
            watched[flagged] = (
                "; watch " + ", ".join(FLAG_LABELS[f] for f in flagged.split("|")) + "."
            )
    ends = [watched[flagged] for flagged in flags.tolist()]
    return [a + b + c for a, b, c in zip(heads, momentum, ends, strict=True)]


VOLATILITY_LABELS = ((0.12, "Low"), (0.20, "Normal"), (0.30, "Elevated"), (np.inf, "High"))


def market_regime(close: np.ndarray) -> dict[str, object]:
    """Benchmark trend and volatility labels.

    Trend: Bull when close > SMA200 and SMA50 > SMA200, Bear when both are below, else
    Transition. Volatility: annualised standard deviation of the last 20 daily log returns;
    Low < 12%, Normal < 20%, Elevated < 30%, High above.
    """
    from pipeline.indicators import sma  # Numba: imported by the scans that need it only

    close = np.asarray(close, dtype="float64")
    if len(close) < 21:
        return {"trend": None, "volatility": None, "realized_vol_20d": None}
    sma50, sma200 = sma(close, 50)[-1], sma(close, 200)[-1]
    last = close[-1]
    if last > sma200 and sma50 > sma200:
        trend = "Bull"
    elif last < sma200 and sma50 < sma200:
        trend = "Bear"
    else:
        trend = "Transition"
    vol = float(np.std(np.diff(np.log(close[-21:])), ddof=1) * np.sqrt(252))
    label = next(name for cap, name in VOLATILITY_LABELS if vol < cap)
    return {"trend": trend, "volatility": label, "realized_vol_20d": round(vol, 4)}
