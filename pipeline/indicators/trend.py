"""Trend indicators: SMA, EMA, MACD and Wilder's directional movement (ADX, +DI, −DI)."""

from __future__ import annotations

import numpy as np

from pipeline.indicators.registry import Indicator, Param, register
from pipeline.kernels import directional, smoothing

SMA = register(
    Indicator(
        name="SMA",
        inputs=("close",),
        params={"n": Param(None, "timeperiod")},
        outputs=("sma",),
        lookback=lambda n: n - 1,
        kernel=smoothing.sma,
    )
)
EMA = register(
    Indicator(
        name="EMA",
        inputs=("close",),
        params={"n": Param(None, "timeperiod")},
        outputs=("ema",),
        lookback=lambda n: n - 1,
        kernel=smoothing.ema,
    )
)
MACD = register(
    Indicator(
        name="MACD",
        inputs=("close",),
        params={
            "fast": Param(12, "fastperiod", minimum=2),
            "slow": Param(26, "slowperiod", minimum=2),
            "signal": Param(9, "signalperiod"),
        },
        outputs=("macd", "macd_signal", "macd_hist"),
        lookback=lambda fast, slow, signal: max(fast, slow) - 1 + signal - 1,
        kernel=smoothing.macd,
    )
)
_DMI_PARAMS = {"n": Param(14, "timeperiod")}
PLUS_DI = register(
    Indicator(
        name="PLUS_DI",
        inputs=("high", "low", "close"),
        params=_DMI_PARAMS,
        outputs=("plus_di",),
        lookback=lambda n: n,
        kernel=directional.directional,
        picks=(0,),
    )
)
MINUS_DI = register(
    Indicator(
        name="MINUS_DI",
        inputs=("high", "low", "close"),
        params=_DMI_PARAMS,
        outputs=("minus_di",),
        lookback=lambda n: n,
        kernel=directional.directional,
        picks=(1,),
    )
)
ADX = register(
    Indicator(
        name="ADX",
        inputs=("high", "low", "close"),
        params={"n": Param(14, "timeperiod", minimum=2)},
        outputs=("adx",),
        lookback=lambda n: 2 * n - 1,
        kernel=directional.directional,
        picks=(2,),
    )
)


def sma(x: np.ndarray, n: int) -> np.ndarray:
    """Simple moving average over ``n`` bars. Equals ``talib.SMA(x, timeperiod=n)``."""
    return SMA.one(x, n=n)


def ema(x: np.ndarray, n: int) -> np.ndarray:
    """Exponential moving average, ``k = 2/(n+1)``, seeded with the mean of the first ``n``
    bars. Equals ``talib.EMA(x, timeperiod=n)``."""
    return EMA.one(x, n=n)


def macd(
    close: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MACD line, signal line and histogram. Equals ``talib.MACD(close, fast, slow, signal)``:
    both EMAs are seeded on the window ending at bar ``slow − 1``."""
    return MACD.one(close, fast=fast, slow=slow, signal=signal)


def adx(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    """Average directional index (Wilder). Equals ``talib.ADX(high, low, close, n)``."""
    return ADX.one(high, low, close, n=n)


def plus_di(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    """Plus directional indicator. Equals ``talib.PLUS_DI(high, low, close, n)``."""
    return PLUS_DI.one(high, low, close, n=n)


def minus_di(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    """Minus directional indicator. Equals ``talib.MINUS_DI(high, low, close, n)``."""
    return MINUS_DI.one(high, low, close, n=n)
