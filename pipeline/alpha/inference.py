"""Alpha in the scan: the model's score at each ticker's latest bar, and the scales shown.

The scan maps :func:`pipeline.features.latest_features` over its partitions; with a model it
passes a :class:`LatestAlpha`, which computes the model's features at each ticker's last clean
bar from the indicator arrays that task already holds (:func:`panel.alpha_features`) and
scores them with ``Booster.inplace_predict``, in the same task. Only one raw score per ticker
(``alpha_raw``, NaN outside the model's universe) comes back.

On the cross-section (:func:`scales`):

- ``AlphaScore`` is the cross-sectional **z-score** of ``alpha_raw`` over the tickers scored in
  this scan that have one: 0 is the average ticker, +1 one standard deviation better. The
  model predicts each ticker's percentile rank of its forward ``h``-session return, so only
  the ordering carries information; the z-score puts it on a readable scale.
- ``win_prob_10d`` is the card's calibrator applied to ``alpha_raw``: the out-of-sample
  frequency of a positive 10-session return among past tickers with that score.

The composite score blends percentiles, not these scales (see :func:`pipeline.scoring.composite`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xgboost as xgb

from pipeline.alpha import artifact, panel

COLUMNS: dict[str, str] = {"alpha_raw": "float64"}
_BOOSTERS: OrderedDict[str, xgb.Booster] = OrderedDict()  # per process, by model sha256


def _booster(sha: str, raw: bytes) -> xgb.Booster:
    booster = _BOOSTERS.get(sha)
    if booster is None:
        booster = artifact.booster_from_bytes(raw)
        booster.set_param({"nthread": 1, "device": "cpu"})
        _BOOSTERS[sha] = booster
        while len(_BOOSTERS) > 2:
            _BOOSTERS.popitem(last=False)
    return booster


@dataclass(frozen=True)
class LatestAlpha:
    """The model's raw score at each segment's last row (see the module docstring); sent to
    the workers with its model bytes, loaded once per process."""

    sha: str
    raw: bytes = field(repr=False)

    @classmethod
    def of(cls, model: artifact.Model) -> LatestAlpha:
        return cls(model.card["model_sha256"], model.raw)

    def __call__(
        self,
        arrays: Mapping[str, np.ndarray],
        bounds: np.ndarray,
        ind: Mapping[str, np.ndarray],
        last: np.ndarray,
    ) -> dict[str, np.ndarray]:
        if len(last) == 0:
            return {"alpha_raw": np.empty(0)}
        cols = panel.alpha_features(arrays, bounds, ind, np.asarray(last, dtype=np.int64))
        score = np.asarray(
            _booster(self.sha, self.raw).inplace_predict(panel.matrix(cols)), dtype=np.float64
        )
        return {"alpha_raw": np.where(cols["eligible"], score, np.nan)}


def alpha_score(raw: pd.Series) -> pd.Series:
    """Cross-sectional z-score of the raw model score (NaN stays NaN), rounded to 3 places."""
    mean, std = raw.mean(), raw.std(ddof=0)
    if not np.isfinite(std) or std == 0:
        return raw * 0.0
    return ((raw - mean) / std).round(3)


def scales(raw: pd.Series, model: artifact.Model) -> tuple[pd.Series, pd.Series]:
    """``AlphaScore`` and ``win_prob_10d`` for the scored rows' raw scores."""
    prob = pd.Series(model.calibrator(raw.to_numpy()), index=raw.index).round(4)
    return alpha_score(raw), prob
