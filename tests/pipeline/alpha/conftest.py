"""Fixtures for the alpha tests: tiny bar stores with known statistics, small configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.alpha.train import Config
from pipeline.config import Settings
from pipeline.schema import DATE_DTYPE, TICKER_DTYPE
from pipeline.store import BarStore

# Few trees and short folds: each fit takes a fraction of a second.
FAST = Config(horizon=5, rounds=15, test_days=63, min_train_days=100)


def bars_from_returns(returns: np.ndarray, seed: int, end: str = "2026-11-20") -> pd.DataFrame:
    """Long-format bars (tickers × days) whose closes follow ``returns`` (log returns)."""
    rng = np.random.default_rng(seed)
    n, days = returns.shape
    close = 30.0 * np.exp(rng.uniform(-1, 1, (n, 1)) + np.cumsum(returns, axis=1))
    open_ = close * np.exp(-returns * 0.5)
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.005, (n, days))))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.005, (n, days))))
    volume = np.round(rng.lognormal(13, 0.4, (n, days)))
    dates = pd.bdate_range(end=end, periods=days)
    tickers = [f"T{i:04d}" for i in range(n)]
    return pd.DataFrame(
        {
            "ticker": pd.array(np.repeat(tickers, days), dtype=TICKER_DTYPE),
            "date": np.tile(dates.to_numpy().astype(DATE_DTYPE), n),
            "open": open_.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "close": close.ravel(),
            "volume": volume.ravel(),
        }
    )


def random_walk_returns(n: int, days: int, seed: int) -> np.ndarray:
    """Independent daily log returns: nothing in the past predicts the future."""
    return np.random.default_rng(seed).normal(0.0003, 0.02, (n, days))


def reverting_returns(n: int, days: int, seed: int, strength: float = 0.06) -> np.ndarray:
    """Daily returns with a planted, predictable part: each day gives back ``strength`` of
    the last five days' move (short-term reversal)."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 0.02, (n, days))
    r = np.zeros((n, days))
    for t in range(days):
        past = r[:, max(t - 5, 0) : t].sum(axis=1)
        r[:, t] = -strength * past + noise[:, t]
    return r


def write_store(path: Path, bars: pd.DataFrame) -> Path:
    BarStore(path).write(bars, None, rows_per_file=30_000)
    return path


@pytest.fixture(scope="session")
def random_walk_store(tmp_path_factory) -> Path:
    bars = bars_from_returns(random_walk_returns(140, 290, seed=1), seed=2)
    return write_store(tmp_path_factory.mktemp("rw") / "store", bars)


@pytest.fixture(scope="session")
def planted_store(tmp_path_factory) -> Path:
    bars = bars_from_returns(reverting_returns(140, 290, seed=3), seed=4)
    return write_store(tmp_path_factory.mktemp("planted") / "store", bars)


@pytest.fixture
def sync_settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, cluster="sync", dashboard_address=":0")
