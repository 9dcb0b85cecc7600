"""Momentum oscillators: RSI, STOCH, CCI, WILLR, ROC."""

from __future__ import annotations

import numpy as np

from pipeline.indicators.registry import Indicator, Param, register
from pipeline.kernels import rolling, smoothing

RSI = register(
    Indicator(
        name="RSI",
        inputs=("close",),
        params={"n": Param(14, "timeperiod", minimum=2)},
        outputs=("rsi",),
        lookback=lambda n: n,
        kernel=smoothing.rsi,
    )
)
STOCH = register(
    Indicator(
        name="STOCH",
        inputs=("high", "low", "close"),
        params={
            "k": Param(14, "fastk_period"),
            "k_smooth": Param(3, "slowk_period"),
            "d": Param(3, "slowd_period"),
        },
        outputs=("stoch_k", "stoch_d"),
        lookback=lambda k, k_smooth, d: k - 1 + k_smooth - 1 + d - 1,
        kernel=rolling.stoch,
        talib_extra={"slowk_matype": 0, "slowd_matype": 0},
    )
)
CCI = register(
    Indicator(
        name="CCI",
        inputs=("high", "low", "close"),
        params={"n": Param(20, "timeperiod", minimum=2)},
        outputs=("cci",),
        lookback=lambda n: n - 1,
        kernel=rolling.cci,
    )
)
WILLR = register(
    Indicator(
        name="WILLR",
        inputs=("high", "low", "close"),
        params={"n": Param(14, "timeperiod", minimum=2)},
        outputs=("willr",),
        lookback=lambda n: n - 1,
        kernel=rolling.willr,
    )
)
ROC = register(
    Indicator(
        name="ROC",
        inputs=("close",),
        params={"n": Param(None, "timeperiod")},
        outputs=("roc",),
        lookback=lambda n: n,
        kernel=rolling.roc,
    )
)


def rsi(close: np.ndarray, n: int = 14) -> np.ndarray:
    """Relative strength index (Wilder). Equals ``talib.RSI(close, timeperiod=n)``."""
    return RSI.one(close, n=n)


def stoch(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    k: int = 14,
    k_smooth: int = 3,
    d: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Slow stochastics (slow %K, slow %D) with SMA smoothing. Equals
    ``talib.STOCH(high, low, close, k, k_smooth, 0, d, 0)``."""
    return STOCH.one(high, low, close, k=k, k_smooth=k_smooth, d=d)


def cci(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 20) -> np.ndarray:
    """Commodity channel index. Equals ``talib.CCI(high, low, close, timeperiod=n)``."""
    return CCI.one(high, low, close, n=n)


def willr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    """Williams %R, −100..0. Equals ``talib.WILLR(high, low, close, timeperiod=n)`` on finite
    data (TA-Lib's block scan treats a NaN inside a window its own way)."""
    return WILLR.one(high, low, close, n=n)


def roc(x: np.ndarray, n: int) -> np.ndarray:
    """Rate of change in percent, ``(x/x[-n] − 1)·100``. Equals ``talib.ROC(x, timeperiod=n)``."""
    return ROC.one(x, n=n)
