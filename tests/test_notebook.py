"""The example notebook, executed top to bottom by a real kernel as Jupyter would run it."""

from __future__ import annotations

from pathlib import Path

import pytest

nbclient = pytest.importorskip(
    "nbclient", reason="nbclient not installed: pip install -e '.[test]'"
)
nbformat = pytest.importorskip(
    "nbformat", reason="nbformat not installed: pip install -e '.[test]'"
)
pytest.importorskip("ipykernel", reason="ipykernel not installed: pip install -e '.[test]'")
pytest.importorskip("pandas", reason="pandas not installed: pip install -e '.[notebook]'")

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "capana-example.ipynb"


def test_example_notebook_runs_and_shows_the_report() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError naming the cell on any error

    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    html = [out["data"]["text/html"] for out in outputs if "text/html" in out.get("data", {})]
    text = "".join(out.get("text", "") for out in outputs if out["output_type"] == "stream")

    report_html = html[0]
    assert 'class="devices"' in report_html
    assert "lsc-from-other-cluster" in report_html
    report = "<Report 1 capture, 6 handshakes, 5 file transfers, 5 devices, 2 errors, 2 warnings>"
    assert report in text
    assert any("leaf_issuer" in page and "CAPF-0992727f" in page for page in html)  # DataFrame
    assert "the phone still has the LSC of another cluster" in text
