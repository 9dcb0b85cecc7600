"""TA-Lib parity, the core promise of the indicator layer.

"Values equal TA-Lib's to 1e-9 relative for every parameter value, including the first value
after the lookback." Today they are bit-identical, so every comparison asserts both: the same
NaN pattern, ``np.array_equal`` on the values, and ``rtol=1e-9`` (the promise as stated).
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import pytest
import talib

from pipeline import indicators
from pipeline.indicators import REGISTRY, Indicator
from tests.conftest import random_walk

# --------------------------------------------------------------------------- helpers


def talib_args(ind: Indicator, params: dict[str, Any]) -> dict[str, Any]:
    """TA-Lib keyword arguments for ``params``, mapped through ``Param.talib``."""
    out = dict(ind.talib_extra)
    for name, value in ind.resolve(**params).items():
        names = ind.params[name].talib
        for talib_name in (names,) if isinstance(names, str) else names:
            out[talib_name] = value
    return out


def as_tuple(result: Any) -> tuple[np.ndarray, ...]:
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


def talib_one(ind: Indicator, inputs: dict[str, np.ndarray], params: dict[str, Any]):
    """``talib.<NAME>`` on one ticker's arrays, always as a tuple of outputs."""
    fn = getattr(talib, ind.name)
    args = [np.ascontiguousarray(inputs[i], dtype=np.float64) for i in ind.inputs]
    return as_tuple(fn(*args, **talib_args(ind, params)))


def ours_one(ind: Indicator, inputs: dict[str, np.ndarray], params: dict[str, Any]):
    return as_tuple(ind.one(*(inputs[i] for i in ind.inputs), **params))


def assert_parity(ours: tuple[np.ndarray, ...], ref: tuple[np.ndarray, ...], what: str) -> None:
    """Same arity, same NaN pattern, bit-identical values and within rtol 1e-9."""
    assert len(ours) == len(ref), f"{what}: {len(ours)} outputs, TA-Lib has {len(ref)}"
    for j, (a, b) in enumerate(zip(ours, ref, strict=True)):
        label = f"{what} output {j}"
        assert a.shape == b.shape, label
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        if not np.array_equal(nan_a, nan_b):
            first = int(np.flatnonzero(nan_a != nan_b)[0])
            pytest.fail(f"{label}: NaN pattern differs first at {first}: {a[first]} vs {b[first]}")
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=0, equal_nan=True, err_msg=label)
        assert np.array_equal(a[~nan_a], b[~nan_b]), f"{label}: not bit-identical"


def lookback(ind: Indicator, params: dict[str, Any]) -> int:
    return ind.lookback(**ind.resolve(**params))


def scaled_walk(n: int, seed: int, scale: float = 1.0) -> dict[str, np.ndarray]:
    walk = random_walk(n, seed)
    return {k: v if k == "volume" else v * scale for k, v in walk.items()}


# --------------------------------------------------------------------------- real universe

REAL_CASES: dict[str, list[dict[str, Any]]] = {
    "SMA": [{"n": 5}, {"n": 50}, {"n": 200}],
    "EMA": [{"n": 5}, {"n": 50}, {"n": 200}],
    "RSI": [{}, {"n": 2}, {"n": 30}],
    "MACD": [{}, {"fast": 5, "slow": 35, "signal": 5}],
    "BBANDS": [{}, {"n": 10, "k": 1.5}],
    "ATR": [{"n": 7}, {}, {"n": 28}],
    "ADX": [{"n": 7}, {}, {"n": 28}],
    "PLUS_DI": [{"n": 7}, {}, {"n": 28}],
    "MINUS_DI": [{"n": 7}, {}, {"n": 28}],
    "STOCH": [{}, {"k": 5, "k_smooth": 3, "d": 5}],
    "OBV": [{}],
    "MFI": [{"n": 7}, {}],
    "CCI": [{"n": 14}, {}],
    "WILLR": [{"n": 7}, {}],
    "ROC": [{"n": 1}, {"n": 10}, {"n": 63}],
}
REAL_IDS = [(name, params) for name, cases in REAL_CASES.items() for params in cases]


def _case_id(case: tuple[str, dict[str, Any]]) -> str:
    name, params = case
    return name + "".join(f"-{k}{v}" for k, v in params.items()) if params else f"{name}-default"


def test_real_cases_cover_the_whole_registry():
    assert set(REAL_CASES) == set(REGISTRY)


