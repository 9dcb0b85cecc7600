"""``technic train`` and ``technic evaluate`` through the real console script."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli

SYNC = {"TECHNIC_CLUSTER": "sync"}


def test_train_then_evaluate_json(random_walk_store: Path, tmp_path: Path) -> None:
    done = run_cli(
        "train", "--store", str(random_walk_store), "--rounds", "5", data_dir=tmp_path, env=SYNC
    )
    assert done.returncode == 0, done.stderr
    assert "model" in done.stdout and "momentum_12_1" in done.stdout
    models = list((tmp_path / "models").iterdir())
    assert len(models) == 1 and (models[0] / "card.json").is_file()
    assert f"written to {models[0]}" in done.stderr.replace("\n", "")

    out = tmp_path / "report"
    done = run_cli(
        "evaluate", "--store", str(random_walk_store), "--rounds", "5", "--horizon", "10", "--json",
        "--out", str(out), data_dir=tmp_path, env=SYNC,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # stdout is only the JSON object
    assert report["horizon"] == 10
    for entry in (report["model"], *report["baselines"].values()):
        for key in ("ic_mean", "ic_std", "ic_tstat", "n_dates"):
            assert key in entry
        assert entry["n_dates"] > 0
    assert set(report["baselines"]) == {"momentum_12_1", "short_term_reversal", "random"}
    assert json.loads((out / "report.json").read_text())["model"] == report["model"]
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert {"ic_cumulative.png", "ic_by_fold.png", "deciles.png"} <= set(pngs)
    assert all((out / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)


def test_bad_options_are_one_line_errors(demo_store: Path, tmp_path: Path) -> None:
    done = run_cli("train", "--store", str(demo_store), "--horizon", "7", data_dir=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "horizon must be one of 5, 10" in done.stderr
    done = run_cli("evaluate", "--store", str(tmp_path / "nowhere"), data_dir=tmp_path)
    assert done.returncode == 2 and "no bar store" in done.stderr
    assert "Traceback" not in done.stderr
