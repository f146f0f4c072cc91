"""Per-label decision thresholds, tuned exactly, and schema-aware decisions.

Tuning (:func:`tune_thresholds`) sorts each label's scores once and evaluates the chosen
criterion at *every* distinct score from cumulative true/false-positive counts: no grid, so
the optimum found is the exact optimum over all thresholds. The decision rule is
``score >= threshold`` and the threshold returned is a score present in the tuning data
(the lowest score of the predicted-positive set), so applying it to the tuning data reproduces
``metric_at_threshold`` exactly. Methods:

* ``"f1"`` / ``"fbeta"``: maximise ``F_beta = (1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP)``;
* ``"youden"``: maximise ``J = sensitivity + specificity - 1``;
* ``"sensitivity"`` (``target``): the highest threshold whose recall is >= target;
* ``"specificity"`` (``target``): the lowest threshold whose specificity is >= target; when
  even the highest score fails, the threshold is just above the highest score (nothing is
  predicted positive, specificity 1);
* ``"precision"`` (``target``): the lowest threshold whose precision is >= target; when no
  threshold reaches it the threshold is NaN, with an :class:`UndefinedMetricWarning`.

Among equally good thresholds the highest is taken. A label the criterion cannot be computed
for (no positives; for youden/specificity also no negatives) gets NaN with a warning naming it.
With a schema, only independent labels are tuned: exclusive-group members are decided by
arg-max within their group (threshold NaN, method ``"argmax"``) and the ``none`` label is
derived (NaN, method ``"derived"``). :func:`decide` uses ``default`` where a threshold is NaN.

This module imports neither Keras nor TensorFlow.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..io import read_json, write_json
from ..labels.schema import LabelSchema
from ..metrics._validation import check_pair, check_scores, warn_undefined

__all__ = ["Thresholds", "tune_thresholds", "decide", "METHODS"]

METHODS = ("f1", "fbeta", "youden", "sensitivity", "specificity", "precision")
_TARGET_METHODS = ("sensitivity", "specificity", "precision")
FORMAT = "labelwise.thresholds"  # the file format's name, kept when the module moved
_MAX_THRESHOLD = float(np.nextafter(1.0, np.inf))


@dataclass(frozen=True)
class Thresholds:
    """Tuned thresholds, one per label, with how and on what they were tuned.

    ``values[j]`` applies to ``labels[j]`` (rule ``score >= value``; NaN: not tuned, see
    ``label_methods``). ``metric_at_threshold[j]`` is the criterion reached on the tuning data.
    ``tuned_on``: ``{"rows", "positives": {label: count}, "sha256"}`` of the tuning arrays.
    """

    labels: tuple[str, ...]
    values: np.ndarray
    method: str
    params: dict = field(default_factory=dict)
    tuned_on: dict = field(default_factory=dict)
    metric_at_threshold: np.ndarray | None = None
    label_methods: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        labels = tuple(str(x) for x in self.labels)
        values = np.asarray(self.values, dtype=np.float64).reshape(-1)
        if values.size != len(labels):
            raise InputError(f"Thresholds has {len(labels)} label(s) but {values.size} value(s)")
        if len(set(labels)) != len(labels):
            raise InputError(f"Thresholds labels must be unique; got {list(labels)}")
        metric = (np.full(values.size, np.nan) if self.metric_at_threshold is None
                  else np.asarray(self.metric_at_threshold, dtype=np.float64).reshape(-1))
        if metric.size != values.size:
            raise InputError(f"metric_at_threshold has {metric.size} value(s) for {values.size} label(s)")
        methods = tuple(self.label_methods) or (self.method,) * len(labels)
        if len(methods) != len(labels):
            raise InputError(f"label_methods has {len(methods)} entries for {len(labels)} label(s)")
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "metric_at_threshold", metric)
        object.__setattr__(self, "label_methods", methods)

    def __getitem__(self, label: str) -> float:
        return float(self.values[self._index(label)])

    def _index(self, label: str) -> int:
        try:
            return self.labels.index(label)
        except ValueError:
            raise InputError(f"no threshold for label {label!r}; the thresholds cover {list(self.labels)}") from None

    def as_dict(self) -> dict[str, float]:
        """``{label: threshold}``."""
        return {k: float(v) for k, v in zip(self.labels, self.values)}

    def for_labels(self, labels: Sequence[str]) -> "Thresholds":
        """The thresholds of ``labels``, in that order; an error names every label not covered."""
        labels = [str(x) for x in labels]
        missing = [x for x in labels if x not in self.labels]
        if missing:
            raise InputError(
                f"no threshold for label(s) {missing}; the thresholds were tuned for {list(self.labels)} "
                "(tune them on data with these labels, or pass a default)"
            )
        idx = [self.labels.index(x) for x in labels]
        return Thresholds(
            tuple(labels), self.values[idx], self.method, dict(self.params), dict(self.tuned_on),
            self.metric_at_threshold[idx], tuple(self.label_methods[i] for i in idx),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (NaN becomes None when written with :func:`labelwise.io.write_json`)."""
        return {
            "format": FORMAT,
            "version": 1,
            "method": self.method,
            "params": dict(self.params),
            "labels": list(self.labels),
            "values": [_num(v) for v in self.values],
            "metric_at_threshold": [_num(v) for v in self.metric_at_threshold],
            "label_methods": list(self.label_methods),
            "tuned_on": dict(self.tuned_on),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> "Thresholds":
        """Inverse of :meth:`to_dict`; ``source`` (a file) is named in errors."""
        at = f"{source}: " if source else ""
        if not isinstance(data, Mapping):
            raise InputError(f"{at}thresholds must be a JSON object, got {type(data).__name__}")
        missing = [k for k in ("labels", "values", "method") if k not in data]
        if missing:
            raise InputError(f"{at}not a thresholds file: missing key(s) {missing} "
                             "(write one with `labelwise thresholds --truth val.csv --scores val_scores.csv --out T.json` "
                             "or Thresholds.save)")
        labels, values = data["labels"], data["values"]
        if not isinstance(labels, list) or not isinstance(values, list) or len(labels) != len(values):
            raise InputError(f"{at}'labels' and 'values' must be lists of the same length")
        try:
            vals = np.array([np.nan if v is None else float(v) for v in values])
            metric = data.get("metric_at_threshold")
            metric = None if metric is None else np.array([np.nan if v is None else float(v) for v in metric])
        except (TypeError, ValueError) as e:
            raise InputError(f"{at}threshold values must be numbers or null ({e})") from None
        # A threshold applies to a probability: 7.5 would silently mean "never positive". The tuner's
        # "nothing positive" threshold just above a top score of 1.0 is nextafter(1.0), hence the slack.
        for label, v in zip(labels, vals):
            if math.isfinite(v) and not (0.0 <= v <= _MAX_THRESHOLD) or math.isinf(v):
                raise InputError(f"{at}the threshold for label {label!r} is {v:g}, outside [0, 1]; thresholds "
                                 "apply to probabilities (re-tune with labelwise thresholds, or fix the value)")
        try:
            return cls(tuple(labels), vals, str(data["method"]), dict(data.get("params") or {}),
                       dict(data.get("tuned_on") or {}), metric, tuple(data.get("label_methods") or ()))
        except InputError as e:
            raise InputError(f"{at}{e}") from None

    def save(self, path: str | Path) -> Path:
        """Write the JSON form to ``path`` atomically."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "Thresholds":
        """Read a thresholds JSON file; errors name the file."""
        data = read_json(path, "thresholds")
        return cls.from_dict(data, source=str(path))


def _num(v: float) -> float | None:
    return None if not math.isfinite(v) else float(v)


def _fingerprint(Y: np.ndarray, S: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(repr((Y.shape, "uint8", "float64")).encode())
    h.update(np.ascontiguousarray(Y, dtype=np.uint8).tobytes())
    h.update(np.ascontiguousarray(S, dtype=np.float64).tobytes())
    return h.hexdigest()


def _tune_columns(Y: np.ndarray, S: np.ndarray, method: str, beta: float, target: float | None):
    """Exact per-column optimum. Returns (thresholds, metric, undefined mask, unreachable mask)."""
    n, L = S.shape
    # Work on the transpose (one contiguous row per label; the (n, L) arrays below are views of it, so
    # the column-wise cumsum/argmax run along memory) and sort with quicksort: ~3x faster than a stable
    # sort down the columns, and the order within tied scores does not matter (only block ends count).
    St = np.ascontiguousarray(S.T)
    order = np.argsort(-St, axis=1, kind="quicksort")
    s = np.take_along_axis(St, order, axis=1).T
    y = np.take_along_axis(np.ascontiguousarray(Y.T), order, axis=1).astype(np.int64).T
    tp = np.cumsum(y, axis=0)
    fp = np.arange(1, n + 1)[:, None] - tp  # rule score >= s[k] predicts rows 0..k positive
    is_end = np.ones((n, L), dtype=bool, order="F")  # F order: the layout of s, y above
    is_end[:-1] = s[:-1] != s[1:]  # only block ends are realisable cut points
    P = tp[-1].astype(np.float64)
    N = n - P
    undefined = P == 0
    if method in ("youden", "specificity"):
        undefined |= N == 0
    cols = np.arange(L)
    unreachable = np.zeros(L, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        if method in ("f1", "fbeta"):
            b2 = beta * beta
            metric = (1 + b2) * tp / (b2 * P + tp + fp)
            k = np.argmax(np.where(is_end, metric, -np.inf), axis=0)
        elif method == "youden":
            metric = tp / P - fp / N
            k = np.argmax(np.where(is_end, metric, -np.inf), axis=0)
        elif method == "sensitivity":
            metric = tp / P
            ok = is_end & (metric >= target)
            k = np.argmax(ok, axis=0)  # first: highest threshold
        elif method == "specificity":
            metric = 1.0 - fp / N
            ok = is_end & (metric >= target)
            k = n - 1 - np.argmax(ok[::-1], axis=0)  # last: lowest threshold
            unreachable = ~ok.any(axis=0)
        else:  # precision
            metric = tp / (tp + fp)
            ok = is_end & (metric >= target)
            k = n - 1 - np.argmax(ok[::-1], axis=0)
            unreachable = ~ok.any(axis=0)
    values = s[k, cols].astype(np.float64)
    reached = metric[k, cols].astype(np.float64)
    if method == "specificity":
        # Even the top score fails: predict nothing (threshold just above the highest score).
        values = np.where(unreachable, np.nextafter(s[0], np.inf), values)
        reached = np.where(unreachable, 1.0, reached)
        unreachable = np.zeros(L, dtype=bool)
    bad = undefined | unreachable
    return np.where(bad, np.nan, values), np.where(bad, np.nan, reached), undefined, unreachable


def tune_thresholds(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    method: str = "f1",
    beta: float = 1.0,
    target: float | None = None,
    labels: Sequence[str] | None = None,
    schema: LabelSchema | None = None,
) -> Thresholds:
    """Tune one threshold per label, exactly over all distinct scores (see the module docstring).

    ``y_true``/``y_score``: (n, L). With ``schema``, L is ``schema.n_outputs`` or
    ``schema.n_labels`` and only the independent labels are tuned.
    """
    if method not in METHODS:
        raise InputError(f"unknown threshold method {method!r}; choose from {list(METHODS)}")
    if method in _TARGET_METHODS:
        if target is None or not (0.0 < float(target) <= 1.0):
            raise InputError(f"method {method!r} needs target= in (0, 1], e.g. target=0.9; got {target!r}")
        target = float(target)
    if method == "fbeta" and not (math.isfinite(beta) and beta > 0):
        raise InputError(f"beta must be a positive number; got {beta!r}")
    if method == "f1":
        beta = 1.0
    if schema is not None:
        if labels is None:
            L = np.shape(y_true)[1] if np.ndim(y_true) == 2 else 1
            if L == schema.n_labels:
                labels = schema.labels
            elif L == schema.n_outputs:
                labels = schema.output_labels
            else:
                raise InputError(
                    f"y_true has {L} column(s); the schema has {schema.n_labels} labels {list(schema.labels)}"
                    + (f" ({schema.n_outputs} head outputs)" if schema.none else "")
                )
    Y, S, names, _ = check_pair(y_true, y_score, labels)
    if schema is not None:
        unknown = [x for x in names if x not in schema.labels]
        if unknown:
            raise InputError(f"label(s) {unknown} are not in the schema {list(schema.labels)}")
    tuned = np.array([schema is None or x in schema.independent for x in names])
    values = np.full(len(names), np.nan)
    metric = np.full(len(names), np.nan)
    if tuned.any():
        v, m, undefined, unreachable = _tune_columns(Y[:, tuned], S[:, tuned], method, beta, target)
        values[tuned], metric[tuned] = v, m
        tuned_names = [x for x, t in zip(names, tuned) if t]
        from .calibration import too_few_rows

        few = too_few_rows(Y[:, tuned], tuned_names, f"tune {method} thresholds")
        if few:
            warn_undefined(few)
        if undefined.any():
            pos = Y[:, tuned].sum(axis=0)
            # Name which class is missing for each label: "no positives and negatives" read as both.
            which = ", ".join(f"{tuned_names[j]!r} ({'no positives' if pos[j] == 0 else 'no negatives'})"
                              for j in np.flatnonzero(undefined))
            warn_undefined(f"cannot tune a {method} threshold for label(s) {which}: the criterion needs "
                           + ("both classes" if method in ("youden", "specificity") else "positives")
                           + "; the threshold is NaN (decide() uses its default)")
        if unreachable.any():
            warn_undefined(f"no threshold reaches {method} >= {target} for label(s) "
                           f"{[tuned_names[j] for j in np.flatnonzero(unreachable)]}; the threshold is NaN "
                           "(decide() uses its default)")
    label_methods = tuple(
        method if t else ("derived" if schema is not None and (x == schema.none or x in schema.derived)
                          else "argmax")
        for x, t in zip(names, tuned)
    )
    params: dict[str, Any] = {"rule": "score >= threshold"}
    if method == "fbeta":
        params["beta"] = float(beta)
    if target is not None and method in _TARGET_METHODS:
        params["target"] = target
    tuned_on = {
        "rows": int(Y.shape[0]),
        "positives": {x: int(c) for x, c in zip(names, Y.sum(axis=0))},
        "sha256": _fingerprint(Y, S),
    }
    return Thresholds(tuple(names), values, method, params, tuned_on, metric, label_methods)


def _threshold_vector(thresholds, names: Sequence[str], default: float) -> np.ndarray:
    if thresholds is None:
        return np.full(len(names), float(default))
    if isinstance(thresholds, Thresholds):
        v = thresholds.for_labels(names).values
    elif isinstance(thresholds, Mapping):
        missing = [x for x in names if x not in thresholds]
        if missing:
            raise InputError(f"no threshold for label(s) {missing}; give one per label {list(names)}")
        v = np.array([float(thresholds[x]) for x in names])
    else:
        v = np.asarray(thresholds, dtype=np.float64)
        if v.ndim == 0:
            v = np.full(len(names), float(v))
        if v.shape != (len(names),):
            raise InputError(f"got {v.size} threshold(s) for {len(names)} label(s) {list(names)}")
    return np.where(np.isnan(v), float(default), v)


def decide(
    scores: np.ndarray,
    schema: LabelSchema | None = None,
    thresholds: "Thresholds | Mapping[str, float] | Sequence[float] | float | None" = None,
    *,
    default: float = 0.5,
    from_logits: bool = False,
) -> np.ndarray:
    """Turn scores into 0/1 decisions that obey the schema; returns (n, schema.n_labels) uint8.

    ``scores``: (n, schema.n_outputs) head outputs, (n, schema.n_free) (derived scores are then
    computed) or (n, schema.n_labels) (the ``none`` column is then ignored and re-derived).
    Independent labels: ``score >= threshold`` (``default`` where no threshold or NaN). Each
    exclusive group: its arg-max member is 1 (first member on ties; thresholds ignored). Each
    at-most-one group: the arg-max over its members and "absent" (score ``1 - sum``), as its
    softmax decides; thresholds ignored. Then :func:`labelwise.labels.structure.enforce` imposes the
    rest -- the single place structure is imposed, which decision rules call too: a child on turns
    its parents on, derived labels are the OR of their sources, ``none`` is 1 exactly when no
    independent label is 1. With ``schema=None`` every column is independent. A
    :class:`Thresholds` without a schema is applied by position when it has one value per column.
    """
    S, _ = check_scores(scores, "scores", from_logits=from_logits)
    n, L = S.shape
    if schema is None:
        if isinstance(thresholds, Thresholds):
            if thresholds.values.size != L:
                raise InputError(f"the thresholds cover {thresholds.values.size} label(s) "
                                 f"{list(thresholds.labels)} but scores has {L} column(s)")
            thr = np.where(np.isnan(thresholds.values), float(default), thresholds.values)
        elif isinstance(thresholds, Mapping):
            raise InputError("thresholds given by label name need a schema (or a list in column order)")
        else:
            thr = _threshold_vector(thresholds, [f"column {j}" for j in range(L)], default)
        return (S >= thr).astype(np.uint8)
    if L not in (schema.n_outputs, schema.n_labels, schema.n_free):
        raise InputError(
            f"scores has {L} column(s); expected {schema.n_outputs} head outputs {list(schema.output_labels)}"
            + (f" or {schema.n_labels} columns with {schema.none!r}" if schema.none else "")
        )
    out = np.zeros((n, schema.n_free), dtype=np.uint8)
    n_ind = len(schema.independent)
    if n_ind:
        thr = _threshold_vector(thresholds, schema.independent, default)
        out[:, :n_ind] = S[:, :n_ind] >= thr
    for block in schema.layout:
        if block.kind == "softmax":
            best = np.argmax(S[:, block.start : block.stop], axis=1)
            out[np.arange(n), block.start + best] = 1
        elif block.kind == "at_most_one":
            members = S[:, block.start : block.stop]
            with_absent = np.concatenate([members, 1.0 - members.sum(axis=1, keepdims=True)], axis=1)
            best = np.argmax(with_absent, axis=1)
            on = best < block.stop - block.start
            out[np.flatnonzero(on), block.start + best[on]] = 1
    return schema.enforce(out, S[:, : schema.n_free])