@pytest.fixture(scope="module")
def real_reference(real_clean):
    """TA-Lib per ticker over the real universe, computed once per case and module."""
    cache: dict[str, tuple[np.ndarray, ...]] = {}
    arrays, bounds = real_clean.arrays, real_clean.bounds

    def reference(name: str, params: dict[str, Any]) -> tuple[np.ndarray, ...]:
        key = _case_id((name, params))
        if key not in cache:
            ind = REGISTRY[name]
            fn = getattr(talib, name)
            kwargs = talib_args(ind, params)
            cols = [arrays[i] for i in ind.inputs]
            parts: list[tuple[np.ndarray, ...]] = [
                as_tuple(fn(*(c[lo:hi] for c in cols), **kwargs)) for lo, hi in pairwise(bounds)
            ]
            cache[key] = tuple(np.concatenate(out) for out in zip(*parts, strict=True))
        return cache[key]

    return reference


@pytest.mark.slow
@pytest.mark.parametrize("case", REAL_IDS, ids=_case_id)
def test_segmented_equals_talib_per_ticker_on_real_universe(case, real_clean, real_reference):
    name, params = case
    ind = REGISTRY[name]
    ours = ind.segmented(real_clean.arrays, real_clean.bounds, **params)
    ref = real_reference(name, params)
    assert_parity(ours, ref, _case_id(case))
    # every ticker has a value from exactly its first bar after the lookback on
    lb = lookback(ind, params)
    expected = int(np.maximum(np.diff(real_clean.bounds) - lb, 0).sum())
    for out in ours:
        assert int(np.isfinite(out).sum()) == expected


# --------------------------------------------------------------------------- synthetic sweep

SWEEP: dict[str, list[dict[str, Any]]] = {
    "SMA": [{"n": n} for n in (1, 2, 3, 10, 30, 199, 200, 201)],
    "EMA": [{"n": n} for n in (1, 2, 3, 10, 30, 199, 200, 201)],
    "RSI": [{"n": n} for n in (2, 3, 14, 50, 199, 200)],
    "MACD": [
        {"fast": 2, "slow": 3, "signal": 1},
        {"fast": 2, "slow": 2, "signal": 2},
        {},
        {"fast": 26, "slow": 12, "signal": 9},  # fast > slow: TA-Lib swaps them
        {"fast": 35, "slow": 5, "signal": 5},
        {"fast": 12, "slow": 26, "signal": 1},
        {"fast": 50, "slow": 150, "signal": 50},
        {"fast": 12, "slow": 200, "signal": 9},
    ],
    "BBANDS": [
        {"n": 2, "k": 2.0},
        {"n": 20, "k": 0.0},
        {},
        {"n": 20, "k": 3.0},
        {"n": 5, "k": 1.5},
        {"n": 200, "k": 2.0},
        {"n": 201, "k": 2.0},
    ],
    "ATR": [{"n": n} for n in (1, 2, 14, 199, 200)],
    "ADX": [{"n": n} for n in (2, 3, 14, 100, 101)],
    "PLUS_DI": [{"n": n} for n in (1, 2, 14, 199, 200)],
    "MINUS_DI": [{"n": n} for n in (1, 2, 14, 199, 200)],
    "STOCH": [
        {"k": 1, "k_smooth": 1, "d": 1},
        {"k": 2, "k_smooth": 1, "d": 1},
        {"k": 5, "k_smooth": 1, "d": 5},
        {"k": 5, "k_smooth": 3, "d": 1},
        {},
        {"k": 21, "k_smooth": 5, "d": 7},
        {"k": 196, "k_smooth": 3, "d": 3},
        {"k": 197, "k_smooth": 3, "d": 3},
    ],
    "OBV": [{}],
    "MFI": [{"n": n} for n in (2, 3, 14, 199, 200)],
    "CCI": [{"n": n} for n in (2, 3, 14, 20, 200, 201)],
    "WILLR": [{"n": n} for n in (2, 3, 14, 200, 201)],
    "ROC": [{"n": n} for n in (1, 2, 10, 199, 200, 201)],
}
SWEEP_IDS = [(name, params) for name, cases in SWEEP.items() for params in cases]
SWEEP_LENGTH = 200


def test_sweep_covers_the_whole_registry():
    assert set(SWEEP) == set(REGISTRY)


@pytest.mark.parametrize("case", SWEEP_IDS, ids=_case_id)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_equals_talib_on_random_walks(case, seed):
    name, params = case
    walk = random_walk(SWEEP_LENGTH, seed)
    assert_parity(
        ours_one(REGISTRY[name], walk, params),
        talib_one(REGISTRY[name], walk, params),
        f"{_case_id(case)} seed {seed}",
    )


