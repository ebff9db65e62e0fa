"""The research notebook executes top to bottom (nbclient) and draws its figures."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "intrinsic_dimension_study.ipynb"

pytestmark = pytest.mark.slow  # trains the notebook's models: minutes


def test_research_notebook_runs_and_draws(tmp_path, monkeypatch, shared):
    monkeypatch.setenv("INTRINSIC_NOTEBOOK_OUT", str(tmp_path))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "xs/step-20" in text and "gap@d90" in text and "m for a gap of 0.1" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert (tmp_path / "study.png").stat().st_size > 0 and (tmp_path / "sweep.json").is_file()
