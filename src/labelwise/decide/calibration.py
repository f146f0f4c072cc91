"""Calibrate scores into probabilities, fitted on validation data by maximum likelihood.

Methods (``fit_calibration(..., method=...)``):

* ``"platt"``: per independent label ``p' = sigmoid(a * z + b)`` with ``z = logit(p)`` (or the raw
  logit with ``from_logits=True``); ``a, b`` maximise the Bernoulli likelihood on the validation
  rows subject to ``a >= 0`` (Newton's method; a 1e-8 ridge on ``a`` only keeps separable data
  finite, so where the unconstrained slope is positive results equal scikit-learn's
  ``LogisticRegression(C=1e8)`` on ``z``). The likelihood is concave, so when the unconstrained
  slope is negative the constrained optimum is ``a = 0``, ``sigmoid(b) = k / n``: the label gets
  its prevalence (a ``prior``), with a note naming it; a calibration never reverses a ranking.
* ``"temperature"``: per independent label ``p' = sigmoid(z / T)``, one ``T > 0`` each; per
  exclusive group one ``T`` applied to the group's log-probabilities, ``p'_k = softmax(log p / T)_k``,
  so the members still sum to 1.
* ``"isotonic"``: per independent label the isotonic (monotone, piecewise-linear) map of
  scikit-learn's ``IsotonicRegression``, but only for labels with at least
  ``MIN_ISOTONIC = 50`` positives and 50 negatives in the calibration data; a label with fewer gets
  Platt scaling instead, with a note naming it.
* ``"none"``: identity (logits still go through the head's sigmoid/softmax).

Exclusive groups are always calibrated by one temperature per group (Platt or isotonic per member
would break "members sum to 1"; ``platt``/``isotonic`` say so in a note). Temperatures are
constrained to ``T > 0``: a label or group whose best fit is not positive gets its prevalence
(``prior``; a group the smoothed member frequencies ``(k_j + 1/2) / (n + m/2)``), with a note.
A label with no positives (or no negatives) in the calibration data cannot be fitted: it gets the
smoothed prevalence ``(k + 1/2) / (n + 1)`` (a ``prior``; never its raw score, which a weighted or
from-scratch model leaves near 0.5), with a note naming it. Isotonic maps are non-decreasing. The derived none label is never calibrated itself: its probability is computed from
the calibrated independent labels as ``prod_i (1 - p'_i)``, which is exact when the independent
labels are independent given the image (the assumption the sigmoid head makes).

This module imports neither Keras nor TensorFlow (scikit-learn only inside ``isotonic`` fitting).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..io import read_json, write_json
from ..labels.schema import LabelSchema
from ..metrics._validation import check_scores, check_targets, sigmoid

__all__ = ["Calibration", "fit_calibration", "CALIBRATION_METHODS", "MIN_ISOTONIC", "resolve_schema"]

CALIBRATION_METHODS = ("platt", "temperature", "isotonic", "none")
MIN_ISOTONIC = 50
FORMAT = "labelwise.calibration"
_EPS = 1e-12
_RIDGE = 1e-8
_LOG_FLOOR = -700.0  # log of a probability of 0: finite, so 0 * log(0) terms stay 0 in the softmax


MIN_FIT_ROWS = 10


def too_few_rows(y_true: np.ndarray, labels: Sequence[str], what: str = "fit") -> str | None:
    """A note when ``y_true`` (n, L) 0/1 is too small to ``what`` on: fewer than ``MIN_FIT_ROWS``
    rows, or labels with exactly one positive (none at all is noted where it is handled)."""
    Y = np.asarray(y_true)
    if Y.ndim != 2:
        return None
    if Y.shape[0] < MIN_FIT_ROWS:
        return (f"too few rows: {what} on {Y.shape[0]} row(s) (fewer than {MIN_FIT_ROWS}); the fitted values "
                "are unreliable, use more validation data")
    k = np.nansum(Y, axis=0)
    single = [str(x) for x, c in zip(labels, k) if c == 1]
    if single:
        return (f"too few rows: label(s) {single} have a single positive to {what} on; their fitted values are "
                "unreliable")
    return None


def resolve_schema(schema: LabelSchema | None, n_columns: int, labels: Sequence[str] | None) -> LabelSchema:
    """The schema to work with: ``schema`` itself, or every column independent (named by ``labels``,
    else ``label 0 ...``) when there is none."""
    if schema is not None:
        return schema
    names = [str(x) for x in labels] if labels is not None else [f"label {j}" for j in range(n_columns)]
    if len(names) != n_columns:
        raise InputError(f"labels has {len(names)} name(s) but the scores have {n_columns} column(s)")
    return LabelSchema(tuple(names))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return np.log(p) - np.log1p(-p)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def _nll_bernoulli(t: np.ndarray, y: np.ndarray) -> float:
    # -[y log s(t) + (1-y) log(1-s(t))] = softplus(t) - y t, computed stably
    return float(np.sum(np.logaddexp(0.0, t) - y * t))


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """``sum(a * b)`` without BLAS: on a busy machine a BLAS dot (``@``, ``np.dot``) may wait tens of
    milliseconds for its sleeping threads, which dominated the fits."""
    return float(np.einsum("i,i->", a, b))


def _sig(x: np.ndarray) -> np.ndarray:
    # 0.5 (1 + tanh(x/2)) is the logistic function without overflow, in one vectorised pass
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _newton(loss_fn, grad_hess, theta: np.ndarray, max_iter: int = 100) -> np.ndarray:
    """Minimise a smooth convex ``loss_fn`` by Newton steps with step halving; stops when the Newton
    decrement ``g' H^-1 g`` is negligible against the loss."""
    loss = loss_fn(theta)
    for _ in range(max_iter):
        g, H = grad_hess(theta)
        try:
            step = np.linalg.solve(H + 1e-12 * np.eye(len(theta)), g)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)) or float(_dot(g, step)) <= 1e-12 * max(1.0, abs(loss)):
            break
        t = 1.0
        while t > 1e-6:
            new = loss_fn(theta - t * step)
            if new <= loss:
                break
            t *= 0.5
        else:
            break
        theta, loss = theta - t * step, new
    return theta


