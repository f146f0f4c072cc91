"""What a scores file holds travels with it (the ``<file>.json`` sidecar): evaluate, calibrate and
thresholds never calibrate calibrated probabilities again, and logits are not read as probabilities.
References: the policy's own ``apply`` on the raw scores and scikit-learn's Brier score."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss

from labelwise.decide import DecisionPolicy, fit_policy
from labelwise.decide.scorefile import move_scores, read_state, sidecar_path, write_scores, write_state
from labelwise.labels.schema import LabelSchema
from conftest import inflated_draw, run_cli

LABELS = ("A", "B", "C")
SCHEMA = LabelSchema(LABELS)


def _truth(path, ids, y):
    with open(path, "w") as f:
        f.write("id," + ",".join(LABELS) + "\n")
        for i, row in zip(ids, y):
            f.write(i + "," + ",".join(str(int(v)) for v in row) + "\n")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A policy with Platt fitted on inflated validation scores; the test split's raw scores (no
    sidecar: another tool's file) and what train writes for it: calibrated probabilities + sidecar."""
    from labelwise.training.predict import write_predictions

    d = tmp_path_factory.mktemp("state")
    rng = np.random.default_rng(3)

    _, y_val, s_val = inflated_draw(rng, 500, 3, -1, 1.5)
    _, y, s = inflated_draw(rng, 400, 3, -1, 1.5)
    policy = fit_policy(y_val, s_val, SCHEMA, rule="f1", calibration="platt")
    policy.save(d / "decision.json")
    ids = [f"img{i}" for i in range(len(y))]
    _truth(d / "truth.csv", ids, y)
    write_scores(d / "raw.csv", ids, s, LABELS)
    sidecar_path(d / "raw.csv").unlink()  # a file without a sidecar, as another tool writes it
    P, D = policy.apply(s)
    write_predictions(d / "test_predictions.csv", ids, P, D, SCHEMA, policy=policy)
    _truth(d / "val_truth.csv", [f"v{i}" for i in range(len(y_val))], y_val)
    write_scores(d / "val_scores.csv", [f"v{i}" for i in range(len(y_val))], s_val, LABELS, values="raw")
    return d, y, s, policy


def test_predictions_sidecar_says_calibrated_under_the_policy(written):
    d, y, s, policy = written
    state = read_state(d / "test_predictions.csv")
    assert state.values == "calibrated" and state.calibrated
    assert state.policy["calibration"] == "platt" and state.policy["rule"] == "f1"
    assert state.policy["fingerprint"] == DecisionPolicy.load(d / "decision.json").fingerprint
    assert read_state(d / "val_scores.csv").values == "raw"
    assert read_state(d / "raw.csv") is None
    # the CSV itself stays plain: id, labels, p_<label>, <label>
    head = (d / "test_predictions.csv").read_text().splitlines()[0].split(",")
    assert head == ["id", "labels", "p_A", "p_B", "p_C", "A", "B", "C"]


def _evaluate(d, scores, capsys):
    assert run_cli("evaluate", "--truth", d / "truth.csv", "--scores", scores, "--thresholds",
                   d / "decision.json", "--bootstrap", 0, "--json") == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def test_evaluate_does_not_calibrate_calibrated_scores_again(written, capsys):
    d, y, s, policy = written
    P, D = policy.apply(s)  # the reference: calibrated once
    doc, err = _evaluate(d, d / "test_predictions.csv", capsys)
    assert err.count("not applied twice") == 1 and "decision.json" in err
    av = doc["averages"]
    assert av["labels_per_image_predicted"] == pytest.approx(D.sum(1).mean(), abs=1e-9)
    brier = np.mean([brier_score_loss(y[:, j], P[:, j]) for j in range(3)])
    assert av["brier_macro"] == pytest.approx(brier, abs=1e-6)
    # the raw scores (no sidecar) with the same decision file give the same numbers: calibrated once there too
    raw, err = _evaluate(d, d / "raw.csv", capsys)
    assert "not applied twice" not in err
    assert raw["averages"]["brier_macro"] == pytest.approx(brier, abs=1e-6)
    assert raw["averages"]["labels_per_image_predicted"] == av["labels_per_image_predicted"]


def test_a_different_calibration_on_calibrated_scores_is_refused_naming_both_files(written, capsys, tmp_path):
    d, y, s, policy = written
    other = fit_policy(y, s, SCHEMA, rule="f1", calibration="temperature")
    other.save(tmp_path / "other.json")
    assert run_cli("evaluate", "--truth", d / "truth.csv", "--scores", d / "test_predictions.csv", "--thresholds",
                   tmp_path / "other.json", "--bootstrap", 0) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("note:")]
    assert len(err) == 1 and "test_predictions.csv" in err[0] and "other.json" in err[0]


def test_calibrate_and_thresholds_refuse_to_fit_on_calibrated_scores(written, capsys, tmp_path):
    d, y, s, policy = written
    assert run_cli("calibrate", "--truth", d / "truth.csv", "--scores", d / "test_predictions.csv",
                   "--out", tmp_path / "c.json") == 2
    assert "val_scores.csv" in capsys.readouterr().err and not (tmp_path / "c.json").exists()
    assert run_cli("thresholds", "--truth", d / "truth.csv", "--scores", d / "test_predictions.csv",
                   "--calibration", "platt", "--optimize", "hamming", "--out", tmp_path / "t.json") == 2
    capsys.readouterr()
    # train's raw validation scores calibrate as they are
    assert run_cli("calibrate", "--truth", d / "val_truth.csv", "--scores", d / "val_scores.csv",
                   "--out", tmp_path / "c.json") == 0


