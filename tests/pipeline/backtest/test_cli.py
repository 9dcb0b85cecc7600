"""``technic backtest`` end to end: its files, its summary, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_cli


def test_backtest_writes_panel_summary_report_and_plots(demo_store: Path, tmp_path) -> None:
    out = tmp_path / "bt"
    done = run_cli(
        "backtest", "--store", str(demo_store), "--start", "2026-09-01", "--horizons", "1,10",
        "--out", str(out), "--json", data_dir=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary == json.loads((out / "summary.json").read_text())
    assert set(summary["horizons"]) == {"1", "10"} and summary["start"] >= "2026-09-01"
    panel = pd.read_parquet(out / "panel.parquet")
    assert len(panel) == summary["rows"]
    columns = ["date", "ticker", "Sector", "TechRating", "signal", "Tier", "merit_band"]
    columns += ["merit_score", "composite_score", "AlphaScore", "fwd_1d", "exit_10d"]
    assert set(columns) <= set(panel.columns)
    for name in ("report.html", "growth.png", "ic.png", "deciles.png", "events.png"):
        assert (out / name).stat().st_size > 1000
    page = (out / "report.html").read_text()
    assert "growth.png" in page and "rank IC" in page
    assert "Scoreboard for the next scans" in done.stderr  # the base rates are kept


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--horizons", "5,x"], "comma-separated"),
        (["--horizons", "0"], "horizons must be sessions"),
        (["--start", "2026-13-01"], "bad start date"),
        (["--start", "2026-10-01", "--end", "2026-09-01"], "before the start"),
        (["--start", "1990-01-01", "--end", "1990-02-01"], "no session from"),
        (["--costs-bps", "-1"], "basis points"),
        (["--trade-style", "Scalping"], "trade style"),
    ],
)
def test_bad_options_are_one_line_errors(demo_store: Path, tmp_path, args, message) -> None:
    done = run_cli("backtest", "--store", str(demo_store), *args, data_dir=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], done.stderr
