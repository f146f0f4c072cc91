"""Per-label class weights for multi-label losses (numpy only; :mod:`labelwise.losses` uses them).

Keras' ``Model.fit(class_weight=...)`` turns a target row into one class by its arg-max, which
is wrong for multi-hot rows; :func:`balanced_weights` gives per-label ``pos_weight`` /
``neg_weight`` instead, and :func:`check_class_weight` refuses ``class_weight`` for such targets.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..labels.schema import LabelSchema, load_schema

__all__ = ["balanced_weights", "check_class_weight"]


def balanced_weights(
    y: Any, labels: Sequence[str] | None = None, *, schema: LabelSchema | Mapping[str, Any] | None = None,
    on_missing: str = "raise"
) -> tuple[np.ndarray, np.ndarray]:
    """Per-label ``(pos_weight, neg_weight)`` that balance each label's two classes.

    ``pos_weight = n / (2 n_pos)``, ``neg_weight = n / (2 n_neg)`` per column of the 0/1
    matrix ``y`` (n: the label's known rows; -1 cells are unknown); a balanced label gets 1 and 1. A label with no positive (or no
    negative) example has no finite weight: ``on_missing="raise"`` (default) raises an
    :class:`InputError` naming it (``labels`` gives the names), ``on_missing="clamp"`` counts
    it as 1 example instead (weight ``n / 2``).

    ``y`` may be a :class:`~labelwise.labels.tables.LabelTable`, or come with ``schema=``: then the
    weights cover the model outputs only (``schema.n_outputs``; the derived ``none`` column of a
    full target matrix is dropped, as it is not an output) and errors name the labels.
    """
    if hasattr(y, "schema") and hasattr(y, "y") and not isinstance(y, np.ndarray):  # a LabelTable
        schema = y.schema if schema is None else schema
        y = y.y
    m = np.asarray(y)
    if schema is not None:
        schema = load_schema(schema)
        if m.ndim != 2 or m.shape[1] not in (schema.n_outputs, schema.n_labels):
            raise InputError(
                f"balanced_weights: y has shape {m.shape} but the schema has {schema.n_outputs} outputs "
                f"{list(schema.output_labels)}" + (f" ({schema.n_labels} labels with the none label)" if schema.none
                                                   else "") + "; pass that schema's target matrix")
        m = m[:, : schema.n_outputs]
        labels = list(schema.output_labels) if labels is None else labels
    if m.ndim != 2 or m.shape[0] == 0:
        raise InputError(f"balanced_weights needs a non-empty (n, n_labels) 0/1 matrix, got shape {m.shape}")
    if not np.isin(m, (0, 1, -1)).all():
        raise InputError("balanced_weights needs 0/1 targets (-1 for an unknown cell); got other values")
    if on_missing not in ("raise", "clamp"):
        raise InputError(f"on_missing must be 'raise' or 'clamp', got {on_missing!r}")
    # Unknown cells (-1) count for neither class: n is each label's number of known rows.
    pos = (m == 1).sum(axis=0).astype(np.float64)
    neg = (m == 0).sum(axis=0).astype(np.float64)
    n = pos + neg
    names = list(labels) if labels is not None else [f"column {j}" for j in range(m.shape[1])]
    if on_missing == "raise":
        for counts, what in ((pos, "positive"), (neg, "negative")):
            bad = np.flatnonzero(counts == 0)
            if bad.size:
                raise InputError(
                    f"label {names[bad[0]]!r} has no {what} example among the {int(n[bad[0]])} training rows"
                    + (f" ({bad.size - 1} more label(s) like this)" if bad.size > 1 else "")
                    + "; its balanced weight would be infinite. Drop the label from the schema, add examples, "
                    "or pass on_missing='clamp' to count it as one example"
                )
    return n / (2.0 * np.maximum(pos, 1.0)), n / (2.0 * np.maximum(neg, 1.0))


def check_class_weight(class_weight: Mapping[int, float] | None, y: np.ndarray) -> None:
    """Refuse Keras' ``class_weight`` for multi-label targets (it weights by the arg-max label).

    Raises :class:`InputError` when ``class_weight`` is given and some row of ``y`` has more than
    one true label or none: use :class:`WeightedBinaryCrossentropy` instead.
    """
    if not class_weight:
        return
    m = np.asarray(y)
    if m.ndim == 2:
        k = (m != 0).sum(axis=1)
        bad = np.flatnonzero(k != 1)
        if bad.size:
            raise InputError(
                f"class_weight is wrong for multi-label targets: row {int(bad[0])} has {int(k[bad[0]])} true labels "
                f"({bad.size} such rows), and Keras weights each row by its arg-max label only. Use "
                "labelwise.blocks.losses.WeightedBinaryCrossentropy(weights='balanced' or pos_weight=..., neg_weight=...)"
            )
