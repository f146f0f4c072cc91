"""Threshold-free metrics: ROC AUC, average precision and the label-ranking metrics.

All are exact (no binning) and treat tied scores as scikit-learn does: rows with equal scores
enter a curve together, as one step. Each label is sorted once (stable mergesort on the
negated scores); every quantity then comes from cumulative counts read at the last index of
each block of equal scores:

* ROC AUC (Mann-Whitney form of the trapezoid area):
  ``AUC = sum_{negatives j} (TP_before(j) + TP_end(j)) / 2 / (P * N)`` where ``TP_before`` and
  ``TP_end`` count the positives scored above, and at or above, the negative's score.
* Average precision (scikit-learn's step-wise, non-interpolated form):
  ``AP = sum_k (R_k - R_{k-1}) * P_k = (1/P) * sum_{positives i} precision(block of i)``.

A label whose targets hold only one class has no ROC curve and no meaningful AP: it gets NaN
and an :class:`UndefinedMetricWarning` naming it; "macro" and "weighted" averages leave it out
(scikit-learn returns NaN for the average instead; AP of an all-positive label is 1.0 there).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InputError
from ._validation import check_pair, warn_undefined

__all__ = [
    "roc_auc_score",
    "average_precision_score",
    "label_ranking_average_precision_score",
    "coverage_error",
    "label_ranking_loss",
]

AVERAGES = (None, "micro", "macro", "weighted", "samples")


def _check_average(average: object) -> None:
    if average not in AVERAGES:
        raise InputError(f"average must be one of {list(AVERAGES)}; got {average!r}")


def _sorted_blocks(S: np.ndarray, Y: np.ndarray):
    """Sort each row of (k, n) ``S`` by descending score; return cumulative counts read per element.

    Returns ``(y_sorted, tp_end, tp_before, fp_end)``, each (k, n) int64: for the element at
    each sorted position, the positives at or above its score (``tp_end``), strictly above it
    (``tp_before``), and the negatives at or above it (``fp_end``).
    """
    k, n = S.shape
    order = np.argsort(-S, axis=1, kind="mergesort")
    s = np.take_along_axis(S, order, axis=1)
    y = np.take_along_axis(Y, order, axis=1).astype(np.int64)
    del order
    tp = np.cumsum(y, axis=1)
    is_end = np.ones((k, n), dtype=bool)
    is_end[:, :-1] = s[:, :-1] != s[:, 1:]
    del s
    idx = np.arange(n)
    # Index of the last element of each element's tie block (reverse running minimum).
    end_idx = np.minimum.accumulate(np.where(is_end, idx, n - 1)[:, ::-1], axis=1)[:, ::-1]
    is_start = np.ones((k, n), dtype=bool)
    is_start[:, 1:] = is_end[:, :-1]
    start_idx = np.maximum.accumulate(np.where(is_start, idx, 0), axis=1)
    tp_end = np.take_along_axis(tp, end_idx, axis=1)
    tp_before = np.take_along_axis(tp, start_idx, axis=1) - np.take_along_axis(y, start_idx, axis=1)
    fp_end = end_idx + 1 - tp_end
    return y, tp_end, tp_before, fp_end


# Cells (rows x columns) sorted at once. _sorted_blocks holds about ten int64 temporaries of the
# chunk's size, so this bounds the extra memory near 10 * 8 B * budget (~80 MB) whatever n and L
# (sorting all 1M x 14 at once took +1.1 GB); small inputs (22k x 14 = 0.3M cells) still go in
# one chunk, keeping their vectorised speed.
CHUNK_CELLS = 1_000_000


def _auc_ap_columns(
    S: np.ndarray, Y: np.ndarray, which: str, chunk_cells: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column ROC AUC or AP (NaN where a column has one class) plus positive/negative counts.

    Columns are processed in chunks of at most ``max(1, chunk_cells // n)`` (default
    :data:`CHUNK_CELLS`). Each chunk is transposed to contiguous (columns, n) rows, so every
    column is sorted and summed the same way: results do not depend on the chunking, bit for bit.
    """
    n, L = S.shape
    budget = CHUNK_CELLS if chunk_cells is None else chunk_cells
    step = max(1, budget // max(1, n))
    value = np.empty(L, dtype=np.float64)
    P = np.empty(L, dtype=np.int64)
    for start in range(0, L, step):
        sl = slice(start, min(L, start + step))
        value[sl], P[sl] = _auc_ap_rows(np.ascontiguousarray(S[:, sl].T), np.ascontiguousarray(Y[:, sl].T), which)
    return value, P, n - P


def _auc_ap_rows(S: np.ndarray, Y: np.ndarray, which: str) -> tuple[np.ndarray, np.ndarray]:
    """ROC AUC or AP of each row of (k, n) scores/targets (NaN where a row has one class), and P."""
    n = S.shape[1]
    y, tp_end, tp_before, fp_end = _sorted_blocks(S, Y)
    P = y.sum(axis=1)
    N = n - P
    defined = (P > 0) & (N > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if which == "roc_auc":
            # Twice the Mann-Whitney count, in exact integers.
            twice = ((1 - y) * (tp_end + tp_before)).sum(axis=1)
            value = twice / (2.0 * P * N)
        else:
            precision = tp_end / (tp_end + fp_end)
            value = np.where(y == 1, precision, 0.0).sum(axis=1) / P
    value = np.where(defined, value, np.nan).astype(np.float64)
    return value, P


def _auc_ap_pooled(s: np.ndarray, y: np.ndarray, which: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC AUC or AP of one long 1-D column (the micro average pools all n x L cells).

    Column chunks cannot bound this one, so it works per tie block rather than per element and
    drops each temporary once used: about 4 x 8 B per cell at the peak instead of 10 x 8 B.
    """
    n = s.size
    if n == 0:
        return np.array([np.nan]), np.zeros(1, np.int64), np.zeros(1, np.int64)
    order = np.argsort(-s, kind="mergesort")
    ss = s[order]
    yy = y[order].astype(bool)
    del order
    is_end = np.empty(n, dtype=bool)
    np.not_equal(ss[:-1], ss[1:], out=is_end[:-1])
    is_end[-1] = True
    del ss
    ends = np.flatnonzero(is_end)
    del is_end
    tp = np.cumsum(yy, dtype=np.int64)[ends]  # positives at or above each block's score
    fp = ends + 1 - tp
    del ends
    P, N = int(tp[-1]), int(fp[-1])
    tp_prev = np.concatenate([[0], tp[:-1]])
    if P == 0 or N == 0:
        value = np.nan
    elif which == "roc_auc":
        fp_prev = np.concatenate([[0], fp[:-1]])
        value = int(((fp - fp_prev) * (tp + tp_prev)).sum()) / (2.0 * P * N)
    else:
        value = float(((tp - tp_prev) * (tp / (tp + fp))).sum() / P)
    return np.array([value], dtype=np.float64), np.array([P]), np.array([N])


_TITLES = {"roc_auc": "ROC AUC", "average_precision": "average precision"}


def _undefined_reason(p: int, nn: int) -> str:
    if p == 0 and nn == 0:
        return "no rows"
    return "only negatives in y_true" if p == 0 else "only positives in y_true"


def _threshold_free(y_true, y_score, which: str, average, labels, from_logits) -> float | np.ndarray:
    _check_average(average)
    Y, S, names, _ = check_pair(y_true, y_score, labels, from_logits=from_logits, apply_sigmoid=False)
    title = _TITLES[which]
    if average == "micro":
        value, P, N = _auc_ap_pooled(S.ravel(), Y.ravel(), which)
        if np.isnan(value[0]):
            warn_undefined(f"micro-averaged {title} is undefined: {_undefined_reason(P[0], N[0])} (all labels); it is NaN")
        return float(value[0])
    if average == "samples":
        value, P, N = _auc_ap_columns(S.T, Y.T, which)
        bad = np.flatnonzero(np.isnan(value))
        if bad.size == value.size:
            warn_undefined(f"{title} is undefined for every row (each row's labels are all 0 or all 1); "
                           "the samples average is NaN")
            return float("nan")
        if bad.size:
            warn_undefined(f"{title} is undefined for {bad.size} row(s) (e.g. row {int(bad[0])}) whose labels are "
                           "all 0 or all 1; they are left out of the samples average")
        return float(np.nanmean(value))
    value, P, N = _auc_ap_columns(S, Y, which)
    return _average_labels(value, P, N, names, title, average)


def _average_labels(value, P, N, names, title, average):
    bad = np.flatnonzero(np.isnan(value))
    if bad.size:
        detail = "; ".join(f"{names[j]!r} ({_undefined_reason(int(P[j]), int(N[j]))})" for j in bad[:10])
        more = f" and {bad.size - 10} more" if bad.size > 10 else ""
        tail = "it is NaN" if average is None else f"left out of the {average} average"
        if average is not None and bad.size == value.size:
            tail = f"the {average} average is NaN"
        warn_undefined(f"{title} is undefined for label(s) {detail}{more}: {tail}")
    if average is None:
        return value
    ok = ~np.isnan(value)
    if not ok.any():
        return float("nan")
    if average == "macro":
        return float(value[ok].mean())
    w = P[ok].astype(np.float64)
    if w.sum() == 0:
        return float("nan")
    return float(np.average(value[ok], weights=w))


def roc_auc_score(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    average: str | None = "macro",
    labels: Sequence[str] | None = None,
    from_logits: bool = False,
) -> float | np.ndarray:
    """Area under the ROC curve per label, averaged as scikit-learn does.

    ``average``: None (per-label array), "micro" (all cells pooled), "macro" (mean over labels),
    "weighted" (mean weighted by each label's positives), "samples" (mean over rows of the AUC
    computed across each row's labels). Labels (or rows, for "samples") with one class get NaN
    and a warning and are left out of the average. With ``from_logits=True`` the logits are
    ranked directly (the sigmoid preserves order; computing it would merge large logits into ties).
    """
    return _threshold_free(y_true, y_score, "roc_auc", average, labels, from_logits)


def average_precision_score(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    average: str | None = "macro",
    labels: Sequence[str] | None = None,
    from_logits: bool = False,
) -> float | np.ndarray:
    """Average precision ``sum_k (R_k - R_{k-1}) P_k`` per label (scikit-learn's definition).

    Averages as in :func:`roc_auc_score`. A label with one class gets NaN and a warning
    (scikit-learn gives 1.0 for an all-positive label and 0.0 for an all-negative one).
    """
    return _threshold_free(y_true, y_score, "average_precision", average, labels, from_logits)


def _row_chunks(n: int, L: int, budget: int = 20_000_000):
    step = max(1, budget // max(1, L * L))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def label_ranking_average_precision_score(
    y_true: np.ndarray, y_score: np.ndarray, *, labels: Sequence[str] | None = None, from_logits: bool = False
) -> float:
    """Label ranking average precision (scikit-learn's LRAP).

    Per row, the mean over its true labels j of ``|{true k: s_k >= s_j}| / |{k: s_k >= s_j}|``;
    rows whose labels are all 0 or all 1 score 1. The result is the mean over rows.
    """
    Y, S, _, _ = check_pair(y_true, y_score, labels, from_logits=from_logits, apply_sigmoid=False)
    n, L = Y.shape
    out = np.empty(n)
    for sl in _row_chunks(n, L):
        s, y = S[sl], Y[sl].astype(bool)
        ge = s[:, None, :] >= s[:, :, None]  # [i, j, k]: s_k >= s_j
        rank = ge.sum(axis=2)
        rel = (ge & y[:, None, :]).sum(axis=2)
        nrel = y.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            aux = np.where(y, rel / rank, 0.0).sum(axis=1) / nrel
        out[sl] = np.where((nrel == 0) | (nrel == L), 1.0, aux)
    return float(out.mean())


def coverage_error(
    y_true: np.ndarray, y_score: np.ndarray, *, labels: Sequence[str] | None = None, from_logits: bool = False
) -> float:
    """Coverage error: mean over rows of ``|{k: s_k >= min_{true j} s_j}|`` (0 for a row with no true label)."""
    Y, S, _, _ = check_pair(y_true, y_score, labels, from_logits=from_logits, apply_sigmoid=False)
    min_rel = np.where(Y == 1, S, np.inf).min(axis=1, keepdims=True)
    cov = (S >= min_rel).sum(axis=1)
    cov = np.where(Y.any(axis=1), cov, 0)
    return float(cov.mean())


def label_ranking_loss(
    y_true: np.ndarray, y_score: np.ndarray, *, labels: Sequence[str] | None = None, from_logits: bool = False
) -> float:
    """Ranking loss: per row, the fraction of (true, false) label pairs with ``s_false >= s_true``.

    Rows whose labels are all 0 or all 1 contribute 0 (as in scikit-learn); mean over rows.
    """
    Y, S, _, _ = check_pair(y_true, y_score, labels, from_logits=from_logits, apply_sigmoid=False)
    n, L = Y.shape
    out = np.empty(n)
    for sl in _row_chunks(n, L):
        s, y = S[sl], Y[sl].astype(bool)
        wrong = (s[:, None, :] >= s[:, :, None]) & y[:, :, None] & ~y[:, None, :]  # [i, true j, false k]
        nrel = y.sum(axis=1)
        pairs = nrel * (L - nrel)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[sl] = np.where(pairs > 0, wrong.sum(axis=(1, 2)) / pairs, 0.0)
    return float(out.mean())
