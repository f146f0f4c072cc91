"""labelwise calibrate / thresholds --optimize / evaluate with a decision file, and the predict -> evaluate
round trip, checked against the Python API and scikit-learn."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labelwise.decide import Calibration, DecisionPolicy, fit_calibration, fit_policy
from labelwise.labels.schema import LabelSchema
from labelwise.metrics import brier_score, expected_calibration_error
from conftest import inflated_draw, run_cli, write_csv as _write

LABELS = ["A", "B", "C", "D"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Inflated scores (a weighted loss's look) of 4 independent labels with known probabilities."""
    d = tmp_path_factory.mktemp("decide_cli")
    rng = np.random.default_rng(0)
    n = 600
    z, y, s = inflated_draw(rng, n, 4, -1, 1.5)
    ids = [f"img{i}" for i in range(n)]
    _write(d / "y.csv", ids, LABELS, y, "{:d}")
    _write(d / "s.csv", ids, LABELS, s)
    _write(d / "logits.csv", ids, LABELS, 0.5 * z + 1.5)
    return d, y, s


def test_calibrate_writes_what_the_api_fits(files, capsys):
    d, y, s = files
    assert run_cli("calibrate", "--truth", d / "y.csv", "--scores", d / "s.csv", "--method", "platt",
                   "--out", d / "cal.json") == 0
    out = capsys.readouterr().out
    assert "ECE before" in out and "15 equal-width bins" in out
    cal = Calibration.load(d / "cal.json")
    ref = fit_calibration(y, s, method="platt", labels=LABELS)
    np.testing.assert_allclose(cal.apply(s), ref.apply(s), atol=1e-7)  # the CSV holds 9 digits
    assert expected_calibration_error(y, cal.apply(s)) < 0.3 * expected_calibration_error(y, s)


def test_calibrate_refuses_logits_without_from_logits(files, capsys):
    d, y, s = files
    assert run_cli("calibrate", "--truth", d / "y.csv", "--scores", d / "logits.csv", "--out", d / "x.json") == 2
    assert "--from-logits" in capsys.readouterr().err
    assert not (d / "x.json").exists()
    assert run_cli("calibrate", "--truth", d / "y.csv", "--scores", d / "logits.csv", "--from-logits",
                   "--out", d / "cal_logits.json") == 0
    assert Calibration.load(d / "cal_logits.json").from_logits


def test_thresholds_optimize_writes_a_decision_file(files, capsys):
    d, y, s = files
    run_cli("calibrate", "--truth", d / "y.csv", "--scores", d / "s.csv", "--out", d / "cal.json")
    assert run_cli("thresholds", "--truth", d / "y.csv", "--scores", d / "s.csv", "--calibration", d / "cal.json",
                   "--optimize", "instance-f1", "--min-labels", "1", "--out", d / "decision.json") == 0
    pol = DecisionPolicy.load(d / "decision.json")
    assert pol.rule == "instance-f1" and pol.min_labels == 1 and pol.calibration.method == "platt"
    ref = fit_policy(y, s, LabelSchema(tuple(LABELS)), rule="instance-f1", calibration="platt", min_labels=1)
    assert (pol.decide(s) == ref.decide(s)).mean() > 0.999  # 9-digit CSV vs exact floats
    assert (pol.decide(s).sum(1) >= 1).all()
    # --method is an alias; a calibration method name is fitted on the spot
    assert run_cli("thresholds", "--truth", d / "y.csv", "--scores", d / "s.csv", "--calibration", "platt",
                   "--method", "micro-f1", "--out", d / "micro.json") == 0
    micro = DecisionPolicy.load(d / "micro.json")
    assert micro.rule == "micro-f1" and len(set(micro.thresholds.values.tolist())) == 1


def test_plain_per_label_rule_still_writes_a_thresholds_file(files):
    d, _, _ = files
    assert run_cli("thresholds", "--truth", d / "y.csv", "--scores", d / "s.csv", "--method", "youden",
                   "--out", d / "t.json") == 0
    from labelwise.decide.thresholds import FORMAT

    assert json.loads((d / "t.json").read_text())["format"] == FORMAT


def test_compare_prints_every_rule(files, capsys):
    d, _, _ = files
    assert run_cli("thresholds", "--truth", d / "y.csv", "--scores", d / "s.csv", "--calibration", "platt",
                   "--compare") == 0
    out = capsys.readouterr().out
    for rule in ("hamming", "subset", "micro-f1", "macro-f1", "instance-f1", "top-k=1"):
        assert rule in out
    assert run_cli("thresholds", "--truth", d / "y.csv", "--scores", d / "s.csv", "--optimize", "all", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["rule"] for r in doc["rules"]][:2] == ["hamming", "subset"] and doc["calibration"] == "none"


