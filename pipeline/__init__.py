"""Technic: full-universe stock scans on Dask with TA-Lib-exact indicators.

The analyst's API::

    from pipeline import run_scan, load_bars, indicators
    result = run_scan("~/.technic/store")        # ranked table, snapshot, timings
    bars = load_bars("~/.technic/store", tickers=["AAPL"], end="2017-06-30")
    rsi = indicators.rsi(close, 14)               # equals talib.RSI

The names below are imported on first use (PEP 562), so a command that needs none of them
(``technic --help``) does not pay for Dask, pandas and Numba.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "BarStore": "pipeline.store",
    "ScanResult": "pipeline.scan",
    "Settings": "pipeline.config",
    "TechnicError": "pipeline.errors",
    "get_settings": "pipeline.config",
    "indicators": "pipeline.indicators",
    "load_bars": "pipeline.frame",
    "run_scan": "pipeline.scan",
}

__all__ = [
    "BarStore",
    "ScanResult",
    "Settings",
    "TechnicError",
    "get_settings",
    "indicators",
    "load_bars",
    "run_scan",
]

if TYPE_CHECKING:
    from pipeline import indicators
    from pipeline.config import Settings, get_settings
    from pipeline.errors import TechnicError
    from pipeline.frame import load_bars
    from pipeline.scan import ScanResult, run_scan
    from pipeline.store import BarStore


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    module = importlib.import_module(_WHERE[name])
    value = module if module.__name__ == f"pipeline.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
