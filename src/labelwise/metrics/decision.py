"""Metrics at decisions: precision, recall, specificity, F-beta, support, Hamming loss,
subset accuracy and a classification report.

Inputs are ``y_true`` and ``y_pred``, both (n, L) 0/1 (1-D is one label). Everything comes
from the per-label (or, for ``average="samples"``, per-row) confusion counts TP, FP, FN, TN:

* precision ``TP / (TP + FP)``, recall ``TP / (TP + FN)``, specificity ``TN / (TN + FP)``,
* F-beta ``(1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP)`` (computed from counts, as scikit-learn does).

Averages: None (per label), "micro" (counts summed over labels first), "macro" (mean over
labels), "weighted" (mean weighted by support, the positives per label; all-zero support falls
back to the plain mean), "samples" (mean over rows of the per-row value).

Zero division follows scikit-learn: by default (``zero_division="warn"``) a ratio whose
denominator is 0 (e.g. precision of a label that is never predicted, recall of a label with no
positives) is 0.0, with an :class:`UndefinedMetricWarning` naming the labels. ``zero_division``
may also be 0.0 or 1.0 (that value, silently) or ``np.nan``: the ratio is NaN and the averages
leave it out (scikit-learn >= 1.3), so a label with no positives does not pull macro recall to 0.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from ..errors import InputError
from ._validation import UndefinedMetricWarning, check_pair, warn_undefined

__all__ = [
    "precision_score",
    "recall_score",
    "specificity_score",
    "f1_score",
    "fbeta_score",
    "support",
    "precision_recall_fscore_support",
    "hamming_loss",
    "subset_accuracy",
    "classification_report",
]

AVERAGES = (None, "micro", "macro", "weighted", "samples")


def _counts(Y: np.ndarray, P: np.ndarray, axis: int):
    y, p = Y.astype(bool), P.astype(bool)
    tp = (y & p).sum(axis=axis)
    fp = (~y & p).sum(axis=axis)
    fn = (y & ~p).sum(axis=axis)
    tn = (~y & ~p).sum(axis=axis)
    return tp, fp, fn, tn


def _zero_value(zero_division) -> float:
    if isinstance(zero_division, str):
        if zero_division == "warn":
            return 0.0
    elif zero_division is not None:
        v = float(zero_division)
        if v in (0.0, 1.0) or np.isnan(v):
            return v
    raise InputError(f"zero_division must be 'warn', 0.0, 1.0 or np.nan; got {zero_division!r}")


def _divide(num, den, what: str, names, unit: str, zero_division="warn") -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    zero = den == 0
    out = np.divide(num, den, out=np.full_like(num, _zero_value(zero_division)), where=~zero)
    if zero.any() and isinstance(zero_division, str):  # an explicit value says the caller knows
        idx = np.flatnonzero(np.atleast_1d(zero))
        if unit == "label":
            shown = ", ".join(repr(names[j]) for j in idx[:10]) + (f" and {idx.size - 10} more" if idx.size > 10 else "")
            where = f"label(s) {shown}"
        elif unit == "row":
            where = f"{idx.size} row(s) (e.g. row {int(idx[0])})"
        else:
            where = "the pooled counts"
        warn_undefined(f"{what} is ill-defined for {where} ({_REASON[what]}) and set to 0.0")
    return out


_REASON = {
    "precision": "no predicted positives",
    "recall": "no true positives in y_true",
    "specificity": "no true negatives in y_true",
    "F-score": "no true and no predicted positives",
}


def _check(average, beta=1.0):
    if average not in AVERAGES:
        raise InputError(f"average must be one of {list(AVERAGES)}; got {average!r}")
    if not np.isfinite(beta) or beta < 0:
        raise InputError(f"beta must be a finite number >= 0; got {beta!r}")


def _nanaverage(v: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean (weighted) over the finite entries, as scikit-learn's ``_nanaverage``: NaN entries (an
    undefined ratio with ``zero_division=np.nan``) are left out; all-zero weights fall back to the
    plain mean; nothing left gives NaN."""
    keep = ~np.isnan(v)
    if not keep.any():
        return float("nan")
    if weights is None:
        return float(v[keep].mean())
    w = np.asarray(weights, dtype=np.float64)[keep]
    return float(np.average(v[keep], weights=w)) if w.sum() > 0 else float(v[keep].mean())


