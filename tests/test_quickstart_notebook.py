"""examples/quickstart.ipynb runs end to end in a real kernel (nbclient), and shows what it promises."""

from __future__ import annotations

import os

import pytest

from conftest import ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")


@pytest.mark.slow
def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    nb = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    # the kernel (a subprocess) imports this checkout's labelwise
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    # import labelwise keeps TensorFlow's native log lines out of the notebook
    from labelwise import is_native_log_noise

    stderr = [ln for o in outputs if o.output_type == "stream" and o.name == "stderr" for ln in o.text.splitlines()]
    assert not [ln for ln in stderr if is_native_log_noise(ln)], stderr
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("<th>AUC</th>" in h and "data:image/png;base64," in h for h in html)  # the evaluation result
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= 3  # plot_roc, plot_calibration, the Grad-CAM grid
    assert list(tmp_path.iterdir()) == []  # nothing written to disk
