"""Results in a notebook: pandas tables, matplotlib Figures, and the HTML Jupyter shows.

``EvaluationResult._repr_html_`` / ``ComparisonResult._repr_html_`` call :func:`evaluation_html` /
:func:`comparison_html`: the per-label table and the averages, and the ROC, PR and calibration
plots inline as base64 PNGs (nothing is written to disk). ``to_frame`` and ``plot_*`` are the
same pieces for code. pandas and matplotlib are imported inside the functions.
"""

from __future__ import annotations

import base64
import html
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:
    from .results import ComparisonResult, EvaluationResult

__all__ = ["evaluation_frame", "comparison_frame", "evaluation_html", "comparison_html", "plot"]

_COLUMNS = ("positives", "prevalence", "auc", "auc_low", "auc_high", "ap", "ap_low", "ap_high", "threshold", "rule",
            "predicted", "precision", "recall", "specificity", "f1", "notes")


def evaluation_frame(result: "EvaluationResult"):
    """One row per label (index: the label), the columns of :class:`~labelwise.evaluation.results.LabelRow`;
    ``threshold`` is NaN where the rule is not a threshold ("argmax", "derived"); notes joined by "; "."""
    import pandas as pd

    rows = []
    for r in result.rows:
        d = r.to_dict()
        d["notes"] = "; ".join(d.get("notes") or [])
        if d["rule"] != "threshold":
            d["threshold"] = math.nan
        rows.append(d)
    return pd.DataFrame(rows, columns=["label", *_COLUMNS]).set_index("label")


def comparison_frame(comparison: "ComparisonResult"):
    """One row per label: ``positives``, ``auc[<strategy>]`` with ``auc_low``/``auc_high`` per
    strategy, and ``diff[<strategy>]``, ``diff_low``, ``diff_high``, ``verdict`` for each
    strategy against the reference."""
    import pandas as pd

    rows = []
    for row in comparison.per_label_auc():
        d: dict[str, Any] = {"label": row["label"], "positives": row["positives"]}
        for name in comparison.names:
            d[f"auc[{name}]"] = row["auc"][name]
            d[f"auc_low[{name}]"] = row["auc_low"][name]
            d[f"auc_high[{name}]"] = row["auc_high"][name]
        for name, diff in row["difference"].items():
            d[f"diff[{name}]"], d[f"diff_low[{name}]"], d[f"diff_high[{name}]"] = diff["point"], diff["low"], diff["high"]
            d[f"verdict[{name}]"] = diff["verdict"]
        rows.append(d)
    return pd.DataFrame(rows).set_index("label")


def plot(result: "EvaluationResult", kind: str):
    """``kind`` "roc", "pr" or "calibration" of an evaluation as a matplotlib Figure."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise InputError(f"the plots need matplotlib, which cannot be imported ({e}); pip install matplotlib") from None
    from .report import plots as P

    labels = list(result.labels)
    if kind == "roc":
        return P.roc_grid(result.y_true, result.y_score, labels, auc=[r.auc for r in result.rows], as_figure=True)
    if kind == "pr":
        return P.pr_grid(result.y_true, result.y_score, labels, ap=[r.ap for r in result.rows], as_figure=True)
    if kind == "calibration":
        return P.calibration_plot(result.y_true, result.y_score, labels, as_figure=True)
    raise InputError(f"unknown plot {kind!r}; one of 'roc', 'pr', 'calibration'")


def _img(fig, alt: str) -> str:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" style="max-width:100%" src="data:image/png;base64,{data}">'


def _n(x: Any, digits: int = 3) -> str:
    if isinstance(x, (float, np.floating)):
        return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"
    return html.escape(str(x))


def _ci(v: float, lo: float, hi: float) -> str:
    return _n(v) + (f" <small>[{_n(lo)}, {_n(hi)}]</small>" if math.isfinite(lo) and math.isfinite(hi) else "")


def _table(head: list[str], body: list[list[str]]) -> str:
    th = "".join(f"<th>{h}</th>" for h in head)
    rows = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{rows}</tbody></table>"


def evaluation_html(result: "EvaluationResult", *, plots: bool = True) -> str:
    """The notebook view of an evaluation (an HTML fragment)."""
    body = []
    for r in result.rows:
        thr = _n(r.threshold) if r.rule == "threshold" else r.rule
        label = html.escape(r.label) + (f' <span title="{html.escape("; ".join(r.notes))}">*</span>' if r.notes else "")
        body.append([label, str(r.positives), _ci(r.auc, r.auc_low, r.auc_high), _ci(r.ap, r.ap_low, r.ap_high), thr,
                     _n(r.precision), _n(r.recall), _n(r.specificity), _n(r.f1)])
    parts = [f"<div><p><b>{result.n_samples} images, {len(result.labels)} labels</b>; thresholds: "
             f"{html.escape(str(result.threshold_source))}</p>",
             _table(["label", "pos", "AUC", "AP", "threshold", "precision", "recall", "specificity", "F1"], body)]
    averages = [[html.escape(k.replace("_", " ")), _ci(v, *result.averages_ci.get(k, (math.nan, math.nan)))]
                for k, v in result.averages.items()]
    parts += ["<p><b>Averages</b></p>", _table(["average", "value"], averages)]
    notes = [f"{r.label}: {'; '.join(r.notes)}" for r in result.rows if r.notes] + list(result.notes)
    notes += [f.message for f in result.findings if getattr(f, "severity", "") in ("error", "warning")]
    if notes:
        parts.append("<p><b>Notes</b></p><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    if plots:
        for kind, title in (("roc", "ROC curves"), ("pr", "Precision-recall curves"), ("calibration", "Calibration")):
            parts.append(f"<p><b>{title}</b></p>" + _img(plot(result, kind), title))
    return "".join(parts) + "</div>"


def comparison_html(comparison: "ComparisonResult", *, plots: bool = True) -> str:
    """The notebook view of a comparison: the summary per strategy, AUC per label, overlaid ROC."""
    summary = []
    for row in comparison.summary_rows():
        name = html.escape(row["strategy"]) + (" (reference)" if row["reference"] else "")
        diff = ("" if row["reference"] else
                _ci(row.get("auc_macro_diff", math.nan), row.get("auc_macro_diff_low", math.nan),
                    row.get("auc_macro_diff_high", math.nan)) + f" {html.escape(row.get('auc_macro_verdict', ''))}")
        summary.append([name, _ci(row["auc_macro"], row["auc_macro_low"], row["auc_macro_high"]),
                        _ci(row["ap_macro"], row["ap_macro_low"], row["ap_macro_high"]), diff,
                        _n(row["f1_macro"]), _n(row["subset_accuracy"])])
    parts = [f"<div><p><b>{len(comparison.names)} strategies on {comparison.n_samples} images</b>; reference "
             f"{html.escape(comparison.reference)}</p>",
             _table(["strategy", "macro AUC", "macro AP", "macro AUC - reference", "macro F1", "subset accuracy"],
                    summary)]
    per_label = [[html.escape(r["label"]), str(r["positives"])]
                 + [_ci(r["auc"][n], r["auc_low"][n], r["auc_high"][n]) for n in comparison.names]
                 for r in comparison.per_label_auc()]
    parts += ["<p><b>AUC per label</b></p>",
              _table(["label", "pos", *[html.escape(n) for n in comparison.names]], per_label)]
    if plots:
        parts.append("<p><b>ROC curves</b></p>" + _img(comparison.plot_roc(), "ROC curves"))
    return "".join(parts) + "</div>"
