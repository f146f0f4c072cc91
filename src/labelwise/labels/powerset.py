"""Label powerset: treat each combination of labels seen in training as one class.

A softmax over combinations models label co-occurrence exactly, but can only ever predict a
combination it saw in training: :meth:`LabelPowerset.unpredictable` lists the test
combinations it never can. :func:`powerset_scores_to_label_scores` turns class probabilities
back into per-label scores ``(n, n_labels)`` (marginalising over combinations), so a powerset
model and a per-label model are evaluated by the same metrics.

Combinations are over the head outputs (``schema.output_labels``); the ``none`` label is
derived as usual. Its score is the exact probability mass of the combinations with no
independent label (not the product form a per-label head has to use).

This module imports numpy only. The Keras head (:class:`labelwise.blocks.layers.PowersetHead`,
built by :func:`labelwise.blocks.layers.build_powerset_head`) stores the combinations and the schema in
the saved model, so :meth:`LabelPowerset.from_model` decodes a loaded model on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from .schema import LabelSchema, load_schema

__all__ = ["LabelPowerset", "powerset_scores_to_label_scores"]


def _outputs(y: np.ndarray, schema: LabelSchema, what: str) -> np.ndarray:
    m = np.asarray(y)
    if m.ndim != 2 or m.shape[1] not in (schema.n_outputs, schema.n_labels):
        raise InputError(f"{what} must be an (n, {schema.n_labels}) target matrix over {list(schema.labels)}"
                         f" (or its first {schema.n_outputs} columns); got shape {m.shape}")
    if not np.isin(m, (0, 1)).all():
        raise InputError(f"{what} must hold 0/1 targets")
    return (m[:, : schema.n_outputs] != 0).astype(np.uint8)


def powerset_scores_to_label_scores(class_probs: np.ndarray, classes: np.ndarray, schema: LabelSchema
                                    ) -> np.ndarray:
    """Per-label scores from combination probabilities: ``S = P @ C`` over the head outputs.

    ``class_probs`` is (n, n_classes), ``classes`` the (n_classes, n_outputs) 0/1 combinations;
    the score of a label is the total probability of the combinations containing it. With a
    ``none`` label, its score is the mass of the combinations without any independent label.
    Returns (n, n_labels) float64.
    """
    schema = load_schema(schema)
    p = np.asarray(class_probs, dtype=np.float64)
    c = np.asarray(classes, dtype=np.float64)
    if p.ndim != 2 or c.ndim != 2 or p.shape[1] != c.shape[0] or c.shape[1] != schema.n_outputs:
        raise InputError(f"class_probs {p.shape} and classes {c.shape} do not fit: need (n, k) and "
                         f"(k, {schema.n_outputs})")
    scores = p @ c
    if schema.none:
        none_mass = p @ (c[:, : len(schema.independent)].sum(axis=1) == 0).astype(np.float64)
        scores = np.concatenate([scores, none_mass[:, None]], axis=1)
    return scores


@dataclass
class LabelPowerset:
    """Map label combinations to classes and back. ``LabelPowerset(schema).fit(y_train)``.

    ``classes`` is the (n_classes, n_outputs) array of the distinct training combinations,
    most frequent first (ties in row order), ``counts`` their training frequencies.
    """

    schema: LabelSchema
    classes: np.ndarray | None = None
    counts: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.schema = load_schema(self.schema)

    @classmethod
    def from_targets(cls, y_train: np.ndarray, schema: LabelSchema | Any) -> "LabelPowerset":
        """``LabelPowerset(schema).fit(y_train)``."""
        return cls(load_schema(schema)).fit(y_train)

    def fit(self, y_train: np.ndarray, schema: LabelSchema | Any = None) -> "LabelPowerset":
        """Learn the combinations present in ``y_train`` ((n, n_labels) or (n, n_outputs))."""
        if schema is not None:
            self.schema = load_schema(schema)
        m = _outputs(y_train, self.schema, "y_train")
        if m.shape[0] == 0:
            raise InputError("y_train is empty; a powerset needs training rows")
        uniq, first, counts = np.unique(m, axis=0, return_index=True, return_counts=True)
        order = np.lexsort((first, -counts))
        self.classes, self.counts = uniq[order], counts[order]
        self._index = {row.tobytes(): i for i, row in enumerate(self.classes)}
        return self

    @property
    def n_classes(self) -> int:
        """Number of combinations (softmax classes)."""
        self._check_fitted()
        return int(self.classes.shape[0])

    def _check_fitted(self) -> None:
        if self.classes is None:
            raise InputError("the LabelPowerset is not fitted; call fit(y_train) first")

    def encode(self, y: np.ndarray, *, unseen: str = "error") -> np.ndarray:
        """Class id of each row's combination. A combination not seen in training raises
        (``unseen="error"``, naming the row and its labels) or gets ``-1`` (``unseen=-1``)."""
        self._check_fitted()
        m = _outputs(y, self.schema, "y")
        ids = np.array([self._index.get(row.tobytes(), -1) for row in m], dtype=np.int64)
        if unseen == "error":
            bad = np.flatnonzero(ids < 0)
            if bad.size:
                r = int(bad[0])
                raise InputError(
                    f"row {r}: the combination {self.schema.decode(m[r:r + 1])[0]} never occurs in the training "
                    f"targets, so the powerset has no class for it ({bad.size} such rows); pass unseen=-1 to mark "
                    "them, or see unpredictable()")
        elif unseen != -1:
            raise InputError(f"unseen must be 'error' or -1, got {unseen!r}")
        return ids

    def one_hot(self, y: np.ndarray) -> np.ndarray:
        """(n, n_classes) float32 one-hot targets for training the softmax head."""
        ids = self.encode(y)
        return np.eye(self.n_classes, dtype=np.float32)[ids]

    def decode(self, class_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(label scores (n, n_labels), decisions (n, n_labels))``: the marginal score of each
        label (:func:`powerset_scores_to_label_scores`) and the arg-max combination, completed with
        the derived none column."""
        self._check_fitted()
        scores = powerset_scores_to_label_scores(class_probs, self.classes, self.schema)
        best = np.asarray(class_probs).argmax(axis=1)
        decisions = self.schema.complete(self.classes[best])
        return scores, decisions

    def unpredictable(self, y_test: np.ndarray) -> list[tuple[list[str], int]]:
        """Test combinations the model can never predict (absent from training), as
        ``(label list, count)``, most frequent first."""
        self._check_fitted()
        m = _outputs(y_test, self.schema, "y_test")
        ids = np.array([self._index.get(row.tobytes(), -1) for row in m], dtype=np.int64)
        missing = m[ids < 0]
        if not missing.size:
            return []
        uniq, first, counts = np.unique(missing, axis=0, return_index=True, return_counts=True)
        order = np.lexsort((first, -counts))
        labels = self.schema.decode(uniq[order])
        return [(lab, int(c)) for lab, c in zip(labels, counts[order])]

    @classmethod
    def from_model(cls, model: Any, layer: str = "powerset_head") -> "LabelPowerset":
        """The fitted powerset stored in a model's :class:`~labelwise.blocks.layers.PowersetHead`
        (e.g. one loaded with ``keras.saving.load_model``), ready to ``decode`` its outputs."""
        try:
            head = model.get_layer(layer)
        except (ValueError, AttributeError):
            raise InputError(f"the model has no layer named {layer!r}; build it with "
                             "labelwise.build_model(..., powerset=<fitted LabelPowerset>)") from None
        if not hasattr(head, "powerset"):
            raise InputError(f"layer {layer!r} is a {type(head).__name__}, which does not store the label "
                             "combinations (a model built with a class count, or before labelwise had PowersetHead); "
                             "rebuild it with powerset=<fitted LabelPowerset>, or keep LabelPowerset.to_dict() "
                             "beside the model")
        return head.powerset

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (schema, classes as label lists, counts)."""
        self._check_fitted()
        return {"schema": self.schema.to_dict(), "classes": self.classes.tolist(), "counts": self.counts.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LabelPowerset":
        """Inverse of :meth:`to_dict`."""
        ps = cls(LabelSchema.from_dict(data["schema"]))
        ps.classes = np.asarray(data["classes"], dtype=np.uint8).reshape(-1, ps.schema.n_outputs)
        ps.counts = np.asarray(data["counts"], dtype=np.int64)
        ps._index = {row.tobytes(): i for i, row in enumerate(ps.classes)}
        return ps
