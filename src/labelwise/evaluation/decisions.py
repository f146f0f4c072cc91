"""Decisions in an evaluation: read a decision file (its policy is applied by
:meth:`labelwise.decide.DecisionPolicy.apply`, the one road), and summarise the decisions
(rule, labels per image predicted vs true, calibration before/after, warnings) for the text, the
JSON and the report's "Decisions" section.

This module imports neither Keras nor TensorFlow.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError

__all__ = ["load_decision", "decisions_info", "REWEIGHTING_LOSSES", "OVERDECIDE_FACTOR"]

# Losses whose minimiser is not the class probability: their sigmoid outputs are inflated or flattened.
REWEIGHTING_LOSSES = ("weighted", "balanced", "focal", "asymmetric")
OVERDECIDE_FACTOR = 2.0


def load_decision(path: str | Path, schema):
    """A ``decision.json`` (format ``labelwise.decision``) as a :class:`~labelwise.decide.DecisionPolicy`,
    or a plain thresholds file as :class:`~labelwise.decide.thresholds.Thresholds` (read as before)."""
    from ..decide.thresholds import Thresholds

    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return Thresholds.load(p)  # words the error (missing file, bad JSON)
    if isinstance(data, dict) and data.get("format") == "labelwise.decision":
        from ..decide.policy import DecisionPolicy

        return DecisionPolicy.from_dict(data, source=str(p))
    return Thresholds.load(p)


def decisions_info(policy, yt: np.ndarray, ys: np.ndarray, ys_raw: np.ndarray | None, y_pred: np.ndarray,
                   score_source: str | None, names: Sequence[str], rule: str | None = None) -> dict[str, Any]:
    """What the report's "Decisions" section shows; ``warnings`` also go to the result's notes.

    Labels per image count every label column (group members and the none label included), the
    same count for the decisions and for the truth.
    """
    from ..metrics import expected_calibration_error

    pred_count = y_pred.sum(axis=1).astype(int)
    true_count = yt.sum(axis=1).astype(int)
    top = int(max(pred_count.max(initial=0), true_count.max(initial=0)))
    info: dict[str, Any] = {
        "rule": policy.rule if policy is not None else rule,
        "calibration": (policy.calibration.method if policy is not None and policy.calibration is not None
                        else None),
        "min_labels": getattr(policy, "min_labels", None),
        "max_labels": getattr(policy, "max_labels", None),
        "labels_per_image_predicted": float(pred_count.mean()) if len(pred_count) else math.nan,
        "labels_per_image_true": float(true_count.mean()) if len(true_count) else math.nan,
        "histogram_predicted": np.bincount(pred_count, minlength=top + 1).tolist(),
        "histogram_true": np.bincount(true_count, minlength=top + 1).tolist(),
        "ece_bins": 15,
        "ece_after": float(expected_calibration_error(yt, ys)),
        "ece_before": (float(expected_calibration_error(yt, ys_raw))
                       if ys_raw is not None and info_has_cal(policy) else None),
        "score_source": score_source,
        "warnings": [],
    }
    pred, true = info["labels_per_image_predicted"], info["labels_per_image_true"]
    if math.isfinite(pred) and math.isfinite(true) and pred > OVERDECIDE_FACTOR * true:
        from ..decide.rules import PER_LABEL_RULES

        used = str(info["rule"] or "")
        others = ", ".join(r for r in ("instance-f1", "hamming") if r != used) + " or --max-labels"
        why = ("per-label thresholds on rare labels do this" if not used or used.split("=")[0] in PER_LABEL_RULES
               else f"under the rule {used}") + (f", at least {info['min_labels']} per image"
                                                  if info["min_labels"] else "")
        info["warnings"].append(
            f"the decisions give {pred:.2f} labels per image, more than {OVERDECIDE_FACTOR:g}x the truth's {true:.2f}: "
            f"the decisions are too many ({why}); compare the rules with `labelwise thresholds --compare` and "
            f"consider {others}")
    if score_source and str(score_source).lower() in REWEIGHTING_LOSSES and info["calibration"] is None:
        info["warnings"].append(
            f"these scores come from a {score_source} loss and are not calibrated: they are not probabilities "
            "(the loss reweights classes), so 0.5 and the set-level rules mis-decide; fit a calibration on "
            "validation data (labelwise calibrate, or thresholds --calibration platt)")
    return info


def info_has_cal(policy) -> bool:
    """True when the policy carries a fitted calibration (not the identity)."""
    return policy is not None and policy.calibration is not None and policy.calibration.method != "none"


def reconcile_files(thresholds: Any, scores_paths: "dict[str, Any]", schema, *, from_logits: bool = False
                    ) -> tuple[Any, list[str]]:
    """Decision files (``--thresholds``: one path, ``{name: path}`` or None) read against the sidecars
    of the scores files ``{name: path}`` (:mod:`labelwise.decide.scorefile`): a decision file whose
    calibration already produced the scores is used without it (one note each), a different
    calibration on calibrated scores and logits/probabilities mix-ups are refused naming both files.
    Without a decision file, a scores file whose sidecar records the policy that decided it (what
    ``labelwise predict`` and ``train`` write) is judged by that policy, said once.
    Returns the thresholds to evaluate with (policies where a calibration was dropped) and the notes."""
    from ..decide.scorefile import reconcile

    notes: list[str] = []
    for path in scores_paths.values():
        reconcile(path, None, from_logits=from_logits)  # logits vs probabilities, even with no decision file
    if thresholds is None:
        thresholds = _recorded_policies(scores_paths, schema, notes)
        if thresholds is None:
            return None, notes
    per = dict(thresholds) if isinstance(thresholds, dict) else {name: thresholds for name in scores_paths}
    out: dict[str, Any] = {}
    for name, spath in scores_paths.items():
        given = per.get(name)
        decision = load_decision(given, schema) if isinstance(given, (str, Path)) else given
        if decision is not None and hasattr(decision, "decide"):
            recorded = not isinstance(given, (str, Path))  # the sidecar's own policy: said once already
            policy, said = reconcile(spath, decision, None if recorded else given, from_logits=from_logits)
            if said:
                notes += [] if recorded else said
                given = policy
        out[name] = given
    if not notes and all(out[name] is per.get(name) for name in out):
        return thresholds, notes
    return (out[next(iter(out))] if len(out) == 1 else out), notes


def _recorded_policies(scores_paths: "dict[str, Any]", schema, notes: list[str]) -> Any:
    """Without ``--thresholds``: the decision policy each scores file's sidecar records (a
    ``labelwise predict`` file, train's ``test_predictions.csv``), so its decisions are judged by the
    rule that made them, said once per file; None when no file records one (0.5 per label then)."""
    from ..decide.policy import DecisionPolicy
    from ..decide.scorefile import read_state

    found: dict[str, Any] = {}
    for name, path in scores_paths.items():
        state = read_state(path)
        if state is None or not state.decision:
            continue
        try:
            policy = DecisionPolicy.from_dict(state.decision, source=f"the sidecar of {path}")
        except Exception:  # noqa: BLE001 - an unreadable record: evaluate as if there were none, said
            notes.append(f"{path}: its sidecar's decision policy cannot be read; decisions at 0.5 per label "
                         "(give --thresholds DECISION.json)")
            continue
        if set(policy.labels) != set(schema.labels):
            notes.append(f"{path}: its sidecar's decision policy is for other labels than the truth's; decisions "
                         "at 0.5 per label (give --thresholds DECISION.json)")
            continue
        found[name] = policy
        notes.append(f"{path}: decided by the policy its sidecar records ({policy.describe()}); give "
                     "--thresholds to decide otherwise")
    if not found:
        return None
    if len(scores_paths) == 1:
        return next(iter(found.values()))
    return {name: found.get(name) for name in scores_paths} if len(found) == len(scores_paths) else None
