"""Words and text formatting shared by the evaluation results and the HTML report: the notes a
result may carry, the report's file names, strategy names, and the plain-text table helpers.

It imports nothing from the rest of :mod:`labelwise.evaluation`, so the result types and the
report renderers can both use it without importing each other.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from ..errors import InputError

__all__ = ["OPTIMISM_NOTE", "COLLAPSE_NOTE", "REPORT_FILES", "COMPARISON_FILES", "check_strategy_name"]

OPTIMISM_NOTE = (
    "thresholds were tuned on the same data they are evaluated on: the threshold-dependent metrics "
    "(precision, recall, specificity, F1) are optimistic. Tune on a validation set "
    "(labelwise thresholds --truth val.csv ...) and pass --thresholds here."
)

COLLAPSE_NOTE = ("the diagnostics found a collapsed or chance-level model: do not trust these metrics before "
                 "fixing it (see Diagnostics)")

# The report files ``EvaluationResult.save`` may write besides the JSON; a later run that does not
# produce one of them deletes it, so a report never describes an older run than metrics.json.
REPORT_FILES = ("report.html", "roc.png", "pr.png", "calibration.png", "histograms.png", "error_cooccurrence.png",
                "labels_per_image.png", "reliability_before_after.png", "learning_curves.png")

COMPARISON_FILES = ("comparison.json", "report.html", "roc_comparison.png", "auc_difference.png")

_NAME_RE = re.compile(r"[^\W][\w.+-]*")


def check_strategy_name(name: str) -> str:
    """Return ``name`` if it can name a strategy (and its output folder), else raise ``InputError``.

    Letters, digits, ``_ . + -``, not starting with ``.`` or ``-``, and none of the comparison's own
    file names (``report.html``, ``comparison.json``, ...).
    """
    text = str(name)
    if not _NAME_RE.fullmatch(text) or text in COMPARISON_FILES:
        raise InputError(
            f"strategy name {text!r} cannot name an output folder: use letters, digits, '_', '.', '+', '-' "
            "(not starting with '.' or '-'), e.g. --scores sigmoid=pred_a.csv"
        )
    return text


def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _fmt_diff(v: float, low: float, high: float) -> str:
    if v is None or not np.isfinite(v):
        return "n/a"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{v:+.3f}"
    return f"{v:+.3f} [{low:+.3f}, {high:+.3f}]"


def _fmt_ci(v: float, low: float, high: float, has_ci: bool) -> str:
    if not np.isfinite(v):
        return "n/a"
    if not has_ci or not (np.isfinite(low) and np.isfinite(high)):
        return f"{v:.3f}"
    return f"{v:.3f} [{low:.3f}, {high:.3f}]"


def _table(head: Sequence[str], body: Sequence[Sequence[str]], *, right=(), header: bool = True) -> list[str]:
    cols = list(zip(*([list(head)] + [list(r) for r in body]))) if body else [[h] for h in head]
    widths = [max(len(str(c)) for c in col) for col in cols]
    right = set(right)

    def line(cells):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = []
    if header:
        out += [line(head), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in body]
    return out


def _indent(text: str) -> str:
    return "\n".join("  " + x for x in text.splitlines())
