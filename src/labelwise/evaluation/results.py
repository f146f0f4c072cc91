"""The result types of an evaluation: :class:`EvaluationResult` (one set of scores) and
:class:`ComparisonResult` (several strategies on the same truth). Each prints as text
(``format_table``), serialises to JSON (``to_dict``) and saves a folder of files (``save``:
``metrics.json``, ``thresholds.json``, PNG plots, ``report.html``).

The report renderers (:mod:`labelwise.evaluation.report`) read these objects by duck typing and
never import this module, so there is no import circle; ``save`` imports them when called.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..labels.schema import LabelSchema
from .diagnostics import Finding, format_findings
from .text import (COMPARISON_FILES, REPORT_FILES, _fmt, _fmt_ci, _fmt_diff, _indent, _table,
                   check_strategy_name)

__all__ = ["LabelRow", "EvaluationResult", "ComparisonResult"]


@dataclass
class LabelRow:
    """Per-label results. NaN means undefined; ``notes`` says why."""

    label: str
    positives: int
    prevalence: float
    auc: float
    auc_low: float
    auc_high: float
    ap: float
    ap_low: float
    ap_high: float
    threshold: float
    rule: str  # "threshold", "argmax" (exclusive group) or "derived" (none label)
    predicted: int
    precision: float
    recall: float
    specificity: float
    f1: float
    notes: list[str] = field(default_factory=list)
    ece: float = math.nan  # binary ECE of this label, 15 equal-width bins
    brier: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (NaN kept as float NaN; ``labelwise.io.write_json`` writes null)."""
        return dict(self.__dict__)


