"""Decision rules: turn (calibrated) probabilities into label sets chosen for a metric.

Every rule obeys the schema: each exclusive group gets exactly one member (its arg-max; first
member on ties), and the none label is derived (1 exactly when no independent label is decided).
Rules differ only in how they decide the independent labels:

Per-label rules (one threshold per label, tuned exactly on validation data by
:func:`labelwise.decide.thresholds.tune_thresholds`, rule ``p >= threshold``):
``f1``, ``fbeta=B``, ``youden``, ``sensitivity=x``, ``specificity=x``, ``precision=x``.

Set-level rules, each the Bayes-optimal decision for one metric on calibrated marginals:

* ``hamming``: ``p >= 0.5`` per label (minimises the expected Hamming loss);
* ``subset``: the most probable label set under label independence. The mode of a product of
  independent Bernoullis (and of independent categoricals per group) is taken coordinate by
  coordinate, so it is ``p >= 0.5`` for independent labels and the arg-max per group: the same
  independent decisions as ``hamming``, optimal for subset accuracy only under independence;
* ``micro-f1``: one threshold shared by all independent labels, tuned exactly on validation data
  (micro-F1 over the independent labels, all distinct pooled scores tried);
* ``macro-f1``: per-label F1 thresholds (each label's F1 is maximised separately; that maximises
  their mean);
* ``instance-f1``: per image, the set of independent labels that maximises the expected
  example-based F1 under label independence. The optimal set is the top-k labels by probability
  for some k (Lewis 1995); the expected F1 of every k is computed exactly in O(L^2) per image
  (Jansche 2007; Ye, Chai, Lee & Chieu, ICML 2012) and the best k taken (the smallest on ties).
  Convention: F1(empty, empty) = 1, which is exactly the F1 of predicting the none label for an
  image whose truth is the none label; exclusive groups are decided by arg-max and left out of the
  set optimisation;
* ``top-k=K``: the K most probable independent labels.

Bounds ``min_labels`` / ``max_labels`` combine with any rule: they count the labels decided per
image among the independent labels and the none label (an image decided as the none label has one
label; group members, always one per group, are not counted); an image with too few gets the most
probable undecided labels added, one with too many keeps only its most probable decided labels.
With a none label every image has at least one label, so ``min_labels = 1`` changes nothing and
``min_labels >= 2`` is refused (:func:`check_bounds`).

This module imports neither Keras nor TensorFlow.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..labels.schema import LabelSchema
from ..metrics._validation import check_scores, check_targets, warn_undefined
from .calibration import too_few_rows
from .guarantees import GuaranteeRule, fit_guarantee, is_guarantee, parse_guarantee
from .thresholds import Thresholds, tune_thresholds

__all__ = ["Rule", "parse_rule", "RULES", "PER_LABEL_RULES", "SET_RULES", "NO_VALIDATION_RULES", "fit_rule",
           "apply_rule", "apply_bounds", "instance_f1_decisions", "expected_f1_topk", "check_bounds",
           "check_decision_fields", "decision_metrics", "labels_per_image"]

PER_LABEL_RULES = ("f1", "fbeta", "youden", "sensitivity", "specificity", "precision")
SET_RULES = ("hamming", "subset", "micro-f1", "macro-f1", "instance-f1", "top-k")
RULES = PER_LABEL_RULES + SET_RULES
NO_VALIDATION_RULES = ("hamming", "subset", "instance-f1", "top-k")
_PARAM = {"fbeta": "B", "sensitivity": "x", "specificity": "x", "precision": "x", "top-k": "K"}
_EXAMPLE = {"fbeta": "fbeta=2", "sensitivity": "sensitivity=0.9", "specificity": "specificity=0.95",
            "precision": "precision=0.8", "top-k": "top-k=3"}
_CHUNK = 8192  # rows per block in expected_f1_topk


def _rules_text() -> str:
    return (", ".join(_EXAMPLE.get(r, r) for r in RULES)
            + "; with a guarantee: sensitivity>=0.95@0.9, specificity>=0.9@0.9, precision>=0.8@0.9, fnr<=0.1, "
              "fnr<=0.1@0.9")


@dataclass(frozen=True)
class Rule:
    """A decision rule and its parameter (``fbeta=2`` -> ``Rule("fbeta", 2.0)``); ``str()`` gives it back."""

    name: str
    param: float | None = None

    def __str__(self) -> str:
        if self.param is None:
            return self.name
        return f"{self.name}={int(self.param) if self.name == 'top-k' else format(self.param, 'g')}"

    @property
    def per_label(self) -> bool:
        """True for rules tuned as one threshold per label (f1, fbeta, youden, ...)."""
        return self.name in PER_LABEL_RULES

    @property
    def needs_validation(self) -> bool:
        """True when the rule must be tuned on validation data (thresholds)."""
        return self.name not in NO_VALIDATION_RULES

    def tune_kwargs(self) -> dict:
        """Keyword arguments of :func:`tune_thresholds` for a per-label rule (``macro-f1`` is ``f1``)."""
        name = "f1" if self.name == "macro-f1" else self.name
        kw: dict = {"method": name}
        if name == "fbeta":
            kw["beta"] = float(self.param)
        elif name in ("sensitivity", "specificity", "precision"):
            kw["target"] = float(self.param)
        return kw


def parse_rule(rule: "str | Rule | GuaranteeRule") -> "Rule | GuaranteeRule":
    """``"fbeta=2"`` -> ``Rule("fbeta", 2.0)``; an unknown rule or a parameter out of range is an
    :class:`InputError` that lists the rules."""
    if isinstance(rule, (Rule, GuaranteeRule)):
        rule = str(rule)
    if not isinstance(rule, str):
        raise InputError(f"a decision rule is a string such as 'f1' or 'top-k=3'; got {rule!r}")
    if is_guarantee(rule):  # a rule with a finite-sample promise (decide/guarantees.py)
        return parse_guarantee(rule)
    text = rule.strip().lower().replace("_", "-")
    name, _, value = text.partition("=")
    name = {"topk": "top-k", "microf1": "micro-f1", "macrof1": "macro-f1", "instancef1": "instance-f1",
            "micro": "micro-f1", "macro": "macro-f1", "instance": "instance-f1"}.get(name, name)
    if name not in RULES:
        raise InputError(f"unknown decision rule {rule!r}; the rules are: {_rules_text()}")
    if name not in _PARAM:
        if value:
            raise InputError(f"rule {name!r} takes no parameter; got {rule!r}")
        return Rule(name)
    if not value:
        raise InputError(f"rule {name!r} needs a parameter {_PARAM[name]}, e.g. {_EXAMPLE[name]}")
    try:
        v = float(value)
    except ValueError:
        raise InputError(f"rule {rule!r}: {value!r} is not a number (e.g. {_EXAMPLE[name]})") from None
    if name == "fbeta" and not (math.isfinite(v) and v > 0):
        raise InputError(f"rule {rule!r}: B must be a positive number (e.g. {_EXAMPLE[name]})")
    if name in ("sensitivity", "specificity", "precision") and not (0.0 < v <= 1.0):
        raise InputError(f"rule {rule!r}: the target must lie in (0, 1] (e.g. {_EXAMPLE[name]})")
    if name == "top-k" and not (v.is_integer() and v >= 1):
        raise InputError(f"rule {rule!r}: K must be a whole number >= 1 (e.g. {_EXAMPLE[name]})")
    return Rule(name, v)


def check_bounds(schema: LabelSchema, min_labels: int | None, max_labels: int | None) -> tuple[int | None, int | None]:
    """Validate ``min_labels``/``max_labels`` against the schema.

    Both count the labels decided per image, the none label included (an image decided as the none
    label has one label, and no other). So with a none label ``min_labels = 1`` always holds, and
    ``min_labels >= 2`` contradicts the none label (refused); ``max_labels = 0`` would decide nothing
    on any image (refused)."""
    n_ind = len(schema.independent)
    for name, v in (("min_labels", min_labels), ("max_labels", max_labels)):
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise InputError(f"{name} must be a whole number >= 0; got {v!r}")
        if n_ind == 0:
            raise InputError(f"{name} counts independent labels, and this schema has none")
    if max_labels is not None and max_labels == 0:
        raise InputError("max_labels 0 decides no label on any image; give at least 1 (or leave it out)")
    if min_labels is not None and max_labels is not None and min_labels > max_labels:
        raise InputError(f"min_labels ({min_labels}) is above max_labels ({max_labels}); give min <= max")
    if min_labels is not None and min_labels > n_ind:
        raise InputError(f"min_labels ({min_labels}) is above the number of independent labels ({n_ind})")
    if min_labels is not None and min_labels >= 2 and schema.none:
        raise InputError(f"min_labels {min_labels} contradicts the none label {schema.none!r}: an image decided "
                         f"{schema.none!r} has exactly one label (min_labels counts it); use min_labels 1, which "
                         "every image meets, or a schema without a none label")
    return (None if min_labels is None else int(min_labels)), (None if max_labels is None else int(max_labels))


def check_decision_fields(data: dict, at: str = "") -> None:
    """Refuse a decision file (format ``labelwise.decision``) whose fields have the wrong type:
    ``rule`` a string, ``params`` an object, ``min_labels``/``max_labels`` whole numbers or null,
    ``calibration``/``thresholds``/``fitted_on`` objects or null, ``notes`` a list. ``at`` (the file)
    starts the one-line error, which names the field. Values in range are checked by
    :func:`parse_rule`, :func:`check_bounds` and the calibration and thresholds readers."""
    if "rule" not in data:
        raise InputError(f"{at}malformed decision file: missing field 'rule'")
    if not isinstance(data["rule"], str):
        raise InputError(f"{at}field 'rule' must be a string such as 'instance-f1'; got {data['rule']!r}")
    for key in ("min_labels", "max_labels"):
        v = data.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise InputError(f"{at}field {key!r} must be a whole number >= 0 or null; got {v!r}")
    for key in ("params", "calibration", "thresholds", "fitted_on", "schema"):
        v = data.get(key)
        if v is not None and not isinstance(v, dict):
            raise InputError(f"{at}field {key!r} must be a JSON object or null; got {v!r}")
    if data.get("notes") is not None and not isinstance(data["notes"], list):
        raise InputError(f"{at}field 'notes' must be a list of strings; got {data['notes']!r}")
    try:
        parse_rule(data["rule"])
    except InputError as e:
        raise InputError(f"{at}field 'rule': {e}") from None


def _probs(probs: np.ndarray, schema: LabelSchema) -> np.ndarray:
    P, _ = check_scores(probs, "probabilities")
    if P.shape[1] not in (schema.n_outputs, schema.n_labels):
        raise InputError(f"probabilities have {P.shape[1]} column(s); expected {schema.n_outputs} head outputs "
                         f"{list(schema.output_labels)}" + (f" or {schema.n_labels} with {schema.none!r}"
                                                            if schema.none else ""))
    return P[:, :schema.n_outputs]


def _micro_threshold(Y: np.ndarray, P: np.ndarray) -> tuple[float, float]:
    """Exact shared threshold maximising micro-F1 = 2 TP / (positives + predicted) over all cells."""
    y, s = Y.ravel(), P.ravel()
    total = float(y.sum())
    if total == 0:
        return math.nan, math.nan
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order].astype(np.int64)
    tp = np.cumsum(y)
    f1 = 2.0 * tp / (total + np.arange(1, s.size + 1))
    end = np.ones(s.size, dtype=bool)
    end[:-1] = s[:-1] != s[1:]
    k = int(np.argmax(np.where(end, f1, -np.inf)))
    return float(s[k]), float(f1[k])


def fit_rule(y_true: np.ndarray, probs: np.ndarray, schema: LabelSchema, rule: "str | Rule") -> Thresholds | None:
    """Tune ``rule`` on validation truth and (calibrated) probabilities: per-label thresholds
    (per-label rules, ``macro-f1``), one shared threshold (``micro-f1``), 0.5 (``hamming``,
    ``subset``), or None (``instance-f1``, ``top-k``: nothing to tune). Thresholds cover
    ``schema.labels``; group members and the none label have NaN (decided by arg-max / derived)."""
    rule = parse_rule(rule)
    P = _probs(probs, schema)
    Y, _ = check_targets(y_true, "y_true")
    if Y.shape[0] != P.shape[0]:
        raise InputError(f"y_true has {Y.shape[0]} row(s) but the probabilities have {P.shape[0]}")
    if Y.shape[1] not in (schema.n_outputs, schema.n_labels):
        raise InputError(f"y_true has {Y.shape[1]} column(s); expected {schema.n_labels} {list(schema.labels)}")
    if rule.name == "top-k" and rule.param > len(schema.independent):
        raise InputError(f"top-k={int(rule.param)} is more than the {len(schema.independent)} independent labels")
    if rule.name in ("instance-f1", "top-k"):
        return None
    if isinstance(rule, GuaranteeRule):
        return fit_guarantee(Y, P, schema, rule)
    labels = list(schema.labels)
    full = schema.complete_scores(P)
    Yf = schema.complete(Y) if Y.shape[1] == schema.n_outputs else Y
    if rule.per_label or rule.name == "macro-f1":
        th = tune_thresholds(Yf, full, labels=labels, schema=schema, **rule.tune_kwargs())
        return Thresholds(th.labels, th.values, str(rule), th.params, th.tuned_on, th.metric_at_threshold,
                          th.label_methods)
    n_ind = len(schema.independent)
    methods = tuple(str(rule) if j < n_ind else ("derived" if x == schema.none else "argmax")
                    for j, x in enumerate(labels))
    values = np.full(len(labels), np.nan)
    metric = np.full(len(labels), np.nan)
    if rule.name in ("hamming", "subset"):
        values[:n_ind] = 0.5
    else:  # micro-f1
        few = too_few_rows(Y[:, :n_ind], schema.independent, f"tune {rule}")
        if few:
            warn_undefined(few)
        t, f = _micro_threshold(Y[:, :n_ind], P[:, :n_ind])
        if math.isnan(t):
            warn_undefined("micro-f1: no independent label has a positive in the validation data; the shared "
                           "threshold is NaN (0.5 is used)")
        values[:n_ind], metric[:n_ind] = t, f
    tuned_on = {"rows": int(Y.shape[0]), "positives": {x: int(c) for x, c in zip(labels, Yf.sum(axis=0))}}
    return Thresholds(tuple(labels), values, str(rule), {"rule": "score >= threshold"}, tuned_on, metric, methods)


def expected_f1_topk(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact expected F1 of predicting the top-k labels, for every k, under independence.

    ``p``: (n, L) probabilities. Returns ``(order, E)``: ``order`` (n, L) the labels by decreasing
    probability, ``E`` (n, L + 1) with ``E[:, k] = E[F1(top-k, Y)]``, ``Y_j ~ Bernoulli(p_j)``
    independent, F1(empty, empty) = 1. O(L^2) per row: with ``A`` the positives among the top k and
    ``B`` among the rest, ``E_k = sum_a P(A=a) 2a E[1 / (k + a + B)]``; ``P(A=a)`` is built forward
    over k, and ``S_k(t) = E[1 / (t + B_k)]`` backward by
    ``S_{k-1}(t) = q_k S_k(t + 1) + (1 - q_k) S_k(t)``, ``S_L(t) = 1/t``.
    """
    p = np.asarray(p, dtype=np.float64)
    n, L = p.shape
    order = np.argsort(-p, axis=1, kind="stable")
    q_all = np.take_along_axis(p, order, axis=1)
    E = np.empty((n, L + 1))
    two_a = (2.0 * np.arange(L + 1))[:, None]
    inv = np.zeros(2 * L + 1)
    inv[1:] = 1.0 / np.arange(1, 2 * L + 1)
    # Rows run along the last axis (label index first) so that every update is a contiguous
    # in-place block operation; chunks keep the working set in cache.
    for lo in range(0, n, _CHUNK):
        q = np.ascontiguousarray(q_all[lo:lo + _CHUNK].T)  # (L, m): q[k-1] = k-th largest p
        m = q.shape[1]
        tmp = np.empty((2 * L + 1, m))
        S = np.repeat(inv[:, None], m, axis=1)  # S[t] = S_L(t) = 1/t
        W: list = [None] * (L + 1)  # W[k][a-1] = 2a * S_k(k + a), a = 1..k
        for k in range(L, 0, -1):
            W[k] = S[k + 1:2 * k + 1] * two_a[1:k + 1]
            w = 2 * k - 1  # S_{k-1} is needed on t <= 2k - 2 only
            np.subtract(S[1:w + 1], S[:w], out=tmp[:w])
            tmp[:w] *= q[k - 1]
            S[:w] += tmp[:w]  # S_{k-1}(t) = S_k(t) + q_k (S_k(t+1) - S_k(t))
        dist = np.zeros((L + 1, m))  # dist[a] = P(A_k = a)
        dist[0] = 1.0
        Ek = np.empty((L + 1, m))
        for k in range(1, L + 1):
            np.subtract(dist[:k], dist[1:k + 1], out=tmp[:k])
            tmp[:k] *= q[k - 1]
            dist[1:k + 1] += tmp[:k]  # P(A_k = a) = P(A_{k-1} = a) + q_k (P(A_{k-1} = a-1) - P(A_{k-1} = a))
            dist[0] *= 1.0 - q[k - 1]
            Ek[k] = np.einsum("ij,ij->j", dist[1:k + 1], W[k])
        Ek[0] = dist[0]  # predict nothing: F1 = 1 only when nothing is true
        E[lo:lo + m] = Ek.T
    return order, E


