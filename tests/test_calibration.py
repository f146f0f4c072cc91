"""Calibration (labelwise.decide.calibration) and calibration metrics, against scikit-learn,
scipy and hand-computed cases."""

from __future__ import annotations

import json

import numpy as np
from sklearn.metrics import roc_auc_score
import pytest
from scipy.optimize import minimize_scalar
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss

from labelwise.decide import Calibration, fit_calibration
from labelwise.errors import InputError
from labelwise.metrics import brier_score, expected_calibration_error
from labelwise.labels.schema import LabelSchema


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p):
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))


@pytest.fixture
def data():
    """Three independent labels whose scores are inflated (a weighted loss's look), one 3-member group
    with over-confident softmax outputs, and the none label."""
    rng = np.random.default_rng(1)
    n = 4000
    schema = LabelSchema(("a", "b", "c"), {"view": ("PA", "AP", "LL")}, "none")
    z = rng.normal(size=(n, 3)) * 2
    y = np.zeros((n, 6), dtype=np.uint8)
    y[:, :3] = rng.random((n, 3)) < _sigmoid(z - 1.5)
    g = rng.normal(size=(n, 3))
    pg = np.exp(g) / np.exp(g).sum(1, keepdims=True)
    k = (rng.random(n)[:, None] > np.cumsum(pg, 1)).sum(1)
    y[np.arange(n), 3 + k] = 1
    s = np.concatenate([_sigmoid(0.6 * z + 1.0), np.exp(2.5 * g) / np.exp(2.5 * g).sum(1, keepdims=True)], 1)
    return schema, schema.complete(y), s


def test_platt_equals_sklearn_logistic_regression(data):
    schema, y, s = data
    cal = fit_calibration(y, s, method="platt", schema=schema)
    for j, label in enumerate(schema.independent):
        ref = LogisticRegression(C=1e10, tol=1e-12, max_iter=10000).fit(_logit(s[:, j])[:, None], y[:, j])
        spec = cal.independent[label]
        assert spec["kind"] == "platt"
        assert spec["a"] == pytest.approx(ref.coef_[0, 0], rel=1e-4, abs=1e-5)
        assert spec["b"] == pytest.approx(ref.intercept_[0], rel=1e-4, abs=1e-5)
        np.testing.assert_allclose(cal.apply(s)[:, j], ref.predict_proba(_logit(s[:, j])[:, None])[:, 1], atol=1e-5)


def test_temperature_equals_logistic_regression_without_intercept(data):
    schema, y, s = data
    cal = fit_calibration(y, s, method="temperature", schema=schema)
    for j, label in enumerate(schema.independent):
        ref = LogisticRegression(C=1e10, fit_intercept=False, tol=1e-12, max_iter=10000)
        ref.fit(_logit(s[:, j])[:, None], y[:, j])
        assert 1.0 / cal.independent[label]["T"] == pytest.approx(ref.coef_[0, 0], rel=1e-4)


def test_group_temperature_is_the_likelihood_optimum_and_members_sum_to_one(data):
    schema, y, s = data
    for method in ("platt", "temperature", "isotonic"):
        cal = fit_calibration(y, s, method=method, schema=schema)
        logp = np.log(s[:, 3:6])
        k = np.argmax(y[:, 3:6], axis=1)

        def nll(u):
            x = u * logp
            x = x - x.max(1, keepdims=True)
            return -(x[np.arange(len(k)), k] - np.log(np.exp(x).sum(1))).sum()

        ref = minimize_scalar(nll, bounds=(1e-3, 10), method="bounded", options={"xatol": 1e-10}).x
        assert 1.0 / cal.groups["view"]["T"] == pytest.approx(ref, rel=1e-5)
        assert 1.0 / cal.groups["view"]["T"] == pytest.approx(0.4, abs=0.05)  # the data was made with 1/2.5
        p = cal.apply(s)
        np.testing.assert_allclose(p[:, 3:6].sum(1), 1.0, atol=1e-12)
        if method != "temperature":
            assert any("view" in n and "temperature" in n for n in cal.notes)


