"""Input checks shared by the metrics, the bootstrap and the threshold tuner.

Every check raises :class:`labelwise.errors.InputError` with a message that names the
argument, the first bad row and the label, and says what to do.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from ..errors import InputError

__all__ = ["UndefinedMetricWarning", "check_targets", "check_scores", "check_pair", "label_names", "sigmoid",
           "out_of_range_advice"]


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for some label (one class present, zero division); see the message."""


def label_names(labels: Sequence[str] | None, n_labels: int) -> tuple[str, ...]:
    """The names used in messages: ``labels`` when given (length checked), else ``label 0 ...``."""
    if labels is None:
        return tuple(f"label {j}" for j in range(n_labels))
    if isinstance(labels, str):
        raise InputError(f"labels must be a list of names, not the string {labels!r}")
    names = tuple(str(x) for x in labels)
    if len(names) != n_labels:
        raise InputError(
            f"labels has {len(names)} name(s) but the arrays have {n_labels} column(s); "
            "pass one name per column, in column order"
        )
    return names


def _as_2d(x: object, arg: str) -> tuple[np.ndarray, bool]:
    try:
        a = np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise InputError(f"{arg} cannot be read as an array: {e}") from None
    if a.dtype == object or a.dtype.kind in "USV":
        raise InputError(f"{arg} must be numeric; got an array of dtype {a.dtype}")
    if a.ndim == 1:
        return a.reshape(-1, 1), True
    if a.ndim != 2:
        raise InputError(f"{arg} must be 1-D (one label) or 2-D (rows x labels); got shape {a.shape}")
    return a, False


def _where(names: Sequence[str] | None, r: int, c: int) -> str:
    name = names[c] if names is not None else f"column {c}"
    return f"row {r}, label {name!r}" if names is not None else f"row {r}, {name}"


def check_targets(y: object, arg: str = "y_true", names: Sequence[str] | None = None) -> tuple[np.ndarray, bool]:
    """Return ``y`` as a 2-D uint8 0/1 matrix (and whether it was 1-D); bool and 0/1 numbers accepted."""
    a, was_1d = _as_2d(y, arg)
    if a.dtype == bool:
        return a.astype(np.uint8), was_1d
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            r, c = map(int, np.argwhere(bad)[0])
            raise InputError(f"{arg} has {a[r, c].item()} at {_where(names, r, c)}; targets must be 0 or 1")
    bad = (a != 0) & (a != 1)
    if bad.any():
        r, c = map(int, np.argwhere(bad)[0])
        # Scores passed where decisions belong is the usual way to get here with y_pred.
        hint = ("; pass 0/1 decisions, e.g. decide(scores, schema, thresholds) from labelwise.decide.thresholds"
                if arg == "y_pred" else "")
        raise InputError(
            f"{arg} must hold only 0 and 1; found {a[r, c].item()!r} at {_where(names, r, c)}"
            f" ({int(bad.sum())} such value(s)){hint}"
        )
    return a.astype(np.uint8), was_1d


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function ``1 / (1 + exp(-x))``."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def check_scores(
    s: object,
    arg: str = "y_score",
    names: Sequence[str] | None = None,
    *,
    from_logits: bool = False,
    apply_sigmoid: bool = True,
) -> tuple[np.ndarray, bool]:
    """Return scores as a 2-D float64 matrix in [0, 1] (and whether it was 1-D).

    NaN/inf is an error naming the first bad row and label. Scores outside [0, 1] are taken for
    logits and rejected unless ``from_logits=True``, which applies a sigmoid (or, with
    ``apply_sigmoid=False``, keeps the logits: ranking metrics only need the order, and the
    sigmoid would merge distinct large logits into ties at 1.0).
    """
    a, was_1d = _as_2d(s, arg)
    if a.dtype == bool:
        a = a.astype(np.float64)
    a = np.asarray(a, dtype=np.float64)
    bad = ~np.isfinite(a)
    if bad.any():
        r, c = map(int, np.argwhere(bad)[0])
        raise InputError(
            f"{arg} has {a[r, c].item()} at {_where(names, r, c)} ({int(bad.sum())} non-finite value(s)); "
            "scores must be finite numbers"
        )
    if from_logits:
        return (sigmoid(a) if apply_sigmoid else a), was_1d
    out = (a < 0) | (a > 1)
    if out.any():
        r, c = map(int, np.argwhere(out)[0])
        raise InputError(
            f"{arg} has {a[r, c].item():.6g} at {_where(names, r, c)}, outside [0, 1]; "
            + out_of_range_advice(a, cli=False)
        )
    return a, was_1d