@dataclass
class EvaluationResult:
    """Everything ``evaluate`` computed; print with ``format_table``, keep with ``save``."""

    schema: LabelSchema
    rows: list[LabelRow]
    averages: dict[str, float]
    averages_ci: dict[str, tuple[float, float]]
    thresholds: Any  # labelwise.decide.thresholds.Thresholds, or None for the default 0.5
    threshold_source: str
    classification_report: str
    classification_report_dict: dict[str, Any]
    findings: list[Finding]
    notes: list[str]
    n_samples: int
    bootstrap: dict[str, Any]
    y_true: np.ndarray = field(repr=False)
    y_score: np.ndarray = field(repr=False)
    y_pred: np.ndarray = field(repr=False)
    summary: dict[str, Any] = field(default_factory=dict)
    # The rule, labels per image, ECE before/after calibration, warnings (evaluation.decisions).
    decisions: dict[str, Any] = field(default_factory=dict)
    y_score_uncalibrated: np.ndarray | None = field(default=None, repr=False)
    policy: Any = None  # the labelwise.decide.DecisionPolicy applied, if any
    #: set by a train run (its settings, split sizes, epoch log): the report gets a Training section
    training: dict[str, Any] | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        """Label names, in column order."""
        return self.schema.labels

    def row(self, label: str) -> LabelRow:
        """The row of one label."""
        for r in self.rows:
            if r.label == label:
                return r
        raise KeyError(label)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document (NaN as float; write with ``labelwise.io.write_json``)."""
        return {
            "n_samples": self.n_samples,
            "labels": list(self.labels),
            "schema": self.schema.to_dict(),
            "summary": self.summary,
            "per_label": [r.to_dict() for r in self.rows],
            "averages": self.averages,
            "averages_ci": {k: list(v) for k, v in self.averages_ci.items()},
            "thresholds": {
                "source": self.threshold_source,
                "values": {r.label: (r.threshold if r.rule == "threshold" else r.rule) for r in self.rows},
                **({"method": self.thresholds.method, "params": dict(self.thresholds.params or {})}
                   if self.thresholds is not None else
                   {"method": self.policy.rule if self.policy is not None else "default"}),
            },
            "decisions": dict(self.decisions),
            "bootstrap": self.bootstrap,
            "classification_report": self.classification_report_dict,
            "diagnostics": [f.to_dict() for f in self.findings],
            "notes": list(self.notes),
        }

    # ------------------------------------------------------------------ text
    def format_table(self, *, diagnostics: bool = True, report: bool = True) -> str:
        """Human-readable text: per-label table, averages, notes, classification report, diagnostics."""
        level = int(round(100 * self.bootstrap.get("level", 0.95)))
        has_ci = self.bootstrap.get("n_resamples", 0) > 0
        ci = f" [{level}% CI]" if has_ci else ""
        head = ["label", "pos", "AUC" + ci, "AP" + ci, "thr", "prec", "recall", "spec", "F1"]
        body, footnotes = [], []
        for r in self.rows:
            thr = _fmt(r.threshold, 3) if r.rule == "threshold" else r.rule
            mark = ""
            if r.notes:
                footnotes.append(f"{r.label}: " + "; ".join(r.notes))
                mark = " *"
            body.append([r.label + mark, str(r.positives), _fmt_ci(r.auc, r.auc_low, r.auc_high, has_ci),
                         _fmt_ci(r.ap, r.ap_low, r.ap_high, has_ci), thr, _fmt(r.precision), _fmt(r.recall),
                         _fmt(r.specificity), _fmt(r.f1)])
        lines = [f"{self.n_samples} {self.summary.get('unit', 'images')}, {len(self.labels)} labels; "
                 f"thresholds: {self.threshold_source}"]
        if "slices_per_case" in self.summary:
            d = self.summary["slices_per_case"]
            lines.append(f"slices per case: min {d['min']}, median {d['median']:g}, max {d['max']} ({d['total']} in all)")
        lines += [f"!! {f.message}" for f in self.findings if f.label is None and f.severity == "error"]
        lines.append("")
        lines += _table(head, body, right=range(1, len(head)))
        if footnotes:
            lines += ["", "n/a = undefined; * notes:"] + [f"  {x}" for x in footnotes]
        lines += ["", "Averages:"]
        av = self.averages
        avg_rows = []
        for key, name in (("auc", "AUC"), ("ap", "AP")):
            for kind in ("macro", "macro_ci_labels", "micro", "weighted", "samples"):
                k = f"{key}_{kind}"
                if kind == "macro_ci_labels" and k in av:  # labels without a CI are left out (see Notes)
                    low, high = self.averages_ci.get(k, (math.nan, math.nan))
                    avg_rows.append([f"macro {name}, labels with CI", _fmt_ci(av[k], low, high, True)])
                    continue
                if k in av:
                    low, high = self.averages_ci.get(k, (math.nan, math.nan))
                    avg_rows.append([f"{kind} {name}", _fmt_ci(av[k], low, high, k in self.averages_ci)])
        for k, name in (("f1_macro", "macro F1"), ("f1_micro", "micro F1"), ("precision_macro", "macro precision"),
                        ("recall_macro", "macro recall"), ("specificity_macro", "macro specificity"),
                        ("hamming_loss", "Hamming loss"), ("subset_accuracy", "subset accuracy"),
                        ("ece_classwise", "ECE (classwise, 15 bins)"), ("brier_macro", "macro Brier"),
                        ("labels_per_image_predicted", "labels/image decided"),
                        ("labels_per_image_true", "labels/image true"),
                        ("lrap", "label ranking AP"), ("coverage_error", "coverage error"),
                        ("ranking_loss", "ranking loss")):
            if k in av:
                avg_rows.append([name, _fmt(av[k])])
        lines += ["  " + x for x in _table(["average", "value"], avg_rows, right=[1], header=False)]
        if self.notes:
            lines += ["", "Notes:"] + [f"  - {n}" for n in self.notes]
        if report:
            lines += ["", "Classification report (decisions at the thresholds above):", self.classification_report.rstrip()]
        if diagnostics:
            lines += ["", "Diagnostics:", _indent(format_findings(self.findings))]
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ notebook
    def to_frame(self):
        """pandas DataFrame, one row per label (see :func:`labelwise.evaluation.notebook.evaluation_frame`)."""
        from .notebook import evaluation_frame

        return evaluation_frame(self)

    def plot_roc(self):
        """ROC curve per label: a matplotlib Figure."""
        from .notebook import plot

        return plot(self, "roc")

    def plot_pr(self):
        """Precision-recall curve per label: a matplotlib Figure."""
        from .notebook import plot

        return plot(self, "pr")

    def plot_calibration(self):
        """Reliability diagram (pooled and per label) with bin counts: a matplotlib Figure."""
        from .notebook import plot

        return plot(self, "calibration")

    def _repr_html_(self) -> str:
        from .notebook import evaluation_html

        return evaluation_html(self)

    # ------------------------------------------------------------------ files
    def save(self, out_dir: str | Path, *, plots: bool = True, html: bool = True) -> dict[str, Path]:
        """Write ``metrics.json``, ``thresholds.json``, PNG plots and ``report.html`` into ``out_dir``.

        Everything is rendered in memory first, so a failure (e.g. matplotlib missing) writes
        nothing; then the folder is written as a whole (:func:`labelwise.io.write_tree`: built
        beside it and swapped in), so a kill at any moment leaves the old report or the new one,
        never a mix; report files of an earlier run that this one does not produce (``report.html``
        and PNGs after ``plots=False``) are gone, other files in the folder are kept. Returns
        ``{name: path}``.
        """
        return _write_files(Path(out_dir), self._render(plots=plots, html=html))

    def _render(self, *, plots: bool, html: bool) -> dict[str, str | bytes]:
        """Every output file's content, ``{file name: text or bytes}``."""
        from ..io import json_text

        files: dict[str, str | bytes] = {
            "metrics.json": json_text(self.to_dict()) + "\n",
            "thresholds.json": json_text(self._thresholds_dict()) + "\n",
        }
        if plots or html:
            with _plotting():
                from .report import plots as P

                from .report.decisions import decision_plots

                images = {**P.all_plots(self), **decision_plots(self)}
            if plots:
                files.update({f"{name}.png": png for name, png in images.items()})
            if self.training and self.training.get("log"):
                with _plotting():
                    from .report.training import LEARNING_CURVES, learning_curves_png

                    curves = learning_curves_png(self.training["log"], self.training.get("best_epoch"))
                if plots:
                    files[f"{LEARNING_CURVES}.png"] = curves
                images = {**images, LEARNING_CURVES: curves}
            if html:
                from .report.html import render_report

                files["report.html"] = render_report(self, images)
        return files

    def _thresholds_dict(self) -> dict[str, Any]:
        if self.policy is not None:  # a decision file: save it whole (calibration, rule, thresholds)
            return self.policy.to_dict()
        if self.thresholds is not None and hasattr(self.thresholds, "to_dict"):
            return self.thresholds.to_dict()
        return {
            "method": "default", "labels": list(self.labels),
            "values": [0.5] * len(self.labels), "params": {}, "tuned_on": None,
            "note": "no thresholds given or tuned: every label decided at 0.5",
        }