def test_isotonic_equals_sklearn_and_falls_back_to_platt_with_a_note(data):
    schema, y, s = data
    y = y.copy()
    y[:, 2] = 0
    y[np.argsort(-s[:, 2])[:600:20], 2] = 1  # label c: 30 positives among high scores, fewer than 50
    y = schema.complete(y[:, :6])
    cal = fit_calibration(y, s, method="isotonic", schema=schema)
    new = np.random.default_rng(5).random((500, 6))
    for j in (0, 1):
        ref = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(s[:, j], y[:, j])
        np.testing.assert_allclose(cal.apply(new)[:, j], ref.predict(new[:, j]), atol=1e-12)
    assert cal.independent["c"]["kind"] == "platt"
    assert any("'c' (30)" in n and "Platt" in n for n in cal.notes), cal.notes


def test_label_without_positives_gets_the_smoothed_prevalence_with_a_note(data):
    schema, y, s = data
    y = y.copy()
    y[:, 1] = 0
    y[:, 2] = 1  # c: no negatives
    y = schema.complete(y[:, :6])
    n = len(y)
    for method in ("platt", "temperature", "isotonic"):
        cal = fit_calibration(y, s, method=method, schema=schema)
        p = cal.apply(s)
        # (k + 1/2) / (n + 1), whatever the raw score was (within 1e-4 in logit: the scores' order is kept)
        for j, prior in ((1, 0.5 / (n + 1)), (2, (n + 0.5) / (n + 1))):
            np.testing.assert_allclose(p[:, j], prior, rtol=2e-4)
            assert _same_order(p[:, j], s[:, j])
        assert any("'b' (no positives)" in x and "'c' (no negatives)" in x and "prevalence" in x
                   for x in cal.notes), cal.notes
        back = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
        np.testing.assert_array_equal(back.apply(s), p)


