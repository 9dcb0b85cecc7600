"""Technic: full-universe stock scans on Dask with TA-Lib-exact indicators.

The analyst's API::

    from pipeline import run_scan, load_bars, indicators
    result = run_scan("~/.technic/store")        # ranked table, snapshot, timings
    bars = load_bars("~/.technic/store", tickers=["AAPL"], end="2017-06-30")
    rsi = indicators.rsi(close, 14)               # equals talib.RSI
"""

from pipeline import indicators
from pipeline.config import Settings, get_settings
from pipeline.errors import TechnicError
from pipeline.frame import load_bars
from pipeline.scan import ScanResult, run_scan
from pipeline.store import BarStore

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
