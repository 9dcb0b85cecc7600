"""The public API analysts import: pinned so that a change to it is deliberate."""

from __future__ import annotations

import importlib

import pipeline
from pipeline import indicators

PUBLIC = [
    "BarStore",
    "ScanResult",
    "Settings",
    "TechnicError",
    "get_settings",
    "indicators",
    "load_bars",
    "run_scan",
]
INDICATOR_FUNCTIONS = [
    "adx", "atr", "bbands", "cci", "ema", "macd", "mfi", "minus_di", "obv", "plus_di", "roc",
    "rsi", "sma", "stoch", "willr",
]  # fmt: skip


def test_pipeline_all_is_pinned_and_sorted() -> None:
    assert pipeline.__all__ == PUBLIC
    assert sorted(pipeline.__all__) == pipeline.__all__


def test_every_public_name_is_importable() -> None:
    for name in PUBLIC:
        module = importlib.import_module("pipeline")
        assert getattr(module, name) is not None, name
    namespace: dict = {}
    exec(f"from pipeline import {', '.join(PUBLIC)}", namespace)
    assert set(PUBLIC) <= set(namespace)
    assert namespace["indicators"] is indicators


def test_public_names_are_what_they_say() -> None:
    from pipeline.config import Settings, get_settings
    from pipeline.errors import TechnicError
    from pipeline.frame import load_bars
    from pipeline.scan import ScanResult, run_scan
    from pipeline.store import BarStore

    assert pipeline.BarStore is BarStore
    assert pipeline.ScanResult is ScanResult
    assert pipeline.Settings is Settings
    assert pipeline.TechnicError is TechnicError
    assert pipeline.get_settings is get_settings
    assert pipeline.load_bars is load_bars
    assert pipeline.run_scan is run_scan
    assert issubclass(TechnicError, Exception)


def test_indicators_all_lists_the_15_functions_and_the_registry() -> None:
    assert len(INDICATOR_FUNCTIONS) == 15
    assert sorted(indicators.__all__) == sorted([*INDICATOR_FUNCTIONS, "REGISTRY", "Indicator"])
    for name in INDICATOR_FUNCTIONS:
        assert callable(getattr(indicators, name)), name
    assert isinstance(indicators.Indicator, type)
    assert len(indicators.REGISTRY) >= 15
    assert all(isinstance(v, indicators.Indicator) for v in indicators.REGISTRY.values())
