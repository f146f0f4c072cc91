"""``evaluate`` / ``thresholds`` on a truth table with a split column select the
rows of one split (``--split test``); the scores may cover that split alone or the whole table.

Truth: 3,000 real rows of the NIH table (Image Index, Finding Labels, Patient ID) with a split
column assigned by patient; scores are synthetic.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import NIH_FINDINGS, NIH_TABLE, require, run_cli

from labelwise.errors import InputError

N = 3000


@pytest.fixture(scope="module")
def nih_split(tmp_path_factory):
    full = pd.read_csv(require(NIH_TABLE), usecols=["Image Index", "Finding Labels", "Patient ID"], nrows=N)
    # By patient, so a patient's images stay in one split (as labelwise split would).
    bucket = full["Patient ID"].to_numpy() % 10
    full["split"] = np.where(bucket < 7, "train", np.where(bucket < 8, "validation", "test"))
    d = tmp_path_factory.mktemp("nihsplit")
    full.to_csv(d / "table.csv", index=False)
    y = np.array([[int(f in str(v).split("|")) for f in NIH_FINDINGS] for v in full["Finding Labels"]])
    rng = np.random.default_rng(0)
    scores = 1 / (1 + np.exp(-(-2 + 1.5 * y + rng.normal(0, 1, y.shape))))
    pred = pd.DataFrame(scores, columns=NIH_FINDINGS)
    pred.insert(0, "Image Index", full["Image Index"])
    test = (full["split"] == "test").to_numpy()
    # The test rows' scores only, shuffled (matched by id).
    pred[test].sample(frac=1, random_state=1).to_csv(d / "pred_test.csv", index=False)
    pred.to_csv(d / "pred_all.csv", index=False)
    from labelwise.evaluation.inputs import read_truth

    order = [NIH_FINDINGS.index(x) for x in read_truth(d / "table.csv", format="nih").schema.output_labels]
    np.save(d / "pred_all.npy", scores[:, order])  # an .npy's columns follow the schema's outputs
    return d, full, y, scores, test


def _reference_auc(y, s):
    from sklearn.metrics import roc_auc_score

    return [roc_auc_score(y[:, j], s[:, j]) if 0 < y[:, j].sum() < len(y) else None for j in range(y.shape[1])]


@pytest.mark.slow
@pytest.mark.parametrize("scores", ["pred_test.csv", "pred_all.csv", "pred_all.npy"])
def test_evaluate_split_selects_the_rows(nih_split, capsys, scores):
    d, full, y, s, test = nih_split
    rc = run_cli("evaluate", "--truth", d / "table.csv", "--format", "nih", "--scores", d / scores,
                 "--split", "test", "--bootstrap", 0, "--json")
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    doc = json.loads(cap.out)
    assert doc["n_samples"] == int(test.sum()) < N
    assert doc["summary"]["split"] == "test"
    assert "using the %d row(s) of split 'test'" % test.sum() in cap.err
    got = {r["label"]: r["auc"] for r in doc["per_label"]}
    for label, ref in zip(NIH_FINDINGS, _reference_auc(y[test], s[test])):
        if ref is not None:
            assert got[label] == pytest.approx(ref, abs=2e-6)  # the CSV holds the scores to ~1e-16
    if scores != "pred_test.csv":
        assert "outside the selected split" in cap.err or "using the" in cap.err


def test_thresholds_split_val_alias(nih_split, tmp_path, capsys):
    d, full, y, s, _ = nih_split
    val = (full["split"] == "validation").to_numpy()
    rc = run_cli("thresholds", "--truth", d / "table.csv", "--format", "nih", "--scores", d / "pred_all.csv",
                 "--split", "val", "--out", tmp_path / "t.json")
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert f"{int(val.sum())} images" in cap.out
    from labelwise.decide.thresholds import Thresholds, tune_thresholds

    got = Thresholds.load(tmp_path / "t.json")
    with pytest.warns(UserWarning, match="cannot tune"):  # labels absent from this split: NaN, said once
        ref = tune_thresholds(y[val], s[val], labels=NIH_FINDINGS, method="f1")
    got_by_label = dict(zip(got.labels, got.values))
    for label, value in zip(ref.labels, ref.values):
        assert got_by_label[label] == pytest.approx(value, abs=1e-6, nan_ok=True), label


def test_without_split_the_error_points_at_split(nih_split, capsys):
    d, *_ = nih_split
    rc = run_cli("evaluate", "--truth", d / "table.csv", "--format", "nih", "--scores", d / "pred_test.csv",
                 "--bootstrap", 0)
    err = capsys.readouterr().err
    assert rc == 2 and "have no score row" in err and "--split test" in err and "Traceback" not in err


def test_split_errors_name_the_values(nih_split):
    from labelwise.evaluation.inputs import load_inputs, read_truth, select_split

    d, full, *_ = nih_split
    with pytest.raises(InputError, match=r"no row has 'split' = 'tst'.*'test' \(\d+ rows\)"):
        load_inputs(d / "table.csv", d / "pred_test.csv", format="nih", split="tst")
    table = read_truth(d / "table.csv", format="nih")
    with pytest.raises(InputError, match="no split column 'fold'"):
        select_split(table, "test", column="fold")
    assert len(select_split(table, "TEST ")) == int((full["split"] == "test").sum())
