"""TA-Lib-exact indicators on 1-D arrays of one ticker, and the registry behind them.

Every function takes float64 arrays in date order and returns arrays of the same length, NaN
where TA-Lib returns no value. The partition path runs the same kernels over many tickers at
once (see :mod:`pipeline.indicators.registry`).
"""

from pipeline.indicators.momentum import cci, roc, rsi, stoch, willr
from pipeline.indicators.registry import REGISTRY, Indicator
from pipeline.indicators.trend import adx, ema, macd, minus_di, plus_di, sma
from pipeline.indicators.volatility import atr, bbands
from pipeline.indicators.volume import mfi, obv

__all__ = [
    "REGISTRY",
    "Indicator",
    "adx",
    "atr",
    "bbands",
    "cci",
    "ema",
    "macd",
    "mfi",
    "minus_di",
    "obv",
    "plus_di",
    "roc",
    "rsi",
    "sma",
    "stoch",
    "willr",
]