def _scores(Y, P, names, average, beta, which, zero_division="warn"):
    """Compute the requested ratios ('precision', 'recall', 'specificity', 'F-score') as averaged values."""
    if average == "samples":
        tp, fp, fn, tn = _counts(Y, P, axis=1)
        unit = "row"
    elif average == "micro":
        tp, fp, fn, tn = (c.sum(keepdims=True) for c in _counts(Y, P, axis=0))
        unit = "pooled"
    else:
        tp, fp, fn, tn = _counts(Y, P, axis=0)
        unit = "label"
    b2 = beta * beta
    out = {}
    for w in which:
        if w == "precision":
            v = _divide(tp, tp + fp, w, names, unit, zero_division)
        elif w == "recall":
            v = _divide(tp, tp + fn, w, names, unit, zero_division)
        elif w == "specificity":
            v = _divide(tn, tn + fp, w, names, unit, zero_division)
        else:
            v = _divide((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp, w, names, unit, zero_division)
        out[w] = v
    sup = (tp + fn) if average not in ("samples",) else None
    if average is None:
        return out, sup
    if average in ("micro", "macro", "samples"):
        return {k: _nanaverage(v) for k, v in out.items()}, None
    # weighted by support; all-zero support falls back to the plain mean (as scikit-learn does)
    return {k: _nanaverage(v, (tp + fn)) for k, v in out.items()}, None


def _one(y_true, y_pred, average, labels, which, beta=1.0, zero_division="warn"):
    _check(average, beta)
    _zero_value(zero_division)
    Y, P, names, _ = check_pair(y_true, y_pred, labels, kind="pred")
    vals, _ = _scores(Y, P, names, average, beta, (which,), zero_division)
    return vals[which]


def precision_score(
    y_true: np.ndarray, y_pred: np.ndarray, *, average: str | None = "macro", labels: Sequence[str] | None = None,
    zero_division: str | float = "warn",
) -> float | np.ndarray:
    """Precision ``TP / (TP + FP)``; 0.0 with a warning where nothing is predicted positive."""
    return _one(y_true, y_pred, average, labels, "precision", zero_division=zero_division)


def recall_score(
    y_true: np.ndarray, y_pred: np.ndarray, *, average: str | None = "macro", labels: Sequence[str] | None = None,
    zero_division: str | float = "warn",
) -> float | np.ndarray:
    """Recall (sensitivity) ``TP / (TP + FN)``; 0.0 with a warning where y_true has no positive."""
    return _one(y_true, y_pred, average, labels, "recall", zero_division=zero_division)


def specificity_score(
    y_true: np.ndarray, y_pred: np.ndarray, *, average: str | None = "macro", labels: Sequence[str] | None = None,
    zero_division: str | float = "warn",
) -> float | np.ndarray:
    """Specificity ``TN / (TN + FP)`` (recall of the negatives); 0.0 with a warning where y_true has no negative.

    "weighted" weights by support (positives), like every other "weighted" average here.
    """
    return _one(y_true, y_pred, average, labels, "specificity", zero_division=zero_division)


def fbeta_score(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    beta: float,
    average: str | None = "macro",
    labels: Sequence[str] | None = None,
    zero_division: str | float = "warn",
) -> float | np.ndarray:
    """F-beta ``(1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP)``; 0.0 with a warning when TP + FN + FP = 0."""
    return _one(y_true, y_pred, average, labels, "F-score", beta, zero_division)


def f1_score(
    y_true: np.ndarray, y_pred: np.ndarray, *, average: str | None = "macro", labels: Sequence[str] | None = None,
    zero_division: str | float = "warn",
) -> float | np.ndarray:
    """F1 ``2 TP / (2 TP + FN + FP)``; see :func:`fbeta_score`."""
    return _one(y_true, y_pred, average, labels, "F-score", 1.0, zero_division)


def support(
    y_true: np.ndarray,
    y_pred: np.ndarray | None = None,
    *,
    average: str | None = None,
    labels: Sequence[str] | None = None,
):
    """Positives per label in ``y_true`` (int array); ``average="micro"`` (or any average) gives the total."""
    Y, _, _, _ = check_pair(y_true, y_true if y_pred is None else y_pred, labels, kind="pred")
    s = Y.sum(axis=0).astype(np.int64)
    return s if average is None else int(s.sum())


def precision_recall_fscore_support(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    beta: float = 1.0,
    average: str | None = None,
    labels: Sequence[str] | None = None,
    zero_division: str | float = "warn",
):
    """``(precision, recall, fbeta, support)`` as scikit-learn returns them (support None when averaged)."""
    _check(average, beta)
    _zero_value(zero_division)
    Y, P, names, _ = check_pair(y_true, y_pred, labels, kind="pred")
    vals, sup = _scores(Y, P, names, average, beta, ("precision", "recall", "F-score"), zero_division)
    return vals["precision"], vals["recall"], vals["F-score"], (sup.astype(np.int64) if average is None else None)


def hamming_loss(y_true: np.ndarray, y_pred: np.ndarray, *, labels: Sequence[str] | None = None) -> float:
    """Fraction of wrong cells: ``mean(y_true != y_pred)`` over all rows and labels."""
    Y, P, _, _ = check_pair(y_true, y_pred, labels, kind="pred")
    return float((Y != P).mean())


def subset_accuracy(y_true: np.ndarray, y_pred: np.ndarray, *, labels: Sequence[str] | None = None) -> float:
    """Exact-match ratio: fraction of rows whose every label is right (scikit-learn's ``accuracy_score``)."""
    Y, P, _, _ = check_pair(y_true, y_pred, labels, kind="pred")
    return float((Y == P).all(axis=1).mean())


_COLUMNS = ("precision", "recall", "specificity", "f1-score")
_KEYS = {"precision": "precision", "recall": "recall", "specificity": "specificity", "f1-score": "F-score"}


def classification_report(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    labels: Sequence[str] | None = None,
    output_dict: bool = False,
    digits: int = 2,
    zero_division: str | float = "warn",
) -> str | dict:
    """A per-label table of precision, recall, specificity, F1 and support, like scikit-learn's.

    Rows: one per label, then "micro avg", "macro avg", "weighted avg" and "samples avg" (the
    support of the average rows is the total number of positives). ``output_dict=True`` returns
    ``{row: {"precision", "recall", "specificity", "f1-score", "support"}}``. ``zero_division`` as in
    the module docstring; undefined (NaN) values print as ``n/a``.
    """
    _zero_value(zero_division)
    Y, P, names, _ = check_pair(y_true, y_pred, labels, kind="pred")
    which = tuple(_KEYS[c] for c in _COLUMNS)
    per, sup = _scores(Y, P, names, None, 1.0, which, zero_division)
    report: dict[str, dict[str, float]] = {}
    for j, name in enumerate(names):
        report[name] = {c: float(per[_KEYS[c]][j]) for c in _COLUMNS}
        report[name]["support"] = int(sup[j])
    total = int(sup.sum())
    for avg in ("micro", "macro", "weighted", "samples"):
        with warnings.catch_warnings():  # the per-label warnings above already said it
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            vals, _ = _scores(Y, P, names, avg, 1.0, which, zero_division)
        report[f"{avg} avg"] = {c: vals[_KEYS[c]] for c in _COLUMNS}
        report[f"{avg} avg"]["support"] = total
    if output_dict:
        return report
    width = max(len("weighted avg"), *(len(n) for n in names))
    head = " " * width + "".join(f" {c:>11}" for c in _COLUMNS) + f" {'support':>9}\n\n"
    lines = []
    for row, vals in report.items():
        if row == "micro avg":
            lines.append("")
        cells = "".join(f" {'n/a':>11}" if np.isnan(vals[c]) else f" {vals[c]:>11.{digits}f}" for c in _COLUMNS)
        lines.append(f"{row:>{width}}{cells} {vals['support']:>9}")
    return head + "\n".join(lines) + "\n"
