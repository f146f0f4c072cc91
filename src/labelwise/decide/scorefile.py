"""What the numbers in a scores file are: the JSON sidecar ``<file>.json`` labelwise writes beside
every scores CSV (predict's output, train's ``test_predictions.csv`` and ``val_scores.csv``).

The CSV stays plain so any tool opens it; the sidecar says::

    {"format": "labelwise.scores", "version": 1, "file": "test_predictions.csv",
     "values": "calibrated",                      # "raw", "logits" or "calibrated"
     "columns": "p_<label>",
     "policy": {"rule": "f1", "calibration": "platt", "fingerprint": "...",
                "calibration_fingerprint": "..."}}

``raw``: the model's own probabilities (sigmoid/softmax outputs, no calibration); ``logits``: the
head's logits; ``calibrated``: probabilities after the named policy's calibration. A command that
would apply a calibration to numbers already calibrated reads the sidecar (:func:`read_state`) and
skips the second calibration with a note, or refuses when the two calibrations differ
(:func:`reconcile`). A file without a sidecar (written by another tool) is read as before.

This module imports neither Keras nor TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..io import atomic_path, json_text, write_json

__all__ = ["ScoreState", "VALUES", "FORMAT", "sidecar_path", "write_state", "read_state", "values_of", "write_scores",
           "calibration_fingerprint", "reconcile", "check_fit_input", "move_scores"]

FORMAT = "labelwise.scores"
VALUES = ("raw", "logits", "calibrated")


@dataclass(frozen=True)
class ScoreState:
    """A scores file's sidecar: ``values`` (one of :data:`VALUES`) and the ``policy`` they were
    decided under (rule, calibration method, fingerprints; empty for raw scores)."""

    path: Path
    values: str
    policy: Mapping[str, Any] = field(default_factory=dict)
    decision: Mapping[str, Any] | None = None  # the whole decision policy (``DecisionPolicy.to_dict``)

    @property
    def calibrated(self) -> bool:
        """True when the values are calibrated probabilities."""
        return self.values == "calibrated"


def sidecar_path(path: str | Path) -> Path:
    """``scores.csv`` -> ``scores.csv.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def calibration_fingerprint(calibration: Any) -> str | None:
    """A short hash (12 hex digits) of a calibration's JSON form; None for no calibration."""
    if calibration is None or getattr(calibration, "method", "none") == "none":
        return None
    return hashlib.sha256(json_text(calibration.to_dict()).encode("utf-8")).hexdigest()[:12]


def values_of(policy: Any) -> str:
    """What a file of ``policy.apply`` probabilities holds: ``calibrated`` when the policy has a
    calibration (other than ``none``), else ``raw``."""
    cal = getattr(policy, "calibration", None)
    return "calibrated" if cal is not None and cal.method != "none" else "raw"


def write_state(path: str | Path, values: str, policy: Any = None, *, columns: str = "p_<label>",
                note: str | None = None) -> Path:
    """Write the sidecar of the scores file ``path`` (atomically); returns the sidecar's path."""
    if values not in VALUES:
        raise InputError(f"values must be one of {list(VALUES)}; got {values!r}")
    data: dict[str, Any] = {"format": FORMAT, "version": 1, "file": Path(path).name, "values": values,
                            "columns": columns}
    if policy is not None:
        data["policy"] = {**policy.state(), "calibration_fingerprint": calibration_fingerprint(policy.calibration)}
        if hasattr(policy, "to_dict"):  # the whole policy, so evaluate can decide as the file's writer did
            data["decision"] = policy.to_dict()
    if note:
        data["note"] = note
    return write_json(sidecar_path(path), data)


def write_scores(path: str | Path, ids: Sequence[Any], scores: np.ndarray, labels: Sequence[str], *,
                 values: str = "raw", note: str | None = None) -> Path:
    """Write scores (n, len(labels)) as a plain CSV (``id`` + one column per label, ``%.9g``),
    atomically, with its sidecar saying what they are (``values``: raw, logits or calibrated).
    ``labelwise calibrate``/``thresholds``/``evaluate`` read the file and the sidecar."""
    import pandas as pd

    scores = np.asarray(scores, dtype=np.float64)
    frame = pd.DataFrame({"id": [str(i) for i in ids], **{str(x): scores[:, j] for j, x in enumerate(labels)}})
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.9g")
    write_state(path, values, columns="<label>", note=note)
    return Path(path)


