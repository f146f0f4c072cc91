"""Calibration metrics: expected calibration error (classwise) and the Brier score.

Both take ``y_true`` (n, L) 0/1 and ``y_prob`` (n, L) probabilities in [0, 1] (1-D is one label);
``average="macro"`` is the mean over labels, ``average=None`` the per-label array.

* ``expected_calibration_error``: per label, the binary ECE over ``n_bins`` equal-width bins of
  [0, 1] (bin ``b`` holds ``b/n_bins <= p < (b+1)/n_bins``; the last bin includes 1.0)::

      ECE_j = sum_b (n_b / n) * | mean(y_j in bin b) - mean(p_j in bin b) |

  and the classwise ECE is the mean of ``ECE_j`` over labels (Kull et al., 2019). Default 15 bins.
  Empty bins contribute nothing. ECE is defined for a label with one class too (it then measures
  how far the probabilities are from that class's frequency), so no label is left out.
* ``brier_score``: per label ``mean((p_j - y_j)^2)`` (scikit-learn's ``brier_score_loss``).

This module imports neither Keras nor TensorFlow.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InputError
from ._validation import check_pair

__all__ = ["expected_calibration_error", "brier_score", "reliability_curve", "DEFAULT_BINS"]

DEFAULT_BINS = 15


def _average(values: np.ndarray, average: str | None, was_1d: bool):
    if average is None:
        return float(values[0]) if was_1d else values
    if average == "macro":
        return float(np.mean(values))
    raise InputError(f"average must be 'macro' or None; got {average!r}")


def _check_bins(n_bins: int) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise InputError(f"n_bins must be a whole number >= 1; got {n_bins!r}")
    return int(n_bins)


def _bin_index(P: np.ndarray, n_bins: int) -> np.ndarray:
    # floor(p * n_bins) puts p == 1.0 in bin n_bins: it belongs to the last bin.
    return np.minimum((P * n_bins).astype(np.int64), n_bins - 1)


def _bin_sums(Y: np.ndarray, P: np.ndarray, n_bins: int):
    """Per label and bin: counts, sum of y, sum of p; each (n_bins, L)."""
    n, L = P.shape
    idx = _bin_index(P, n_bins) + n_bins * np.arange(L)[None, :]
    flat = idx.ravel()
    size = n_bins * L
    count = np.bincount(flat, minlength=size).reshape(L, n_bins).T
    sy = np.bincount(flat, weights=Y.ravel().astype(np.float64), minlength=size).reshape(L, n_bins).T
    sp = np.bincount(flat, weights=P.ravel(), minlength=size).reshape(L, n_bins).T
    return count.astype(np.float64), sy, sp


def expected_calibration_error(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    *,
    n_bins: int = DEFAULT_BINS,
    average: str | None = "macro",
    labels: Sequence[str] | None = None,
):
    """Classwise expected calibration error with ``n_bins`` equal-width bins (module docstring).

    Returns the mean over labels (``average="macro"``) or the per-label array (``None``).
    """
    n_bins = _check_bins(n_bins)
    Y, P, _, was_1d = check_pair(y_true, y_prob, labels)
    count, sy, sp = _bin_sums(Y, P, n_bins)
    ece = np.abs(sy - sp).sum(axis=0) / Y.shape[0]  # sum_b n_b/n * |sy/n_b - sp/n_b|
    return _average(ece, average, was_1d)


def brier_score(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    *,
    average: str | None = "macro",
    labels: Sequence[str] | None = None,
):
    """Brier score ``mean((p - y)^2)`` per label; mean over labels with ``average="macro"``."""
    Y, P, _, was_1d = check_pair(y_true, y_prob, labels)
    return _average(((P - Y) ** 2).mean(axis=0), average, was_1d)


def reliability_curve(y_true: np.ndarray, y_prob: np.ndarray, *, n_bins: int = DEFAULT_BINS):
    """Pooled reliability diagram data over all cells: ``(mean p, observed frequency, count)`` per
    non-empty bin (equal-width bins as in :func:`expected_calibration_error`)."""
    n_bins = _check_bins(n_bins)
    Y, P, _, _ = check_pair(y_true, y_prob)
    count, sy, sp = _bin_sums(Y.reshape(-1, 1), P.reshape(-1, 1), n_bins)
    count, sy, sp = count[:, 0], sy[:, 0], sp[:, 0]
    keep = count > 0
    return sp[keep] / count[keep], sy[keep] / count[keep], count[keep].astype(np.int64)
