"""Results in a notebook: to_frame against scikit-learn, plot_* Figures, _repr_html_ with inline plots."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

pytest.importorskip("matplotlib")
pytest.importorskip("pandas")

from labelwise import LabelSchema  # noqa: E402
from labelwise.evaluation import compare, evaluate  # noqa: E402

SCHEMA = LabelSchema(["a", "b", "c"], none="none")


def _data(seed=0, n=150):
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=(n, 3)) < [0.3, 0.5, 0.2]).astype(int)
    s = np.clip(y * 0.3 + rng.uniform(size=(n, 3)) * 0.7, 0, 1)
    return SCHEMA.complete(y), s


def test_to_frame_has_one_row_per_label_equal_to_sklearn():
    y, s = _data()
    result = evaluate(y, s, schema=SCHEMA, bootstrap=0)
    frame = result.to_frame()
    assert list(frame.index) == list(SCHEMA.labels)
    scores = SCHEMA.complete_scores(s)
    for j, label in enumerate(SCHEMA.labels):
        assert frame.loc[label, "auc"] == pytest.approx(roc_auc_score(y[:, j], scores[:, j]), abs=1e-12)
        assert frame.loc[label, "ap"] == pytest.approx(average_precision_score(y[:, j], scores[:, j]), abs=1e-12)
        assert frame.loc[label, "positives"] == y[:, j].sum()
    assert np.isnan(frame.loc["none", "threshold"]) and frame.loc["none", "rule"] == "derived"


def test_plots_are_figures_whose_curves_match_sklearn():
    from matplotlib.figure import Figure

    y, s = _data(1)
    result = evaluate(y, s, schema=SCHEMA, bootstrap=0)
    roc = result.plot_roc()
    assert isinstance(roc, Figure)
    panels = [ax for ax in roc.axes if ax.get_visible()]
    assert len(panels) == len(SCHEMA.labels)
    scores = SCHEMA.complete_scores(s)
    for j, ax in enumerate(panels):
        fpr, tpr = ax.lines[1].get_data()  # lines[0] is the chance diagonal
        area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
        assert area == pytest.approx(roc_auc_score(y[:, j], scores[:, j]), abs=1e-9)
    assert isinstance(result.plot_pr(), Figure) and isinstance(result.plot_calibration(), Figure)


def test_repr_html_shows_table_averages_and_inline_plots_without_files(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    y, s = _data(2)
    result = evaluate(y, s, schema=SCHEMA, bootstrap=20)
    page = result._repr_html_()
    for row in result.rows:
        assert f"<td>{row.label}</td>" in page and f"{row.auc:.3f}" in page
    assert f"{result.averages['auc_macro']:.3f}" in page and "auc macro" in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3
    for data in images:
        assert Image.open(io.BytesIO(base64.b64decode(data))).size[0] > 100
    assert list(tmp_path.iterdir()) == []


def test_comparison_frame_html_and_overlaid_roc():
    from matplotlib.figure import Figure

    y, s = _data(3)
    noisy = np.clip(s + np.random.default_rng(4).normal(scale=0.3, size=s.shape), 0, 1)
    comp = compare(y, {"model": s, "noisy": noisy}, schema=SCHEMA, bootstrap=10)
    frame = comp.to_frame()
    full = {"model": SCHEMA.complete_scores(s), "noisy": SCHEMA.complete_scores(noisy)}
    for j, label in enumerate(SCHEMA.labels):
        for name in ("model", "noisy"):
            assert frame.loc[label, f"auc[{name}]"] == pytest.approx(roc_auc_score(y[:, j], full[name][:, j]), abs=1e-12)
        assert frame.loc[label, "diff[noisy]"] == pytest.approx(
            frame.loc[label, "auc[noisy]"] - frame.loc[label, "auc[model]"], abs=1e-9)
    fig = comp.plot_roc()
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 3  # diagonal + two strategies
    page = comp._repr_html_()
    assert "model (reference)" in page and "noisy" in page and page.count("data:image/png;base64,") == 1
