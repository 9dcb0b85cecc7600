"""ML alpha: walk-forward XGBoost on unit-free features, scored out of sample, used by scans.

``panel``      features for every (ticker, date) through ``map_partitions``; the scan's path
``windows``    the Alpha158-style rolling families (one Numba kernel, any rows)
``labels``     forward returns over h sessions and their per-date rank (the target)
``folds``      purged walk-forward folds
``train``      panel → walk-forward out-of-sample record → final model (``technic train``)
``calibrate``  win_prob_10d: isotonic P(10-day return > 0) fitted out of sample
``evaluate``   the report: IC, decile spread, turnover vs. baselines (``technic evaluate``)
``artifact``   model.ubj + card.json, newest compatible model lookup
``inference``  the scan's per-partition scoring and the AlphaScore / win_prob_10d scales
"""