# Below this share of cells outside [0, 1], the file is mostly probabilities with a few bad cells,
# and converting all of it (sigmoid, /100) would corrupt the good cells.
_FEW_OUT_OF_RANGE = 0.05


def out_of_range_advice(a: np.ndarray, *, cli: bool) -> str:
    """What to do about scores outside [0, 1], judged from the whole matrix ``a`` (finite values).

    Logits (many cells outside, some negative): apply the sigmoid (``--from-logits`` on the command
    line, ``from_logits=True`` in the API). Percentages (many cells above 1, all within 0-100):
    divide by 100. Otherwise a few bad cells: fix them. The text starts with the count of cells.
    """
    a = np.asarray(a, dtype=np.float64)
    out = (a < 0) | (a > 1)
    n_out, size = int(out.sum()), max(int(a.size), 1)
    lo, hi = float(a.min()), float(a.max())
    head = f"{n_out} of {a.size} score cell(s) lie outside [0, 1] (range {lo:.4g} to {hi:.4g})"
    if n_out / size < _FEW_OUT_OF_RANGE:
        return (f"{head}: bad cell(s) in otherwise valid probabilities; fix or remove them "
                "(every score must be a probability in [0, 1])")
    if lo < 0:
        how = "pass --from-logits" if cli else "pass from_logits=True"
        return f"{head}: these look like logits; {how} to apply the head's sigmoid/softmax"
    if hi <= 100:
        return f"{head}: these look like percentages (0-100); divide the scores by 100"
    return f"{head}: these are not probabilities; rescale them to [0, 1]"


def check_pair(
    y_true: object,
    y_other: object,
    labels: Sequence[str] | None = None,
    *,
    kind: str = "score",
    from_logits: bool = False,
    apply_sigmoid: bool = True,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], bool]:
    """Validate ``(y_true, y_score)`` (kind "score") or ``(y_true, y_pred)`` (kind "pred").

    Returns ``(Y uint8 (n, L), S float64 or uint8 (n, L), label names, was_1d)``.
    """
    a_true, _ = _as_2d(y_true, "y_true")
    other_arg = "y_score" if kind == "score" else "y_pred"
    a_other, _ = _as_2d(y_other, other_arg)
    if a_true.shape != a_other.shape:
        raise InputError(
            f"y_true has shape {np.shape(y_true)} but {other_arg} has shape {np.shape(y_other)}; "
            "they must match (rows x labels)"
        )
    if a_true.shape[0] == 0:
        raise InputError("y_true has no rows; metrics need at least one row")
    names = label_names(labels, a_true.shape[1])
    shown = names if labels is not None else None
    Y, was_1d = check_targets(a_true, "y_true", shown)
    if kind == "score":
        S, _ = check_scores(a_other, "y_score", shown, from_logits=from_logits, apply_sigmoid=apply_sigmoid)
    else:
        S, _ = check_targets(a_other, "y_pred", shown)
    return Y, S, names, was_1d


def warn_undefined(message: str) -> None:
    """Emit an :class:`UndefinedMetricWarning` pointing at the caller of the public function."""
    # Point the warning at the first frame outside labelwise's metric modules.
    import os
    import sys

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    level, frame = 1, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(here):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, UndefinedMetricWarning, stacklevel=level)