@pytest.mark.parametrize("case", SWEEP_IDS, ids=_case_id)
@pytest.mark.parametrize("scale", [1e-6, 1e5])
def test_one_equals_talib_at_tiny_and_huge_price_scales(case, scale):
    """TA-Lib's zero tests are scaled (``|v| <= 1e-14·s``); parity must hold at any level."""
    name, params = case
    walk = scaled_walk(SWEEP_LENGTH, 7, scale)
    assert_parity(
        ours_one(REGISTRY[name], walk, params),
        talib_one(REGISTRY[name], walk, params),
        f"{_case_id(case)} scale {scale}",
    )


@pytest.mark.parametrize("case", SWEEP_IDS, ids=_case_id)
def test_first_value_after_lookback_equals_talib(case):
    """A series exactly ``lookback + 1`` bars long has one value, and it is TA-Lib's."""
    name, params = case
    ind = REGISTRY[name]
    lb = lookback(ind, params)
    walk = random_walk(lb + 1, 5)
    ours = ours_one(ind, walk, params)
    assert_parity(ours, talib_one(ind, walk, params), _case_id(case))
    for out in ours:
        assert np.isnan(out[:-1]).all()
        assert np.isfinite(out[-1])


@pytest.mark.parametrize("case", SWEEP_IDS, ids=_case_id)
def test_series_of_exactly_the_lookback_is_all_nan(case):
    name, params = case
    ind = REGISTRY[name]
    walk = random_walk(lookback(ind, params), 6)
    ours = ours_one(ind, walk, params)
    assert_parity(ours, talib_one(ind, walk, params), _case_id(case))
    assert all(np.isnan(out).all() for out in ours)


@pytest.mark.parametrize("name", sorted(n for n, ind in REGISTRY.items() if ind.params))
def test_period_longer_than_series_is_all_nan(name):
    ind = REGISTRY[name]
    params = {p: 60 if spec.kind is int else 2.0 for p, spec in ind.params.items()}
    walk = random_walk(30, 8)
    ours = ours_one(ind, walk, params)
    assert_parity(ours, talib_one(ind, walk, params), name)
    assert all(out.shape == (30,) and np.isnan(out).all() for out in ours)


def test_macd_with_fast_above_slow_equals_the_swapped_call():
    close = random_walk(150, 9)["close"]
    swapped = indicators.macd(close, fast=26, slow=12, signal=9)
    straight = indicators.macd(close, fast=12, slow=26, signal=9)
    for a, b in zip(swapped, straight, strict=True):
        assert np.array_equal(a, b, equal_nan=True)


def test_bbands_k_zero_collapses_the_bands_onto_the_middle():
    close = random_walk(100, 10)["close"]
    upper, middle, lower = indicators.bbands(close, n=20, k=0.0)
    assert np.array_equal(upper, middle, equal_nan=True)
    assert np.array_equal(lower, middle, equal_nan=True)
    assert_parity((upper, middle, lower), talib.BBANDS(close, 20, 0.0, 0.0, 0), "BBANDS k=0")


# --------------------------------------------------------------------------- public 1-D API


def _walk_args(seed: int = 12, n: int = 120) -> dict[str, np.ndarray]:
    return random_walk(n, seed)