class _plotting:
    """Context: turn a missing matplotlib into an ``InputError`` that says how to do without it."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if isinstance(exc, ImportError) and str(getattr(exc, "name", "") or "").split(".")[0] == "matplotlib":
            raise InputError("the plots and report.html need matplotlib, which cannot be imported "
                             f"({exc}); install it (pip install matplotlib) or pass --no-plots "
                             "(plots=False, html=False) to write only metrics.json and thresholds.json") from None
        return False


# Every name an evaluation or a comparison writes at the top of its folder: an older run's copies
# are replaced or dropped, never kept beside the new report.
OWNED_FILES = tuple(dict.fromkeys(("metrics.json", "thresholds.json", *REPORT_FILES, *COMPARISON_FILES)))


def _write_files(out: Path, files: Mapping[str, str | bytes], owned: Sequence[str] = ()) -> dict[str, Path]:
    """Write ``files`` (rendered already; ``{relative path: content}``, the summary JSON first) as the
    folder ``out``, never mixed with an older run (:func:`labelwise.io.write_tree`)."""
    from ..io import write_tree

    return write_tree(out, dict(files), owned=tuple(dict.fromkeys((*OWNED_FILES, *owned))))


def _verdict(low: float, high: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "n/a"
    if low > 0:
        return "higher"
    if high < 0:
        return "lower"
    return "no clear difference"


@dataclass
class ComparisonResult:
    """Several strategies (score files, models) evaluated on the same truth; see :func:`compare`.

    ``results[name]`` is each strategy's :class:`EvaluationResult` (its CIs from the shared
    resamples); ``paired`` the :class:`~labelwise.metrics.bootstrap.PairedBootstrapResult`
    (None without bootstrap) with the differences of every strategy to ``reference``.
    """

    names: tuple[str, ...]
    reference: str
    results: dict[str, EvaluationResult]
    paired: Any
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> tuple[str, ...]:
        """Label names, in column order (the same for every strategy)."""
        return self.results[self.reference].labels

    @property
    def n_samples(self) -> int:
        """Number of images (rows of the truth)."""
        return self.results[self.reference].n_samples

    @property
    def level(self) -> float:
        """Confidence level of every interval."""
        return float(self.results[self.reference].bootstrap.get("level", 0.95))

    def _diff(self, name: str, metric: str):
        if self.paired is None or name == self.reference:
            return None
        return self.paired.differences[name][metric]

    def summary_rows(self) -> list[dict[str, Any]]:
        """One dict per strategy: macro AUC/AP with CIs, micro/macro F1, subset accuracy, Hamming loss,
        and (except the reference) the paired difference of macro AUC/AP to the reference with its CI
        and a verdict ("higher", "lower", "no clear difference": whether the CI excludes 0)."""
        rows = []
        for name in self.names:
            r = self.results[name]
            av, ci = r.averages, r.averages_ci
            row: dict[str, Any] = {"strategy": name, "reference": name == self.reference}
            for key in ("auc_macro", "ap_macro"):
                lo, hi = ci.get(key, (math.nan, math.nan))
                row[key], row[f"{key}_low"], row[f"{key}_high"] = av.get(key, math.nan), lo, hi
            for key in ("auc_micro", "f1_micro", "f1_macro", "subset_accuracy", "hamming_loss"):
                row[key] = av.get(key, math.nan)
            row["thresholds"] = r.threshold_source
            for metric, key in (("roc_auc", "auc_macro"), ("average_precision", "ap_macro")):
                d = self._diff(name, metric)
                if d is None:
                    if name != self.reference:  # no bootstrap: the point difference only
                        row[f"{key}_diff"] = av.get(key, math.nan) - self.results[self.reference].averages.get(key, math.nan)
                        row[f"{key}_diff_low"] = row[f"{key}_diff_high"] = math.nan
                        row[f"{key}_verdict"] = "n/a"
                    continue
                cover = (r.summary.get("averages_cover") or {}).get("labels")
                if cover is not None and d.samples is not None:  # the labels the averages cover
                    row[f"{key}_diff"], lo, hi = d.macro_over(np.array([x in cover for x in r.labels]))
                    row[f"{key}_diff_low"], row[f"{key}_diff_high"] = lo, hi
                else:
                    row[f"{key}_diff"], row[f"{key}_diff_low"], row[f"{key}_diff_high"] = (
                        d.macro_point, d.macro_low, d.macro_high)
                row[f"{key}_verdict"] = _verdict(row[f"{key}_diff_low"], row[f"{key}_diff_high"])
            rows.append(row)
        return rows

    def per_label_auc(self) -> list[dict[str, Any]]:
        """One dict per label: positives, each strategy's AUC (and CI), and each non-reference
        strategy's paired AUC difference to the reference with its CI and verdict."""
        out = []
        ref = self.results[self.reference]
        for j, label in enumerate(self.labels):
            row: dict[str, Any] = {"label": label, "positives": ref.rows[j].positives, "auc": {}, "auc_low": {},
                                   "auc_high": {}, "difference": {}}
            for name in self.names:
                lr = self.results[name].rows[j]
                row["auc"][name], row["auc_low"][name], row["auc_high"][name] = lr.auc, lr.auc_low, lr.auc_high
                if name == self.reference:
                    continue
                d = self._diff(name, "roc_auc")
                if d is None:
                    point, lo, hi = lr.auc - ref.rows[j].auc, math.nan, math.nan
                else:
                    point, lo, hi = float(d.point[j]), float(d.low[j]), float(d.high[j])
                row["difference"][name] = {"point": point, "low": lo, "high": hi, "verdict": _verdict(lo, hi)}
            out.append(row)
        return out

    def to_frame(self):
        """pandas DataFrame, one row per label: each strategy's AUC with CI and its difference to the
        reference (see :func:`labelwise.evaluation.notebook.comparison_frame`)."""
        from .notebook import comparison_frame

        return comparison_frame(self)

    def plot_roc(self):
        """Every strategy's ROC curve overlaid, one panel per label: a matplotlib Figure."""
        from .report import plots as P

        with _plotting():
            ref = self.results[self.reference]
            return P.roc_overlay_grid(ref.y_true, {n: self.results[n].y_score for n in self.names}, list(self.labels),
                                      auc={n: [r.auc for r in self.results[n].rows] for n in self.names},
                                      as_figure=True)

    def _repr_html_(self) -> str:
        from .notebook import comparison_html

        return comparison_html(self)

    def comparison_dict(self) -> dict[str, Any]:
        """The comparison section alone (what ``comparison.json`` holds)."""
        boot = dict(self.results[self.reference].bootstrap)
        doc: dict[str, Any] = {
            "reference": self.reference,
            "strategies": list(self.names),
            "n_samples": self.n_samples,
            "labels": list(self.labels),
            "bootstrap": {**boot, "paired": self.paired is not None},
            "summary": self.summary_rows(),
            "per_label_auc": self.per_label_auc(),
            "notes": self.notes(),
        }
        if self.paired is not None:
            doc["per_label_ap_difference"] = {
                name: {"point": d["average_precision"].point.tolist(), "low": d["average_precision"].low.tolist(),
                       "high": d["average_precision"].high.tolist()}
                for name, d in self.paired.differences.items()}
        doc.update({k: v for k, v in self.summary.items() if k not in doc})
        return doc

    def to_dict(self) -> dict[str, Any]:
        """One JSON-ready document: ``strategies`` ({name: EvaluationResult.to_dict()}) and ``comparison``."""
        return {"reference": self.reference,
                "strategies": {name: self.results[name].to_dict() for name in self.names},
                "comparison": self.comparison_dict()}

    def notes(self) -> list[str]:
        """How to read the comparison (paired intervals, multiplicity, thresholds)."""
        level = int(round(100 * self.level))
        out = []
        if self.paired is not None:
            out.append(f"differences are strategy - {self.reference}, each resample applied to both strategies "
                       f"(paired bootstrap); a {level}% CI that excludes 0 says the gap is unlikely to be resampling noise")
            if len(self.labels) > 1:
                out.append("per-label intervals are not adjusted for multiple comparisons: with many labels, "
                           "expect some to exclude 0 by chance; judge by the macro difference first")
        elif self.summary.get("unknown_cells"):
            out.append("unknown truth cells: each strategy's intervals come from its labels' known rows; no paired "
                       "differences between strategies")
        else:
            out.append("no bootstrap (--bootstrap 0): differences without intervals; cannot tell noise from a real gap")
        left_out = self.results[self.reference].bootstrap.get("ci_left_out") or {}
        if self.paired is not None and left_out:
            n_min = self.results[self.reference].bootstrap.get("min_class_count")
            out.append(f"no interval and no verdict for {len(left_out)} label(s) with fewer than {n_min} positives or "
                       "negatives: " + ", ".join(f"{k} ({v})" for k, v in left_out.items())
                       + "; the macro differences average the other labels, the same ones in every resample")
        if any("optimistic" in self.results[n].threshold_source for n in self.names):
            out.append("thresholds were tuned on this data for each strategy: F1, subset accuracy and Hamming loss "
                       "are optimistic; AUC and AP do not depend on thresholds")
        return out

    # ------------------------------------------------------------------ text
    def format_table(self, *, per_strategy: bool = True, diagnostics: bool = True) -> str:
        """Text: each strategy's per-label table (no classification report), then the comparison."""
        lines: list[str] = []
        if per_strategy:
            for name in self.names:
                r = self.results[name]
                src = r.summary.get("scores")
                head = f"=== {name}" + (" (reference)" if name == self.reference else "") + (f": {src}" if src else "")
                lines += [head + " ===", r.format_table(diagnostics=diagnostics, report=False).rstrip(), ""]
        lines += self.format_comparison().rstrip().splitlines()
        return "\n".join(lines) + "\n"

    def format_comparison(self) -> str:
        """Text of the comparison alone: the summary, the paired differences and the per-label AUC table."""
        level = int(round(100 * self.level))
        has_ci = self.paired is not None
        ci = f" [{level}% CI]" if has_ci else ""
        boot = self.results[self.reference].bootstrap
        lines = [f"=== Comparison: {len(self.names)} strategies on {self.n_samples} images, {len(self.labels)} labels; "
                 f"reference: {self.reference} ===", ""]
        srcs = {n: self.results[n].threshold_source for n in self.names}
        if len(set(srcs.values())) == 1:
            lines.append(f"thresholds: {next(iter(srcs.values()))}")
        else:
            lines += ["thresholds:"] + [f"  {n}: {s}" for n, s in srcs.items()]
        lines.append("")
        rows = self.summary_rows()
        body = [[r["strategy"], _fmt_ci(r["auc_macro"], r["auc_macro_low"], r["auc_macro_high"], has_ci),
                 _fmt_ci(r["ap_macro"], r["ap_macro_low"], r["ap_macro_high"], has_ci), _fmt(r["f1_micro"]),
                 _fmt(r["f1_macro"]), _fmt(r["subset_accuracy"]), _fmt(r["hamming_loss"])] for r in rows]
        lines += _table(["strategy", "macro AUC" + ci, "macro AP" + ci, "micro F1", "macro F1", "subset acc",
                         "Hamming"], body, right=range(1, 7))
        others = [r for r in rows if not r["reference"]]
        if others:
            unit = boot.get("unit", "images")
            lines += ["", (f"Paired difference vs {self.reference} ({boot.get('n_resamples', 0)} resamples of {unit}, "
                           "the same for every strategy):") if has_ci else f"Difference vs {self.reference} (no bootstrap):"]
            body = [[r["strategy"], _fmt_diff(r["auc_macro_diff"], r["auc_macro_diff_low"], r["auc_macro_diff_high"]),
                     _fmt_diff(r["ap_macro_diff"], r["ap_macro_diff_low"], r["ap_macro_diff_high"]),
                     r["auc_macro_verdict"]] for r in others]
            lines += _table(["strategy", "macro AUC diff" + ci, "macro AP diff" + ci, "verdict (AUC)"], body, right=[1, 2])
        lines += ["", "AUC per label" + (f" (diff = strategy - {self.reference}, paired {level}% CI; "
                                          "* the CI excludes 0)" if others and has_ci else "") + ":"]
        head = ["label", "pos"] + list(self.names) + [f"diff {n}" + ci for n in self.names if n != self.reference]
        body = []
        for r in self.per_label_auc():
            cells = [r["label"], str(r["positives"])] + [_fmt(r["auc"][n]) for n in self.names]
            for n in self.names:
                if n == self.reference:
                    continue
                d = r["difference"][n]
                mark = " *" if d["verdict"] in ("higher", "lower") else "  "
                cells.append(_fmt_diff(d["point"], d["low"], d["high"]) + (mark if has_ci else ""))
            body.append(cells)
        lines += _table(head, body, right=range(1, len(head)))
        notes = self.notes()
        if notes:
            lines += ["", "Notes:"] + [f"  - {x}" for x in notes]
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ files
    def save(self, out_dir: str | Path, *, plots: bool = True, html: bool = True) -> dict[str, Path]:
        """Write each strategy's usual outputs to ``out_dir/<name>/`` (see :meth:`EvaluationResult.save`),
        plus ``comparison.json`` and, with ``html``, ``report.html`` (self-contained: the comparison tables,
        per-label ROC curves of every strategy overlaid, the per-label AUC differences) and its PNGs with
        ``plots``. The folder is written as a whole, never mixed with an older run (see
        :meth:`EvaluationResult.save`). Returns ``{relative name: path}``."""
        from ..io import json_text

        out = Path(out_dir)
        for name in self.names:
            check_strategy_name(name)
        # Render everything first: a failure part-way writes nothing (see EvaluationResult.save).
        rendered = {name: self.results[name]._render(plots=plots, html=html) for name in self.names}
        files: dict[str, str | bytes] = {"comparison.json": json_text(self.comparison_dict()) + "\n"}
        if plots or html:
            with _plotting():
                from .report import plots as P

                images = P.comparison_plots(self)
            if plots:
                files.update({f"{key}.png": png for key, png in images.items()})
            if html:
                from .report.html import render_comparison_report

                files["report.html"] = render_comparison_report(self, images)
        tree = dict(files)  # comparison.json first: in the in-place fallback it is written last
        for name in self.names:
            tree.update({f"{name}/{key}": content for key, content in rendered[name].items()})
        return _write_files(out, tree, owned=self.names)