def _decreasing_label(n=3000, seed=3):
    """Scores that rank positives below negatives: the likelihood's best Platt slope is negative."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(0.05, 0.95, size=n)
    y = (rng.random(n) < 0.35 - 0.25 * s).astype(np.uint8)
    return s, y


def test_platt_never_reverses_a_ranking_the_label_gets_its_prevalence():
    s, y = _decreasing_label()
    ref = LogisticRegression(C=1e10, tol=1e-12, max_iter=10000).fit(_logit(s)[:, None], y)
    assert ref.coef_[0, 0] < -0.1  # unconstrained, the fit would reverse the ranking
    cal = fit_calibration(y[:, None], s[:, None], method="platt", labels=["rare"])
    p = cal.apply(s[:, None])[:, 0]
    # the likelihood is concave, so the optimum on a >= 0 is a = 0 with sigmoid(b) = k / n; the
    # prevalence is nudged by at most 1e-4 in logit so that the scores' order (the AUC) is the model's
    np.testing.assert_allclose(p, y.mean(), rtol=2e-4)
    assert _same_order(p, s)
    assert roc_auc_score(y, p) == pytest.approx(roc_auc_score(y, s), abs=1e-12)

    def loglik(a, b):
        q = _sigmoid(a * _logit(s) + b)
        return np.sum(y * np.log(q) + (1 - y) * np.log(1 - q))

    best = max((loglik(a, b), a, b) for a in np.linspace(0, 1, 11) for b in np.linspace(-2, 0, 41))
    assert best[1] == 0.0  # brute force on a >= 0 agrees: the best slope is 0
    assert any("'rare'" in x and "reverse" in x for x in cal.notes), cal.notes
    # where the best slope is positive nothing changes: flipping the scores flips the sign
    up = fit_calibration(y[:, None], 1 - s[:, None], method="platt", labels=["rare"])
    ref = LogisticRegression(C=1e10, tol=1e-12, max_iter=10000).fit(_logit(1 - s)[:, None], y)
    assert up.independent["rare"]["a"] == pytest.approx(ref.coef_[0, 0], rel=1e-4)
    assert up.independent["rare"]["b"] == pytest.approx(ref.intercept_[0], rel=1e-4)


def test_temperature_and_isotonic_stay_increasing():
    s, y = _decreasing_label()
    cal = fit_calibration(y[:, None], s[:, None], method="temperature", labels=["rare"])
    assert cal.independent["rare"]["kind"] in ("prior", "temperature")
    assert cal.independent["rare"].get("T", 1.0) > 0
    p = cal.apply(np.sort(s)[:, None])[:, 0]
    assert np.all(np.diff(p) >= 0)
    iso = fit_calibration(np.tile(y[:, None], (4, 1)), np.tile(s[:, None], (4, 1)), method="isotonic", labels=["rare"])
    q = iso.apply(np.sort(s)[:, None])[:, 0]
    assert np.all(np.diff(q) >= 0)


def test_group_temperature_is_positive_a_reversed_group_gets_its_frequencies():
    rng = np.random.default_rng(4)
    n = 2000
    schema = LabelSchema((), {"view": ("PA", "AP", "LL")})
    k = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    y = np.eye(3, dtype=np.uint8)[k]
    s = np.full((n, 3), 0.45)
    s[np.arange(n), k] = 0.1  # the true member always has the lowest score
    s /= s.sum(1, keepdims=True)
    cal = fit_calibration(y, s, method="temperature", schema=schema)
    spec = cal.groups["view"]
    assert spec["kind"] == "prior"
    counts = y.sum(0)
    np.testing.assert_allclose(cal.apply(s)[0], (counts + 0.5) / (n + 1.5), rtol=1e-12)
    assert any("group 'view'" in x for x in cal.notes), cal.notes


def test_none_probability_is_the_product_of_calibrated_complements(data):
    schema, y, s = data
    cal = fit_calibration(y, s, method="platt", schema=schema)
    full = np.concatenate([s, np.zeros((len(s), 1))], 1)  # a none column in the input is ignored
    p = cal.apply(full)
    assert p.shape == (len(s), 7)
    np.testing.assert_allclose(p[:, 6], np.prod(1 - p[:, :3], axis=1), rtol=1e-12)
    # calibration helps: classwise ECE drops on the calibration data itself
    assert expected_calibration_error(y[:, :3], p[:, :3]) < 0.5 * expected_calibration_error(y[:, :3], s[:, :3])


def test_logits_need_from_logits(data):
    schema, y, s = data
    logits = np.concatenate([_logit(s[:, :3]), np.log(s[:, 3:])], 1)
    with pytest.raises(InputError, match="look like logits; pass from_logits=True"):
        fit_calibration(y, logits, method="platt", schema=schema)
    a = fit_calibration(y, logits, method="platt", schema=schema, from_logits=True)
    b = fit_calibration(y, s, method="platt", schema=schema)
    np.testing.assert_allclose(a.apply(logits), b.apply(s), atol=1e-6)
    assert Calibration.from_dict(a.to_dict()).from_logits


def test_round_trip_and_label_checks(data, tmp_path):
    schema, y, s = data
    for method in ("platt", "temperature", "isotonic", "none"):
        cal = fit_calibration(y, s, method=method, schema=schema)
        path = cal.save(tmp_path / f"{method}.json")
        back = Calibration.load(path)
        np.testing.assert_allclose(back.apply(s), cal.apply(s), rtol=0, atol=0)
        assert json.loads(path.read_text())["format"] == "labelwise.calibration"
    cal.check_labels(list(schema.labels))
    cal.check_labels(list(schema.output_labels))
    with pytest.raises(InputError, match=r"lack \['b'\].*have \['x'\]"):
        cal.apply(s, labels=["a", "x", "c", "PA", "AP", "LL"])


def test_bad_input(data, tmp_path):
    schema, y, s = data
    with pytest.raises(InputError, match="unknown calibration method 'plat'.*platt"):
        fit_calibration(y, s, method="plat", schema=schema)
    with pytest.raises(InputError, match="row"):
        fit_calibration(y[:10], s[:11], schema=schema)
    with pytest.raises(InputError, match="does not exist"):
        Calibration.load(tmp_path / "missing.json")
    (tmp_path / "t.json").write_text(json.dumps({"format": "labelwise.thresholds"}))
    with pytest.raises(InputError, match="not a calibration file"):
        Calibration.load(tmp_path / "t.json")
    d = fit_calibration(y, s, schema=schema).to_dict()
    d["groups"]["view"]["T"] = -1
    with pytest.raises(InputError, match="group 'view'.*positive"):
        Calibration.from_dict(d)


def test_without_schema_every_column_is_independent():
    rng = np.random.default_rng(0)
    s = rng.random((500, 2))
    y = (rng.random((500, 2)) < s ** 2).astype(int)
    cal = fit_calibration(y, s, labels=["x", "y"])
    assert cal.labels == ("x", "y") and set(cal.independent) == {"x", "y"}


# ---------------------------------------------------------------- metrics
def test_ece_hand_computed():
    # 2 bins: [0, .5) holds p = .1, .2 (y = 0, 1): |1 - .3| = .7; [.5, 1] holds p = .6, 1.0 (y = 1, 1):
    # |2 - 1.6| = .4. ECE = (.7 + .4) / 4 = .275. Second label: perfect 0/1 -> 0.
    y = np.array([[0, 0], [1, 0], [1, 1], [1, 1]])
    p = np.array([[0.1, 0.0], [0.2, 0.0], [0.6, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(expected_calibration_error(y, p, n_bins=2, average=None), [0.275, 0.0])
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.1375)
    assert expected_calibration_error(y[:, 0], p[:, 0], n_bins=2, average=None) == pytest.approx(0.275)
    # one bin: |mean y - mean p|
    assert expected_calibration_error(y[:, 0], p[:, 0], n_bins=1) == pytest.approx(abs(0.75 - 0.475))


def test_ece_against_a_per_row_loop():
    rng = np.random.default_rng(3)
    p = rng.random((300, 4))
    y = (rng.random((300, 4)) < p ** 1.5).astype(int)
    ref = []
    for j in range(4):
        total = 0.0
        for b in range(15):
            lo, hi = b / 15, (b + 1) / 15
            m = (p[:, j] >= lo) & ((p[:, j] < hi) if b < 14 else (p[:, j] <= hi))
            if m.any():
                total += m.sum() / 300 * abs(y[m, j].mean() - p[m, j].mean())
        ref.append(total)
    np.testing.assert_allclose(expected_calibration_error(y, p, average=None), ref, rtol=1e-10)


def test_brier_equals_sklearn():
    rng = np.random.default_rng(4)
    p = rng.random((200, 3))
    y = (rng.random((200, 3)) < p).astype(int)
    ref = [brier_score_loss(y[:, j], p[:, j]) for j in range(3)]
    np.testing.assert_allclose(brier_score(y, p, average=None), ref, rtol=1e-12)
    assert brier_score(y, p) == pytest.approx(np.mean(ref))


def test_metric_bad_input():
    with pytest.raises(InputError, match="n_bins"):
        expected_calibration_error([0, 1], [0.1, 0.9], n_bins=0)
    with pytest.raises(InputError, match="average"):
        brier_score([0, 1], [0.1, 0.9], average="micro")
    with pytest.raises(InputError, match="outside"):
        brier_score([0, 1], [0.1, 1.9])


def _same_order(p, s):
    """True when ``p`` never reverses the order of ``s`` and keeps it apart (all but float-resolution
    near-ties near 0 or 1): the ranking, and so the AUC, stays the scores'."""
    o = np.argsort(s, kind="stable")
    return bool(np.all(np.diff(p[o]) >= 0) and len(np.unique(p)) >= 0.99 * len(np.unique(s)))
