"""Decision policies: calibration + decision rule + its tuned thresholds, in one JSON file.

A :class:`DecisionPolicy` turns a model's scores into decisions in two steps: the calibration
(``labelwise.decide.calibration``; none = identity) maps scores to probabilities, then the rule
(``labelwise.decide.rules``) decides, within the bounds ``min_labels``/``max_labels``. Everything
it needs travels in its JSON form (``decision.json``: format ``labelwise.decision``): the schema,
the calibration's parameters, the rule, its parameter and any per-label thresholds. A plain
thresholds file (format ``labelwise.thresholds``, from :class:`labelwise.decide.thresholds.Thresholds`)
loads as a policy too: its method as the rule, no calibration.

:func:`compare_rules` scores every set-level rule on one data set (validation data, before choosing).

This module imports neither Keras nor TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..io import json_text, read_json, write_json
from ..labels.schema import LabelSchema
from ..metrics._validation import check_targets
from .calibration import (
    Calibration,
    _check_same_labels,
    fit_calibration,
    resolve_schema,
)
from .rules import (
    Rule,
    apply_rule,
    check_bounds,
    check_decision_fields,
    decision_metrics,
    fit_rule,
    parse_rule,
)
from .thresholds import FORMAT as THRESHOLDS_FORMAT
from .thresholds import Thresholds

__all__ = ["DecisionPolicy", "fit_policy", "compare_rules", "RuleComparison", "COMPARED_RULES", "FORMAT",
           "as_policy", "resolve_policy", "DEFAULT_NOTE"]

FORMAT = "labelwise.decision"
COMPARED_RULES = ("hamming", "subset", "micro-f1", "macro-f1", "instance-f1", "top-k")
DEFAULT_NOTE = ("the model has no decision policy: each label is decided at probability 0.5 and the "
                "probabilities are the model's own (no calibration)")


def _identity(schema: LabelSchema) -> Calibration:
    return Calibration(schema, "none", {x: {"kind": "identity"} for x in schema.independent},
                       {g: {"kind": "identity"} for g in schema.exclusive})


@dataclass(frozen=True)
class DecisionPolicy:
    """Calibration (or None) + rule + thresholds (None for rules that need none) + label-count bounds.

    :meth:`apply` is the one road from a model's scores to what a user sees:
    ``probabilities = calibration(scores)`` (the scores themselves without a calibration; the none
    column ``prod(1 - p_independent)``), ``decisions = apply_rule(probabilities, schema, rule,
    thresholds, min_labels, max_labels)`` (n, n_labels) uint8, obeying the schema. predict, serve,
    explain, train's test predictions and evaluate all decide through it.
    """

    schema: LabelSchema
    rule: str
    thresholds: Thresholds | None = None
    calibration: Calibration | None = None
    min_labels: int | None = None
    max_labels: int | None = None
    notes: tuple[str, ...] = ()
    fitted_on: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rule = parse_rule(self.rule)
        object.__setattr__(self, "rule", str(rule))
        check_bounds(self.schema, self.min_labels, self.max_labels)
        if rule.name == "top-k" and rule.param > len(self.schema.independent):
            raise InputError(f"top-k={int(rule.param)} is more than the {len(self.schema.independent)} "
                             "independent labels")
        if self.calibration is not None and self.calibration.schema.labels != self.schema.labels:
            _check_same_labels(self.schema, self.calibration.schema.labels, "the decision policy", "its calibration")
        if rule.needs_validation and self.thresholds is None:
            raise InputError(f"rule {self.rule!r} needs thresholds tuned on validation data; use fit_policy")
        if self.thresholds is not None:
            missing = [x for x in self.schema.independent if x not in self.thresholds.labels]
            if missing:
                raise InputError(f"the thresholds lack the label(s) {missing} of the schema")

    @property
    def labels(self) -> tuple[str, ...]:
        """The schema's labels: the columns of the decisions."""
        return self.schema.labels

    @property
    def parsed_rule(self) -> Rule:
        """The rule as a :class:`Rule` (name and parameter)."""
        return parse_rule(self.rule)

    def check_labels(self, labels: Sequence[str], *, what: str = "the scores") -> None:
        """Refuse score columns ``labels`` that are not the policy's (names the differing labels)."""
        _check_same_labels(self.schema, labels, "the decision policy", what)

    @classmethod
    def identity(cls, schema: LabelSchema, *, note: str | None = DEFAULT_NOTE) -> "DecisionPolicy":
        """The policy of a model saved without one: no calibration, each independent label decided
        at ``p >= 0.5`` (rule ``hamming``), one member per exclusive group; :attr:`is_default` is True."""
        return cls(schema, "hamming", notes=() if note is None else (note,), fitted_on={"default": True})

    @property
    def is_default(self) -> bool:
        """True for :meth:`identity` policies (the model carried no policy of its own)."""
        return bool(self.fitted_on.get("default"))

    @property
    def fingerprint(self) -> str:
        """A short hash (12 hex digits) of the policy's JSON form: files decided under it name it."""
        import hashlib

        return hashlib.sha256(json_text(self.to_dict()).encode("utf-8")).hexdigest()[:12]

    def probabilities(self, scores: np.ndarray, *, labels: Sequence[str] | None = None,
                      from_logits: bool | None = None) -> np.ndarray:
        """Calibrated probabilities (n, n_labels), the none column derived as ``prod(1 - p_independent)``.

        ``from_logits`` defaults to how the calibration was fitted (False without one). Without a
        calibration, probabilities are the scores as given (a given none column kept).
        """
        if labels is not None:
            self.check_labels(labels)
        logits = bool(from_logits) if from_logits is not None else bool(
            self.calibration is not None and self.calibration.from_logits)
        if self.calibration is None and not logits:
            P = np.array(scores, dtype=np.float64)
            if P.ndim != 2 or P.shape[1] not in (self.schema.n_outputs, self.schema.n_labels):
                raise InputError(f"scores have shape {P.shape}; expected (n, {self.schema.n_labels}) over "
                                 f"{list(self.schema.labels)}" + (f" or (n, {self.schema.n_outputs}) over the head "
                                                                  "outputs" if self.schema.none else ""))
            return self.schema.complete_scores(P) if P.shape[1] == self.schema.n_outputs else P
        cal = self.calibration or _identity(self.schema)
        P = cal.apply(scores, from_logits=from_logits)
        return self.schema.complete_scores(P) if P.shape[1] == self.schema.n_outputs else P

    def apply(self, scores: np.ndarray, *, labels: Sequence[str] | None = None,
              from_logits: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Scores (n, n_outputs) or (n, n_labels) -> ``(probabilities, decisions)``, both (n, n_labels):
        the calibration, then the rule, then the bounds (see the class docstring). The only place
        labelwise turns scores into the probabilities and decisions a user sees."""
        P = self.probabilities(scores, labels=labels, from_logits=from_logits)
        D = apply_rule(P, self.schema, self.rule, self.thresholds,
                       min_labels=self.min_labels, max_labels=self.max_labels)
        return P, D

    def decide(self, scores: np.ndarray, *, labels: Sequence[str] | None = None,
               from_logits: bool | None = None) -> np.ndarray:
        """0/1 decisions (n, n_labels) uint8: ``apply(scores)[1]``."""
        return self.apply(scores, labels=labels, from_logits=from_logits)[1]

    @property
    def promises(self) -> list[str]:
        """The promises of a guarantee rule in words, one per certified label (e.g. "Pneumothorax:
        recall >= 0.95 with 90 % confidence, certified on 61 validation positives"); [] otherwise."""
        params = getattr(self.thresholds, "params", None) or {}
        return [str(x) for x in params.get("promises", [])]

    def state(self) -> dict[str, Any]:
        """What a scores file decided under this policy records: rule, calibration method, fingerprint."""
        return {"rule": self.rule, "calibration": self.calibration.method if self.calibration else None,
                "from_logits": bool(self.calibration is not None and self.calibration.from_logits),
                "default": self.is_default, "fingerprint": self.fingerprint}

    def describe(self) -> str:
        """One line: rule, bounds, calibration."""
        parts = [f"rule {self.rule}"]
        if self.min_labels is not None:
            parts.append(f"at least {self.min_labels} label(s)")
        if self.max_labels is not None:
            parts.append(f"at most {self.max_labels} label(s)")
        in_scores = (self.fitted_on.get("calibration_in_scores") or {}).get("method")
        parts.append(f"calibration {self.calibration.method}" if self.calibration else
                     f"calibration {in_scores} already in the scores" if in_scores else "no calibration")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Self-contained plain-JSON form (format ``labelwise.decision``)."""
        rule = self.parsed_rule
        return {
            "format": FORMAT,
            "version": 1,
            "rule": self.rule,
            "params": {} if rule.param is None else {"value": rule.param},
            "min_labels": self.min_labels,
            "max_labels": self.max_labels,
            "labels": list(self.schema.labels),
            "schema": self.schema.to_dict(),
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "thresholds": None if self.thresholds is None else self.thresholds.to_dict(),
            "notes": list(self.notes),
            "fitted_on": dict(self.fitted_on),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None,
                  schema: LabelSchema | None = None) -> "DecisionPolicy":
        """Inverse of :meth:`to_dict`. A plain thresholds dict (format ``labelwise.thresholds``) is read
        as a policy with its method as rule and no calibration; it carries no schema, so ``schema``
        (default: every threshold label independent) supplies it."""
        at = f"{source}: " if source else ""
        if not isinstance(data, Mapping):
            raise InputError(f"{at}a decision file must be a JSON object, got {type(data).__name__}")
        # "labelwise.decide.thresholds": files written while the layout briefly renamed the format.
        if data.get("format") in (THRESHOLDS_FORMAT, "labelwise.thresholds") or (
                data.get("format") is None and "values" in data):
            th = Thresholds.from_dict(data, source=source)
            if schema is None:
                schema = LabelSchema(th.labels)
            rule = "macro-f1" if th.method == "macro-f1" else th.method
            params = th.params or {}
            if th.method == "fbeta":
                rule = f"fbeta={params.get('beta', 1.0):g}"
            elif th.method in ("sensitivity", "specificity", "precision"):
                rule = f"{th.method}={params.get('target')}"
            try:
                return cls(schema, rule, th.for_labels([x for x in schema.labels if x in th.labels]))
            except InputError as e:
                raise InputError(f"{at}{e}") from None
        if data.get("format") != FORMAT:
            raise InputError(f"{at}not a decision file (format {data.get('format')!r}; expected {FORMAT!r}); "
                             "write one with `labelwise thresholds --truth val.csv --scores val_scores.csv "
                             "--optimize RULE --out decision.json`")
        check_decision_fields(data, at)
        try:
            file_schema = LabelSchema.from_dict(data["schema"])
            cal = data.get("calibration")
            cal = None if cal is None else Calibration.from_dict(cal, source=f"{source or 'decision'}: calibration")
            th = data.get("thresholds")
            th = None if th is None else Thresholds.from_dict(th, source=source)
            return cls(file_schema, str(data["rule"]), th, cal, data.get("min_labels"), data.get("max_labels"),
                       tuple(str(n) for n in data.get("notes") or ()), dict(data.get("fitted_on") or {}))
        except KeyError as e:
            raise InputError(f"{at}malformed decision file: missing {e}") from None
        except (TypeError, ValueError, AttributeError) as e:
            raise InputError(f"{at}malformed decision file ({type(e).__name__}: {e})") from None
        except InputError as e:
            if source and not str(e).startswith(str(source)):
                raise InputError(f"{at}{e}") from None
            raise

    def save(self, path: str | Path) -> Path:
        """Write ``decision.json`` atomically (temporary name, then rename)."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path, *, schema: LabelSchema | None = None) -> "DecisionPolicy":
        """Read a decision file (or a plain thresholds file, see :meth:`from_dict`); errors name it."""
        return cls.from_dict(read_json(path, "decision"), source=str(path), schema=schema)


def as_policy(decider: Any, schema: LabelSchema | None, *, source: str | None = None) -> DecisionPolicy:
    """Whatever decides -> a :class:`DecisionPolicy` over ``schema``; never None.

    A policy passes through; a policy dict or a thresholds dict / :class:`Thresholds` (an artifact from
    before policies) becomes a policy with no calibration whose per-label thresholds decide as before;
    None becomes :meth:`DecisionPolicy.identity` (0.5 per label, no calibration).
    """
    if isinstance(decider, DecisionPolicy):
        return decider
    if schema is None:
        raise InputError("reading thresholds as a decision policy needs the label schema")
    if decider is None:
        return DecisionPolicy.identity(schema)
    if isinstance(decider, Thresholds):
        decider = decider.to_dict()
    if not isinstance(decider, Mapping):
        raise InputError(f"{source or 'the artifact'}: cannot decide with a {type(decider).__name__}; "
                         "give a DecisionPolicy, a Thresholds or their dict")
    try:
        return DecisionPolicy.from_dict(decider, source=source, schema=schema)
    except InputError:
        if decider.get("format") == FORMAT:
            raise
        # an old thresholds method that is no rule name today: per-label thresholds decide the same
        th = Thresholds.from_dict(decider, source=source)
        return DecisionPolicy(schema, "f1", th.for_labels([x for x in schema.labels if x in th.labels]))


def rule_without_validation(text: str):
    """The parsed rule ``text`` (``--decide-for``) when it needs no validation data (``hamming``,
    ``subset``, ``instance-f1``, ``top-k=K``); otherwise an ``InputError`` naming the allowed rules."""
    from .rules import NO_VALIDATION_RULES

    rule = parse_rule(text)
    if rule.needs_validation:
        allowed = ", ".join("top-k=K" if r == "top-k" else r for r in NO_VALIDATION_RULES)
        raise InputError(f"--decide-for {text}: this rule needs thresholds tuned on validation data, which "
                         f"predict does not have; the rules predict can apply are {allowed} "
                         f"(or tune {str(rule)!r} with `labelwise thresholds --optimize {rule}` and evaluate with it)")
    return rule


def resolve_policy(decider: Any, schema: LabelSchema, decide_for: str | None = None) -> DecisionPolicy:
    """The :class:`DecisionPolicy` that decides: ``decider`` read by :func:`as_policy` (None: the
    identity, 0.5 per label), its rule replaced by ``decide_for`` when given.

    ``decide_for`` must be a rule that needs no validation data (``hamming``, ``subset``,
    ``instance-f1``, ``top-k=K``); the policy's calibration and label bounds are kept. Others are
    refused, naming the allowed ones: their thresholds are tuned on validation data
    (``labelwise thresholds --optimize RULE``).
    """
    from dataclasses import replace

    policy = as_policy(decider, schema)
    if decide_for is None:
        return policy
    rule = rule_without_validation(decide_for)
    if policy.is_default:
        return DecisionPolicy(schema, str(rule))
    return replace(policy, rule=str(rule), thresholds=None)


def _prepare(y_true, y_score, schema, labels, from_logits, calibration, what="y_score"):
    n_cols = np.shape(y_score)[1] if np.ndim(y_score) == 2 else 1
    schema = resolve_schema(schema, n_cols, labels)
    if isinstance(calibration, str):
        calibration = fit_calibration(y_true, y_score, method=calibration, schema=schema, from_logits=from_logits)
    elif calibration is not None and not isinstance(calibration, Calibration):
        raise InputError(f"calibration must be None, a Calibration or a method name; got {type(calibration).__name__}")
    if calibration is not None and calibration.schema.labels != schema.labels:
        _check_same_labels(schema, calibration.schema.labels, "the data", "the calibration")
    probe = DecisionPolicy(schema, "hamming", calibration=calibration)
    P = probe.probabilities(y_score, from_logits=from_logits)
    Y, _ = check_targets(y_true, "y_true")
    if Y.shape[0] != P.shape[0]:
        raise InputError(f"y_true has {Y.shape[0]} row(s) but {what} has {P.shape[0]}; they must match")
    if Y.shape[1] == schema.n_outputs and schema.none:
        Y = schema.complete(Y)
    if Y.shape[1] != schema.n_labels:
        raise InputError(f"y_true has {Y.shape[1]} column(s); expected {schema.n_labels} {list(schema.labels)}")
    return schema, calibration, Y, P


def fit_policy(
    y_val: np.ndarray,
    s_val: np.ndarray,
    schema: LabelSchema | None = None,
    *,
    rule: "str | Rule" = "f1",
    calibration: "Calibration | str | None" = None,
    min_labels: int | None = None,
    max_labels: int | None = None,
    labels: Sequence[str] | None = None,
    from_logits: bool = False,
) -> DecisionPolicy:
    """Fit a :class:`DecisionPolicy` on validation truth ``y_val`` and scores ``s_val``.

    ``calibration``: None (scores used as they are), a fitted :class:`Calibration`, or a method name
    (``"platt"``, ``"temperature"``, ``"isotonic"``, ``"none"``) fitted here on the same data. The rule
    is then tuned on the calibrated probabilities (:func:`labelwise.decide.rules.fit_rule`).
    """
    rule = parse_rule(rule)
    schema, cal, Y, P = _prepare(y_val, s_val, schema, labels, from_logits, calibration, "s_val")
    check_bounds(schema, min_labels, max_labels)
    th = fit_rule(Y, P, schema, rule)
    notes = list(cal.notes) if cal is not None else []
    if cal is None and from_logits:
        cal = _identity(schema)
        cal = Calibration(schema, "none", cal.independent, cal.groups, True)
    return DecisionPolicy(schema, str(rule), th, cal, min_labels, max_labels, tuple(notes),
                          {"rows": int(Y.shape[0])})


@dataclass(frozen=True)
class RuleComparison:
    """Every set-level rule scored on one data set: ``rows`` is a list of ``{"rule", metric: value}``."""

    rows: tuple[dict, ...]
    calibration: str
    n_images: int
    notes: tuple[str, ...] = ()

    METRICS = ("hamming_loss", "subset_accuracy", "micro_f1", "macro_f1", "instance_f1",
               "labels_per_image_predicted", "labels_per_image_true")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"format": "labelwise.rule_comparison", "calibration": self.calibration, "images": self.n_images,
                "rules": [dict(r) for r in self.rows], "notes": list(self.notes)}

    def to_json(self) -> str:
        """Strict JSON text."""
        return json_text(self.to_dict())

    def format_text(self) -> str:
        """A text table: one row per rule, the metrics as columns (best value of each starred)."""
        heads = ["rule", "Hamming", "subset acc", "micro-F1", "macro-F1", "instance-F1", "labels/img", "true/img"]
        lower_better = {"hamming_loss"}
        best = {}
        for m in self.METRICS[:5]:
            vals = [r[m] for r in self.rows if math.isfinite(r[m])]
            best[m] = (min(vals) if m in lower_better else max(vals)) if vals else None
        table = []
        for r in self.rows:
            cells = [r["rule"]]
            for m in self.METRICS:
                v = r[m]
                text = "n/a" if not math.isfinite(v) else (f"{v:.2f}" if m.startswith("labels") else f"{v:.3f}")
                if m in best and best[m] is not None and math.isfinite(v) and abs(v - best[m]) < 1e-12:
                    text += "*"
                cells.append(text)
            table.append(cells)
        widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(heads)]
        lines = [f"{self.n_images} images; calibration: {self.calibration}"]
        lines.append("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(heads, widths))))
        for row in table:
            lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        lines.append("(* best per column)")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_text()


def compare_rules(
    y_true: np.ndarray,
    y_score: np.ndarray,
    schema: LabelSchema | None = None,
    *,
    calibration: "Calibration | str | None" = None,
    labels: Sequence[str] | None = None,
    from_logits: bool = False,
    rules: Sequence[str] | None = None,
    min_labels: int | None = None,
    max_labels: int | None = None,
) -> RuleComparison:
    """Score every set-level rule (``hamming``, ``subset``, ``micro-f1``, ``macro-f1``, ``instance-f1``,
    ``top-k=K``) on ``(y_true, y_score)`` after ``calibration``: Hamming loss, subset accuracy,
    micro/macro/instance F1, labels per image predicted and true (see
    :func:`labelwise.decide.rules.decision_metrics`). ``top-k`` uses K = the data's mean number of
    independent labels per image, rounded (at least 1). Tuned rules are tuned and scored on the same
    data, which flatters them (a note says so): compare on validation data, then confirm on test data."""
    schema, cal, Y, P = _prepare(y_true, y_score, schema, labels, from_logits, calibration)
    min_labels, max_labels = check_bounds(schema, min_labels, max_labels)
    n_ind = len(schema.independent)
    notes = []
    if rules is None:
        rules = list(COMPARED_RULES) if n_ind else ["hamming"]
    k = max(1, int(round(float(Y[:, :n_ind].sum(axis=1).mean())))) if n_ind else 1
    out = []
    for r in rules:
        if str(r) == "top-k":
            r = f"top-k={min(k, n_ind)}"
        rule = parse_rule(r)
        th = fit_rule(Y, P, schema, rule)
        D = apply_rule(P, schema, rule, th, min_labels=min_labels, max_labels=max_labels)
        out.append({"rule": str(rule), **decision_metrics(Y, D, schema)})
    if any(parse_rule(r["rule"]).needs_validation for r in out):
        notes.append("micro-f1 and macro-f1 thresholds are tuned and scored on this same data (optimistic); "
                     "confirm the chosen rule on test data")
    if min_labels is not None or max_labels is not None:
        bounds = [f"at least {min_labels}" if min_labels is not None else "",
                  f"at most {max_labels}" if max_labels is not None else ""]
        notes.append(f"every rule decides {' and '.join(b for b in bounds if b)} label(s) per image"
                     + (f", {schema.none!r} counting as one (so at least 1 changes nothing)" if schema.none else ""))
    if cal is None:
        notes.append("no calibration: the set-level rules assume the scores are calibrated probabilities")
    else:
        notes += list(cal.notes)
    return RuleComparison(tuple(out), cal.method if cal is not None else "none", int(Y.shape[0]), tuple(notes))
