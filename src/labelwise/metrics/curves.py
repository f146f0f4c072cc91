"""ROC and precision-recall curves for one label, matching scikit-learn's outputs.

The rule is ``score >= threshold``; thresholds are the distinct scores in decreasing order.
``roc_curve`` starts at (0, 0) with threshold +inf and, by default, drops the points that are
collinear with their neighbours (scikit-learn's ``drop_intermediate=True``);
``precision_recall_curve`` ends at (recall 0, precision 1) with no threshold, as scikit-learn's.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ._validation import check_pair, warn_undefined

__all__ = ["roc_curve", "precision_recall_curve", "confusion_at_thresholds"]


def confusion_at_thresholds(
    y_true: np.ndarray, y_score: np.ndarray, *, from_logits: bool = False, label: str | None = None,
):
    """``(fps, tps, thresholds)`` at each distinct score, highest first, for one label.

    ``tps[k]`` / ``fps[k]`` count positives / negatives with ``score >= thresholds[k]``.
    """
    Y, S, _, _ = check_pair(y_true, y_score, None if label is None else [label], from_logits=from_logits)
    if Y.shape[1] != 1:
        raise InputError(f"a curve is drawn for one label: pass 1-D y_true and y_score, got shape {Y.shape}")
    y, s = Y[:, 0], S[:, 0]
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order].astype(np.int64)
    ends = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tps = np.cumsum(y)[ends]
    fps = ends + 1 - tps
    return fps.astype(np.float64), tps.astype(np.float64), s[ends]


def roc_curve(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    drop_intermediate: bool = True,
    from_logits: bool = False,
    label: str | None = None,
):
    """``(fpr, tpr, thresholds)`` of one label; NaN rates with a warning when a class is missing."""
    fps, tps, thr = confusion_at_thresholds(y_true, y_score, from_logits=from_logits, label=label)
    if drop_intermediate and fps.size > 2:
        keep = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        fps, tps, thr = fps[keep], tps[keep], thr[keep]
    fps, tps, thr = np.r_[0.0, fps], np.r_[0.0, tps], np.r_[np.inf, thr]
    name = f" for label {label!r}" if label else ""
    if fps[-1] <= 0:
        warn_undefined(f"no negatives in y_true{name}: the false positive rate is undefined (NaN)")
        fpr = np.full(fps.shape, np.nan)
    else:
        fpr = fps / fps[-1]
    if tps[-1] <= 0:
        warn_undefined(f"no positives in y_true{name}: the true positive rate is undefined (NaN)")
        tpr = np.full(tps.shape, np.nan)
    else:
        tpr = tps / tps[-1]
    return fpr, tpr, thr


def precision_recall_curve(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    drop_intermediate: bool = False,
    from_logits: bool = False,
    label: str | None = None,
):
    """``(precision, recall, thresholds)`` of one label, recall decreasing, as scikit-learn returns them.

    Precision is 0 where nothing is predicted; with no positive in y_true recall is 1 everywhere
    (with a warning), as in scikit-learn.
    """
    fps, tps, thr = confusion_at_thresholds(y_true, y_score, from_logits=from_logits, label=label)
    if drop_intermediate and fps.size > 2:
        keep = np.r_[True, np.logical_or(np.diff(tps[:-1]), np.diff(tps[1:])), True]
        fps, tps, thr = fps[keep], tps[keep], thr[keep]
    ps = tps + fps
    precision = np.divide(tps, ps, out=np.zeros_like(tps), where=ps != 0)
    if tps[-1] == 0:
        name = f" for label {label!r}" if label else ""
        warn_undefined(f"no positives in y_true{name}: recall is set to 1 for all thresholds")
        recall = np.ones_like(tps)
    else:
        recall = tps / tps[-1]
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thr[::-1]
