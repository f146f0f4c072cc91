"""labelwise.metrics against scikit-learn (the reference), on random, tied and degenerate data."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

sk = pytest.importorskip("sklearn.metrics")

from labelwise import metrics as lm  # noqa: E402
from labelwise.errors import InputError  # noqa: E402
from labelwise.metrics import UndefinedMetricWarning  # noqa: E402

AVERAGES = [None, "micro", "macro", "weighted", "samples"]
TOL = 1e-9


def _case(kind: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    if kind == "single_row":
        return np.array([[1, 0, 1, 0]]), np.array([[0.9, 0.2, 0.4, 0.4]])
    n, L = 150, 6
    Y = (rng.random((n, L)) < rng.uniform(0.1, 0.5, L)).astype(int)
    S = np.clip(0.35 * Y + rng.random((n, L)) * 0.65, 0, 1)
    if kind == "tied":
        S = np.round(S, 1)
    if kind == "degenerate":
        S = np.round(S, 1)
        S[:, 0] = 0.5  # constant scores
        Y[:, 1] = 1  # all positive
        Y[:, 2] = 0  # all negative
        Y[:3, 3] = 1 - Y[:3, 3]
    return Y, S


CASES = ["random", "tied", "degenerate", "single_row"]


def _sk_binary(fn, y, s):
    """scikit-learn's binary metric, or NaN where only one class is present (our convention)."""
    if y.min() == y.max():
        return np.nan
    return fn(y, s)


