"""Volatility indicators: Bollinger Bands and ATR."""

from __future__ import annotations

import numpy as np

from pipeline.indicators.registry import Indicator, Param, register
from pipeline.kernels import rolling, smoothing

BBANDS = register(
    Indicator(
        name="BBANDS",
        inputs=("close",),
        params={
            "n": Param(20, "timeperiod", minimum=2),
            "k": Param(2.0, ("nbdevup", "nbdevdn"), 0, float),
        },
        outputs=("bb_upper", "bb_middle", "bb_lower"),
        lookback=lambda n, k: n - 1,
        kernel=rolling.bbands,
        talib_extra={"matype": 0},
    )
)
ATR = register(
    Indicator(
        name="ATR",
        inputs=("high", "low", "close"),
        params={"n": Param(14, "timeperiod")},
        outputs=("atr",),
        lookback=lambda n: n,
        kernel=smoothing.atr,
    )
)


def bbands(
    close: np.ndarray, n: int = 20, k: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bollinger Bands (upper, middle, lower): SMA ± k population standard deviations.
    Equals ``talib.BBANDS(close, n, k, k, matype=0)``."""
    return BBANDS.one(close, n=n, k=k)


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    """Average true range (Wilder). Equals ``talib.ATR(high, low, close, timeperiod=n)``."""
    return ATR.one(high, low, close, n=n)
