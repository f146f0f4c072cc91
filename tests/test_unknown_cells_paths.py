"""Unknown truth cells stay unknown in every command: comparing several score files, calibrate,
thresholds (policy and compare), and when no row has every label known. The reference is
scikit-learn (or the plain fit) on each label's known rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from labelwise.decide import compare_rules, fit_calibration, fit_policy
from conftest import noisy_scores, run_cli as run

SCHEMA = '[labels]\nindependent = ["a", "b"]\n[labels.unknown]\nvalues = ["-1"]\n'


def write(d, y, *scores):
    """Truth (-1 = unknown) and score files; returns their paths."""
    (d / "s.toml").write_text(SCHEMA)
    ids = [f"r{i}" for i in range(len(y))]
    pd.DataFrame({"id": ids, "a": y[:, 0], "b": y[:, 1]}).to_csv(d / "t.csv", index=False)
    paths = []
    for k, s in enumerate(scores):
        pd.DataFrame({"id": ids, "a": s[:, 0], "b": s[:, 1]}).to_csv(d / f"s{k}.csv", index=False)
        paths.append(d / f"s{k}.csv")
    return d / "s.toml", d / "t.csv", paths


@pytest.fixture
def partly_known(tmp_path):
    rng = np.random.default_rng(3)
    n = 80
    y = rng.integers(0, 2, size=(n, 2))
    s1 = noisy_scores(rng, y, 0.62, 0.38, 0.2)
    s2 = noisy_scores(rng, y, 0.55, 0.45, 0.2)
    unknown = rng.random((n, 2)) < 0.3
    # unknown cells get scores as if positive: reading them as negatives would lower the AUC
    s1[unknown], s2[unknown] = 0.97, 0.97
    yt = np.where(unknown, -1, y)
    return tmp_path, yt, s1, s2, ~unknown


def known_auc(yt, s, known):
    return [roc_auc_score(yt[known[:, j], j], s[known[:, j], j]) for j in range(yt.shape[1])]


def test_compared_score_files_are_scored_on_each_labels_known_rows(partly_known, capsys):
    d, yt, s1, s2, known = partly_known
    schema, truth, (p1, p2) = write(d, yt, s1, s2)
    assert run("evaluate", "--schema", schema, "--truth", truth, "--scores", f"x={p1}", "--scores", f"y={p2}",
               "--bootstrap", 20, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["comparison"]["unknown_cells"] is True
    for name, s in (("x", s1), ("y", s2)):
        per = doc["strategies"][name]["per_label"]
        assert np.allclose([r["auc"] for r in per], known_auc(yt, s, known))
    # one score file gives the same numbers
    assert run("evaluate", "--schema", schema, "--truth", truth, "--scores", p1, "--bootstrap", 0, "--json") == 0
    one = json.loads(capsys.readouterr().out)
    assert np.allclose([r["auc"] for r in one["per_label"]], known_auc(yt, s1, known))


def test_calibrate_fits_each_label_on_its_known_rows(partly_known, capsys):
    d, yt, s1, _, known = partly_known
    schema, truth, (p1,) = write(d, yt, s1)
    assert run("calibrate", "--schema", schema, "--truth", truth, "--scores", p1, "--out", d / "c.json") == 0
    doc = json.loads((d / "c.json").read_text())
    for j, label in enumerate("ab"):
        r = known[:, j]
        ref = fit_calibration(yt[r, j:j + 1], s1[r, j:j + 1], method="platt", labels=[label]).independent[label]
        assert doc["independent"][label]["a"] == pytest.approx(ref["a"], rel=1e-6)
        assert doc["independent"][label]["b"] == pytest.approx(ref["b"], rel=1e-6, abs=1e-9)


def test_thresholds_policy_tunes_each_label_on_its_known_rows(partly_known, capsys):
    d, yt, s1, _, known = partly_known
    schema, truth, (p1,) = write(d, yt, s1)
    assert run("thresholds", "--schema", schema, "--truth", truth, "--scores", p1, "--calibration", "platt",
               "--optimize", "f1", "--out", d / "p.json") == 0
    from labelwise.decide import DecisionPolicy

    pol = DecisionPolicy.load(d / "p.json")
    for j, label in enumerate("ab"):
        r = known[:, j]
        ref = fit_policy(yt[r, j:j + 1], s1[r, j:j + 1], labels=[label], rule="f1", calibration="platt")
        assert pol.thresholds.values[j] == pytest.approx(ref.thresholds.values[0])


def test_thresholds_set_level_rule_and_compare_use_whole_known_rows(partly_known, capsys):
    d, yt, s1, _, known = partly_known
    schema, truth, (p1,) = write(d, yt, s1)
    full = known.all(axis=1)
    assert run("thresholds", "--schema", schema, "--truth", truth, "--scores", p1, "--compare", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    ref = compare_rules(yt[full], s1[full], labels=["a", "b"])
    assert doc["images"] == int(full.sum())
    assert [r["instance_f1"] for r in doc["rules"]] == pytest.approx([r["instance_f1"] for r in ref.rows])
    assert run("thresholds", "--schema", schema, "--truth", truth, "--scores", p1, "--optimize", "hamming",
               "--out", d / "h.json") == 0
    assert f"fitted on the {int(full.sum())} of {len(yt)} rows with every label known" in capsys.readouterr().out


def test_per_label_metrics_when_no_row_is_fully_known(tmp_path, capsys):
    yt = np.array([[1, -1], [0, -1], [-1, 1], [-1, 0], [1, -1], [-1, 1]])
    s = np.array([[0.9, 0.3], [0.2, 0.8], [0.1, 0.9], [0.7, 0.2], [0.6, 0.5], [0.3, 0.7]])
    schema, truth, (p,) = write(tmp_path, yt, s)
    known = yt >= 0
    assert run("evaluate", "--schema", schema, "--truth", truth, "--scores", p, "--bootstrap", 0, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert np.allclose([r["auc"] for r in doc["per_label"]], known_auc(yt, s, known))
    assert run("evaluate", "--schema", schema, "--truth", truth, "--scores", f"x={p}", "--scores", f"y={p}",
               "--bootstrap", 0, "--out", tmp_path / "cmp") == 0
    saved = json.loads((tmp_path / "cmp" / "y" / "metrics.json").read_text())
    assert np.allclose([r["auc"] for r in saved["per_label"]], known_auc(yt, s, known))
