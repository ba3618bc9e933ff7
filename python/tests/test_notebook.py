"""examples/quickstart.ipynb runs from top to bottom (outputs are not kept in git)."""

import nbformat
from nbclient import NotebookClient

from conftest import ROOT


def test_quickstart_notebook_runs():
    path = ROOT / "examples" / "quickstart.ipynb"
    notebook = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code"), "strip the outputs before committing"
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    text = "\n".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert "igcam      class 285 'Egyptian cat'" in text
    assert "Grad-CAM, ResNet-50, one image: igcam" in text
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if {"image/png", "image/jpeg"} & set(o.get("data", {}))]
    assert len(images) == 4  # three side-by-side rows and one Explanation