def instance_f1_decisions(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the label set maximising expected instance F1 under independence (see
    :func:`expected_f1_topk`). Returns ``(decisions uint8 (n, L), expected F1 (n,))``."""
    p = np.asarray(p, dtype=np.float64)
    n, L = p.shape
    if L == 0:
        return np.zeros((n, 0), np.uint8), np.ones(n)
    order, E = expected_f1_topk(p)
    k = np.argmax(E, axis=1)  # first maximum: the smallest set among equals
    ranked = (np.arange(L)[None, :] < k[:, None]).astype(np.uint8)
    out = np.zeros((n, L), dtype=np.uint8)
    np.put_along_axis(out, order, ranked, axis=1)
    return out, E[np.arange(n), k]


def apply_bounds(decisions: np.ndarray, p: np.ndarray, min_labels: int | None = None,
                 max_labels: int | None = None) -> np.ndarray:
    """Add the most probable undecided labels to rows with fewer than ``min_labels`` decided, and keep
    only the ``max_labels`` most probable decided labels of rows with more. (n, L) in and out."""
    D = np.asarray(decisions, dtype=np.uint8).copy()
    if (min_labels is None and max_labels is None) or D.shape[1] == 0:
        return D
    order = np.argsort(-np.asarray(p, dtype=np.float64), axis=1, kind="stable")
    Ds = np.take_along_axis(D, order, axis=1).astype(bool)
    if min_labels is not None:
        deficit = np.maximum(min_labels - Ds.sum(axis=1), 0)[:, None]
        rank_undecided = np.cumsum(~Ds, axis=1)
        Ds |= ~Ds & (rank_undecided <= deficit)
    if max_labels is not None:
        Ds &= np.cumsum(Ds, axis=1) <= max_labels
    np.put_along_axis(D, order, Ds.astype(np.uint8), axis=1)
    return D


def apply_rule(
    probs: np.ndarray,
    schema: LabelSchema,
    rule: "str | Rule",
    thresholds: Thresholds | None = None,
    *,
    min_labels: int | None = None,
    max_labels: int | None = None,
    default: float = 0.5,
) -> np.ndarray:
    """Decisions (n, schema.n_labels) uint8 by ``rule`` on (calibrated) probabilities (module docstring).

    ``probs``: (n, n_outputs) or (n, n_labels) (a none column is ignored). Rules tuned on validation
    data (per-label rules, ``micro-f1``, ``macro-f1``) need ``thresholds`` from :func:`fit_rule`;
    a NaN threshold (a label that could not be tuned) uses ``default``.
    """
    rule = parse_rule(rule)
    min_labels, max_labels = check_bounds(schema, min_labels, max_labels)
    P = _probs(probs, schema)
    n, n_ind = P.shape[0], len(schema.independent)
    out = np.zeros((n, schema.n_outputs), dtype=np.uint8)
    Pi = P[:, :n_ind]
    if rule.name == "top-k":
        K = int(rule.param)
        if K > n_ind:
            raise InputError(f"top-k={K} is more than the {n_ind} independent labels {list(schema.independent)}")
        out[:, :n_ind] = apply_bounds(np.zeros_like(Pi, dtype=np.uint8), Pi, K, K)
    elif rule.name == "instance-f1":
        out[:, :n_ind] = instance_f1_decisions(Pi)[0]
    elif rule.name in ("hamming", "subset"):
        out[:, :n_ind] = Pi >= 0.5
    else:
        if thresholds is None:
            raise InputError(f"rule {str(rule)!r} needs thresholds tuned on validation data "
                             "(fit_rule / fit_policy); the rules that need none are "
                             f"{list(NO_VALIDATION_RULES)}")
        thr = thresholds.for_labels(schema.independent).values if n_ind else np.zeros(0)
        out[:, :n_ind] = Pi >= np.where(np.isnan(thr), float(default), thr)
    if schema.none and min_labels == 1:
        min_labels = None  # an image with no independent label decided has one label: the none label
    if n_ind and (min_labels is not None or max_labels is not None):
        out[:, :n_ind] = apply_bounds(out[:, :n_ind], Pi, min_labels, max_labels)
    for block in schema.layout:
        if block.kind == "softmax":
            best = np.argmax(P[:, block.start:block.stop], axis=1)
            out[np.arange(n), block.start + best] = 1
        elif block.kind == "at_most_one":  # its softmax's arg-max over the members and "absent" (1 - sum)
            members = P[:, block.start:block.stop]
            best = np.argmax(np.concatenate([members, 1.0 - members.sum(axis=1, keepdims=True)], axis=1), axis=1)
            on = best < block.stop - block.start
            out[np.flatnonzero(on), block.start + best[on]] = 1
    # The schema's structure (parents of decided children, at most one per at-most-one group,
    # derived labels, none) is imposed in one place: schema.enforce (labelwise.labels.structure).
    return schema.enforce(out, P[:, : schema.n_free])


def _silence(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


def labels_per_image(matrix: np.ndarray, schema: LabelSchema) -> float:
    """Mean number of labels per image of a 0/1 ``matrix`` (decisions or truth) over every label
    column of ``schema``: the none label and derived labels included (a matrix over the head outputs
    is completed with the none label first). The one definition every "labels per image" uses."""
    M = np.asarray(matrix, dtype=np.float64)
    if M.shape[1] == schema.n_outputs and schema.none:
        M = schema.complete(M.astype(np.uint8)).astype(np.float64)
    return float(M.sum(axis=1).mean()) if M.shape[0] else math.nan


def decision_metrics(y_true: np.ndarray, decisions: np.ndarray, schema: LabelSchema) -> dict[str, float]:
    """Hamming loss, subset accuracy, micro/macro/instance F1 and labels per image (predicted and
    true) of ``decisions`` against ``y_true``, both (n, schema.n_labels). F1s count every label
    (the none label included, so an image with no finding decided as such scores 1); macro-F1 is
    over the labels with at least one positive; instance F1 of an image with nothing true and nothing
    decided is 1 (only possible without a none label)."""
    from ..metrics import f1_score, hamming_loss, subset_accuracy

    Y = np.asarray(y_true, dtype=np.uint8)
    D = np.asarray(decisions, dtype=np.uint8)
    if Y.shape[1] == schema.n_outputs and schema.none:
        Y = schema.complete(Y)
    has_pos = Y.sum(axis=0) > 0
    macro = _silence(f1_score, Y[:, has_pos], D[:, has_pos], average="macro", zero_division=0.0) \
        if has_pos.any() else math.nan
    return {
        "hamming_loss": float(hamming_loss(Y, D)),
        "subset_accuracy": float(subset_accuracy(Y, D)),
        "micro_f1": float(_silence(f1_score, Y, D, average="micro", zero_division=0.0)),
        "macro_f1": float(macro),
        "instance_f1": float(_silence(f1_score, Y, D, average="samples", zero_division=1.0)),
        "labels_per_image_predicted": labels_per_image(D, schema),
        "labels_per_image_true": labels_per_image(Y, schema),
    }