# (our call, TA-Lib's call) with TA-Lib's arguments written out, not taken from the registry
PUBLIC_CALLS = {
    "sma": (
        lambda w: indicators.sma(w["close"], 10),
        lambda w: talib.SMA(w["close"], timeperiod=10),
    ),
    "ema": (
        lambda w: indicators.ema(w["close"], 10),
        lambda w: talib.EMA(w["close"], timeperiod=10),
    ),
    "rsi": (lambda w: indicators.rsi(w["close"]), lambda w: talib.RSI(w["close"], 14)),
    "rsi_n": (lambda w: indicators.rsi(w["close"], n=6), lambda w: talib.RSI(w["close"], 6)),
    "macd": (
        lambda w: indicators.macd(w["close"]),
        lambda w: talib.MACD(w["close"], fastperiod=12, slowperiod=26, signalperiod=9),
    ),
    "macd_args": (
        lambda w: indicators.macd(w["close"], 5, 35, 5),
        lambda w: talib.MACD(w["close"], fastperiod=5, slowperiod=35, signalperiod=5),
    ),
    "bbands": (
        lambda w: indicators.bbands(w["close"]),
        lambda w: talib.BBANDS(w["close"], 20, nbdevup=2.0, nbdevdn=2.0, matype=0),
    ),
    "bbands_args": (
        lambda w: indicators.bbands(w["close"], n=10, k=1.5),
        lambda w: talib.BBANDS(w["close"], 10, nbdevup=1.5, nbdevdn=1.5, matype=0),
    ),
    "atr": (
        lambda w: indicators.atr(w["high"], w["low"], w["close"]),
        lambda w: talib.ATR(w["high"], w["low"], w["close"], 14),
    ),
    "adx": (
        lambda w: indicators.adx(w["high"], w["low"], w["close"]),
        lambda w: talib.ADX(w["high"], w["low"], w["close"], 14),
    ),
    "plus_di": (
        lambda w: indicators.plus_di(w["high"], w["low"], w["close"], n=9),
        lambda w: talib.PLUS_DI(w["high"], w["low"], w["close"], 9),
    ),
    "minus_di": (
        lambda w: indicators.minus_di(w["high"], w["low"], w["close"]),
        lambda w: talib.MINUS_DI(w["high"], w["low"], w["close"], 14),
    ),
    "stoch": (
        lambda w: indicators.stoch(w["high"], w["low"], w["close"]),
        lambda w: talib.STOCH(w["high"], w["low"], w["close"], 14, 3, 0, 3, 0),
    ),
    "stoch_args": (
        lambda w: indicators.stoch(w["high"], w["low"], w["close"], k=5, k_smooth=2, d=4),
        lambda w: talib.STOCH(
            w["high"],
            w["low"],
            w["close"],
            fastk_period=5,
            slowk_period=2,
            slowk_matype=0,
            slowd_period=4,
            slowd_matype=0,
        ),
    ),
    "obv": (
        lambda w: indicators.obv(w["close"], w["volume"]),
        lambda w: talib.OBV(w["close"], w["volume"]),
    ),
    "mfi": (
        lambda w: indicators.mfi(w["high"], w["low"], w["close"], w["volume"]),
        lambda w: talib.MFI(w["high"], w["low"], w["close"], w["volume"], 14),
    ),
    "cci": (
        lambda w: indicators.cci(w["high"], w["low"], w["close"]),
        lambda w: talib.CCI(w["high"], w["low"], w["close"], 20),
    ),
    "willr": (
        lambda w: indicators.willr(w["high"], w["low"], w["close"]),
        lambda w: talib.WILLR(w["high"], w["low"], w["close"], 14),
    ),
    "roc": (
        lambda w: indicators.roc(w["close"], 10),
        lambda w: talib.ROC(w["close"], timeperiod=10),
    ),
}


@pytest.mark.parametrize("call", sorted(PUBLIC_CALLS))
def test_public_function_equals_talib(call):
    ours, ref = PUBLIC_CALLS[call]
    walk = _walk_args()
    assert_parity(as_tuple(ours(walk)), as_tuple(ref(walk)), call)


def _with_leading_nans(walk: dict[str, np.ndarray], **nans: int) -> dict[str, np.ndarray]:
    out = {k: v.copy() for k, v in walk.items()}
    for column, count in nans.items():
        out[column][:count] = np.nan
    return out


LEADING_NAN_LAYOUTS = {
    "close5": {"close": 5},
    "all_inputs7": {"open": 7, "high": 7, "low": 7, "close": 7, "volume": 7},
    "ragged": {"high": 3, "low": 9, "close": 6, "volume": 11},
    "all_nan": {"open": 120, "high": 120, "low": 120, "close": 120, "volume": 120},
}


@pytest.mark.parametrize("layout", sorted(LEADING_NAN_LAYOUTS))
@pytest.mark.parametrize("call", sorted(PUBLIC_CALLS))
def test_public_function_skips_leading_nans_like_talib(call, layout):
    """TA-Lib's wrapper starts at the first bar where every input is non-NaN."""
    ours, ref = PUBLIC_CALLS[call]
    walk = _with_leading_nans(_walk_args(), **LEADING_NAN_LAYOUTS[layout])
    assert_parity(as_tuple(ours(walk)), as_tuple(ref(walk)), f"{call} {layout}")


def test_leading_nans_shift_the_lookback():
    close = np.concatenate([np.full(4, np.nan), np.arange(1.0, 11.0)])
    out = indicators.sma(close, 3)
    assert np.isnan(out[:6]).all()
    assert out[6] == 2.0
    assert np.array_equal(out[6:], np.arange(2.0, 10.0))


