"""The indicator registry: lookbacks, parameter names and validation, inputs and outputs."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
import talib
from talib import abstract

from pipeline import indicators
from pipeline.errors import ConfigError
from pipeline.indicators import REGISTRY
from pipeline.kernels import directional
from tests.conftest import random_walk

NAMES = sorted(REGISTRY)

LOOKBACK_CASES: dict[str, list[dict[str, Any]]] = {
    "SMA": [{"n": n} for n in (1, 2, 5, 200)],
    "EMA": [{"n": n} for n in (1, 2, 5, 200)],
    "RSI": [{"n": n} for n in (2, 14, 30)],
    "MACD": [
        {},
        {"fast": 5, "slow": 35, "signal": 5},
        {"fast": 26, "slow": 12, "signal": 9},
        {"fast": 2, "slow": 2, "signal": 1},
    ],
    "BBANDS": [{}, {"n": 2, "k": 0.0}, {"n": 10, "k": 1.5}],
    "ATR": [{"n": n} for n in (1, 2, 14, 28)],
    "ADX": [{"n": n} for n in (2, 7, 14, 28)],
    "PLUS_DI": [{"n": n} for n in (1, 2, 14, 28)],
    "MINUS_DI": [{"n": n} for n in (1, 2, 14, 28)],
    "STOCH": [
        {},
        {"k": 1, "k_smooth": 1, "d": 1},
        {"k": 5, "k_smooth": 3, "d": 5},
        {"k": 21, "k_smooth": 1, "d": 7},
    ],
    "OBV": [{}],
    "MFI": [{"n": n} for n in (2, 7, 14)],
    "CCI": [{"n": n} for n in (2, 14, 20)],
    "WILLR": [{"n": n} for n in (2, 7, 14)],
    "ROC": [{"n": n} for n in (1, 10, 63)],
}
LOOKBACK_IDS = [(name, p) for name, cases in LOOKBACK_CASES.items() for p in cases]


def _case_id(case: tuple[str, dict[str, Any]]) -> str:
    name, params = case
    return name + "".join(f"-{k}{v}" for k, v in params.items()) if params else f"{name}-default"


def _talib_names(name: str, param: str) -> tuple[str, ...]:
    names = REGISTRY[name].params[param].talib
    return (names,) if isinstance(names, str) else tuple(names)


def _talib_kwargs(name: str, params: dict[str, Any]) -> dict[str, Any]:
    ind = REGISTRY[name]
    out = dict(ind.talib_extra)
    for param, value in ind.resolve(**params).items():
        out.update(dict.fromkeys(_talib_names(name, param), value))
    return out


def _flat_input_names(fn: abstract.Function) -> tuple[str, ...]:
    names: list[str] = []
    for value in fn.input_names.values():
        names.extend([value] if isinstance(value, str) else value)
    return tuple(names)


def test_registry_holds_the_fifteen_indicators_under_their_talib_names():
    assert set(REGISTRY) == {
        "SMA",
        "EMA",
        "RSI",
        "MACD",
        "BBANDS",
        "ATR",
        "ADX",
        "PLUS_DI",
        "MINUS_DI",
        "STOCH",
        "OBV",
        "MFI",
        "CCI",
        "WILLR",
        "ROC",
    }
    for key, ind in REGISTRY.items():
        assert ind.name == key
        assert hasattr(talib, key)


def test_lookback_cases_cover_the_whole_registry():
    assert set(LOOKBACK_CASES) == set(REGISTRY)


@pytest.mark.parametrize("case", LOOKBACK_IDS, ids=_case_id)
def test_lookback_equals_talib_abstract_lookback(case):
    name, params = case
    ind = REGISTRY[name]
    expected = abstract.Function(name, **_talib_kwargs(name, params)).lookback
    assert ind.lookback(**ind.resolve(**params)) == expected


@pytest.mark.parametrize("case", LOOKBACK_IDS, ids=_case_id)
def test_lookback_is_the_number_of_leading_nans(case):
    name, params = case
    ind = REGISTRY[name]
    lb = ind.lookback(**ind.resolve(**params))
    walk = random_walk(lb + 20, 3)
    outs = ind.one(*(walk[i] for i in ind.inputs), **params)
    for out in outs if isinstance(outs, tuple) else (outs,):
        assert np.isnan(out[:lb]).all()
        assert np.isfinite(out[lb:]).all()


@pytest.mark.parametrize("name", NAMES)
def test_talib_names_are_exactly_talibs_parameters(name):
    """Every TA-Lib parameter is either mapped from one of ours or fixed in ``talib_extra``."""
    ind = REGISTRY[name]
    mapped = [t for param in ind.params for t in _talib_names(name, param)]
    fixed = list(ind.talib_extra)
    assert len(mapped) + len(fixed) == len(set(mapped) | set(fixed))  # no name used twice
    assert set(mapped) | set(fixed) == set(abstract.Function(name).parameters)


def test_talib_kwargs_writes_out_talibs_arguments():
    assert REGISTRY["BBANDS"].talib_kwargs() == {
        "timeperiod": 20,
        "nbdevup": 2.0,
        "nbdevdn": 2.0,
        "matype": 0,
    }
    assert REGISTRY["STOCH"].talib_kwargs(k=5) == {
        "fastk_period": 5,
        "slowk_period": 3,
        "slowk_matype": 0,
        "slowd_period": 3,
        "slowd_matype": 0,
    }
    assert REGISTRY["MACD"].talib_kwargs(fast=5) == {
        "fastperiod": 5,
        "slowperiod": 26,
        "signalperiod": 9,
    }
    assert REGISTRY["SMA"].talib_kwargs(n=7) == {"timeperiod": 7}
    assert REGISTRY["OBV"].talib_kwargs() == {}


@pytest.mark.parametrize("case", LOOKBACK_IDS, ids=_case_id)
def test_talib_kwargs_agrees_with_the_param_table(case):
    name, params = case
    assert REGISTRY[name].talib_kwargs(**params) == _talib_kwargs(name, params)


@pytest.mark.parametrize("name", NAMES)
def test_inputs_are_talibs_inputs_in_order(name):
    assert REGISTRY[name].inputs == _flat_input_names(abstract.Function(name))


@pytest.mark.parametrize("name", NAMES)
def test_outputs_match_kernel_arity_and_talib(name):
    ind = REGISTRY[name]
    walk = random_walk(80, 4)
    params = {"n": 10} if ind.params.get("n") and ind.params["n"].default is None else {}
    result = ind.segmented(walk, np.array([0, 80]), **params)
    assert isinstance(result, tuple)
    assert len(result) == len(ind.outputs) == len(abstract.Function(name).output_names)
    assert all(out.shape == (80,) and out.dtype == np.float64 for out in result)
    assert len(set(ind.outputs)) == len(ind.outputs)
    one = ind.one(*(walk[i] for i in ind.inputs), **params)
    assert (len(one) if isinstance(one, tuple) else 1) == len(ind.outputs)


def test_directional_indicators_pick_their_output_of_the_shared_kernel():
    walk = random_walk(90, 5)
    plus, minus, adx = directional.directional(
        walk["high"], walk["low"], walk["close"], np.array([0, 90]), 14
    )
    for name, expected in (("PLUS_DI", plus), ("MINUS_DI", minus), ("ADX", adx)):
        (out,) = REGISTRY[name].segmented(walk, np.array([0, 90]))
        assert np.array_equal(out, expected, equal_nan=True)


# defaults of the public functions, as the issue states them
PUBLIC_DEFAULTS = {
    "rsi": {"n": 14},
    "macd": {"fast": 12, "slow": 26, "signal": 9},
    "bbands": {"n": 20, "k": 2.0},
    "atr": {"n": 14},
    "adx": {"n": 14},
    "plus_di": {"n": 14},
    "minus_di": {"n": 14},
    "stoch": {"k": 14, "k_smooth": 3, "d": 3},
    "obv": {},
    "mfi": {"n": 14},
    "cci": {"n": 20},
    "willr": {"n": 14},
    "sma": {"n": None},
    "ema": {"n": None},
    "roc": {"n": None},
}


@pytest.mark.parametrize("func", sorted(PUBLIC_DEFAULTS))
def test_public_function_defaults_match_the_registry(func):
    ind = REGISTRY[func.upper()]
    signature = inspect.signature(getattr(indicators, func))
    params = dict(list(signature.parameters.items())[len(ind.inputs) :])
    inputs = list(signature.parameters)[: len(ind.inputs)]
    assert all(signature.parameters[i].default is inspect.Parameter.empty for i in inputs)
    expected = PUBLIC_DEFAULTS[func]
    assert list(params) == list(expected) == list(ind.params)
    for param, default in expected.items():
        shown = params[param].default
        assert (None if shown is inspect.Parameter.empty else shown) == default
        assert ind.params[param].default == default


def _int_params() -> list[tuple[str, str]]:
    return [
        (name, param)
        for name in NAMES
        for param, spec in REGISTRY[name].params.items()
        if spec.kind is int
    ]


@pytest.mark.parametrize(("name", "param"), _int_params(), ids=lambda v: str(v))
def test_minimum_is_talibs_smallest_accepted_value(name, param):
    ind = REGISTRY[name]
    spec = ind.params[param]
    walk = random_walk(60, 6)
    base = {p: (10 if s.default is None else s.default) for p, s in ind.params.items()}
    fn = getattr(talib, name)
    args = [walk[i] for i in ind.inputs]

    def talib_call(value: int) -> None:
        kwargs = ind.talib_kwargs(**base)
        kwargs.update(dict.fromkeys(_talib_names(name, param), value))
        fn(*args, **kwargs)

    talib_call(int(spec.minimum))
    with pytest.raises(Exception, match="TA_BAD_PARAM"):
        talib_call(int(spec.minimum) - 1)
    ind.resolve(**{**base, param: int(spec.minimum)})
    with pytest.raises(ConfigError):
        ind.resolve(**{**base, param: int(spec.minimum) - 1})


# --------------------------------------------------------------------------- resolve


def test_resolve_fills_in_defaults_in_parameter_order():
    assert REGISTRY["MACD"].resolve(slow=30) == {"fast": 12, "slow": 30, "signal": 9}
    assert list(REGISTRY["STOCH"].resolve(d=5)) == ["k", "k_smooth", "d"]
    assert REGISTRY["OBV"].resolve() == {}


def test_resolve_turns_integral_floats_into_ints_and_k_into_a_float():
    out = REGISTRY["BBANDS"].resolve(n=10.0, k=2)
    assert out == {"n": 10, "k": 2.0}
    assert type(out["n"]) is int
    assert type(out["k"]) is float
    assert type(REGISTRY["RSI"].resolve(n=np.int64(9))["n"]) is int


BAD_PARAMS = [
    ("SMA", {}, "required"),
    ("EMA", {}, "required"),
    ("ROC", {}, "required"),
    ("SMA", {"n": None}, "required"),
    ("SMA", {"n": 2.5}, "integer"),
    ("RSI", {"n": 14.1}, "integer"),
    ("RSI", {"n": True}, "integer"),
    ("RSI", {"n": float("nan")}, "integer"),
    ("RSI", {"n": float("inf")}, "integer"),
    ("SMA", {"n": 0}, "between"),
    ("SMA", {"n": -3}, "between"),
    ("RSI", {"n": 1}, "between"),
    ("ADX", {"n": 1}, "between"),
    ("MACD", {"fast": 1}, "between"),
    ("STOCH", {"d": 0}, "between"),
    ("BBANDS", {"n": 1}, "between"),
    ("BBANDS", {"k": -0.5}, "between"),
    ("BBANDS", {"k": float("nan")}, "between"),
    ("SMA", {"n": 100_001}, "between"),
    ("SMA", {"m": 3}, "unknown"),
    ("RSI", {"period": 14}, "unknown"),
    ("OBV", {"n": 3}, "unknown"),
    ("MACD", {"fast": 5, "slowperiod": 20}, "unknown"),
]


@pytest.mark.parametrize(("name", "params", "message"), BAD_PARAMS, ids=lambda v: str(v))
def test_resolve_rejects_bad_params_with_config_error(name, params, message):
    with pytest.raises(ConfigError, match=message) as info:
        REGISTRY[name].resolve(**params)
    assert name in str(info.value)


@pytest.mark.parametrize("value", ["fourteen", [14]])
def test_resolve_rejects_non_numeric_params_with_config_error(value):
    with pytest.raises(ConfigError):
        REGISTRY["RSI"].resolve(n=value)


def test_largest_period_is_accepted():
    assert REGISTRY["SMA"].resolve(n=100_000) == {"n": 100_000}


def test_segmented_and_one_validate_params():
    walk = random_walk(30, 7)
    with pytest.raises(ConfigError):
        REGISTRY["SMA"].segmented(walk, np.array([0, 30]))
    with pytest.raises(ConfigError):
        indicators.rsi(walk["close"], n=1)
    with pytest.raises(ConfigError):
        indicators.sma(walk["close"], 2.5)
    with pytest.raises(ConfigError):
        REGISTRY["RSI"].one(walk["close"], m=3)


# --------------------------------------------------------------------------- one()


def test_one_rejects_mismatched_lengths():
    walk = random_walk(30, 8)
    with pytest.raises(ConfigError, match="equal length"):
        indicators.atr(walk["high"], walk["low"][:-1], walk["close"])
    with pytest.raises(ConfigError, match="equal length"):
        indicators.obv(walk["close"], walk["volume"][:10])


def test_one_rejects_two_dimensional_input():
    walk = random_walk(30, 9)
    with pytest.raises(ConfigError, match="1-D"):
        indicators.sma(walk["close"].reshape(5, 6), 3)
    two_d = np.stack([walk["close"], walk["close"]])
    with pytest.raises(ConfigError, match="1-D"):
        indicators.cci(two_d, two_d, two_d)


def test_one_rejects_a_scalar_input():
    with pytest.raises(ConfigError, match="1-D"):
        indicators.sma(3.0, 2)


def test_one_rejects_a_wrong_number_of_inputs():
    walk = random_walk(30, 10)
    with pytest.raises(ConfigError, match="input array"):
        REGISTRY["ATR"].one(walk["high"], walk["low"], n=5)
    with pytest.raises(ConfigError, match="input array"):
        REGISTRY["SMA"].one(walk["close"], walk["close"], n=5)


def test_one_returns_float64_arrays_of_the_input_length():
    walk = random_walk(25, 11)
    upper, middle, lower = indicators.bbands(walk["close"], n=5)
    for out in (upper, middle, lower, indicators.sma(walk["close"].astype(np.float32), 3)):
        assert out.dtype == np.float64
        assert out.shape == (25,)
