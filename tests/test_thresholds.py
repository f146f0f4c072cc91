"""Threshold tuning against brute force over every distinct score; Thresholds files; decide()."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labelwise import LabelSchema
from labelwise.errors import InputError
from labelwise.metrics import UndefinedMetricWarning
from labelwise.decide.thresholds import Thresholds, decide, tune_thresholds

sk = pytest.importorskip("sklearn.metrics")


def _data(n=300, L=4, seed=0, decimals=2):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, L)) < rng.uniform(0.1, 0.4, L)).astype(int)
    S = np.round(np.clip(0.3 * Y + 0.7 * rng.random((n, L)), 0, 1), decimals)
    return Y, S


def _brute(y, s, method, beta=1.0, target=None):
    """Evaluate the criterion by applying every distinct score as a threshold (a plain loop)."""
    cands = np.unique(s)
    P, N = y.sum(), len(y) - y.sum()
    vals = []
    for t in cands:
        p = (s >= t).astype(int)
        tp, fp = int((p & y).sum()), int((p & (1 - y)).sum())
        vals.append({
            "f1": lambda: 2 * tp / (tp + fp + P),
            "fbeta": lambda: (1 + beta**2) * tp / (beta**2 * P + tp + fp),
            "youden": lambda: tp / P - fp / N,
            "sensitivity": lambda: tp / P,
            "specificity": lambda: 1 - fp / N,
            "precision": lambda: tp / (tp + fp) if tp + fp else 0.0,
        }[method]())
    vals = np.array(vals)
    if method in ("f1", "fbeta", "youden"):
        best = vals.max()
        return cands[np.isclose(vals, best, rtol=0, atol=1e-12)].max(), best
    ok = vals >= target
    t = cands[ok].max() if method == "sensitivity" else cands[ok].min()
    return t, vals[cands == t][0]


@pytest.mark.parametrize("decimals", [1, 3])
@pytest.mark.parametrize(
    "method,kw",
    [("f1", {}), ("fbeta", {"beta": 2.0}), ("fbeta", {"beta": 0.5}), ("youden", {}),
     ("sensitivity", {"target": 0.9}), ("specificity", {"target": 0.8}), ("precision", {"target": 0.6})],
)
def test_tuning_is_the_exact_optimum_over_all_distinct_scores(method, kw, decimals):
    Y, S = _data(decimals=decimals)
    T = tune_thresholds(Y, S, method=method, **kw)
    for j in range(Y.shape[1]):
        t, best = _brute(Y[:, j], S[:, j], method, kw.get("beta", 1.0), kw.get("target"))
        assert T.values[j] == t, (j, T.values[j], t)
        assert abs(T.metric_at_threshold[j] - best) < 1e-12
        assert T.values[j] in S[:, j]  # a score present in the data
    assert T.label_methods == (method,) * Y.shape[1]


def test_applying_the_threshold_reproduces_the_metric_and_beats_a_grid():
    Y, S = _data(n=500, L=5, seed=4, decimals=6)
    T = tune_thresholds(Y, S, method="f1")
    P = (S >= T.values).astype(int)
    np.testing.assert_allclose(sk.f1_score(Y, P, average=None), T.metric_at_threshold, atol=1e-12)
    grid = np.linspace(0, 1, 100)
    pred = S[None, :, :] >= grid[:, None, None]  # (grid, n, L)
    tp = (pred & (Y == 1)).sum(axis=1)
    grid_best = (2 * tp / (pred.sum(axis=1) + Y.sum(axis=0))).max(axis=0)
    assert (T.metric_at_threshold >= grid_best - 1e-12).all()


def test_targets_are_respected():
    Y, S = _data(n=400, decimals=3, seed=2)
    for method, target in [("sensitivity", 0.85), ("specificity", 0.9), ("precision", 0.5)]:
        T = tune_thresholds(Y, S, method=method, target=target)
        P = (S >= T.values).astype(int)
        if method == "sensitivity":
            got = sk.recall_score(Y, P, average=None)
        elif method == "specificity":
            got = sk.recall_score(1 - Y, 1 - P, average=None)
        else:
            got = sk.precision_score(Y, P, average=None)
        assert (got >= target).all()
        np.testing.assert_allclose(got, T.metric_at_threshold, atol=1e-12)
        assert T.params["target"] == target


def test_unreachable_and_undefined_targets():
    y = np.array([1, 0, 0, 1, 0])
    s = np.array([0.2, 0.9, 0.8, 0.1, 0.7])  # every positive ranks below every negative
    with pytest.warns(UndefinedMetricWarning, match=r"no threshold reaches precision >= 0.9 for label\(s\) \['x'\]"):
        T = tune_thresholds(y, s, method="precision", target=0.9, labels=["x"])
    assert np.isnan(T.values[0]) and np.isnan(T.metric_at_threshold[0])
    T = tune_thresholds(y, s, method="specificity", target=1.0)  # only "predict nothing" reaches it
    assert T.values[0] > s.max() and T.metric_at_threshold[0] == 1.0
    assert (decide(s[:, None], thresholds=T) == 0).all()
    with pytest.warns(UndefinedMetricWarning, match="'empty'"):
        T = tune_thresholds(np.zeros((5, 1), int), s[:, None], labels=["empty"])
    assert np.isnan(T.values[0])


def test_tuning_validation():
    Y, S = _data()
    with pytest.raises(InputError, match="unknown threshold method"):
        tune_thresholds(Y, S, method="accuracy")
    with pytest.raises(InputError, match="needs target="):
        tune_thresholds(Y, S, method="sensitivity")
    with pytest.raises(InputError, match="from_logits"):
        tune_thresholds(Y, S * 5 - 2)


def test_json_round_trip_and_file_errors(tmp_path):
    Y, S = _data()
    schema = LabelSchema(independent=["a", "b"], exclusive={"view": ["PA", "AP"]})
    Y[:, 2] = (S[:, 2] >= S[:, 3]).astype(int)
    Y[:, 3] = 1 - Y[:, 2]
    T = tune_thresholds(Y, S, method="fbeta", beta=2.0, schema=schema)
    assert T.label_methods == ("fbeta", "fbeta", "argmax", "argmax")
    assert np.isnan(T.values[2:]).all() and np.isfinite(T.values[:2]).all()
    path = T.save(tmp_path / "thr.json")
    back = Thresholds.load(path)
    np.testing.assert_array_equal(back.values, T.values)
    np.testing.assert_array_equal(back.metric_at_threshold, T.metric_at_threshold)
    assert (back.labels, back.method, back.params, back.tuned_on, back.label_methods) == (
        T.labels, T.method, T.params, T.tuned_on, T.label_methods)
    assert T.tuned_on["rows"] == len(Y) and T.tuned_on["positives"]["a"] == Y[:, 0].sum()
    assert T.tuned_on["sha256"] != tune_thresholds(Y, S[::-1], schema=schema).tuned_on["sha256"]
    assert back.for_labels(["b", "a"]).values.tolist() == [T["b"], T["a"]]
    with pytest.raises(InputError, match=r"no threshold for label\(s\) \['c'\]"):
        back.for_labels(["a", "c"])
    with pytest.raises(InputError, match="missing.json does not exist"):
        Thresholds.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match=r"bad.json: not valid JSON \(line 1"):
        Thresholds.load(tmp_path / "bad.json")
    (tmp_path / "nolabels.json").write_text(json.dumps({"values": [0.5], "method": "f1"}))
    with pytest.raises(InputError, match=r"nolabels.json: .*missing key\(s\) \['labels'\]"):
        Thresholds.load(tmp_path / "nolabels.json")


def _mixed_schema():
    return LabelSchema(
        independent=["a", "b", "c"], exclusive={"view": ["PA", "AP"], "sex": ["M", "F", "U"]}, none="No Finding"
    )


def test_decide_never_violates_the_schema():
    schema = _mixed_schema()
    rng = np.random.default_rng(0)
    S = rng.random((500, schema.n_outputs))
    S[:50, :3] *= 0.1  # many rows with no independent label
    T = Thresholds(schema.independent, [0.3, 0.5, 0.7], "manual")
    D = decide(S, schema, T)
    assert D.shape == (500, schema.n_labels) and D.dtype == np.uint8
    schema.validate(D)
    np.testing.assert_array_equal(D[:, :3], S[:, :3] >= [0.3, 0.5, 0.7])
    np.testing.assert_array_equal(D[:, 3:5].argmax(axis=1), S[:, 3:5].argmax(axis=1))
    np.testing.assert_array_equal(D[:, 5:8].argmax(axis=1), S[:, 5:8].argmax(axis=1))
    np.testing.assert_array_equal(D[:, 8], ~D[:, :3].any(axis=1))
    # the full-width input: the none column is ignored and re-derived
    full = np.c_[S, rng.random(500)]
    np.testing.assert_array_equal(decide(full, schema, T), D)
    # thresholds tuned with the schema (NaN for group members) apply the same way
    Y = D.copy()
    T2 = tune_thresholds(Y, schema.complete_scores(S), schema=schema)
    schema.validate(decide(S, schema, T2))
    assert T2.label_methods[-1] == "derived"


def test_decide_defaults_and_errors():
    S = np.array([[0.2, 0.6], [0.5, 0.4]])
    np.testing.assert_array_equal(decide(S), [[0, 1], [1, 0]])
    np.testing.assert_array_equal(decide(S, thresholds=[0.1, 0.7]), [[1, 0], [1, 0]])
    T = Thresholds(("x", "y"), [np.nan, 0.3], "f1")
    np.testing.assert_array_equal(decide(S, thresholds=T, default=0.5), [[0, 1], [1, 1]])
    schema = _mixed_schema()
    with pytest.raises(InputError, match="expected 8 head outputs"):
        decide(np.zeros((2, 5)), schema)
    with pytest.raises(InputError, match=r"no threshold for label\(s\) \['c'\]"):
        decide(np.full((2, 8), 0.5), schema, Thresholds(("a", "b"), [0.5, 0.5], "f1"))
    with pytest.raises(InputError, match="from_logits"):
        decide(S * 3 - 1)