def test_public_functions_accept_lists_and_integer_arrays():
    values = list(range(1, 11))
    assert np.array_equal(
        indicators.sma(values, 3), indicators.sma(np.arange(1.0, 11.0), 3), equal_nan=True
    )
    assert np.array_equal(
        indicators.roc(np.arange(1, 11), 2), talib.ROC(np.arange(1.0, 11.0), 2), equal_nan=True
    )


# --------------------------------------------------------------------------- hand-written values

NAN = np.nan


def assert_same(actual: np.ndarray, expected: list[float], rtol: float = 0.0) -> None:
    expected_arr = np.asarray(expected, dtype=np.float64)
    np.testing.assert_allclose(actual, expected_arr, rtol=rtol, atol=0, equal_nan=True)


def test_sma_of_one_to_ten():
    assert_same(indicators.sma(np.arange(1.0, 11.0), 3), [NAN, NAN, 2, 3, 4, 5, 6, 7, 8, 9])


def test_sma_period_one_is_the_input():
    x = random_walk(30, 13)["close"]
    assert np.array_equal(indicators.sma(x, 1), x)


def test_ema_of_one_to_ten_is_seeded_with_the_first_mean():
    # k = 2/(3+1) = 0.5; seed mean(1, 2, 3) = 2, then 2 + 0.5·(4 − 2) = 3, …
    assert_same(indicators.ema(np.arange(1.0, 11.0), 3), [NAN, NAN, 2, 3, 4, 5, 6, 7, 8, 9])


def test_ema_period_one_is_the_input():
    x = random_walk(30, 14)["close"]
    assert np.array_equal(indicators.ema(x, 1), x)


def test_roc_of_doubling_series_is_one_hundred():
    assert_same(indicators.roc(np.array([1.0, 2.0, 4.0, 8.0]), 1), [NAN, 100, 100, 100])
    assert_same(indicators.roc(np.array([1.0, 2.0, 4.0, 8.0]), 2), [NAN, NAN, 300, 300])


def test_rsi_of_constant_series_is_zero_after_its_lookback():
    out = indicators.rsi(np.full(20, 7.5), 14)
    assert_same(out, [NAN] * 14 + [0.0] * 6)


def test_rsi_of_rising_and_falling_series():
    assert_same(indicators.rsi(np.arange(1.0, 21.0), 5), [NAN] * 5 + [100.0] * 15)
    assert_same(indicators.rsi(np.arange(20.0, 0.0, -1), 5), [NAN] * 5 + [0.0] * 15)


# From TA-Lib's own tests/test_func.py (test_RSI): tiny prices are not treated as zero moves.
TALIB_RSI_INPUT = np.array(
    [24, 24, 24, 24, 24, 23, 24, 24, 24, 24, 23, 24, 23, 24, 23, 24, 24, 23, 23, 23],
    dtype=np.float64,
)
TALIB_RSI_EXPECTED = [NAN] * 10 + [
    33.333333333333329,
    51.351351351351347,
    39.491916859122398,
    51.84807024709005,
    42.25953803191981,
    52.101824405061215,
    52.101824405061215,
    43.043664867691085,
    43.043664867691085,
    43.043664867691085,
]


@pytest.mark.parametrize("scale", [1e-8, 1e-3])
def test_rsi_matches_talib_test_func_values(scale):
    out = indicators.rsi(TALIB_RSI_INPUT * scale, 10)
    assert_same(out, TALIB_RSI_EXPECTED, rtol=1e-12)
    assert_parity((out,), (talib.RSI(TALIB_RSI_INPUT * scale, 10),), "RSI test_func")


def test_obv_starts_at_first_volume_and_adds_signed_volume():
    close = np.array([1.0, 2.0, 2.0, 1.0, 3.0])
    volume = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    assert_same(indicators.obv(close, volume), [10, 30, 30, -10, 40])


def test_willr_by_hand():
    high = np.array([3.0, 4.0, 5.0])
    low = np.array([1.0, 2.0, 3.0])
    close = np.array([2.0, 3.0, 5.0])
    # bar 1: HH 4, LL 1 → (4 − 3)/3·(−100); bar 2: HH 5, LL 2, close at the high → 0
    assert_same(indicators.willr(high, low, close, 2), [NAN, -100.0 / 3.0, 0.0], rtol=1e-15)


