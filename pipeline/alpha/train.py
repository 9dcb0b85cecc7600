"""Walk-forward training of the alpha model, and the final model a scan uses.

1. **Panel** (:func:`build_panel`): ``map_partitions(panel_partition)`` over the store's bar
   partitions (every feature at every clean row), gathered, then labelled
   (:mod:`pipeline.alpha.labels`). Rows outside the model's universe are kept for the
   baselines but never trained on or scored.
2. **Walk-forward** (:func:`walk_forward`): for each purged fold
   (:mod:`pipeline.alpha.folds`) a model is trained on the fold's training sessions and
   predicts its test sessions; the test predictions of all folds are the out-of-sample record
   that the report (:mod:`pipeline.alpha.evaluate`) and the calibrator
   (:mod:`pipeline.alpha.calibrate`) use. Nothing is tuned on it: the parameters are fixed
   in :data:`PARAMS`.
3. **Final model** (:func:`train`): the same parameters on every labelled session, saved with
   its card (:mod:`pipeline.alpha.artifact`).

Target: the cross-sectional percentile rank of the ``h``-session forward return
(``fwd_rank_{h}d``), squared-error regression. XGBoost with ``tree_method="hist"``; through
``xgboost.dask`` on the Dask workers when a distributed client is given; ``device="cuda"``
when ``TECHNIC_USE_GPU`` is set.
"""

from __future__ import annotations

import itertools
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import xgboost as xgb
from distributed import Client, as_completed

from pipeline.alpha import artifact, calibrate, evaluate, labels, panel
from pipeline.alpha.folds import Fold, Window
from pipeline.alpha.folds import walk_forward as make_folds
from pipeline.config import Settings, get_settings
from pipeline.errors import ConfigError
from pipeline.frame import load_bars
from pipeline.store import BarStore

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
STAGES = ("panel", "folds", "final")

PARAMS: dict[str, Any] = {
    "objective": "reg:squarederror",
    "tree_method": "hist",
    "max_depth": 5,
    "learning_rate": 0.08,
    "subsample": 0.7,
    "colsample_bytree": 0.6,
    "min_child_weight": 200.0,
    "reg_lambda": 10.0,
    "max_bin": 64,
    "seed": 0,
}


@dataclass(frozen=True)
class Config:
    """What to train: horizon, boosting rounds and the walk-forward layout."""

    horizon: int = 5
    rounds: int = 100
    test_days: int = 126
    min_train_days: int = 126
    window: Window = "expanding"
    train_days: int | None = None
    # Train on every k-th session: neighbouring sessions' labels overlap (a 5-day return from
    # Monday shares 4 days with Tuesday's), so this drops little information and 4/5 of the cost.
    date_stride: int = 5
    params: dict[str, Any] = field(default_factory=lambda: dict(PARAMS))

    def __post_init__(self) -> None:
        if self.horizon not in labels.HORIZONS:
            raise ConfigError(
                f"horizon must be one of {', '.join(map(str, labels.HORIZONS))} sessions, "
                f"got {self.horizon!r}"
            )
        if self.rounds < 1 or self.date_stride < 1:
            raise ConfigError("rounds and date_stride must be at least 1")


@dataclass
class Run:
    """A walk-forward run: the labelled panel, folds, out-of-sample rows and the report."""

    data: pd.DataFrame
    dates: np.ndarray
    folds: list[Fold]
    oos: pd.DataFrame
    report: dict[str, Any]
    timings: dict[str, float]


@dataclass
class TrainResult:
    run: Run
    path: Path
    card: dict[str, Any]


def device(settings: Settings) -> str:
    """``cuda`` when TECHNIC_USE_GPU is set, else ``cpu``."""
    return "cuda" if settings.use_gpu else "cpu"