def fit_platt(z: np.ndarray, y: np.ndarray, *, ridge: float = _RIDGE, max_iter: int = 100) -> tuple[float, float]:
    """Maximum-likelihood ``(a, b)`` of ``P(y=1) = sigmoid(a z + b)`` (Newton with step halving),
    unconstrained: :func:`fit_calibration` replaces a negative ``a`` by the constrained optimum
    ``a = 0`` (the prevalence)."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)

    def loss(th):
        return _nll_bernoulli(th[0] * z + th[1], y) + 0.5 * ridge * th[0] ** 2

    def grad_hess(th):
        q = _sig(th[0] * z + th[1])
        r, w = q - y, q * (1.0 - q)
        wz = _dot(w, z)
        return (np.array([_dot(r, z) + ridge * th[0], r.sum()]),
                np.array([[_dot(w, z * z) + ridge, wz], [wz, w.sum()]]))

    a, b = _newton(loss, grad_hess, np.array([1.0, 0.0]), max_iter)
    return float(a), float(b)


def fit_temperature(z: np.ndarray, y: np.ndarray, *, max_iter: int = 100) -> float:
    """Maximum-likelihood ``u = 1/T`` of ``P(y=1) = sigmoid(u z)`` (convex in ``u``; Newton)."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)

    def grad_hess(th):
        q = _sig(th[0] * z)
        return np.array([_dot(q - y, z)]), np.array([[_dot(q * (1 - q), z * z)]])

    return float(_newton(lambda th: _nll_bernoulli(th[0] * z, y), grad_hess, np.array([1.0]), max_iter)[0])


