"""From a model's scores to what predict and serve report: the artifact's decision policy
(:class:`labelwise.decide.DecisionPolicy`: calibration, then a rule) read or overridden
(:func:`resolve_policy`), and applied (:func:`probabilities_and_decisions`). numpy only at import.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..labels.schema import LabelSchema

__all__ = ["resolve_policy", "probabilities_and_decisions", "apply_rule_to"]


def resolve_policy(policy: Any, schema: LabelSchema, decide_for: str | None = None):
    """The :class:`labelwise.decide.DecisionPolicy` that decides: ``policy`` (a policy, a ``Thresholds``,
    their dict, or None) read over ``schema``, its rule replaced by ``decide_for`` when given.

    ``decide_for`` must be a rule that needs no validation data (:data:`labelwise.decide.NO_VALIDATION_RULES`:
    ``hamming``, ``subset``, ``instance-f1``, ``top-k=K``); the policy's calibration and label bounds
    are kept. Others are refused, naming the allowed ones: their thresholds are tuned on validation
    data (``labelwise thresholds --optimize RULE``).
    """
    from dataclasses import replace

    from ..decide.rules import parse_rule
    from .artifact import as_policy

    policy = as_policy(policy, schema)
    if decide_for is None:
        if policy is None:
            raise InputError("the artifact has no thresholds or decision policy; tune one (labelwise thresholds "
                             "--optimize RULE) and save it into the model, or choose a rule with --decide-for "
                             f"(one of {_no_validation_text()})")
        return policy
    rule = parse_rule(decide_for)
    if rule.needs_validation:
        raise InputError(f"--decide-for {decide_for}: this rule needs thresholds tuned on validation data, which "
                         f"predict does not have; the rules predict can apply are {_no_validation_text()} "
                         f"(or tune {str(rule)!r} with `labelwise thresholds --optimize {rule}` and evaluate with it)")
    if policy is None:
        from ..decide.policy import DecisionPolicy

        return DecisionPolicy(schema, str(rule))
    return replace(policy, rule=str(rule), thresholds=None)


def _no_validation_text() -> str:
    from ..decide.rules import NO_VALIDATION_RULES

    return ", ".join("top-k=K" if r == "top-k" else r for r in NO_VALIDATION_RULES)


def probabilities_and_decisions(scores: np.ndarray, policy: Any,
                                schema: LabelSchema | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Model scores (n, n_outputs) or (n, n_labels) -> ``(probabilities, decisions)``, both (n, n_labels).

    ``probabilities = policy.probabilities(scores)`` (the calibration, none derived as
    ``prod(1 - p_independent)``), ``decisions = policy.decide(scores)`` (uint8, obeying the schema).
    ``policy``: a :class:`labelwise.decide.DecisionPolicy`, or thresholds (read by :func:`resolve_policy`
    over ``schema``).
    """
    from ..decide.policy import DecisionPolicy

    if not isinstance(policy, DecisionPolicy):
        if schema is None:
            raise InputError("probabilities_and_decisions needs the schema to read plain thresholds")
        policy = resolve_policy(policy, schema)
    probs = policy.probabilities(scores)
    return probs, apply_rule_to(probs, policy)


def apply_rule_to(probs: np.ndarray, policy: Any) -> np.ndarray:
    """``policy``'s rule and label bounds on already calibrated ``probs`` (no second calibration)."""
    from ..decide.rules import apply_rule

    return apply_rule(probs, policy.schema, policy.rule, policy.thresholds,
                      min_labels=policy.min_labels, max_labels=policy.max_labels)
