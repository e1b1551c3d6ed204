"""The example notebook runs from top to bottom (nbclient, a real ipykernel) and plots."""

from __future__ import annotations

from pathlib import Path

import nbclient  # test dependencies: nbclient, nbformat, ipykernel, and matplotlib (cosmobac[report])
import nbformat

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "notebooks" / "detect-anomalies.ipynb"


def test_the_example_notebook_runs_and_plots(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), (
        "commit the notebook without outputs"
    )
    client = nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "readings" in text and "event recall by anomaly type" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("Batch" in h and "sensor_id" in h for h in html)  # the rows, shown rich
    assert any("robust_zscore_score" in h and "detected" in h for h in html)  # detect on a Series
    # the figures display themselves: no %matplotlib magic, no PNG made by hand
    code = "".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert "%matplotlib" not in code and "figure_png" not in code and "Image(" not in code