def fit_group_temperature(logp: np.ndarray, k: np.ndarray, *, max_iter: int = 100) -> float:
    """Maximum-likelihood ``u = 1/T`` of ``P(class = k) = softmax(u * log p)_k`` (convex; Newton).

    ``logp``: (n, m) log-probabilities of one exclusive group; ``k``: (n,) the true member index.
    """
    rows = np.arange(logp.shape[0])

    def loss(th):
        return float(-_log_softmax(th[0] * logp)[rows, k].sum())

    def grad_hess(th):
        q = np.exp(_log_softmax(th[0] * logp))
        mean = (q * logp).sum(axis=1)
        g = float((mean - logp[rows, k]).sum())
        h = float(((q * logp * logp).sum(axis=1) - mean * mean).sum())
        return np.array([g]), np.array([[h]])

    return float(_newton(loss, grad_hess, np.array([1.0]), max_iter)[0])


@dataclass(frozen=True)
class Calibration:
    """A fitted calibration: maps scores (probabilities, or logits with ``from_logits``) to
    calibrated probabilities, column for column, under ``schema``.

    ``independent[label]``: ``{"kind": "platt", "a", "b"}``, ``{"kind": "temperature", "T"}``,
    ``{"kind": "isotonic", "x": [...], "y": [...]}``, ``{"kind": "prior", "p"}`` (a constant
    probability) or ``{"kind": "identity"}``;
    ``groups[name]``: ``{"kind": "temperature", "T"}``, ``{"kind": "prior", "p": [...]}`` (one per
    member) or ``{"kind": "identity"}``.
    ``notes`` say which labels fell back and why. See the module docstring for the formulas.
    """

    schema: LabelSchema
    method: str
    independent: Mapping[str, Mapping[str, Any]]
    groups: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    from_logits: bool = False
    notes: tuple[str, ...] = ()
    fitted_on: Mapping[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label of the schema, in column order (the none label last, derived)."""
        return self.schema.labels

    def check_labels(self, labels: Sequence[str], *, what: str = "the scores") -> None:
        """Refuse ``labels`` unless they are this calibration's labels (all, or the head outputs),
        in order; the error names the labels that differ."""
        _check_same_labels(self.schema, labels, "this calibration", what)

    def apply(self, scores: np.ndarray, *, labels: Sequence[str] | None = None,
              from_logits: bool | None = None) -> np.ndarray:
        """Calibrated probabilities, same shape as ``scores`` ((n, n_outputs) or (n, n_labels)).

        A ``none`` column in the input is ignored and recomputed as ``prod(1 - p'_independent)``.
        ``labels`` (the scores' column names) are checked against the calibration's.
        ``from_logits`` defaults to how the calibration was fitted.
        """
        if labels is not None:
            self.check_labels(labels)
        logits = self.from_logits if from_logits is None else bool(from_logits)
        schema = self.schema
        S = _as_scores(scores, schema, logits)
        # columns no calibration covers (at-most-one members) keep their probabilities
        out = sigmoid(S) if logits else np.array(S, dtype=np.float64)
        for j, label in enumerate(schema.independent):
            out[:, j] = _apply_independent(self.independent.get(label, {"kind": "identity"}), S[:, j], logits)
        for block in schema.layout:
            if block.kind != "softmax":
                continue
            x = S[:, block.start:block.stop]
            logp = _log_softmax(x) if logits else np.log(np.maximum(x, 0.0) + 1e-300).clip(_LOG_FLOOR)
            spec = self.groups.get(block.name, {"kind": "identity"})
            if spec.get("kind") == "prior":
                out[:, block.start:block.stop] = np.asarray(spec["p"], dtype=np.float64)[None, :]
                continue
            u = 1.0 / float(spec["T"]) if spec.get("kind") == "temperature" else 1.0
            out[:, block.start:block.stop] = np.exp(_log_softmax(u * logp))
        if schema.derived:  # derived labels follow their calibrated sources, as the head computes them
            from ..labels.structure import derive_scores

            n_free = len(schema.free_labels)
            out[:, n_free:schema.n_outputs] = derive_scores(out[:, :n_free], schema)
        if np.shape(scores)[1] == schema.n_labels and schema.none:
            return schema.complete_scores(out)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (``from_dict`` inverts it)."""
        return {
            "format": FORMAT,
            "version": 1,
            "method": self.method,
            "from_logits": bool(self.from_logits),
            "schema": self.schema.to_dict(),
            "labels": list(self.schema.labels),
            "independent": {k: dict(v) for k, v in self.independent.items()},
            "groups": {k: dict(v) for k, v in self.groups.items()},
            "notes": list(self.notes),
            "fitted_on": dict(self.fitted_on),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> "Calibration":
        """Inverse of :meth:`to_dict`; errors name ``source`` (the file)."""
        at = f"{source}: " if source else ""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise InputError(f"{at}not a calibration file (no \"format\": \"{FORMAT}\"); write one with "
                             "`labelwise calibrate --truth val.csv --scores val_scores.csv --out calibration.json`")
        try:
            schema = LabelSchema.from_dict(data["schema"])
        except InputError as e:
            raise InputError(f"{at}field 'schema': {e}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputError(f"{at}malformed calibration: field 'schema' ({type(e).__name__}: {e})") from None
        method = data.get("method")
        if method not in CALIBRATION_METHODS:
            raise InputError(f"{at}field 'method': unknown calibration method {method!r}; the methods are "
                             f"{list(CALIBRATION_METHODS)}")
        parts = {}
        for key in ("independent", "groups", "fitted_on"):
            v = data.get(key)
            if v is not None and not isinstance(v, Mapping):
                raise InputError(f"{at}field {key!r} must be a JSON object; got {type(v).__name__}")
            parts[key] = dict(v or {})
        notes = data.get("notes")
        if notes is not None and not isinstance(notes, list):
            raise InputError(f"{at}field 'notes' must be a list of strings; got {type(notes).__name__}")
        if not isinstance(data.get("from_logits", False), bool):
            raise InputError(f"{at}field 'from_logits' must be true or false; got {data.get('from_logits')!r}")
        independent = {str(k): v for k, v in parts["independent"].items()}
        groups = {str(k): v for k, v in parts["groups"].items()}
        unknown = sorted(set(independent) - set(schema.independent)) + sorted(set(groups) - set(schema.exclusive))
        if unknown:
            raise InputError(f"{at}calibration entries {unknown} are not in its schema {list(schema.labels)}")
        if method != "none":  # a label the file forgets would silently stay uncalibrated
            lacking = [x for x in schema.independent if x not in independent]
            lacking += [g for g in schema.exclusive if g not in groups]
            if lacking:
                raise InputError(f"{at}field 'independent'/'groups' lacks the label(s) or group(s) {lacking} of its "
                                 "schema (fit it again with labelwise calibrate)")
        for label, spec in independent.items():
            _check_spec(spec, f"{at}label {label!r}")
        for name, spec in groups.items():
            _check_spec(spec, f"{at}group {name!r}", schema.exclusive[name])
        return cls(schema, method, {k: dict(v) for k, v in independent.items()},
                   {k: dict(v) for k, v in groups.items()}, bool(data.get("from_logits", False)),
                   tuple(str(n) for n in notes or ()), parts["fitted_on"])

    def save(self, path: str | Path) -> Path:
        """Write the JSON form atomically."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        """Read a calibration JSON file; errors name the file."""
        return cls.from_dict(read_json(path, "calibration"), source=str(path))


def _number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def _numbers(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and all(_number(x) for x in v)


def _check_spec(spec: Any, where: str, members: Sequence[str] | None = None) -> None:
    """Refuse a malformed per-label (or, with ``members``, per-group) calibration entry: unknown kind,
    missing or non-finite parameters, a negative Platt slope, ``T <= 0``, unsorted isotonic knots or a
    decreasing isotonic map, a probability outside [0, 1]. The error names ``where`` and the field."""
    if not isinstance(spec, Mapping):
        raise InputError(f"{where}: a calibration entry is a JSON object with a \"kind\"; got {spec!r}")
    kind = spec.get("kind")
    need = ({"temperature": ("T",), "prior": ("p",), "identity": ()} if members is not None else
            {"platt": ("a", "b"), "temperature": ("T",), "isotonic": ("x", "y"), "prior": ("p",), "identity": ()})
    if kind not in need:
        raise InputError(f"{where}: unknown calibration kind {kind!r}; expected one of {list(need)}")
    missing = [k for k in need[kind] if k not in spec]
    if missing:
        raise InputError(f"{where}: {kind} calibration lacks {missing}")
    for key in need[kind]:
        v = spec[key]
        if key in ("x", "y") or (key == "p" and members is not None):
            if not _numbers(v):
                raise InputError(f"{where}: field {key!r} must be a list of finite numbers; got {v!r}")
        elif not _number(v):
            raise InputError(f"{where}: field {key!r} must be a finite number; got {v!r}")
    if kind == "platt" and spec["a"] < 0:
        # Files fitted before slopes were constrained (models among them) stay readable, said once.
        import warnings

        warnings.warn(f"{where}: field 'a' is {spec['a']!r}: this Platt slope is negative and reverses the label's "
                      "ranking; fit the calibration again (labelwise calibrate keeps slopes >= 0)", stacklevel=3)
    if kind == "temperature" and not spec["T"] > 0:
        raise InputError(f"{where}: temperature T must be a positive number; got {spec['T']!r}")
    if kind == "prior":
        p = np.atleast_1d(np.asarray(spec["p"], dtype=np.float64))
        if np.any(p < 0) or np.any(p > 1):
            raise InputError(f"{where}: field 'p' must lie in [0, 1]; got {spec['p']!r}")
        if members is not None and (len(p) != len(members) or abs(float(p.sum()) - 1.0) > 1e-6):
            raise InputError(f"{where}: field 'p' must give one probability per member of {list(members)}, "
                             f"summing to 1; got {spec['p']!r}")
        if members is None and "rank_slope" in spec:
            for key in ("rank_slope", "rank_center"):
                if not _number(spec.get(key)) or (key == "rank_slope" and spec[key] < 0):
                    raise InputError(f"{where}: field {key!r} must be a finite number (rank_slope >= 0); "
                                     f"got {spec.get(key)!r}")
    if kind == "isotonic":
        x, y = np.asarray(spec["x"], dtype=np.float64), np.asarray(spec["y"], dtype=np.float64)
        if len(x) != len(y) or len(x) == 0:
            raise InputError(f"{where}: isotonic x and y must be non-empty and of the same length "
                             f"({len(x)} and {len(y)})")
        if np.any(np.diff(x) < 0):
            raise InputError(f"{where}: isotonic field 'x' is not sorted (knots must increase)")
        if np.any(np.diff(y) < 0) or np.any(y < 0) or np.any(y > 1):
            raise InputError(f"{where}: isotonic field 'y' must be non-decreasing probabilities in [0, 1]")


def _check_same_labels(schema: LabelSchema, labels: Sequence[str], mine: str, theirs: str) -> None:
    labels = [str(x) for x in labels]
    if labels in (list(schema.labels), list(schema.output_labels)):
        return
    expected = list(schema.labels)
    only_mine = [x for x in expected if x not in labels and x != schema.none]
    only_theirs = [x for x in labels if x not in expected]
    parts = []
    if only_mine:
        parts.append(f"{theirs} lack {only_mine}")
    if only_theirs:
        parts.append(f"{theirs} have {only_theirs}, which {mine} does not know")
    if not parts:
        parts.append(f"the order differs ({theirs}: {labels}; {mine}: {expected})")
    raise InputError(f"the labels of {theirs} differ from those of {mine}: " + "; ".join(parts)
                     + " (fit it again on data with these labels)")


def _as_scores(scores: np.ndarray, schema: LabelSchema, logits: bool) -> np.ndarray:
    """(n, n_outputs) float64: probabilities, or raw logits when ``logits``."""
    S, _ = check_scores(scores, "scores", from_logits=logits, apply_sigmoid=False)
    if S.shape[1] not in (schema.n_outputs, schema.n_labels):
        raise InputError(f"scores have {S.shape[1]} column(s); expected {schema.n_outputs} head outputs "
                         f"{list(schema.output_labels)}" + (f" or {schema.n_labels} with {schema.none!r}"
                                                            if schema.none else ""))
    return S[:, :schema.n_outputs]


RANK_SPREAD = 1e-4  # logit units: how far a prior's probabilities move to keep the scores' order


def _prior(p: float, z: np.ndarray) -> dict[str, Any]:
    """A constant probability ``p`` for a label the fit cannot rank (no positives, or a fit that would
    reverse the ranking), nudged by at most ~``RANK_SPREAD`` in logit along the scores ``z`` so that the
    order of the images (and the label's AUC) stays the model's: ``sigmoid(logit(p) + a (z - c))``."""
    z = np.asarray(z, dtype=np.float64)
    z = z[np.isfinite(z)]
    spread = float(np.max(np.abs(z - np.median(z)))) if z.size else 0.0
    if not spread > 0:
        return {"kind": "prior", "p": float(p)}
    return {"kind": "prior", "p": float(p), "rank_slope": RANK_SPREAD / spread, "rank_center": float(np.median(z))}


def _apply_independent(spec: Mapping[str, Any], s: np.ndarray, logits: bool) -> np.ndarray:
    kind = spec.get("kind", "identity")
    if kind == "prior":
        slope = float(spec.get("rank_slope", 0.0))
        if not slope:
            return np.full(s.shape, float(spec["p"]))
        z = s if logits else _logit(s)  # the prevalence, kept in the scores' order (within RANK_SPREAD)
        return sigmoid(_logit(np.float64(spec["p"])) + slope * (z - float(spec["rank_center"])))
    if kind == "isotonic":
        p = sigmoid(s) if logits else s
        return np.interp(p, np.asarray(spec["x"], float), np.asarray(spec["y"], float))
    z = s if logits else _logit(s)
    if kind == "platt":
        return sigmoid(float(spec["a"]) * z + float(spec["b"]))
    if kind == "temperature":
        return sigmoid(z / float(spec["T"]))
    return sigmoid(s) if logits else s


def _fit_isotonic(p: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True).fit(p, y)
    return {"kind": "isotonic", "x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}


def fit_calibration(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    method: str = "platt",
    schema: LabelSchema | None = None,
    labels: Sequence[str] | None = None,
    from_logits: bool = False,
    min_isotonic: int = MIN_ISOTONIC,
) -> Calibration:
    """Fit ``method`` (see the module docstring) on validation truth ``y_true`` and scores ``y_score``.

    ``y_true``: (n, n_labels) or (n, n_outputs) 0/1; ``y_score``: (n, n_outputs) or (n, n_labels)
    probabilities (a ``none`` column is ignored), or logits with ``from_logits=True``. Scores outside
    [0, 1] without ``from_logits`` raise :class:`InputError` (they look like logits). ``labels``
    names the columns when there is no ``schema`` (every column is then independent).
    """
    if method not in CALIBRATION_METHODS:
        raise InputError(f"unknown calibration method {method!r}; choose from {list(CALIBRATION_METHODS)}")
    if isinstance(min_isotonic, bool) or not isinstance(min_isotonic, (int, np.integer)) or min_isotonic < 1:
        raise InputError(f"min_isotonic must be a whole number >= 1; got {min_isotonic!r}")
    n_cols = np.shape(y_score)[1] if np.ndim(y_score) == 2 else 1
    schema = resolve_schema(schema, n_cols, labels)
    S = _as_scores(np.asarray(y_score).reshape(np.shape(y_score)[0], -1), schema, from_logits)
    Y, _ = check_targets(np.asarray(y_true).reshape(np.shape(y_true)[0], -1), "y_true")
    if Y.shape[0] != S.shape[0]:
        raise InputError(f"y_true has {Y.shape[0]} row(s) but y_score has {S.shape[0]}; they must match")
    if Y.shape[1] not in (schema.n_outputs, schema.n_labels):
        raise InputError(f"y_true has {Y.shape[1]} column(s); expected {schema.n_labels} {list(schema.labels)}")
    if S.shape[0] == 0:
        raise InputError("no rows to calibrate on")
    Y = Y[:, :schema.n_outputs]
    notes: list[str] = []
    independent: dict[str, dict[str, Any]] = {}
    groups: dict[str, dict[str, Any]] = {}
    one_class: list[str] = []
    to_platt: list[str] = []
    decreasing: list[str] = []
    n = int(Y.shape[0])
    for j, label in enumerate(schema.independent):
        y, s = Y[:, j].astype(np.float64), S[:, j]
        pos = int(y.sum())
        if method == "none":
            independent[label] = {"kind": "identity"}
            continue
        z = s if from_logits else _logit(s)
        if pos == 0 or pos == len(y):
            one_class.append(f"{label!r} ({'no positives' if pos == 0 else 'no negatives'})")
            independent[label] = _prior((pos + 0.5) / (n + 1.0), z)
            continue
        kind = method
        if method == "isotonic":
            if min(pos, len(y) - pos) >= min_isotonic:
                independent[label] = _fit_isotonic(sigmoid(s) if from_logits else s, y)
                continue
            to_platt.append(f"{label!r} ({min(pos, len(y) - pos)})")
            kind = "platt"
        if kind == "platt":
            a, b = fit_platt(z, y)
            ok = a >= 0.0
            spec = {"kind": "platt", "a": a, "b": b}
        else:
            u = fit_temperature(z, y)
            ok = u > 1e-6
            spec = {"kind": "temperature", "T": 1.0 / u} if ok else {}
        if not ok:  # the constrained optimum (slope 0): the label's prevalence
            decreasing.append(f"{label!r} ({pos}/{n})")
            spec = _prior(pos / n, z)
        independent[label] = spec
    if one_class:
        notes.append(f"label(s) {', '.join(one_class)} in the calibration data cannot be calibrated; they get "
                     "the smoothed prevalence (k + 1/2) / (n + 1), not their scores (kept in their scores' "
                     "order, within 1e-4, so their AUC is the model's)")
    if decreasing:
        notes.append(f"label(s) {', '.join(decreasing)}: the best fit decreases with the score (it would reverse "
                     "their ranking); they get their prevalence instead (kept in their scores' order, within "
                     "1e-4, so their AUC is the model's)")
    if to_platt:
        notes.append(f"isotonic needs >= {min_isotonic} positives and negatives per label; label(s) "
                     f"{', '.join(to_platt)} have fewer and get Platt scaling instead")
    for block in schema.layout:
        if block.kind != "softmax":
            continue
        if method == "none":
            groups[block.name] = {"kind": "identity"}
            continue
        yg = Y[:, block.start:block.stop]
        ok = yg.sum(axis=1) == 1
        if not ok.all():
            r = int(np.flatnonzero(~ok)[0])
            raise InputError(f"y_true row {r}: exclusive group {block.name!r} needs exactly one true member "
                             f"of {list(block.labels)}; got {int(yg[r].sum())}")
        x = S[:, block.start:block.stop]
        logp = _log_softmax(x) if from_logits else np.log(np.maximum(x, 0.0) + 1e-300).clip(_LOG_FLOOR)
        u = fit_group_temperature(logp, np.argmax(yg, axis=1))
        if u <= 1e-6:
            counts = yg.sum(axis=0)
            prior = (counts + 0.5) / (n + 0.5 * len(block.labels))
            notes.append(f"group {block.name!r}: the best temperature is not positive (its scores rank the members "
                         "backwards); it gets its members' smoothed frequencies instead")
            groups[block.name] = {"kind": "prior", "p": [float(v) for v in prior]}
        else:
            groups[block.name] = {"kind": "temperature", "T": 1.0 / u}
    if method in ("platt", "isotonic") and schema.exclusive:
        notes.append(f"exclusive group(s) {list(schema.exclusive)} get one temperature each (so their members "
                     f"still sum to 1), not {method}")
    few = too_few_rows(Y, schema.output_labels, "calibrate") if method != "none" else None
    if few:
        notes.insert(0, few)
    fitted_on = {"rows": int(Y.shape[0]),
                 "positives": {x: int(c) for x, c in zip(schema.output_labels, Y.sum(axis=0))}}
    return Calibration(schema, method, independent, groups, bool(from_logits), tuple(notes), fitted_on)
