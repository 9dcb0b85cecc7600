"""The analysts' notebooks: committed without outputs, and each runs top to bottom.

Every notebook reads its bar store from ``STORE`` in its first code cell, which takes
``TECHNIC_NOTEBOOK_STORE`` from the environment; here that is the small synthetic demo store
(300 tickers × 320 days, several partitions). Notebooks run in a real Jupyter kernel (nbclient)
with their data directory in ``tmp_path``, Redis off and, for 03, a small LocalCluster.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = REPO / "notebooks"
EXPECTED = (
    "01_quickstart.ipynb",
    "02_factor_research.ipynb",
    "03_profiling.ipynb",
    "04_backtest.ipynb",
)
STORE_VARIABLE = "TECHNIC_NOTEBOOK_STORE"


def _read(name: str):
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def test_the_notebooks_are_there() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_committed_without_outputs(name: str) -> None:
    """Outputs, execution counts and execution metadata are stripped before commit."""
    raw = json.loads((NOTEBOOKS / name).read_text())
    nbformat.validate(nbformat.from_dict(raw))
    for cell in raw["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{name}: a code cell has outputs"
            assert cell["execution_count"] is None, f"{name}: a code cell has an execution count"
            assert "execution" not in cell.get("metadata", {}), f"{name}: execution metadata"
    assert set(raw["metadata"]) <= {"kernelspec", "language_info"}, f"{name}: extra metadata"


@pytest.mark.parametrize("name", EXPECTED)
def test_store_path_comes_from_one_variable(name: str) -> None:
    """The first code cell sets STORE from TECHNIC_NOTEBOOK_STORE; no other cell names a
    store path."""
    code = [c.source for c in _read(name).cells if c.cell_type == "code"]
    assert STORE_VARIABLE in code[0] and "STORE =" in code[0]
    for source in code[1:]:
        assert STORE_VARIABLE not in source and "STORE =" not in source
        assert "~/.technic" not in source


@pytest.mark.parametrize("name", EXPECTED)
def test_runs_top_to_bottom(name: str, demo_store: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(STORE_VARIABLE, str(demo_store))
    monkeypatch.setenv("TECHNIC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TECHNIC_USE_REDIS", "0")
    monkeypatch.setenv("TECHNIC_DASHBOARD_ADDRESS", ":0")
    monkeypatch.setenv("TECHNIC_MAX_WORKERS", "1x2")  # 03: one worker process, two threads
    # XGBoost's OpenMP threads spin while waiting; on a shared 2-core machine that is 5x slower
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    monkeypatch.delenv("TECHNIC_CLUSTER", raising=False)
    monkeypatch.delenv("TECHNIC_MODELS_DIR", raising=False)
    notebook = _read(name)
    client = nbclient.NotebookClient(
        notebook,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert errors == []
    text = "\n".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    if name.startswith("01"):
        assert "Scanned" in text  # the scan's status line
    if name.startswith("02"):
        assert "saved in" in text  # the trained model
    if name.startswith("03"):
        assert "dashboard http" in text and "[SCAN PERF]" in text
        assert (tmp_path / "data" / "notebooks" / "profiling" / "scan-report.html").is_file()
