"""ML alpha in the scan: what the model costs a warm full scan, and its parts.

Needs a model trained on the demo store (``technic train --store STORE``, or ``--train`` here,
which trains one and reports its time). In one run:

1. ``--check``: the model's features at each ticker's last bar, computed the scan's way (last
   rows only), equal the training panel's rows there, on one partition;
2. full scans on a warm 2-worker cluster, alternating with the newest model and with
   TECHNIC_USE_ML_ALPHA=0 (same cluster, same store): medians per stage and their difference
   (the features and ``inplace_predict`` run inside the indicators stage's tasks);
3. in this process: the model's features at 6,000 last rows and ``inplace_predict`` on them.

Run: ``python -m bench.alpha [--models DIR] [--train] [--repeat 7] [--record]``.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from bench.common import append, demo_store, parser, record, timed
from pipeline import hygiene
from pipeline.alpha import artifact, panel
from pipeline.alpha.train import Config, predict, train
from pipeline.cluster import client_session
from pipeline.config import Settings
from pipeline.features import compute_indicators
from pipeline.scan import STAGES, run_scan
from pipeline.segments import Tails
from pipeline.store import BarStore


def check_parity(store: Path) -> int:
    """Scan-path features at the last rows equal the panel's, on the first partition."""
    from pipeline.store import read_file

    bars = read_file(BarStore.open(store).files[0])
    cleaned = hygiene.clean(bars)
    ind = compute_indicators(cleaned.arrays, cleaned.bounds)
    last = Tails.from_bounds(cleaned.bounds).last
    at_end = panel.matrix(panel.alpha_features(cleaned.arrays, cleaned.bounds, ind, last))
    full = panel.matrix(panel.panel_partition(bars).iloc[last])
    if not np.array_equal(at_end, full, equal_nan=True):
        raise SystemExit("parity check failed: scan-path alpha features differ from the panel")
    return int(np.isfinite(at_end).sum())


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--models", type=Path, default=None, help="models directory")
    p.add_argument("--train", action="store_true", help="train a model first (and time it)")
    args = p.parse_args()
    store = demo_store(args)
    models = args.models or store.parent / f"{store.name}-models"
    if args.check:
        print(f"scan path = training panel: {check_parity(store):,} feature values equal")

    settings = Settings(max_workers="2", dashboard_address=":0", use_redis=False)
    with_model = settings.model_copy(update={"models_dir": models})
    without = with_model.model_copy(update={"use_ml_alpha": False})
    trained = ""
    with client_session(settings) as client:
        if args.train:
            tic = time.perf_counter()
            result = train(store, Config(horizon=5), client=client, settings=with_model)
            trained = (
                f"Training (`train(store, Config(horizon=5))`): {time.perf_counter() - tic:.1f} s; "
            )
            trained += ", ".join(f"{k} {v:.1f} s" for k, v in result.run.timings.items()) + "\n"
        model, reason = artifact.newest(models)
        if model is None:
            raise SystemExit(reason)
        runs = {"model": [], "off": []}
        for i in range(args.warmup + args.repeat):
            for name, s in (("model", with_model), ("off", without)):
                r = run_scan(store, client=client, settings=s)
                if i >= args.warmup:
                    runs[name].append(r.timings)
        assert r.snapshot["model"]["alpha"] is None
    med = {
        name: {s: statistics.median(t[s] for t in ts) for s in (*STAGES, "total")}
        for name, ts in runs.items()
    }

    bars = BarStore.open(store).read()
    cleaned = hygiene.clean(bars)
    ind = compute_indicators(cleaned.arrays, cleaned.bounds)
    last = Tails.from_bounds(cleaned.bounds).last
    feats_s, _, cols = timed(
        lambda: panel.alpha_features(cleaned.arrays, cleaned.bounds, ind, last),
        args.warmup,
        args.repeat,
    )
    booster = model.booster()
    booster.set_param({"nthread": 1})
    x = panel.matrix(cols)
    pred_s, _, _ = timed(lambda: predict(booster, x), args.warmup, args.repeat)

    rows = "\n".join(
        f"| {stage.replace('_', ' ')} | {med['off'][stage]:.3f} | {med['model'][stage]:.3f} "
        f"| {med['model'][stage] - med['off'][stage]:+.3f} |"
        for stage in (*STAGES, "total")
    )
    extra = (
        med["model"]["indicators"] - med["off"]["indicators"] + med["model"]["alpha"]
        - med["off"]["alpha"]
    )  # fmt: skip
    body = f"""
Model {model.version} ({len(panel.FEATURES)} features, {model.card["params"]["rounds"]} rounds,
depth {model.card["params"]["max_depth"]}).
{trained}Full scan on a warm 2-worker cluster, medians of {args.repeat} (alternating runs):

| stage | ML alpha off (s) | with model (s) | difference |
| --- | ---: | ---: | ---: |
{rows}

ML alpha's cost in the scan (indicators + alpha stage differences): {extra:.3f} s
(goal ≤ 0.1 s: **{"met" if extra <= 0.1 else "missed"}**).
In one process, one thread: the model's features at {len(last):,} last rows
{feats_s * 1000:.1f} ms (given the scan's indicator arrays); `inplace_predict` on them
{pred_s * 1000:.1f} ms.
"""
    block = record(f"ML alpha in the scan, {args.tickers:,} × {args.days}", body)
    print(block)
    if args.record:
        append(block)


if __name__ == "__main__":
    main()
