"""notebooks/quickstart.ipynb runs top to bottom (on a tiny checkpoint trained for two steps)."""
from __future__ import annotations

from pathlib import Path

import pytest
from forecast_helpers import trained_checkpoint

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("GANLSTM_CHECKPOINT", str(trained_checkpoint(tmp_path)))
    monkeypatch.setenv("GANLSTM_FRAMES", "14")
    monkeypatch.setenv("GANLSTM_STEPS", "3")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", []))
    assert "horizon   MSE ours / copy-last" in outputs
    assert all(f"\n{k:7d}   " in outputs for k in (1, 2, 3))  # one table row per predicted horizon
    errors = [o for cell in nb.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
