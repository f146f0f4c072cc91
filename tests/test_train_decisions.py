"""Training fits a decision policy (calibration + rule) and the artifact carries it; predict writes
the calibrated probabilities and decides by the artifact's rule, or by --decide-for.

One tiny run (the digit table of test_train.py: 256 MNIST digits at 16x16, 3 epochs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("tensorflow")

from labelwise.errors import InputError  # noqa: E402
from labelwise.training import TrainConfig  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "old_model"


# ------------------------------------------------------------------ config keys
@pytest.mark.parametrize("kwargs, words", [
    ({"calibration": "logistic"}, ["calibration", "platt", "temperature", "isotonic"]),
    ({"calibration": 1}, ["calibration", "a string"]),
    ({"decide_for": "accuracy"}, ["decide_for", "unknown decision rule", "instance-f1", "top-k"]),
    ({"decide_for": "top-k"}, ["decide_for", "top-k", "parameter"]),
    ({"decide_for": ["f1"]}, ["decide_for", "a string"]),
    ({"min_labels": -1}, ["min_labels", ">= 0"]),
    ({"max_labels": 0}, ["max_labels", ">= 1"]),
    ({"min_labels": 3, "max_labels": 2}, ["min_labels (3)", "max_labels (2)"]),
    ({"threshold_method": "f1", "decide_for": "hamming"}, ["threshold_method", "old name", "decide_for"]),
])
def test_bad_decision_keys_are_refused(kwargs, words):
    with pytest.raises(InputError) as e:
        TrainConfig(**kwargs)
    for w in words:
        assert w in str(e.value)


def test_decision_keys_are_read_and_normalised():
    c = TrainConfig(calibration="temperature", decide_for="Instance_F1", min_labels=1, max_labels="none")
    assert (c.calibration, c.decide_for, c.min_labels, c.max_labels) == ("temperature", "instance-f1", 1, None)
    assert TrainConfig(decide_for="top-k=2").decide_for == "top-k=2"
    # the old key still chooses the rule
    assert TrainConfig(threshold_method="youden").decide_for == "youden"


# ------------------------------------------------------------------ a tiny run
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from test_train import make_digit_table

    from labelwise.commands.cli import main

    folder = tmp_path_factory.mktemp("decisions_train")
    config = make_digit_table(folder)
    assert main(["train", str(config), "--calibration", "platt", "--decide-for", "f1"]) == 0
    return folder


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def _by_hand(cal: dict, schema, raw: np.ndarray) -> np.ndarray:
    """The stored calibration applied by hand: Platt a*logit(s)+b per independent label, one
    temperature per exclusive group (softmax of log p / T), none = prod(1 - p_independent)."""
    out = np.zeros((raw.shape[0], schema.n_labels))
    s = np.clip(raw, 1e-12, 1 - 1e-12)
    for j, label in enumerate(schema.independent):
        spec = cal["independent"][label]
        assert spec["kind"] == "platt"
        out[:, j] = _sig(spec["a"] * np.log(s[:, j] / (1 - s[:, j])) + spec["b"])
    for name, members in schema.exclusive.items():
        idx = [schema.labels.index(m) for m in members]
        T = cal["groups"][name]["T"]
        z = np.log(np.maximum(raw[:, idx], 0) + 1e-300) / T
        e = np.exp(z - z.max(axis=1, keepdims=True))
        out[:, idx] = e / e.sum(axis=1, keepdims=True)
    n = len(schema.independent)
    out[:, schema.labels.index(schema.none)] = np.prod(1 - out[:, :n], axis=1)
    return out


def _raw_scores(folder):
    from labelwise.training import artifact
    from labelwise.training.predict import predict_scores

    model, schema, _, pre = artifact.load(folder / "run" / "model.keras")
    paths = sorted((folder / "images").glob("*.png"))[-48:]  # the test split's images
    raw = predict_scores(model, [str(p) for p in paths], schema=schema, image_size=pre.image_size,
                         channels=pre.channels).scores
    return schema, paths, raw


@pytest.mark.slow
def test_artifact_carries_the_policy_and_predict_writes_calibrated_probabilities(run, tmp_path):
    from labelwise.commands.cli import main
    from labelwise.training import artifact

    model, schema, policy, _ = artifact.load(run / "run" / "model.keras", policy=True)
    assert policy.rule == "f1" and policy.calibration.method == "platt"
    # older readers still find the per-label thresholds where they were
    _, _, thresholds, _ = artifact.load(run / "run" / "model.keras")
    np.testing.assert_array_equal(thresholds.values, policy.thresholds.values)

    schema, paths, raw = _raw_scores(run)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in paths:
        (folder / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run / "run" / "model.keras"), str(folder), "--out", str(out), "--quiet"]) == 0
    frame = pd.read_csv(out, dtype={"id": str}).set_index("id").loc[[p.name for p in paths]]
    P = frame[[f"p_{x}" for x in schema.labels]].to_numpy()
    expected = _by_hand(policy.calibration.to_dict(), schema, raw)
    np.testing.assert_allclose(P, expected, rtol=1e-6, atol=1e-9)
    assert np.abs(P - raw).max() > 1e-3  # the calibration did change them: the comparison can fail
    # decisions: the F1 thresholds on the calibrated probabilities, one digit (arg-max), none derived
    n = len(schema.independent)
    D = np.zeros_like(P, dtype=np.uint8)
    D[:, :n] = P[:, :n] >= policy.thresholds.for_labels(schema.independent).values
    digits = [schema.labels.index(m) for m in schema.exclusive["digit"]]
    D[np.arange(len(P)), np.array(digits)[np.argmax(P[:, digits], axis=1)]] = 1
    D[:, schema.labels.index(schema.none)] = D[:, :n].sum(axis=1) == 0
    np.testing.assert_array_equal(frame[list(schema.labels)].to_numpy(), D)

    # --decide-for overrides the rule with one that needs no validation data, same probabilities
    out2 = tmp_path / "hamming.csv"
    assert main(["predict", str(run / "run" / "model.keras"), str(folder), "--out", str(out2), "--quiet",
                 "--decide-for", "top-k=1"]) == 0
    f2 = pd.read_csv(out2, dtype={"id": str}).set_index("id").loc[[p.name for p in paths]]
    np.testing.assert_allclose(f2[[f"p_{x}" for x in schema.labels]].to_numpy(), P)
    D2 = f2[list(schema.labels)].to_numpy()
    assert (D2[:, :n].sum(axis=1) == 1).all()
    np.testing.assert_array_equal(np.argmax(D2[:, :n], axis=1), np.argmax(P[:, :n], axis=1))


def test_train_evaluates_the_test_split_with_the_policy(run):
    import json

    metrics = json.loads((run / "run" / "report" / "metrics.json").read_text())
    assert "platt" in json.dumps(metrics.get("decisions", metrics))


@pytest.mark.parametrize("rule, words", [
    ("f1", ["--decide-for f1", "validation", "hamming", "instance-f1", "top-k=K"]),
    ("sensitivity=0.9", ["validation", "hamming"]),
    ("best", ["unknown decision rule"]),
])
def test_predict_refuses_rules_that_need_validation(run, tmp_path, capsys, rule, words):
    from labelwise.commands.cli import main

    assert main(["predict", str(run / "run" / "model.keras"), str(run / "images"), "--out",
                 str(tmp_path / "p.csv"), "--decide-for", rule]) == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err
    assert not (tmp_path / "p.csv").exists()


# ------------------------------------------------------------------ old artifacts
def test_old_artifact_decides_by_its_thresholds_as_before():
    from labelwise.decide.thresholds import decide
    from labelwise.training import artifact
    from labelwise.training.predict import resolve_policy

    def decide_scores(scores, policy):
        return policy.apply(scores)

    data = np.load(FIXTURES / "inputs.npz")
    _, schema, thresholds, _ = artifact.load(FIXTURES / "image_model.keras")
    _, _, policy, _ = artifact.load(FIXTURES / "image_model.keras", policy=True)
    assert policy.calibration is None
    scores = schema.complete_scores(data["image_scores"])
    probs, decisions = decide_scores(scores, policy)
    np.testing.assert_allclose(probs, scores)
    np.testing.assert_array_equal(decisions, decide(scores, schema, thresholds))
    # and --decide-for works on it: hamming is p >= 0.5 on the (uncalibrated) scores
    _, d = decide_scores(scores, resolve_policy(policy, schema, "hamming"))
    n = len(schema.independent)
    np.testing.assert_array_equal(d[:, :n], scores[:, :n] >= 0.5)
    with pytest.raises(InputError, match="instance-f1"):
        resolve_policy(policy, schema, "macro-f1")


def test_training_warns_when_decisions_exceed_twice_the_truth():
    import warnings

    from labelwise import LabelSchema
    from labelwise.decide import fit_policy
    from labelwise.training.finish import _warn_if_overdeciding

    rng = np.random.default_rng(0)
    schema = LabelSchema(tuple(f"t{j}" for j in range(10)))
    p = rng.uniform(0.02, 0.3, (2000, 10))
    y = (rng.random(p.shape) < p).astype(np.uint8)
    inflated = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + 3)))  # a weighted loss's scores: most above 0.5
    raw = fit_policy(y, inflated, schema, rule="hamming")
    cal = fit_policy(y, inflated, schema, rule="hamming", calibration="platt")
    assert raw.decide(inflated).sum(1).mean() > 2 * y.sum(1).mean()  # the case is real
    with pytest.warns(UserWarning, match="labels per image.*calibration = 'platt'"):
        _warn_if_overdeciding(raw, y, inflated, schema, TrainConfig(calibration="none", decide_for="hamming"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_if_overdeciding(cal, y, inflated, schema, TrainConfig(decide_for="hamming"))


def test_serve_uses_the_artifacts_policy(run):
    from labelwise.serve.model import ServedModel
    from labelwise.training import artifact

    schema, _, raw = _raw_scores(run)
    served = ServedModel.open(run / "run" / "model.keras")
    probs, decisions = served.finish(raw[:, :schema.n_outputs])
    _, _, policy, _ = artifact.load(run / "run" / "model.keras", policy=True)
    np.testing.assert_allclose(probs, _by_hand(policy.calibration.to_dict(), schema, raw), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(decisions, policy.decide(raw))
    params = served.metadata()["parameters"]
    assert params["rule"] == "f1" and params["calibration"]["method"] == "platt"


def test_calibrated_derived_labels_follow_their_sources():
    # the demo's schema: greater_than_5 and even are derived from the digit group
    from labelwise.decide import fit_calibration
    from labelwise.training.demo import DEMO_SCHEMA, digit_targets

    rng = np.random.default_rng(1)
    d = rng.integers(0, 10, 600)
    y = digit_targets(d)
    logits = 2.0 * y[:, :10] + rng.normal(0, 1.5, (600, 10))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = DEMO_SCHEMA.complete_scores(p)
    P = fit_calibration(y, scores, method="platt", schema=DEMO_SCHEMA).apply(scores)
    assert np.isfinite(P).all()
    col = {x: i for i, x in enumerate(DEMO_SCHEMA.labels)}
    np.testing.assert_allclose(P[:, col["greater_than_5"]], P[:, [col[str(k)] for k in (6, 7, 8, 9)]].sum(1))
    np.testing.assert_allclose(P[:, col["even"]], P[:, [col[str(k)] for k in (0, 2, 4, 6, 8)]].sum(1))
    assert np.abs(P[:, :10] - p).max() > 1e-3  # the group was calibrated (a temperature), not passed through


def test_train_marks_its_scores_files_and_evaluate_calibrates_them_once(run, tmp_path, capsys):
    """val_scores.csv holds the raw validation scores the policy was fitted on (refitting Platt on
    it gives the artifact's parameters); test_predictions.csv holds calibrated probabilities, and
    evaluate with the policy's decision file gives train's own test numbers, not a second Platt."""
    import json

    from labelwise.commands.cli import main
    from labelwise.decide.scorefile import read_state
    from labelwise.training import artifact

    out = run / "run"
    assert read_state(out / "val_scores.csv").values == "raw"
    state = read_state(out / "test_predictions.csv")
    assert state.values == "calibrated" and state.policy["calibration"] == "platt"
    _, schema, policy, _ = artifact.load(out / "model.keras", policy=True)
    assert state.policy["fingerprint"] == policy.fingerprint
    common = ["--truth", str(run / "labels.csv"), "--schema", str(run / "schema.toml"), "--split-column", "split"]
    table = pd.read_csv(run / "labels.csv")
    table[table["split"] == "val"].drop(columns="split").to_csv(tmp_path / "val.csv", index=False)
    assert main(["calibrate", "--truth", str(tmp_path / "val.csv"), "--schema", str(run / "schema.toml"),
                 "--scores", str(out / "val_scores.csv"), "--out", str(tmp_path / "cal.json")]) == 0
    refit = json.loads((tmp_path / "cal.json").read_text())["independent"]
    for label, spec in policy.calibration.independent.items():
        assert refit[label]["a"] == pytest.approx(spec["a"], rel=1e-4, abs=1e-4)
        assert refit[label]["b"] == pytest.approx(spec["b"], rel=1e-4, abs=1e-4)
    policy.save(tmp_path / "decision.json")
    capsys.readouterr()
    assert main(["evaluate", *common, "--split", "test", "--scores", str(out / "test_predictions.csv"),
                 "--thresholds", str(tmp_path / "decision.json"), "--bootstrap", "0", "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("not applied twice") == 1
    doc = json.loads(captured.out)
    train_doc = json.loads((out / "report" / "metrics.json").read_text())
    for key in ("labels_per_image_predicted", "brier_macro", "f1_macro"):
        assert doc["averages"][key] == pytest.approx(train_doc["averages"][key], abs=1e-6), key
