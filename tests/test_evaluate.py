"""The evaluation API, the scores reader and the ``labelwise evaluate`` / ``thresholds`` commands.

Fixture: the chest X-ray user's files. Truth = 2,000 real rows of the CheXNet test list
(cut here, not committed) written as ``y_true.csv`` (id + 14 0/1 columns); scores =
synthetic, written as ``y_pred.csv`` in a different row order.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import CHEXNET_SPLIT, NIH_FINDINGS, NIH_TABLE, ROOT, require

from labelwise import LabelSchema
from labelwise.errors import InputError
from labelwise.scores import read_scores

N_ROWS = 2000
# Per-label separation of the synthetic scores: AUCs from near chance (Hernia) to strong.
STRENGTH = np.linspace(2.2, 0.5, len(NIH_FINDINGS))


def synthetic_scores(y: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = -2.0 + STRENGTH * y + rng.normal(0, 1.0, y.shape)
    return 1 / (1 + np.exp(-logits))


@pytest.fixture(scope="module")
def xray(tmp_path_factory):
    """(folder, ids, y (n,14), scores (n,14)) with y_true.csv and y_pred.csv written."""
    lines = require(CHEXNET_SPLIT / "test_list.txt").read_text().split("\n")
    rows = [ln.split() for ln in lines if ln.strip()][::11][:N_ROWS]
    ids = np.array([r[0] for r in rows])
    y = np.array([[int(v) for v in r[1:]] for r in rows], dtype=np.uint8)
    scores = synthetic_scores(y)
    d = tmp_path_factory.mktemp("xray")
    truth = pd.DataFrame(y, columns=NIH_FINDINGS)
    truth.insert(0, "id", ids)
    truth.to_csv(d / "y_true.csv", index=False)
    order = np.random.default_rng(1).permutation(len(ids))
    pred = pd.DataFrame(scores[order], columns=NIH_FINDINGS)
    pred.insert(0, "id", ids[order])
    pred.to_csv(d / "y_pred.csv", index=False, float_format="%.6f")
    scores = pred.sort_index().set_index("id").loc[ids].to_numpy()  # as written (6 decimals)
    scores = pd.read_csv(d / "y_pred.csv").set_index("id").loc[ids].to_numpy()
    return d, ids, y, scores


# ------------------------------------------------------------------ scores reader
def test_read_scores_aligns_by_id(xray):
    d, ids, y, scores = xray
    got_ids, got = read_scores(d / "y_pred.csv", ids=ids, labels=NIH_FINDINGS)
    assert list(got_ids) == list(ids)
    np.testing.assert_allclose(got, scores)


def test_read_scores_output_labels_and_npy(tmp_path):
    schema = LabelSchema(independent=["A", "B"], none="No Finding")
    ids = ["x1", "x2", "x3"]
    p = np.array([[0.1, 0.2], [0.9, 0.5], [0.3, 0.3]])
    pd.DataFrame({"image": ["x3", "x1", "x2"], "A": p[[2, 0, 1], 0], "B": p[[2, 0, 1], 1]}).to_csv(
        tmp_path / "s.csv", index=False)
    _, got = read_scores(tmp_path / "s.csv", ids=ids, schema=schema)
    np.testing.assert_allclose(got[:, :2], p)
    np.testing.assert_allclose(got[:, 2], (1 - p[:, 0]) * (1 - p[:, 1]))  # derived none score
    np.save(tmp_path / "s.npy", p)
    _, got_npy = read_scores(tmp_path / "s.npy", ids=ids, schema=schema)
    np.testing.assert_allclose(got_npy, got)
    # Paths on one side, file names on the other: matched by file name.
    pd.DataFrame({"path": [f"imgs/{i}" for i in ids], "A": p[:, 0], "B": p[:, 1]}).to_csv(
        tmp_path / "paths.csv", index=False)
    np.testing.assert_allclose(read_scores(tmp_path / "paths.csv", ids=ids, schema=schema)[1], got)


@pytest.mark.parametrize("case, pattern", [
    ("missing_id", r"s\.csv: ids in column 'id' do not match.*1 truth id\(s\) have no score row \(e\.g\. \['c'\]\)"),
    ("extra_id", r"1 score row\(s\) have ids not in the truth table \(e\.g\. \['zz'\]\)"),
    ("missing_col", r"s\.csv: missing score column\(s\) \['B'\].*did you mean: 'B' \(found 'b'\)"),
    ("text_cell", r"s\.csv, line 3, column 'B': 'high' is not a finite number"),
    ("empty_cell", r"s\.csv, line 2, column 'A': empty cell"),
    ("dup_id", r"s\.csv, line 5: id 'a' appears twice \(first on line 2\)"),
])
def test_read_scores_errors(tmp_path, case, pattern):
    ids = ["a", "b", "c"]
    rows = {"id": ["a", "b", "c"], "A": ["0.1", "0.2", "0.3"], "B": ["0.5", "0.6", "0.7"]}
    if case == "missing_id":
        rows = {k: v[:2] for k, v in rows.items()}
    elif case == "extra_id":
        rows = {k: v + (["zz"] if k == "id" else ["0.1"]) for k, v in rows.items()}
    elif case == "missing_col":
        rows["b"] = rows.pop("B")
    elif case == "text_cell":
        rows["B"][1] = "high"
    elif case == "empty_cell":
        rows["A"][0] = ""
    elif case == "dup_id":
        rows = {k: v + (["a"] if k == "id" else ["0.1"]) for k, v in rows.items()}
    pd.DataFrame(rows).to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(InputError, match=pattern):
        read_scores(tmp_path / "s.csv", ids=ids, labels=["A", "B"])


def test_read_scores_npy_shape_errors(tmp_path):
    np.save(tmp_path / "s.npy", np.zeros((3, 5)))
    with pytest.raises(InputError, match=r"s\.npy: scores array has shape \(3, 5\); expected \(n, 2\)"):
        read_scores(tmp_path / "s.npy", ids=["a", "b", "c"], labels=["A", "B"])
    np.save(tmp_path / "s.npy", np.zeros((4, 2)))
    with pytest.raises(InputError, match="4 score rows but the truth table has 3 rows"):
        read_scores(tmp_path / "s.npy", ids=["a", "b", "c"], labels=["A", "B"])
    with pytest.raises(InputError, match="does not exist"):
        read_scores(tmp_path / "nope.csv", labels=["A"])