def build_panel(
    store: str | os.PathLike[str],
    *,
    client: Client | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Every feature at every clean row of the store (benchmark excluded), labelled."""
    settings = settings or get_settings()
    report = progress or (lambda stage, done, total: None)
    frame = load_bars(store).map_partitions(panel.panel_partition, meta=panel.empty())
    parts = frame.to_delayed()
    if client is not None:
        futures = client.compute(parts)
        for done, _ in enumerate(as_completed(futures), start=1):
            report("panel", done, len(futures))
        results = client.gather(futures)
    else:
        scheduler = "sync" if settings.effective_cluster == "sync" else "threads"
        results = dask.compute(*parts, scheduler=scheduler)
        report("panel", len(parts), len(parts))
    data = pd.concat(results)
    data = data[data.index != settings.benchmark]
    return labels.add_labels(data)


def fit(
    x: np.ndarray,
    y: np.ndarray,
    cfg: Config,
    *,
    client: Client | None = None,
    device: str = "cpu",
) -> xgb.Booster:
    """One booster on ``x`` → ``y`` with :data:`PARAMS` (locally, or on the Dask workers)."""
    params = {**cfg.params, "device": device}
    if client is None:
        params["nthread"] = os.cpu_count() or 1
        dtrain = xgb.QuantileDMatrix(x, y, max_bin=params["max_bin"])
        return xgb.train(params, dtrain, num_boost_round=cfg.rounds)
    import dask.array as da
    import xgboost.dask as dxgb

    # One chunk per worker, placed explicitly: a plain scatter may put every chunk on one
    # worker, and xgboost.dask then trains on that worker alone.
    workers = sorted(client.scheduler_info(n_workers=-1).get("workers", {})) or [None]
    edges = np.linspace(0, len(y), len(workers) + 1).astype(int)
    xs, ys = [], []
    for worker, (a, b) in zip(workers, itertools.pairwise(edges), strict=True):
        if b <= a:
            continue
        fx, fy = client.scatter([x[a:b], y[a:b]], workers=worker and [worker])
        xs.append(da.from_delayed(fx, shape=(b - a, x.shape[1]), dtype=x.dtype))
        ys.append(da.from_delayed(fy, shape=(b - a,), dtype=y.dtype))
    dtrain = dxgb.DaskQuantileDMatrix(
        client, da.concatenate(xs), da.concatenate(ys), max_bin=params["max_bin"]
    )
    return dxgb.train(client, params, dtrain, num_boost_round=cfg.rounds)["booster"]


def predict(booster: xgb.Booster, x: np.ndarray) -> np.ndarray:
    """The booster's scores for the rows of ``x`` (``inplace_predict``, no DMatrix)."""
    if len(x) == 0:
        return np.empty(0, dtype=np.float64)
    return np.asarray(booster.inplace_predict(x), dtype=np.float64)


def _usable(data: pd.DataFrame, horizon: int) -> np.ndarray:
    return (data["eligible"] & data[f"fwd_rank_{horizon}d"].notna()).to_numpy(copy=True)


def walk_forward(
    data: pd.DataFrame,
    cfg: Config,
    *,
    client: Client | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> Run:
    """Train and predict every fold; report the out-of-sample rows (see module docstring)."""
    settings = settings or get_settings()
    report = progress or (lambda stage, done, total: None)
    dates = labels.calendar(data["date"].to_numpy())
    h = cfg.horizon
    baselines = evaluate.baseline_scores(data)
    usable = _usable(data, h)
    if not usable.any():
        raise ConfigError("no labelled rows in the model's universe: the store is too short")
    session = data["session"].to_numpy()
    folds = make_folds(
        int(session[usable].min()),
        int(session[usable].max()),
        h,
        test_days=cfg.test_days,
        min_train_days=cfg.min_train_days,
        window=cfg.window,
        train_days=cfg.train_days,
    )
    rows = np.flatnonzero(usable)
    x = panel.matrix(data.iloc[rows])
    y = data[f"fwd_rank_{h}d"].to_numpy()[rows]
    s = session[rows]
    first = int(s.min())
    pieces = []
    timings: dict[str, float] = {}
    for k, fold in enumerate(folds):
        tic = time.perf_counter()
        train = (s >= fold.train_start) & (s <= fold.train_end)
        train &= (s - first) % cfg.date_stride == 0
        test = (s >= fold.test_start) & (s <= fold.test_end)
        booster = fit(x[train], y[train], cfg, client=client, device=device(settings))
        picked = rows[test]
        pieces.append(
            pd.DataFrame(
                {
                    "ticker": data.index[picked].astype(str),
                    "date": data["date"].to_numpy()[picked],
                    "session": session[picked],
                    "fold": k,
                    "score": predict(booster, x[test]),
                    f"fwd_ret_{h}d": data[f"fwd_ret_{h}d"].to_numpy()[picked],
                    "fwd_ret_10d": data["fwd_ret_10d"].to_numpy()[picked],
                    **{name: baselines[name][picked] for name in evaluate.BASELINES},
                }
            )
        )
        timings[f"fold_{k}"] = time.perf_counter() - tic
        report("folds", k + 1, len(folds))
    oos = pd.concat(pieces, ignore_index=True)
    result = evaluate.report(oos, folds, dates, h)
    outcome = (oos["fwd_ret_10d"] > 0).astype(float).where(oos["fwd_ret_10d"].notna())
    result["calibration"] = evaluate.json_safe(
        calibrate.walk_forward(oos["score"].to_numpy(), outcome.to_numpy(), oos["fold"].to_numpy())
    )
    return Run(data, dates, folds, oos, result, timings)


def run(
    store: str | os.PathLike[str],
    cfg: Config,
    *,
    client: Client | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> Run:
    """Panel, then walk-forward: the out-of-sample record of ``cfg`` on ``store``."""
    tic = time.perf_counter()
    data = build_panel(store, client=client, settings=settings, progress=progress)
    built = time.perf_counter() - tic
    result = walk_forward(data, cfg, client=client, settings=settings, progress=progress)
    result.timings = {"panel": built, **result.timings}
    return result


def train(
    store: str | os.PathLike[str],
    cfg: Config,
    *,
    client: Client | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
    models_dir: Path | None = None,
) -> TrainResult:
    """Walk-forward record, calibrator and final model on every labelled session; saves the
    model and its card under ``models_dir`` (default: the settings' models directory)."""
    settings = settings or get_settings()
    report = progress or (lambda stage, done, total: None)
    started = time.perf_counter()
    bar_store = BarStore.open(store)
    result = run(store, cfg, client=client, settings=settings, progress=progress)
    data, h = result.data, cfg.horizon
    oos = result.oos
    outcome = (oos["fwd_ret_10d"] > 0).astype(float).where(oos["fwd_ret_10d"].notna())
    calibrator = calibrate.fit(oos["score"].to_numpy(), outcome.to_numpy())

    tic = time.perf_counter()
    usable = _usable(data, h)
    session = data["session"].to_numpy()
    first = int(session[usable].min())
    usable &= (session - first) % cfg.date_stride == 0
    rows = np.flatnonzero(usable)
    booster = fit(
        panel.matrix(data.iloc[rows]),
        data[f"fwd_rank_{h}d"].to_numpy()[rows],
        cfg,
        client=client,
        device=device(settings),
    )
    result.timings["final"] = time.perf_counter() - tic
    result.timings["total"] = time.perf_counter() - started
    report("final", 1, 1)

    dates = result.dates
    now = datetime.now(UTC)
    version = f"{now:%Y%m%dT%H%M%S}-h{h}-{bar_store.data_version[-6:]}"
    card = {
        "version": version,
        "created_at": now.isoformat(timespec="seconds"),
        "horizon": h,
        "target": f"fwd_rank_{h}d: percentile rank per date of the {h}-session forward return",
        "features": list(panel.FEATURES),
        "feature_version": panel.FEATURE_VERSION,
        "windows": {
            "rolling": list(panel.WINDOWS),
            "walk_forward": {
                "window": cfg.window,
                "test_days": cfg.test_days,
                "min_train_days": cfg.min_train_days,
                "gap_sessions": h,
                "folds": [
                    {
                        "fold": f.number,
                        "train": [_day(dates[f.train_start]), _day(dates[f.train_end])],
                        "test": [_day(dates[f.test_start]), _day(dates[f.test_end])],
                    }
                    for f in result.folds
                ],
            },
            "final_train": [
                _day(dates[session[rows].min()]),
                _day(dates[session[rows].max()]),
            ],
        },
        "universe": dict(panel.UNIVERSE),
        "params": {**cfg.params, "rounds": cfg.rounds, "date_stride": cfg.date_stride},
        "device": device(settings),
        "data": {
            "store": bar_store.url,
            "store_id": bar_store.store_id,
            "data_version": bar_store.data_version,
            "rows": len(data),
            "train_rows": len(rows),
            "tickers": int(data.index.nunique()),
            "first_date": _day(dates[0]),
            "last_date": _day(dates[-1]),
        },
        "libraries": _versions(),
        "metrics": {k: v for k, v in result.report.items() if k != "calibration"},
        "calibration": {
            "target": "P(10-session forward return > 0)",
            "calibrator": calibrator.to_dict(),
            "out_of_sample": result.report["calibration"],
        },
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
        "config": {k: v for k, v in asdict(cfg).items() if k != "params"},
    }
    path = artifact.save(models_dir or settings.models_path, booster, card)
    return TrainResult(result, path, artifact.read_card(path))


def _day(value: Any) -> str:
    return f"{pd.Timestamp(value):%Y-%m-%d}"


def _versions() -> dict[str, str]:
    import sklearn

    return {
        "python": platform.python_version(),
        "xgboost": xgb.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
        "dask": dask.__version__,
    }