def move_scores(src: str | Path, dst: str | Path) -> Path:
    """Rename the scores file ``src`` to ``dst`` together with its sidecar, whose ``file`` then names
    ``dst`` (a scores file without its sidecar would lose what its numbers are). Returns ``dst``."""
    import os

    src, dst = Path(src), Path(dst)
    side = sidecar_path(src)
    data = json.loads(side.read_text(encoding="utf-8")) if side.is_file() else None
    os.replace(src, dst)
    if isinstance(data, dict):
        write_json(sidecar_path(dst), {**data, "file": dst.name})
        side.unlink()
    return dst


def read_state(path: str | Path) -> ScoreState | None:
    """The sidecar of the scores file ``path`` as a :class:`ScoreState`; None when there is none.
    A sidecar that is not one (bad JSON, unknown ``values``) is an :class:`InputError` naming it."""
    side = sidecar_path(path)
    if not side.is_file():
        return None
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{side}: the sidecar of {Path(path).name} is not readable JSON ({e}); delete it or "
                         "write the scores again") from None
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        return None  # some other tool's JSON beside the file: not ours to read
    values = data.get("values")
    if values not in VALUES:
        raise InputError(f"{side}: \"values\" is {values!r}; expected one of {list(VALUES)}")
    decision = data.get("decision")
    return ScoreState(Path(path), str(values), dict(data.get("policy") or {}),
                      dict(decision) if isinstance(decision, Mapping) else None)


def reconcile(scores_path: str | Path, policy: Any, decision_path: str | Path | None = None, *,
              from_logits: bool = False) -> tuple[Any, list[str]]:
    """The policy to apply to the scores in ``scores_path``, and notes.

    Scores already calibrated (their sidecar says so) by the same calibration as ``policy``'s: the
    policy without its calibration, and a note saying the calibration is not applied twice.
    Calibrated by another calibration: refused, naming both files. ``--from-logits`` on a file of
    probabilities, or logits read as probabilities: refused. No sidecar: ``policy`` as given.
    """
    state = read_state(scores_path)
    if state is None:
        return policy, []
    _check_logits(state, from_logits)
    cal = getattr(policy, "calibration", None)
    if not state.calibrated or cal is None or cal.method == "none":
        return policy, []
    where = f"{decision_path}" if decision_path is not None else "the decision policy"
    mine = calibration_fingerprint(cal)
    theirs = state.policy.get("calibration_fingerprint")
    if theirs is not None and theirs != mine:
        raise InputError(
            f"{scores_path} holds probabilities already calibrated ({state.policy.get('calibration')}, under policy "
            f"{state.policy.get('fingerprint')}, says {sidecar_path(scores_path).name}), and {where} would calibrate "
            f"them again with a different calibration ({cal.method}); give the raw scores (e.g. train's "
            "val_scores.csv, or predict with the model) or a decision file without a calibration")
    note = (f"{scores_path} holds probabilities already calibrated by {where}'s {cal.method} calibration (its "
            f"sidecar {sidecar_path(scores_path).name} says so): the calibration is not applied twice, only the rule")
    # the calibration stays on record (describe, the report's diagnostics): applied, but by the scores' writer
    return replace(policy, calibration=None,
                   fitted_on={**policy.fitted_on, "calibration_in_scores": cal.to_dict()}), [note]


def check_fit_input(scores_path: str | Path, *, from_logits: bool = False, what: str = "a calibration") -> None:
    """Refuse fitting ``what`` on scores the sidecar marks as calibrated (the fitted calibration
    would then be applied to raw scores elsewhere), or a logits/probabilities mix-up."""
    state = read_state(scores_path)
    if state is None:
        return
    _check_logits(state, from_logits)
    if state.calibrated:
        raise InputError(f"{scores_path} holds probabilities already calibrated ({state.policy.get('calibration')}, "
                         f"says {sidecar_path(scores_path).name}); fit {what} on raw scores (train writes them as "
                         "val_scores.csv) so that it is not applied on top of another calibration")


def _check_logits(state: ScoreState, from_logits: bool) -> None:
    side = sidecar_path(state.path).name
    if state.values == "logits" and not from_logits:
        raise InputError(f"{state.path} holds logits (says {side}); pass --from-logits")
    if state.values != "logits" and from_logits:
        raise InputError(f"{state.path} holds {state.values} probabilities, not logits (says {side}); "
                         "drop --from-logits")
