"""Model-health diagnostics: a collapsed model is named, a good one is left alone."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.evaluation.diagnostics import LIKELY_CAUSES, Finding, diagnose, format_findings
from labelwise.errors import InputError

LABELS = ["Atelectasis", "Effusion", "Mass", "Nodule", "Edema", "Hernia"]
PREV = np.array([0.10, 0.12, 0.05, 0.06, 0.02, 0.01])


@pytest.fixture(scope="module")
def truth():
    rng = np.random.default_rng(7)
    return (rng.random((2000, len(LABELS))) < PREV).astype(np.uint8)


def good_scores(y, seed=1):
    rng = np.random.default_rng(seed)
    logits = -2.5 + 3.0 * y + rng.normal(0, 1.0, y.shape)
    return 1 / (1 + np.exp(-logits))


def codes(findings, label=None):
    return {f.code for f in findings if f.label == label}


def test_collapsed_model_is_flagged(truth):
    # The knee-MRI case: every prediction in 0.49-0.51.
    scores = np.random.default_rng(3).uniform(0.49, 0.51, truth.shape)
    findings = diagnose(truth, scores, labels=LABELS)
    assert "collapse" in codes(findings)
    for label in LABELS:
        assert codes(findings, label) == {"narrow_band"}, label
    glob = next(f for f in findings if f.code == "collapse")
    assert glob.severity == "error" and glob.evidence["collapsed_labels"] == len(LABELS)
    text = format_findings(findings)
    # The practitioner's checklist is printed.
    for key in ("learning_rate", "loss_weighting", "frozen_layers", "batchnorm", "misaligned", "head"):
        assert LIKELY_CAUSES[key] in text
    assert "BatchNorm" in text and "softmax" in text


def test_good_model_is_not_flagged(truth):
    findings = diagnose(truth, good_scores(truth), labels=LABELS)
    assert [f for f in findings if f.severity in ("error", "warning")] == []
    assert format_findings(findings).startswith("No problems found")


def test_near_constant_and_prevalence_only(truth):
    rng = np.random.default_rng(0)
    scores = good_scores(truth)
    scores[:, 0] = 0.3 + rng.normal(0, 1e-4, len(truth))                   # constant, not at prevalence
    scores[:, 1] = truth[:, 1].mean() + rng.normal(0, 1e-4, len(truth))     # constant at prevalence
    scores[:, 2] = rng.permutation(scores[:, 2])                             # varies, but at chance
    findings = diagnose(truth, scores, labels=LABELS)
    assert codes(findings, "Atelectasis") == {"near_constant"}
    assert codes(findings, "Effusion") == {"prevalence"}
    assert codes(findings, "Mass") <= {"auc_chance", "prevalence"} and codes(findings, "Mass")
    assert codes(findings) == set()  # 2-3 of 6 labels: no global collapse
    assert codes(findings, "Nodule") == set()


def test_given_ci_decides_chance(truth):
    scores = good_scores(truth)
    ci = {label: (0.7, 0.9) for label in LABELS}
    ci["Edema"] = (0.45, 0.8)
    findings = diagnose(truth, scores, labels=LABELS, auc_ci=ci)
    assert codes(findings, "Edema") == {"auc_chance"}
    assert all(codes(findings, x) == set() for x in LABELS if x != "Edema")


def test_inverted_single_class_logits_softmax(truth):
    y = truth.copy()
    scores = good_scores(y)
    scores[:, 0] = 1 - scores[:, 0]
    y[:, 5] = 0
    findings = diagnose(y, scores, labels=LABELS)
    assert codes(findings, "Atelectasis") == {"auc_inverted"}
    assert codes(findings, "Hernia") == {"single_class"}
    logits = np.log(scores / (1 - scores))
    assert "not_probs" in codes(diagnose(y, logits, labels=LABELS))
    e = np.exp(np.random.default_rng(0).normal(size=y.shape))
    assert "softmax_head" in codes(diagnose(y, e / e.sum(1, keepdims=True), labels=LABELS))


def test_shuffled_ids_give_chance_finding(truth):
    scores = good_scores(truth)[np.random.default_rng(5).permutation(len(truth))]
    findings = diagnose(truth, scores, labels=LABELS)
    assert codes(findings) & {"chance", "collapse"}
    assert "misaligned" in next(f for f in findings if f.label is None).causes


def test_finding_serialises_and_bad_input():
    f = Finding("A", "near_constant", "error", "msg", {"std": np.float64(0.0)}, ("batchnorm",))
    d = f.to_dict()
    assert d["evidence"] == {"std": 0.0} and d["causes"] == [LIKELY_CAUSES["batchnorm"]]
    assert str(f) == "[error] A: msg"
    with pytest.raises(InputError, match="same shape"):
        diagnose(np.zeros((3, 2)), np.zeros((3, 3)), labels=["a", "b"])


def test_hanley_mcneil_interval_stays_inside_0_1():
    # 30 positives scored well above 20 negatives with a little overlap: AUC near 1, where the
    # normal approximation's upper end would pass 1 unclipped.
    from labelwise.evaluation.diagnostics import _hanley_mcneil_ci

    auc, n_pos, n_neg = np.array([0.97, 0.02]), np.array([30, 30]), np.array([20, 20])
    ci = _hanley_mcneil_ci(auc, n_pos, n_neg, 0.95)
    a = auc[0]
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = np.sqrt((a * (1 - a) + 29 * (q1 - a * a) + 19 * (q2 - a * a)) / 600)
    assert ci[0, 0] == pytest.approx(a - 1.959964 * se, abs=1e-5)  # the lower end is the textbook one
    assert a + 1.959964 * se > 1 and ci[0, 1] == 1.0
    assert ci[1, 0] == 0.0 and 0 < ci[1, 1] < 1


def _digit_group(n=600, seed=0):
    rng = np.random.default_rng(seed)
    digit = rng.integers(0, 10, n)
    y = np.eye(10, dtype=np.uint8)[digit]
    return rng, digit, y, [str(d) for d in range(10)]


def test_group_collapse_names_the_member_a_model_calls_every_digit():
    # The fresh-clone demo failure: every digit's column still ranks its own digit first among
    # images (high per-label AUC), but "8" carries so much mass that the arg-max says "8" for most.
    rng, digit, y, names = _digit_group()
    scores = 0.05 + 0.3 * y + 0.02 * rng.random(y.shape)
    scores[:, 8] += 0.4 * (rng.random(len(y)) < 0.9)
    picked = np.argmax(scores, axis=1)
    findings = diagnose(y, scores, labels=names, groups={"digit": names})
    hit = [f for f in findings if f.code == "group_collapse"]
    assert len(hit) == 1 and "'8'" in hit[0].message and "'digit'" in hit[0].message
    assert hit[0].evidence["picked_share"] == pytest.approx((picked == 8).mean())
    assert hit[0].evidence["true_share"] == pytest.approx((digit == 8).mean())
    assert all(f.code != "collapse" for f in findings)  # the per-label AUCs are fine


def test_group_collapse_stays_quiet_for_a_good_model_and_without_groups():
    rng, digit, y, names = _digit_group(seed=1)
    good = 0.05 + 0.8 * y + 0.1 * rng.random(y.shape)
    assert not [f for f in diagnose(y, good, labels=names, groups={"digit": names}) if f.code == "group_collapse"]
    # a true majority class predicted as often as it occurs is not a collapse
    skew = np.eye(10, dtype=np.uint8)[np.where(rng.random(600) < 0.8, 3, digit)]
    assert not [f for f in diagnose(skew, 0.05 + 0.8 * skew, labels=names, groups={"digit": names})
                if f.code == "group_collapse"]
    bad = 0.05 + 0.3 * y
    bad[:, 8] += 0.5
    assert not [f for f in diagnose(y, bad, labels=names) if f.code == "group_collapse"]


def test_a_label_the_calibration_set_to_its_prevalence_is_not_called_a_collapse():
    rng = np.random.default_rng(5)
    n = 400
    y = (rng.random((n, 2)) < 0.3).astype(int)
    good = np.clip(0.3 + 0.4 * (y[:, 1] - 0.3) + rng.normal(0, 0.1, n), 0.01, 0.99)
    flat = 0.3 + 1e-6 * rng.normal(size=n)  # a prior nudged along the scores: std ~1e-6
    scores = np.column_stack([flat, good])
    plain = {(f.label, f.code) for f in diagnose(y, scores, labels=["a", "b"])}
    assert ("a", "near_constant") in plain or ("a", "prevalence") in plain  # without the knowledge: a collapse
    told = diagnose(y, scores, labels=["a", "b"], priors=["a"])
    codes = {(f.label, f.code) for f in told}
    assert ("a", "calibrated_to_prior") in codes
    assert not any(f.label == "a" and f.severity == "error" for f in told)
    assert "prevalence" in next(f.message for f in told if f.code == "calibrated_to_prior")
