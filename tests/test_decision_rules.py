"""Decision rules and policies (labelwise.decide.rules / policy) against brute force and scikit-learn."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from sklearn.metrics import f1_score as sk_f1
from sklearn.metrics import hamming_loss as sk_hamming

from labelwise.decide import (
    RULES,
    DecisionPolicy,
    apply_bounds,
    apply_rule,
    compare_rules,
    expected_f1_topk,
    fit_policy,
    fit_rule,
    instance_f1_decisions,
    parse_rule,
)
from labelwise.errors import InputError
from labelwise.labels.schema import LabelSchema
from labelwise.decide.thresholds import Thresholds, tune_thresholds


def _f1_table(L):
    """All subsets of L labels and F1(pred s, truth t) for every pair, F1(empty, empty) = 1."""
    subs = np.array(list(itertools.product([0, 1], repeat=L)), dtype=float)
    inter, size = subs @ subs.T, subs.sum(1)
    den = size[:, None] + size[None, :]
    return subs, np.where(den == 0, 1.0, 2 * inter / np.maximum(den, 1))


def _truth_probs(subs, p):
    return np.prod(np.where(subs == 1, p, 1 - p), axis=1)


@pytest.mark.parametrize("L", [1, 2, 5, 10])
def test_instance_f1_is_the_brute_force_optimum_over_all_subsets(L):
    rng = np.random.default_rng(L)
    subs, F = _f1_table(L)
    P = rng.random((12, L)) ** rng.uniform(0.2, 4, (12, 1))
    P[0] = 0.0
    P[1] = 1.0
    P[2] = 0.5  # ties everywhere
    D, E = instance_f1_decisions(P)
    for i in range(len(P)):
        expected = F @ _truth_probs(subs, P[i])  # expected F1 of every possible predicted set
        idx = int(D[i] @ (2 ** np.arange(L)[::-1]))
        assert E[i] == pytest.approx(expected.max(), abs=1e-12)
        assert expected[idx] == pytest.approx(expected.max(), abs=1e-12)


def test_expected_f1_of_every_top_k_equals_brute_force():
    rng = np.random.default_rng(7)
    L = 7
    subs, F = _f1_table(L)
    P = rng.random((5, L))
    order, E = expected_f1_topk(P)
    for i in range(5):
        pt = _truth_probs(subs, P[i])
        for k in range(L + 1):
            pred = np.zeros(L)
            pred[order[i, :k]] = 1
            idx = int(pred @ (2 ** np.arange(L)[::-1]))
            assert E[i, k] == pytest.approx(F[idx] @ pt, abs=1e-12)


def _schema():
    return LabelSchema(("a", "b", "c", "d"), {"view": ("PA", "AP"), "sex": ("F", "M", "X")}, "none")


def _random(schema, n=400, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.random((n, 4)) ** 2
    y = np.zeros((n, schema.n_outputs), dtype=np.uint8)
    y[:, :4] = rng.random((n, 4)) < p
    groups = []
    for block in schema.layout[1:]:
        m = block.stop - block.start
        g = rng.dirichlet(np.ones(m), size=n)
        groups.append(g)
        k = (rng.random(n)[:, None] > np.cumsum(g, 1)).sum(1).clip(max=m - 1)
        y[np.arange(n), block.start + k] = 1
    return schema.complete(y), np.concatenate([p] + groups, 1)


ALL = ["f1", "fbeta=2", "youden", "sensitivity=0.8", "specificity=0.8", "precision=0.3", "hamming", "subset",
       "micro-f1", "macro-f1", "instance-f1", "top-k=2"]


@pytest.mark.parametrize("rule", ALL)
@pytest.mark.parametrize("bounds", [(None, None), (1, None), (None, 2), (1, 3), (2, 2)])
@pytest.mark.parametrize("none", ["none", None])
def test_every_rule_obeys_the_schema_and_the_bounds(rule, bounds, none):
    schema = _schema()
    y, p = _random(schema)
    if none is None:
        schema = LabelSchema(schema.independent, schema.exclusive)
        y = y[:, :schema.n_labels]
    th = fit_rule(y, p, schema, rule)
    if none and bounds[0] is not None and bounds[0] >= 2:
        with pytest.raises(InputError, match="contradicts the none label"):
            apply_rule(p, schema, rule, th, min_labels=bounds[0], max_labels=bounds[1])
        return
    D = apply_rule(p, schema, rule, th, min_labels=bounds[0], max_labels=bounds[1])
    schema.validate(D)  # one member per group, none derived
    # the bounds count the none label as a label: an image decided "none" has one
    count = D[:, :4].sum(1) + (D[:, schema.index(none)] if none else 0)
    if bounds[0] is not None:
        assert count.min() >= bounds[0]
    if bounds[1] is not None:
        assert count.max() <= bounds[1]
    for block in schema.layout[1:]:
        np.testing.assert_array_equal(np.argmax(D[:, block.start:block.stop], 1),
                                      np.argmax(p[:, block.start:block.stop], 1))


def test_bounds_against_a_per_row_loop():
    rng = np.random.default_rng(2)
    p = rng.random((300, 6))
    d = (rng.random((300, 6)) < 0.4).astype(np.uint8)
    got = apply_bounds(d, p, 2, 3)
    for i in range(300):
        chosen = set(np.flatnonzero(d[i]))
        for j in np.argsort(-p[i], kind="stable"):  # add the most probable missing labels
            if len(chosen) >= 2:
                break
            chosen.add(int(j))
        if len(chosen) > 3:  # keep the most probable chosen ones
            chosen = set(sorted(chosen, key=lambda j: -p[i, j])[:3])
        assert set(np.flatnonzero(got[i])) == chosen


def test_hamming_subset_and_top_k():
    schema = _schema()
    y, p = _random(schema, n=50)
    D = apply_rule(p, schema, "hamming")
    np.testing.assert_array_equal(D[:, :4], p[:, :4] >= 0.5)
    # subset: the most probable complete label set under independence, by enumeration
    S = apply_rule(p, schema, "subset")
    for i in range(50):
        best, best_prob = None, -1.0
        for ind in itertools.product([0, 1], repeat=4):
            for v in range(2):
                for s in range(3):
                    pi = p[i, :4]
                    prob = np.prod(np.where(np.array(ind) == 1, pi, 1 - pi)) * p[i, 4 + v] * p[i, 6 + s]
                    if prob > best_prob:
                        best, best_prob = (ind, v, s), prob
        assert tuple(S[i, :4]) == best[0] and S[i, 4 + best[1]] == 1 and S[i, 6 + best[2]] == 1
    T = apply_rule(p, schema, "top-k=3")
    assert (T[:, :4].sum(1) == 3).all()
    np.testing.assert_array_equal(np.sort(np.where(T[:, :4] == 1, p[:, :4], 2), 1)[:, :3],
                                  np.sort(p[:, :4], 1)[:, 1:])


def test_micro_f1_threshold_is_the_exact_optimum():
    schema = LabelSchema(("a", "b", "c"))
    rng = np.random.default_rng(3)
    p = np.round(rng.random((200, 3)), 2)
    y = (rng.random((200, 3)) < p).astype(int)
    th = fit_rule(y, p, schema, "micro-f1")
    t = th.values[0]
    assert (th.values == t).all()
    best = max(sk_f1(y, (p >= c).astype(int), average="micro", zero_division=0) for c in np.unique(p))
    got = sk_f1(y, apply_rule(p, schema, "micro-f1", th), average="micro", zero_division=0)
    assert got == pytest.approx(best, abs=1e-12)


@pytest.mark.parametrize("rule,kw", [("f1", {"method": "f1"}), ("macro-f1", {"method": "f1"}),
                                     ("fbeta=2", {"method": "fbeta", "beta": 2.0}),
                                     ("youden", {"method": "youden"}),
                                     ("precision=0.4", {"method": "precision", "target": 0.4})])
def test_per_label_rules_use_the_exact_tuner(rule, kw):
    schema = _schema()
    y, p = _random(schema, seed=4)
    th = fit_rule(y, p, schema, rule)
    ref = tune_thresholds(y, schema.complete_scores(p), labels=list(schema.labels), schema=schema, **kw)
    np.testing.assert_array_equal(th.values, ref.values)
    assert th.method == str(parse_rule(rule))


def test_policy_round_trip_and_calibrated_decisions(tmp_path):
    schema = _schema()
    y, p = _random(schema, n=2000, seed=5)
    inflated = np.concatenate([np.sqrt(p[:, :4]), p[:, 4:]], 1)  # scores that are not probabilities
    for rule in ALL:
        pol = fit_policy(y, inflated, schema, rule=rule, calibration="platt", min_labels=1)
        path = pol.save(tmp_path / "decision.json")
        back = DecisionPolicy.load(path)
        np.testing.assert_array_equal(back.decide(inflated), pol.decide(inflated))
        assert json.loads(path.read_text())["format"] == "labelwise.decision"
    # calibrated hamming decisions = platt probabilities >= 0.5
    pol = fit_policy(y, inflated, schema, rule="hamming", calibration="platt")
    np.testing.assert_array_equal(pol.decide(inflated)[:, :4], pol.probabilities(inflated)[:, :4] >= 0.5)
    assert pol.probabilities(inflated).shape == (2000, schema.n_labels)


def test_plain_thresholds_file_loads_as_a_policy(tmp_path):
    schema = _schema()
    y, p = _random(schema, seed=6)
    th = tune_thresholds(y, schema.complete_scores(p), labels=list(schema.labels), schema=schema, method="youden")
    th.save(tmp_path / "t.json")
    pol = DecisionPolicy.load(tmp_path / "t.json", schema=schema)
    assert pol.rule == "youden" and pol.calibration is None
    from labelwise.decide.thresholds import decide
    np.testing.assert_array_equal(pol.decide(p), decide(p, schema, th))


def test_compare_rules_table_matches_sklearn():
    schema = LabelSchema(("a", "b", "c", "d"))
    rng = np.random.default_rng(8)
    p = rng.random((500, 4))
    y = (rng.random((500, 4)) < p).astype(int)
    cmp = compare_rules(y, p, schema)
    rules = [r["rule"] for r in cmp.rows]
    assert rules == ["hamming", "subset", "micro-f1", "macro-f1", "instance-f1", "top-k=2"]
    ham = cmp.rows[0]
    d = (p >= 0.5).astype(int)
    assert ham["hamming_loss"] == pytest.approx(sk_hamming(y, d))
    assert ham["micro_f1"] == pytest.approx(sk_f1(y, d, average="micro"))
    assert ham["instance_f1"] == pytest.approx(sk_f1(y, d, average="samples", zero_division=1.0))
    assert ham["labels_per_image_predicted"] == pytest.approx(d.sum(1).mean())
    # the instance-F1 rule wins its own metric on calibrated (here: true) probabilities
    inst = cmp.rows[4]["instance_f1"]
    assert inst >= max(r["instance_f1"] for r in cmp.rows if r["rule"] in ("hamming", "subset", "top-k=2"))
    text = cmp.format_text()
    assert "instance-f1" in text and "labels/img" in text
    assert json.loads(cmp.to_json())["rules"][0]["rule"] == "hamming"


def test_bad_input():
    schema = _schema()
    y, p = _random(schema, n=50)
    with pytest.raises(InputError, match="unknown decision rule 'best'.*instance-f1.*top-k=3"):
        parse_rule("best")
    for bad, msg in [("top-k=0", "whole number"), ("top-k=2.5", "whole number"), ("fbeta=0", "positive"),
                     ("sensitivity=1.5", r"\(0, 1\]"), ("precision", "needs a parameter"),
                     ("hamming=2", "takes no parameter"), ("fbeta=x", "not a number")]:
        with pytest.raises(InputError, match=msg):
            parse_rule(bad)
    with pytest.raises(InputError, match="top-k=5 is more than the 4 independent labels"):
        apply_rule(p, schema, "top-k=5")
    with pytest.raises(InputError, match="top-k=5 is more than"):
        fit_policy(y, p, schema, rule="top-k=5")
    with pytest.raises(InputError, match=r"min_labels \(3\) is above max_labels \(2\)"):
        apply_rule(p, schema, "hamming", min_labels=3, max_labels=2)
    with pytest.raises(InputError, match="min_labels"):
        fit_policy(y, p, schema, rule="hamming", min_labels=5)
    with pytest.raises(InputError, match="needs thresholds"):
        apply_rule(p, schema, "f1")
    pol = fit_policy(y, p, schema, rule="hamming")
    with pytest.raises(InputError, match=r"lack \['b'\]"):
        pol.decide(p, labels=["a", "q", "c", "d", "PA", "AP", "F", "M", "X"])
    assert set(RULES) >= {"instance-f1", "top-k", "micro-f1"}


def test_decide_on_logits():
    schema = LabelSchema(("a", "b"))
    rng = np.random.default_rng(9)
    z = rng.normal(size=(300, 2)) * 3
    y = (rng.random((300, 2)) < 1 / (1 + np.exp(-z))).astype(int)
    with pytest.raises(InputError, match="from_logits"):
        fit_policy(y, z, schema, rule="hamming")
    pol = fit_policy(y, z, schema, rule="hamming", from_logits=True)
    np.testing.assert_array_equal(pol.decide(z), (z >= 0).astype(int))
    assert isinstance(fit_rule(y, 1 / (1 + np.exp(-z)), schema, "f1"), Thresholds)
