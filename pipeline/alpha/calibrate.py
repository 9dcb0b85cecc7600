"""Win probability: P(10-day return > 0) from the model's score, calibrated out of sample.

The calibrator is isotonic regression (monotone in the score) fitted on walk-forward
*out-of-sample* predictions, never on the rows a model was trained on. To keep it small and
free of serialised Python objects it is fitted on quantile bins of the score (mean score and
up-rate per bin, weighted by rows) and stored as two short arrays; applying it is
``np.interp``.

Its quality is measured walk-forward too: for fold ``k`` a calibrator fitted on folds
``0..k−1`` predicts fold ``k`` (fold 0 has no earlier folds and is not scored). The reported
Brier score, AUC and reliability table pool those predictions; the base rate's own Brier score
(always predicting the training up-rate) is given for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

BINS = 100
RELIABILITY_BINS = 10


@dataclass(frozen=True)
class Calibrator:
    """A monotone map from model score to probability: ``np.interp(score, x, y)``."""

    x: np.ndarray
    y: np.ndarray

    def __call__(self, score: np.ndarray) -> np.ndarray:
        score = np.asarray(score, dtype=np.float64)
        out = np.interp(score, self.x, self.y)
        return np.where(np.isfinite(score), out, np.nan)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "isotonic", "x": self.x.tolist(), "y": self.y.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        return cls(np.asarray(data["x"], dtype=np.float64), np.asarray(data["y"], dtype=np.float64))


def fit(score: np.ndarray, outcome: np.ndarray, bins: int = BINS) -> Calibrator:
    """Isotonic P(outcome | score) on ``bins`` quantile bins of the finite scores."""
    score = np.asarray(score, dtype=np.float64)
    outcome = np.asarray(outcome, dtype=np.float64)
    ok = np.isfinite(score) & np.isfinite(outcome)
    score, outcome = score[ok], outcome[ok]
    if len(score) == 0:
        return Calibrator(np.array([0.0]), np.array([0.5]))
    edges = np.unique(np.quantile(score, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, score, side="right") - 1, 0, max(len(edges) - 2, 0))
    counts = np.bincount(which)
    used = counts > 0
    mean_score = np.bincount(which, score)[used] / counts[used]
    rate = np.bincount(which, outcome)[used] / counts[used]
    from sklearn.isotonic import IsotonicRegression  # ~1 s to import: fitting only

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(mean_score, rate, sample_weight=counts[used])
    return Calibrator(
        np.asarray(iso.X_thresholds_, dtype=np.float64),
        np.asarray(iso.y_thresholds_, dtype=np.float64),
    )


def reliability(prob: np.ndarray, outcome: np.ndarray, bins: int = RELIABILITY_BINS) -> list:
    """Rows of predicted-probability deciles: range, rows, mean prediction, observed rate."""
    edges = np.unique(np.quantile(prob, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, prob, side="right") - 1, 0, max(len(edges) - 2, 0))
    rows = []
    for b in range(max(len(edges) - 1, 1)):
        sel = which == b
        if not sel.any():
            continue
        rows.append(
            {
                "bin": b,
                "lo": float(prob[sel].min()),
                "hi": float(prob[sel].max()),
                "n": int(sel.sum()),
                "mean_pred": float(prob[sel].mean()),
                "frac_pos": float(outcome[sel].mean()),
            }
        )
    return rows


def metrics(prob: np.ndarray, outcome: np.ndarray, base_rate: float | None = None) -> dict:
    """Brier score, AUC, the base rate's Brier score and the reliability table."""
    prob = np.asarray(prob, dtype=np.float64)
    outcome = np.asarray(outcome, dtype=np.float64)
    ok = np.isfinite(prob) & np.isfinite(outcome)
    prob, outcome = prob[ok], outcome[ok]
    if len(prob) == 0:
        return {"n": 0, "brier": None, "auc": None, "brier_base_rate": None, "reliability": []}
    rate = float(outcome.mean()) if base_rate is None else base_rate
    from sklearn.metrics import roc_auc_score

    auc = float(roc_auc_score(outcome, prob)) if 0 < outcome.sum() < len(outcome) else None
    return {
        "n": len(prob),
        "brier": float(np.mean((prob - outcome) ** 2)),
        "auc": auc,
        "brier_base_rate": float(np.mean((rate - outcome) ** 2)),
        "up_rate": float(outcome.mean()),
        "reliability": reliability(prob, outcome),
    }


def walk_forward(score: np.ndarray, outcome: np.ndarray, fold: np.ndarray) -> dict:
    """Out-of-sample calibration quality (see the module docstring)."""
    score = np.asarray(score, dtype=np.float64)
    outcome = np.asarray(outcome, dtype=np.float64)
    probs = np.full(len(score), np.nan)
    base = np.full(len(score), np.nan)
    for k in np.unique(fold):
        past = fold < k
        if not past.any():
            continue
        now = fold == k
        probs[now] = fit(score[past], outcome[past])(score[now])
        base[now] = np.nanmean(outcome[past])
    scored = np.isfinite(probs)
    out = metrics(probs[scored], outcome[scored])
    if scored.any():
        ok = scored & np.isfinite(outcome)
        out["brier_base_rate"] = float(np.mean((base[ok] - outcome[ok]) ** 2))
    out["method"] = "isotonic on quantile bins, fitted on earlier folds' out-of-sample rows"
    return out