def test_bbands_by_hand():
    upper, middle, lower = indicators.bbands(np.array([1.0, 2.0, 3.0, 4.0]), n=3, k=1.0)
    sd = np.sqrt(2.0 / 3.0)  # population deviation of (1, 2, 3)
    assert_same(middle, [NAN, NAN, 2, 3])
    assert_same(upper, [NAN, NAN, 2 + sd, 3 + sd], rtol=1e-14)
    assert_same(lower, [NAN, NAN, 2 - sd, 3 - sd], rtol=1e-14)


def test_macd_first_value_is_at_its_lookback():
    line, signal, hist = indicators.macd(np.arange(1.0, 41.0))
    for out in (line, signal, hist):
        assert np.isnan(out[:33]).all()
        assert np.isfinite(out[33:]).all()


def test_atr_of_constant_range_is_that_range():
    close = np.full(20, 10.0)
    out = indicators.atr(close + 0.5, close - 0.5, close, 5)
    assert_same(out, [NAN] * 5 + [1.0] * 15)


# --------------------------------------------------------------------------- flat windows


def _flat(n: int = 60, price: float = 10.0) -> dict[str, np.ndarray]:
    c = np.full(n, price)
    return {"open": c, "high": c, "low": c, "close": c, "volume": np.full(n, 1000.0)}


FLAT_ZERO = ["CCI", "STOCH", "WILLR", "MFI", "ADX", "PLUS_DI", "MINUS_DI", "RSI", "ATR"]


@pytest.mark.parametrize("name", FLAT_ZERO)
@pytest.mark.parametrize("price", [10.0, 1e-7, 3.3e5])
def test_constant_prices_give_talib_zeros(name, price):
    ind = REGISTRY[name]
    walk = _flat(price=price)
    params = {"n": 14} if "n" in ind.params else {}
    ours = ours_one(ind, walk, params)
    assert_parity(ours, talib_one(ind, walk, params), f"{name} flat {price}")
    lb = lookback(ind, params)
    for out in ours:
        assert (out[lb:] == 0.0).all()


@pytest.mark.parametrize("price", [10.0, 33.3, 1e-7])
def test_constant_prices_give_bbands_of_zero_width(price):
    upper, middle, lower = indicators.bbands(np.full(40, price))
    assert np.array_equal(upper, middle, equal_nan=True)
    assert np.array_equal(lower, middle, equal_nan=True)
    assert_parity((upper, middle, lower), talib.BBANDS(np.full(40, price), 20, 2, 2, 0), "flat")


def test_flat_stretch_after_moves_gives_bbands_of_zero_width():
    """The running variance is re-centred, so a flat window has exactly zero width."""
    close = np.concatenate([random_walk(100, 15)["close"] * 20, np.full(50, 33.3)])
    upper, middle, lower = indicators.bbands(close, n=20)
    assert np.array_equal(upper[119:], middle[119:])
    assert np.array_equal(lower[119:], middle[119:])
    assert_parity((upper, middle, lower), talib.BBANDS(close, 20, 2, 2, 0), "flat tail")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_flat_stretch_inside_a_walk_equals_talib(name):
    ind = REGISTRY[name]
    walk = random_walk(150, 16)
    for key in ("open", "high", "low", "close"):
        walk[key][60:100] = walk["close"][59]
    walk["volume"][60:100] = 0.0
    params = {p: 10 if spec.kind is int else 2.0 for p, spec in ind.params.items()}
    assert_parity(ours_one(ind, walk, params), talib_one(ind, walk, params), name)


def _tick_walk(n: int, seed: int, scale: float) -> dict[str, np.ndarray]:
    """Prices on a coarse tick grid: many ties, equal highs and lows, zero volumes."""
    rng = np.random.default_rng(seed)
    close = rng.integers(5, 8, n) * scale
    high = close + rng.integers(0, 2, n) * close * 0.1
    low = close - rng.integers(0, 2, n) * close * 0.1
    volume = rng.integers(0, 3, n).astype(np.float64)
    return {"open": close, "high": high, "low": low, "close": close, "volume": volume}


@pytest.mark.parametrize("case", SWEEP_IDS[::2], ids=_case_id)
@pytest.mark.parametrize("scale", [1e-9, 1.0, 1e9])
def test_one_equals_talib_on_tied_tick_prices(case, scale):
    name, params = case
    walk = _tick_walk(SWEEP_LENGTH, 17, scale)
    assert_parity(
        ours_one(REGISTRY[name], walk, params),
        talib_one(REGISTRY[name], walk, params),
        f"{_case_id(case)} ticks {scale}",
    )