def test_thresholds_with_the_calibration_that_made_the_scores_skips_it(written, capsys, tmp_path):
    d, y, s, policy = written
    policy.calibration.save(tmp_path / "cal.json")
    assert run_cli("thresholds", "--truth", d / "truth.csv", "--scores", d / "test_predictions.csv",
                   "--calibration", tmp_path / "cal.json", "--optimize", "hamming", "--out", tmp_path / "d.json") == 0
    assert capsys.readouterr().out.count("not applied twice") == 1
    got = DecisionPolicy.load(tmp_path / "d.json")
    assert got.calibration is None
    P = policy.probabilities(s)
    np.testing.assert_array_equal(got.decide(P), (P >= 0.5).astype(np.uint8))


def test_logits_and_probabilities_are_not_mixed_up(written, capsys, tmp_path):
    d, y, s, policy = written
    ids = [f"img{i}" for i in range(len(y))]
    # logits that all lie in [0, 1] read as probabilities without complaint; the sidecar says otherwise
    write_scores(tmp_path / "logits.csv", ids, s * 0.9, LABELS, values="logits")
    assert run_cli("evaluate", "--truth", d / "truth.csv", "--scores", tmp_path / "logits.csv", "--bootstrap", 0) == 2
    assert "holds logits" in capsys.readouterr().err
    assert run_cli("evaluate", "--truth", d / "truth.csv", "--scores", d / "test_predictions.csv", "--from-logits",
                   "--bootstrap", 0) == 2
    assert "not logits" in capsys.readouterr().err


def test_sidecar_values_are_checked(tmp_path):
    from labelwise.errors import InputError

    (tmp_path / "s.csv").write_text("id,A\nx,0.5\n")
    write_state(tmp_path / "s.csv", "raw")
    assert read_state(tmp_path / "s.csv").values == "raw"
    sidecar_path(tmp_path / "s.csv").write_text(json.dumps({"format": "labelwise.scores", "values": "odds"}))
    with pytest.raises(InputError, match="s.csv.json"):
        read_state(tmp_path / "s.csv")
    with pytest.raises(InputError, match="values"):
        write_state(tmp_path / "s.csv", "percent")


def test_evaluate_without_a_decision_file_decides_by_the_policy_the_sidecar_records(written, capsys):
    d, y, s, policy = written
    _, D = policy.apply(s)  # the decisions the file's writer made
    assert run_cli("evaluate", "--truth", d / "truth.csv", "--scores", d / "test_predictions.csv",
                   "--bootstrap", "0", "--json") == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert err.count("decided by the policy its sidecar records") == 1
    assert doc["averages"]["labels_per_image_predicted"] == pytest.approx(D.sum(1).mean(), abs=1e-9)
    assert doc["averages"]["labels_per_image_predicted"] != pytest.approx(
        (policy.probabilities(s) >= 0.5).sum(1).mean(), abs=1e-9)  # not 0.5 per label
    # a file without a sidecar keeps the documented 0.5 per label, with no such note
    assert run_cli("evaluate", "--truth", d / "truth.csv", "--scores", d / "raw.csv", "--bootstrap", "0",
                   "--json") == 0
    out, err = capsys.readouterr()
    assert "sidecar records" not in err
    assert json.loads(out)["averages"]["labels_per_image_predicted"] == pytest.approx(
        (s >= 0.5).sum(1).mean(), abs=1e-9)


def test_a_moved_scores_file_keeps_its_sidecar(tmp_path):
    src = write_scores(tmp_path / "test_predictions.csv", ["x1", "x2"], np.array([[0.2], [0.9]]), ["a"],
                       values="calibrated")
    dst = move_scores(src, tmp_path / "predictions.csv")
    assert not src.exists() and not sidecar_path(src).exists()
    assert read_state(dst).values == "calibrated"
    assert json.loads(sidecar_path(dst).read_text())["file"] == "predictions.csv"


def test_a_predict_file_is_diagnosed_with_the_calibration_it_holds(tmp_path, capsys):
    """Probabilities a prior calibration made flat are reported as that, as train's report says, not as a
    model whose output is rounding noise; the summary says the calibration is in the scores."""
    from labelwise.training.predict import write_predictions

    rng = np.random.default_rng(5)
    y_val = (rng.random((300, 3)) < 0.3).astype(int)
    y_val[:, 2] = 0  # no validation positive of C: its calibration is its prevalence
    s_val = np.clip(y_val * 0.4 + rng.random((300, 3)) * 0.6, 0, 1)
    policy = fit_policy(y_val, s_val, SCHEMA, rule="hamming", calibration="platt")
    assert policy.calibration.independent["C"]["kind"] == "prior"
    y = (rng.random((200, 3)) < 0.3).astype(int)
    s = np.clip(y * 0.4 + rng.random((200, 3)) * 0.6, 0, 1)
    ids = [f"img{i}" for i in range(len(y))]
    _truth(tmp_path / "truth.csv", ids, y)
    P, D = policy.apply(s)
    write_predictions(tmp_path / "pred.csv", ids, P, D, SCHEMA, policy=policy)
    assert run_cli("evaluate", "--truth", tmp_path / "truth.csv", "--scores", tmp_path / "pred.csv",
                   "--bootstrap", "0", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    codes = {f["code"] for f in doc["diagnostics"] if f["label"] == "C"}
    assert "calibrated_to_prior" in codes and "near_constant" not in codes
    assert "calibration platt already in the scores" in doc["thresholds"]["source"]