def _reference(fn, Y, S, average):
    if average == "micro":
        return _sk_binary(fn, Y.ravel(), S.ravel())
    if average == "samples":
        return np.nanmean([_sk_binary(fn, Y[i], S[i]) for i in range(len(Y))]) if len(Y) else np.nan
    per = np.array([_sk_binary(fn, Y[:, j], S[:, j]) for j in range(Y.shape[1])])
    ok = ~np.isnan(per)
    if average is None:
        return per
    if not ok.any():
        return np.nan
    if average == "macro":
        return per[ok].mean()
    return np.average(per[ok], weights=Y.sum(axis=0)[ok])


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("average", AVERAGES)
@pytest.mark.parametrize("name", ["roc_auc_score", "average_precision_score"])
def test_threshold_free_matches_sklearn(case, average, name):
    Y, S = _case(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = _reference(getattr(sk, name), Y, S, average)
        ours = getattr(lm, name)(Y, S, average=average)
    np.testing.assert_allclose(ours, ref, atol=TOL, rtol=0)
    if average is None:
        assert ours.shape == (Y.shape[1],)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("average", AVERAGES)
@pytest.mark.parametrize("name", ["roc_auc_score", "average_precision_score"])
def test_column_chunks_give_the_one_chunk_result_bit_for_bit(monkeypatch, case, average, name):
    from labelwise.metrics import ranking

    Y, S = _case(case)
    fn = getattr(lm, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        monkeypatch.setattr(ranking, "CHUNK_CELLS", 10**9)  # every column in one chunk
        whole = fn(Y, S, average=average)
        for cells in (1, 2 * len(Y) + 1):  # one column per chunk; chunks of 2 and a remainder
            monkeypatch.setattr(ranking, "CHUNK_CELLS", cells)
            np.testing.assert_array_equal(fn(Y, S, average=average), whole)
    if average == "micro":  # the lean pooled path agrees with the general one
        which = "roc_auc" if name == "roc_auc_score" else "average_precision"
        pooled = ranking._auc_ap_pooled(np.asarray(S, float).ravel(), Y.ravel(), which)
        general = ranking._auc_ap_columns(np.asarray(S, float).reshape(-1, 1), Y.reshape(-1, 1), which)
        for a, b in zip(pooled, general):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)
    # the per-column values are sklearn's, so the chunking cannot hide a common error
    if average is None:
        ref = _reference(getattr(sk, name), Y, S, None)
        np.testing.assert_allclose(whole, ref, atol=TOL, rtol=0)


@pytest.mark.parametrize("average", ["micro", "macro", "weighted", "samples"])
def test_direct_sklearn_call_when_everything_is_defined(average):
    rng = np.random.default_rng(3)
    Y = (rng.random((300, 5)) < 0.4).astype(int)
    Y[:, 0] = np.arange(300) % 2  # every row has both classes: 'samples' is defined everywhere
    Y[:, 1] = 1 - Y[:, 0]
    S = np.round(rng.random((300, 5)), 2)
    for name in ["roc_auc_score", "average_precision_score"]:
        ref = getattr(sk, name)(Y, S, average=average)
        assert abs(getattr(lm, name)(Y, S, average=average) - ref) < TOL


@pytest.mark.parametrize("case", ["random", "tied", "degenerate", "single_row"])
@pytest.mark.parametrize(
    "name", ["label_ranking_average_precision_score", "coverage_error", "label_ranking_loss"]
)
def test_ranking_metrics_match_sklearn(case, name):
    Y, S = _case(case)
    assert abs(getattr(lm, name)(Y, S) - getattr(sk, name)(Y, S)) < TOL


def _preds(case):
    Y, S = _case(case)
    P = (S >= 0.5).astype(int)
    if case == "degenerate":
        P[:, 4] = 0  # never predicted
        P[:, 5] = 1  # always predicted
    return Y, P


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("average", AVERAGES)
def test_decision_metrics_match_sklearn(case, average):
    Y, P = _preds(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pairs = [
            (lm.precision_score(Y, P, average=average), sk.precision_score(Y, P, average=average)),
            (lm.recall_score(Y, P, average=average), sk.recall_score(Y, P, average=average)),
            (lm.f1_score(Y, P, average=average), sk.f1_score(Y, P, average=average)),
            (lm.fbeta_score(Y, P, beta=2.0, average=average), sk.fbeta_score(Y, P, beta=2.0, average=average)),
            (lm.fbeta_score(Y, P, beta=0.5, average=average), sk.fbeta_score(Y, P, beta=0.5, average=average)),
        ]
        ours = lm.precision_recall_fscore_support(Y, P, average=average)
        ref = sk.precision_recall_fscore_support(Y, P, average=average)
        pairs += list(zip(ours[:3], ref[:3]))
        if average == "weighted":
            per = sk.recall_score(1 - Y, 1 - P, average=None)
            w = Y.sum(axis=0)
            spec_ref = np.average(per, weights=w) if w.sum() else per.mean()
        else:
            spec_ref = sk.recall_score(1 - Y, 1 - P, average=average)
        pairs.append((lm.specificity_score(Y, P, average=average), spec_ref))
    for a, b in pairs:
        np.testing.assert_allclose(a, b, atol=TOL, rtol=0)
    if average is None:
        np.testing.assert_array_equal(ours[3], ref[3])
        np.testing.assert_array_equal(lm.support(Y, P), ref[3])
    else:
        assert ours[3] is None


@pytest.mark.parametrize("case", CASES)
def test_hamming_subset_and_report_match_sklearn(case):
    Y, P = _preds(case)
    assert abs(lm.hamming_loss(Y, P) - sk.hamming_loss(Y, P)) < TOL
    assert abs(lm.subset_accuracy(Y, P) - sk.accuracy_score(Y, P)) < TOL
    names = [f"L{j}" for j in range(Y.shape[1])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = lm.classification_report(Y, P, labels=names, output_dict=True)
        ref = sk.classification_report(Y, P, target_names=names, output_dict=True, zero_division=0)
        spec = sk.recall_score(1 - Y, 1 - P, average=None)
        text = lm.classification_report(Y, P, labels=names)
    for row in names + ["micro avg", "macro avg", "weighted avg", "samples avg"]:
        for key in ("precision", "recall", "f1-score", "support"):
            assert abs(ours[row][key] - ref[row][key]) < TOL, (row, key)
    np.testing.assert_allclose([ours[x]["specificity"] for x in names], spec, atol=TOL)
    assert all(x in text for x in names + ["specificity", "samples avg", "weighted avg"])


def test_zero_division_is_zero_with_a_warning_naming_the_label():
    Y = np.array([[1, 0], [0, 1], [1, 0]])
    P = np.array([[1, 0], [0, 0], [0, 0]])
    with pytest.warns(UndefinedMetricWarning, match="'never'"):
        p = lm.precision_score(Y, P, average=None, labels=["ok", "never"])
    assert p[1] == 0.0 and p[0] == 1.0


@pytest.mark.parametrize("drop", [True, False])
@pytest.mark.parametrize("case", CASES)
def test_curves_match_sklearn(case, drop):
    Y, S = _case(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for j in range(Y.shape[1]):
            for ours, ref in [
                (lm.roc_curve(Y[:, j], S[:, j], drop_intermediate=drop), sk.roc_curve(Y[:, j], S[:, j], drop_intermediate=drop)),
                (lm.precision_recall_curve(Y[:, j], S[:, j], drop_intermediate=drop),
                 sk.precision_recall_curve(Y[:, j], S[:, j], drop_intermediate=drop)),
            ]:
                for a, b in zip(ours, ref):
                    assert a.shape == b.shape
                    np.testing.assert_allclose(a, b, atol=TOL, rtol=0, equal_nan=True)


def test_undefined_label_is_nan_with_warning_and_left_out_of_averages():
    Y, S = _case("random")
    Y[:, 2] = 0
    names = ["A", "B", "Hernia", "D", "E", "F"]
    with pytest.warns(UndefinedMetricWarning, match=r"'Hernia' \(only negatives"):
        per = lm.roc_auc_score(Y, S, average=None, labels=names)
    assert np.isnan(per[2]) and not np.isnan(np.delete(per, 2)).any()
    with pytest.warns(UndefinedMetricWarning, match="left out of the macro average"):
        macro = lm.average_precision_score(Y, S, labels=names)
    ap = lm.average_precision_score(np.delete(Y, 2, axis=1), np.delete(S, 2, axis=1), average=None)
    assert abs(macro - ap.mean()) < TOL
    with pytest.warns(UndefinedMetricWarning, match="'Hernia'"):
        assert np.isnan(lm.roc_auc_score(Y[:, 2], S[:, 2], labels=["Hernia"]))


def test_validation_messages():
    Y, S = _case("random")
    names = [f"L{j}" for j in range(6)]
    with pytest.raises(InputError, match="shape"):
        lm.roc_auc_score(Y, S[:, :5])
    bad = Y.copy()
    bad[7, 3] = 2
    with pytest.raises(InputError, match=r"row 7, label 'L3'"):
        lm.roc_auc_score(bad, S, labels=names)
    s = S.copy()
    s[4, 1] = np.nan
    with pytest.raises(InputError, match=r"nan at row 4, label 'L1'"):
        lm.average_precision_score(Y, s, labels=names)
    s[4, 1] = np.inf
    with pytest.raises(InputError, match=r"row 4, column 1"):
        lm.average_precision_score(Y, s)
    with pytest.raises(InputError, match="these look like logits; pass from_logits=True"):
        lm.roc_auc_score(Y, S * 8 - 4)
    with pytest.raises(InputError, match="labels has 2 name"):
        lm.roc_auc_score(Y, S, labels=["a", "b"])
    with pytest.raises(InputError, match="average must be one of"):
        lm.f1_score(Y, Y, average="binary")
    with pytest.raises(InputError, match="y_pred must hold only 0 and 1"):
        lm.f1_score(Y, S)
    with pytest.raises(InputError, match="1-D"):
        lm.roc_auc_score(Y[None], S[None])


def test_from_logits_and_one_dimensional_inputs():
    Y, S = _case("random")
    logits = np.log(S + 1e-3) - np.log1p(-S + 1e-3)
    ref = sk.roc_auc_score(Y, logits, average=None)
    np.testing.assert_allclose(lm.roc_auc_score(Y, logits, average=None, from_logits=True), ref, atol=TOL)
    # huge logits stay distinct: ranking uses the logits, not sigmoid(logits) rounded to 1.0
    y = np.array([0, 1, 0, 1])
    z = np.array([40.0, 50.0, 60.0, 70.0])
    assert abs(lm.roc_auc_score(y, z, from_logits=True) - sk.roc_auc_score(y, z)) < TOL
    assert abs(lm.roc_auc_score(Y[:, 0], S[:, 0]) - sk.roc_auc_score(Y[:, 0], S[:, 0])) < TOL
    P = lm.f1_score(Y[:, 0], (S[:, 0] > 0.5).astype(int))
    assert abs(P - sk.f1_score(Y[:, 0], (S[:, 0] > 0.5).astype(int))) < TOL


def test_light_imports_only():
    code = (
        "import sys, labelwise.metrics, labelwise.decide.thresholds;"
        "bad=[m for m in ('keras','tensorflow','jax','sklearn','matplotlib') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
