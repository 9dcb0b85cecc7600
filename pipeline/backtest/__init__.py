"""Scan backtests: every past daily scan of a store, the returns that followed, and how each
score and label did (:func:`backtest`, :mod:`pipeline.backtest.summary`)."""

from pipeline.backtest.run import HORIZONS, Backtest, backtest

__all__ = ["HORIZONS", "Backtest", "backtest"]
