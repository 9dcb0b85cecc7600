"""Volume indicators: OBV and MFI."""

from __future__ import annotations

import numpy as np

from pipeline.indicators.registry import Indicator, Param, register
from pipeline.kernels import volume as kernels

OBV = register(
    Indicator(
        name="OBV",
        inputs=("close", "volume"),
        params={},
        outputs=("obv",),
        lookback=lambda: 0,
        kernel=kernels.obv,
    )
)
MFI = register(
    Indicator(
        name="MFI",
        inputs=("high", "low", "close", "volume"),
        params={"n": Param(14, "timeperiod", minimum=2)},
        outputs=("mfi",),
        lookback=lambda n: n,
        kernel=kernels.mfi,
    )
)


def obv(close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """On-balance volume. Equals ``talib.OBV(close, volume)``."""
    return OBV.one(close, volume)


def mfi(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, n: int = 14
) -> np.ndarray:
    """Money flow index, 0–100. Equals ``talib.MFI(high, low, close, volume, timeperiod=n)``."""
    return MFI.one(high, low, close, volume, n=n)