@pytest.mark.parametrize("argv,message", [
    (["--optimize", "best"], "unknown decision rule 'best'; the rules are: f1, fbeta=2"),
    (["--optimize", "top-k=5"], "top-k=5 is more than the 4 independent labels"),
    (["--optimize", "hamming", "--min-labels", "3", "--max-labels", "2"], "min_labels (3) is above max_labels (2)"),
    (["--optimize", "fbeta=-1"], "B must be a positive number"),
    (["--calibration", "nope.json"], "no such file, and not a method"),
    (["--compare", "--out", "x.json"], "--compare prints the table only"),
])
def test_thresholds_bad_input(files, capsys, argv, message):
    d, _, _ = files
    assert run_cli("thresholds", "--truth", d / "y.csv", "--scores", d / "s.csv", *argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_calibration_with_other_labels_is_refused(files, capsys):
    d, y, s = files
    fit_calibration(y, s, labels=["A", "B", "C", "E"]).save(d / "other.json")
    assert run_cli("thresholds", "--truth", d / "y.csv", "--scores", d / "s.csv", "--calibration", d / "other.json",
                   "--optimize", "hamming") == 2
    err = capsys.readouterr().err
    assert "['D']" in err and "['E']" in err


def test_evaluate_applies_the_decision_file(files, capsys, tmp_path):
    d, y, s = files
    pol = fit_policy(y, s, LabelSchema(tuple(LABELS)), rule="hamming", calibration="platt", min_labels=3)
    pol.save(tmp_path / "decision.json")
    out = tmp_path / "rep"
    assert run_cli("evaluate", "--truth", d / "y.csv", "--scores", d / "s.csv", "--thresholds",
                   tmp_path / "decision.json", "--bootstrap", 0, "--json", "--out", out) == 0
    doc = json.loads(capsys.readouterr().out)
    p = pol.probabilities(s)
    av = doc["averages"]
    assert av["ece_classwise"] == pytest.approx(expected_calibration_error(y, p), abs=1e-6)
    assert av["brier_macro"] == pytest.approx(brier_score(y, p), abs=1e-6)
    assert av["labels_per_image_predicted"] == pytest.approx(pol.decide(s).sum(1).mean(), abs=1e-9)
    assert av["labels_per_image_true"] == pytest.approx(y.sum(1).mean())
    row = doc["per_label"][0]
    assert row["ece"] == pytest.approx(expected_calibration_error(y[:, 0], p[:, 0]), abs=1e-6)
    assert doc["decisions"]["ece_before"] > 0.2 > doc["decisions"]["ece_after"]
    over = [n for n in doc["notes"] if "more than 2x the truth" in n]  # 3+ labels decided vs 1.3 true
    # the rule in use is named as the cause and not offered as the remedy
    assert len(over) == 1 and "under the rule hamming, at least 3 per image" in over[0] and "consider instance-f1 or" in over[0]
    html = (out / "report.html").read_text()
    assert 'id="decisions"' in html and "Reliability before and after calibration" in html
    assert (out / "labels_per_image.png").exists() and (out / "reliability_before_after.png").exists()
    assert DecisionPolicy.load(out / "thresholds.json").rule == "hamming"


def test_weighted_loss_note_without_calibration(files, capsys):
    d, _, _ = files
    assert run_cli("evaluate", "--truth", d / "y.csv", "--scores", d / "s.csv", "--bootstrap", 0, "--json",
                   "--score-source", "weighted") == 0
    doc = json.loads(capsys.readouterr().out)
    assert any("not probabilities" in n for n in doc["notes"])


def test_predict_csv_round_trip(files, capsys, tmp_path):
    from sklearn.metrics import roc_auc_score

    from labelwise.training.predict import write_predictions

    d, y, s = files
    schema = LabelSchema(tuple(LABELS))
    s = s.copy()
    s[0, 0] = 1e-7  # must survive the CSV, not print as 0
    decisions = (s >= 0.5).astype(np.uint8)
    path = write_predictions(tmp_path / "pred.csv", [f"img{i}" for i in range(len(s))], s, decisions, schema)
    first = path.read_text().splitlines()[1]
    assert "1e-07" in first
    assert run_cli("evaluate", "--truth", d / "y.csv", "--scores", path, "--bootstrap", 0, "--json") == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["per_label"][0]["auc"] == pytest.approx(roc_auc_score(y[:, 0], s[:, 0]), abs=1e-9)
    assert captured.err.count("p_<label> columns are read as the scores") == 1
