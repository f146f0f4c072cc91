"""Decide: from scores to labels. Per-label thresholds tuned exactly on validation data
(:func:`tune_thresholds`), decisions that always obey the schema (:func:`decide`: exactly one
member per exclusive group, the none label derived), calibration (:func:`fit_calibration`), decision
rules chosen for a metric (:mod:`.rules`) and self-contained decision policies (:func:`fit_policy`,
``decision.json``); :func:`compare_rules` tabulates every set-level rule against the metrics.
numpy/scikit-learn only.
"""

from .calibration import CALIBRATION_METHODS, MIN_ISOTONIC, Calibration, fit_calibration
from .policy import (
    COMPARED_RULES,
    DecisionPolicy,
    RuleComparison,
    compare_rules,
    fit_policy,
)
from .rules import (
    NO_VALIDATION_RULES,
    PER_LABEL_RULES,
    RULES,
    SET_RULES,
    Rule,
    apply_bounds,
    apply_rule,
    decision_metrics,
    expected_f1_topk,
    fit_rule,
    instance_f1_decisions,
    parse_rule,
)
from .thresholds import Thresholds, decide, tune_thresholds

__all__ = [
    "Thresholds", "decide", "tune_thresholds",
    "Calibration", "fit_calibration", "CALIBRATION_METHODS", "MIN_ISOTONIC",
    "DecisionPolicy", "fit_policy", "compare_rules", "RuleComparison", "COMPARED_RULES",
    "Rule", "parse_rule", "RULES", "PER_LABEL_RULES", "SET_RULES", "NO_VALIDATION_RULES",
    "fit_rule", "apply_rule", "apply_bounds", "instance_f1_decisions", "expected_f1_topk", "decision_metrics",
]
