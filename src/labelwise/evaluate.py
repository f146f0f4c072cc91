"""One call from (truth, scores) to everything a practitioner reads about a multi-label model.

``evaluate`` turns scores into decisions (given thresholds, thresholds tuned on the spot, or
0.5), then computes per label: positives, AUC and AP with bootstrap confidence intervals
(resampling images, or patients with ``groups``), the threshold, precision, recall,
specificity and F1; the averages (macro/micro/weighted); the classification report; and
the model-health diagnostics. The result prints as a text table, serialises to JSON, and
saves a folder with ``metrics.json``, ``thresholds.json``, PNG plots and ``report.html``.

``compare`` evaluates several strategies (score files, models) on the same truth side by side:
each gets its own ``evaluate``, and a paired bootstrap (the same resamples for every strategy)
gives the difference of macro AUC/AP and of each label's AUC to a reference strategy, with a
confidence interval, so a gap can be told from noise.

The metrics themselves live in :mod:`labelwise.metrics` and :mod:`labelwise.thresholds`;
this module only binds them together. It imports neither Keras nor matplotlib at the top.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .diagnostics import Finding, diagnose, format_findings
from .errors import InputError
from .metrics._validation import check_scores, check_targets
from .schema import LabelSchema, load_schema

__all__ = ["evaluate", "EvaluationResult", "LabelRow", "parse_tune", "scores_from_logits", "compare",
           "ComparisonResult", "check_strategy_name"]

OPTIMISM_NOTE = (
    "thresholds were tuned on the same data they are evaluated on: the threshold-dependent metrics "
    "(precision, recall, specificity, F1) are optimistic. Tune on a validation set "
    "(labelwise thresholds --truth val.csv ...) and pass --thresholds here."
)

COLLAPSE_NOTE = ("the diagnostics found a collapsed or chance-level model: do not trust these metrics before "
                 "fixing it (see Diagnostics)")

_TUNE_METHODS = {"f1": "f1", "youden": "youden", "fbeta": "fbeta", "sensitivity": "sensitivity",
                 "recall": "sensitivity", "tpr": "sensitivity", "specificity": "specificity",
                 "tnr": "specificity", "precision": "precision", "ppv": "precision"}


def parse_tune(spec: str) -> dict[str, Any]:
    """Parse a tuning rule into ``tune_thresholds`` keyword arguments.

    ``"f1"``, ``"youden"``, ``"fbeta=2"`` (beta), ``"sensitivity=0.9"`` / ``"recall=0.9"``,
    ``"specificity=0.95"``, ``"precision=0.8"`` (target in (0, 1]).
    """
    text = str(spec).strip().lower().replace(" ", "")
    m = re.fullmatch(r"([a-z0-9_]+)(?:[=:]([0-9.eE+-]+))?", text)
    if not m or m.group(1) not in _TUNE_METHODS:
        raise InputError(
            f"unknown tuning rule {spec!r}; use one of: f1, youden, fbeta=2, sensitivity=0.9, "
            "specificity=0.95, precision=0.8"
        )
    method, value = _TUNE_METHODS[m.group(1)], m.group(2)
    try:
        number = float(value) if value is not None else None
    except ValueError:
        raise InputError(f"tuning rule {spec!r}: {value!r} is not a number") from None
    if method in ("f1", "youden"):
        if number is not None:
            raise InputError(f"tuning rule {spec!r}: {method} takes no value; write just {method!r}")
        return {"method": method}
    if method == "fbeta":
        if number is None or not number > 0:
            raise InputError(f"tuning rule {spec!r}: fbeta needs a positive beta, e.g. fbeta=2 (recall weighs 2x)")
        return {"method": "fbeta", "beta": number}
    if number is None or not 0 < number <= 1:
        raise InputError(
            f"tuning rule {spec!r}: {method} needs a target in (0, 1], e.g. {method}=0.9"
        )
    return {"method": method, "target": number}


def scores_from_logits(logits: np.ndarray, schema: LabelSchema) -> np.ndarray:
    """Turn head logits (n, n_outputs) into probabilities: sigmoid for the independent block,
    softmax within each exclusive group (the head's own activations)."""
    z = np.asarray(logits, dtype=np.float64)
    out = np.empty_like(z)
    for block in schema.layout:
        zb = z[:, block.start:block.stop]
        if block.kind == "sigmoid":
            out[:, block.start:block.stop] = 0.5 * (1.0 + np.tanh(0.5 * zb))  # overflow-free sigmoid
        else:
            e = np.exp(zb - zb.max(axis=1, keepdims=True))
            out[:, block.start:block.stop] = e / e.sum(axis=1, keepdims=True)
    return out


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
    thresholds: Any  # labelwise.thresholds.Thresholds, or None for the default 0.5
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
                   if self.thresholds is not None else {"method": "default"}),
            },
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
        lines = [f"{self.n_samples} images, {len(self.labels)} labels; thresholds: {self.threshold_source}"]
        lines += [f"!! {f.message}" for f in self.findings if f.label is None and f.severity == "error"]
        lines.append("")
        lines += _table(head, body, right=range(1, len(head)))
        if footnotes:
            lines += ["", "n/a = undefined; * notes:"] + [f"  {x}" for x in footnotes]
        lines += ["", "Averages:"]
        av = self.averages
        avg_rows = []
        for key, name in (("auc", "AUC"), ("ap", "AP")):
            for kind in ("macro", "micro", "weighted", "samples"):
                k = f"{key}_{kind}"
                if k in av:
                    low, high = self.averages_ci.get(k, (math.nan, math.nan))
                    avg_rows.append([f"{kind} {name}", _fmt_ci(av[k], low, high, k in self.averages_ci)])
        for k, name in (("f1_macro", "macro F1"), ("f1_micro", "micro F1"), ("precision_macro", "macro precision"),
                        ("recall_macro", "macro recall"), ("specificity_macro", "macro specificity"),
                        ("hamming_loss", "Hamming loss"), ("subset_accuracy", "subset accuracy"),
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

    # ------------------------------------------------------------------ files
    def save(self, out_dir: str | Path, *, plots: bool = True, html: bool = True) -> dict[str, Path]:
        """Write ``metrics.json``, ``thresholds.json``, PNG plots and ``report.html`` into ``out_dir``.

        Everything is rendered in memory first, so a failure (e.g. matplotlib missing) writes
        nothing; then each file is written atomically, and report files of an earlier run that
        this one does not produce (``report.html`` and PNGs after ``plots=False``) are deleted so
        the folder never mixes two runs. Returns ``{name: path}``.
        """
        return _write_files(Path(out_dir), self._render(plots=plots, html=html), REPORT_FILES)

    def _render(self, *, plots: bool, html: bool) -> dict[str, str | bytes]:
        """Every output file's content, ``{file name: text or bytes}``."""
        from .io import json_text

        files: dict[str, str | bytes] = {
            "metrics.json": json_text(self.to_dict()) + "\n",
            "thresholds.json": json_text(self._thresholds_dict()) + "\n",
        }
        if plots or html:
            with _plotting():
                from .report import plots as P

                images = P.all_plots(self)
            if plots:
                files.update({f"{name}.png": png for name, png in images.items()})
            if html:
                from .report.html import render_report

                files["report.html"] = render_report(self, images)
        return files

    def _thresholds_dict(self) -> dict[str, Any]:
        if self.thresholds is not None and hasattr(self.thresholds, "to_dict"):
            return self.thresholds.to_dict()
        return {
            "method": "default", "labels": list(self.labels),
            "values": [0.5] * len(self.labels), "params": {}, "tuned_on": None,
            "note": "no thresholds given or tuned: every label decided at 0.5",
        }


# The report files ``EvaluationResult.save`` may write besides the JSON; a later run that does not
# produce one of them deletes it, so a report never describes an older run than metrics.json.
REPORT_FILES = ("report.html", "roc.png", "pr.png", "calibration.png", "histograms.png", "error_cooccurrence.png")


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


def _write_files(out: Path, files: Mapping[str, str | bytes], known: Sequence[str]) -> dict[str, Path]:
    """Write ``files`` (rendered already) into ``out``; delete the ``known`` ones not among them."""
    from .io import write_bytes, write_text

    out.mkdir(parents=True, exist_ok=True)
    for name in known:
        if name not in files:
            (out / name).unlink(missing_ok=True)
    written: dict[str, Path] = {}
    for name, content in files.items():
        path = out / name
        written[name] = write_bytes(path, content) if isinstance(content, bytes) else write_text(path, content)
    return written


# ----------------------------------------------------------------------- API
def evaluate(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    schema: LabelSchema | Mapping[str, Any] | str | Path | None = None,
    labels: Sequence[str] | None = None,
    thresholds: Any = None,
    tune: str | None = None,
    bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    groups: Sequence[Any] | None = None,
    from_logits: bool = False,
    summary: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvaluationResult:
    """Evaluate scores against the truth; see the module docstring.

    ``y_true`` (n, n_labels) 0/1 over ``schema.labels``. ``y_score`` over the same labels, or
    over ``schema.output_labels`` only (the none score is then ``prod(1 - p_i)``); with
    ``from_logits`` they are head logits (sigmoid / per-group softmax applied). Without a
    schema, every label is independent and named by ``labels`` (default ``label_0 ...``).
    Decisions: ``thresholds`` (a ``Thresholds`` or its JSON path), else thresholds tuned on
    this data by the rule ``tune`` (see :func:`parse_tune`; optimistic, and said so), else 0.5.
    ``bootstrap`` resamples (0 = no intervals), of images or of ``groups`` (e.g. patient ids);
    ``progress(done, total)`` is called as the resamples are computed.
    """
    schema, yt, ys = _prepare(y_true, y_score, schema=schema, labels=labels, from_logits=from_logits)
    return _evaluate_prepared(yt, ys, schema, thresholds=thresholds, tune=tune, bootstrap=bootstrap, level=level,
                              seed=seed, groups=groups, summary=summary, progress=progress)


def _prepare(y_true, y_score, *, schema, labels, from_logits):
    """Check and complete ``(y_true, y_score)``: ``(schema, y_true uint8, scores (n, n_labels) float64)``."""
    yt = np.asarray(y_true)
    if yt.ndim != 2:
        raise InputError(f"y_true must be a 2-D (images x labels) 0/1 matrix; got shape {yt.shape}")
    schema = load_schema(schema)
    if schema is None:
        names = list(labels) if labels is not None else [f"label_{j}" for j in range(yt.shape[1])]
        schema = LabelSchema(independent=tuple(names))
    elif labels is not None and tuple(labels) != schema.labels:
        raise InputError(f"labels {list(labels)} differ from the schema's labels {list(schema.labels)}; pass one of them")
    if yt.shape[1] != schema.n_labels:
        raise InputError(
            f"y_true has {yt.shape[1]} columns but the schema has {schema.n_labels} labels {list(schema.labels)}"
        )
    ys = np.asarray(y_score, dtype=np.float64)
    if ys.ndim != 2 or ys.shape[0] != yt.shape[0] or ys.shape[1] not in (schema.n_labels, schema.n_outputs):
        raise InputError(
            f"y_score has shape {ys.shape}; expected ({yt.shape[0]}, {schema.n_labels}) over the labels"
            + (f" or ({yt.shape[0]}, {schema.n_outputs}) over the head outputs" if schema.none else "")
        )
    # NaN or 0.7 in the truth would otherwise be cast silently to 0 by astype(uint8).
    yt, _ = check_targets(yt, "y_true", schema.labels)
    score_names = schema.labels if ys.shape[1] == schema.n_labels else schema.output_labels
    # Finite always; in [0, 1] unless they are logits (check_scores names the label and says what to do).
    ys, _ = check_scores(ys, "y_score", score_names, from_logits=from_logits, apply_sigmoid=False)
    if from_logits:
        ys = scores_from_logits(ys[:, : schema.n_outputs], schema)
    if ys.shape[1] == schema.n_outputs and schema.none:
        ys = schema.complete_scores(ys)
    return schema, yt.astype(np.uint8), ys


def _evaluate_prepared(yt, ys, schema, *, thresholds, tune, bootstrap, level, seed, groups, summary, progress,
                       boot: Mapping[str, Any] | None = None) -> EvaluationResult:
    """:func:`evaluate` on checked inputs; ``boot``: a ``bootstrap_ci`` result computed already (same
    settings), used instead of bootstrapping again (``compare`` passes its paired resamples)."""
    from . import metrics as M
    from . import thresholds as T

    names = list(schema.labels)
    n = yt.shape[0]
    notes: list[str] = []

    # ---- decisions
    if thresholds is not None and tune is not None:
        raise InputError("give either thresholds (from a validation set) or tune (on this data), not both")
    if thresholds is not None:
        where = "the thresholds"
        if isinstance(thresholds, (str, Path)):
            source = f"from {thresholds}"
            where = f"{thresholds}"
            thresholds = T.Thresholds.load(thresholds)
        else:
            source = "given"
        missing = [x for x in schema.independent if x not in list(thresholds.labels)]
        if missing:
            raise InputError(
                f"{where} has no threshold for label(s) {missing}; tune thresholds for every label of this data "
                "on a validation set with these labels (labelwise thresholds --truth val.csv --scores val_scores.csv "
                "--out T.json) and pass that file")
        source += f" ({thresholds.method})"
        # The tuning run recorded a hash of its (truth, scores): equal means tuned on this very data.
        if (thresholds.tuned_on or {}).get("sha256") == _fingerprint_for(thresholds, yt, ys, names):
            source += "; tuned on this same data, optimistic"
            notes.append(OPTIMISM_NOTE)
    elif tune is not None:
        kw = parse_tune(tune)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            thresholds = T.tune_thresholds(yt, ys, labels=names, schema=schema, **kw)
        notes.extend(str(w.message) for w in caught)
        source = f"tuned on this data ({tune}); optimistic"
        notes.append(OPTIMISM_NOTE)
    else:
        source = "default 0.5"
    y_pred = np.asarray(T.decide(ys, schema, thresholds, default=0.5), dtype=np.uint8)

    # ---- per-label metrics
    # zero_division=NaN (scikit-learn's np.nan): a label with no positives has no recall, one with no
    # negatives no specificity; shown as n/a and left out of the averages, never a silent 0.000.
    zd = {"labels": names, "zero_division": np.nan}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined values become n/a with a note below
        auc = _arr(M.roc_auc_score(yt, ys, average=None, labels=names))
        ap = _arr(M.average_precision_score(yt, ys, average=None, labels=names))
        prec = _arr(M.precision_score(yt, y_pred, average=None, **zd))
        rec = _arr(M.recall_score(yt, y_pred, average=None, **zd))
        spec = _arr(M.specificity_score(yt, y_pred, average=None, **zd))
        f1 = _arr(M.f1_score(yt, y_pred, average=None, **zd))
        averages: dict[str, float] = {}
        for kind in ("macro", "micro", "weighted", "samples"):
            averages[f"auc_{kind}"] = _num(M.roc_auc_score(yt, ys, average=kind, labels=names))
            averages[f"ap_{kind}"] = _num(M.average_precision_score(yt, ys, average=kind, labels=names))
        averages["lrap"] = _num(M.label_ranking_average_precision_score(yt, ys, labels=names))
        averages["coverage_error"] = _num(M.coverage_error(yt, ys, labels=names))
        averages["ranking_loss"] = _num(M.label_ranking_loss(yt, ys, labels=names))
        for kind in ("macro", "micro"):
            averages[f"f1_{kind}"] = _num(M.f1_score(yt, y_pred, average=kind, **zd))
            averages[f"precision_{kind}"] = _num(M.precision_score(yt, y_pred, average=kind, **zd))
            averages[f"recall_{kind}"] = _num(M.recall_score(yt, y_pred, average=kind, **zd))
        averages["specificity_macro"] = _num(M.specificity_score(yt, y_pred, average="macro", **zd))
        averages["hamming_loss"] = _num(M.hamming_loss(yt, y_pred))
        averages["subset_accuracy"] = _num(M.subset_accuracy(yt, y_pred))
        report_text = M.classification_report(yt, y_pred, **zd)
        report_dict = M.classification_report(yt, y_pred, output_dict=True, **zd)
    notes.extend(_left_out_notes(names, AUC=auc, AP=ap, precision=prec, recall=rec, specificity=spec, F1=f1))

    ci = {k: np.full((len(names), 2), np.nan) for k in ("roc_auc", "average_precision")}
    averages_ci: dict[str, tuple[float, float]] = {}
    boot_info: dict[str, Any] = {"n_resamples": int(bootstrap), "level": level, "seed": seed,
                                 "unit": "groups" if groups is not None else "images"}
    if bootstrap and bootstrap > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = boot if boot is not None else M.bootstrap_ci(
                yt, ys, metrics=("roc_auc", "average_precision"), n_resamples=int(bootstrap), level=level,
                seed=seed, groups=groups, labels=names, **({"progress": progress} if progress is not None else {}))
        alpha = (1 - level) / 2
        for metric, key in (("roc_auc", "auc"), ("average_precision", "ap")):
            r = res[metric]
            ci[metric][:, 0] = _arr(r.low)
            ci[metric][:, 1] = _arr(r.high)
            lo, hi = _num(getattr(r, "macro_low", math.nan)), _num(getattr(r, "macro_high", math.nan))
            if not (math.isfinite(lo) and math.isfinite(hi)) and r.samples is not None:
                samples = np.asarray(r.samples, dtype=np.float64)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    macro = np.nanmean(samples, axis=1)  # macro average per resample
                macro = macro[np.isfinite(macro)]
                if macro.size:
                    lo, hi = float(np.quantile(macro, alpha)), float(np.quantile(macro, 1 - alpha))
            if math.isfinite(lo) and math.isfinite(hi):
                averages_ci[f"{key}_macro"] = (lo, hi)
        if groups is not None:
            boot_info["n_groups"] = int(len(set(np.asarray(groups).tolist())))

    # ---- rows
    rows = []
    thr_values = dict(zip(map(str, thresholds.labels), map(float, thresholds.values))) if thresholds is not None else {}
    positives = yt.sum(axis=0).astype(int)
    predicted = y_pred.sum(axis=0).astype(int)
    for j, label in enumerate(names):
        if label == schema.none:
            rule, thr = "derived", math.nan
        elif schema.group_of(label) is not None:
            rule, thr = "argmax", math.nan
        else:
            rule, thr = "threshold", thr_values.get(label, 0.5)
        row_notes = []
        if rule == "threshold" and not math.isfinite(thr):
            row_notes.append("no threshold could be tuned here; decided at 0.5")
            thr = 0.5
        pos = int(positives[j])
        if pos == 0:
            row_notes.append("only negatives in this data: AUC/AP undefined; no positives, so recall"
                             + (" and F1" if not math.isfinite(f1[j]) else "") + " undefined")
        elif pos == n:
            row_notes.append("only positives in this data: AUC/AP undefined; no negatives, so specificity undefined")
        if predicted[j] == 0:
            row_notes.append("no positive decisions: precision undefined")
        rows.append(LabelRow(
            label=label, positives=pos, prevalence=pos / n if n else math.nan,
            auc=float(auc[j]), auc_low=float(ci["roc_auc"][j, 0]), auc_high=float(ci["roc_auc"][j, 1]),
            ap=float(ap[j]), ap_low=float(ci["average_precision"][j, 0]), ap_high=float(ci["average_precision"][j, 1]),
            threshold=float(thr), rule=rule, predicted=int(predicted[j]), precision=float(prec[j]),
            recall=float(rec[j]), specificity=float(spec[j]), f1=float(f1[j]), notes=row_notes,
        ))

    # ---- diagnostics (on the bootstrap interval when there is one)
    auc_ci = ci["roc_auc"] if bootstrap and bootstrap > 0 else None
    findings = diagnose(yt, ys, labels=names, auc=auc, auc_ci=auc_ci, level=level,
                        independent=list(schema.independent), groups=dict(schema.exclusive))
    if any(f.code in ("collapse", "chance") for f in findings):
        notes.insert(0, COLLAPSE_NOTE)

    summ = {"n_images": n, "n_labels": len(names), "positives": {x: int(p) for x, p in zip(names, positives)},
            "labels_per_image": float(yt[:, : len(schema.independent)].sum(axis=1).mean()) if schema.independent else math.nan}
    summ.update(dict(summary or {}))
    return EvaluationResult(
        schema=schema, rows=rows, averages=averages, averages_ci=averages_ci, thresholds=thresholds,
        threshold_source=source, classification_report=str(report_text),
        classification_report_dict=dict(report_dict), findings=findings, notes=notes, n_samples=n,
        bootstrap=boot_info, y_true=yt, y_score=ys, y_pred=y_pred, summary=summ,
    )


def _fingerprint_for(thresholds, yt: np.ndarray, ys: np.ndarray, names: Sequence[str]) -> str | None:
    """The hash ``tune_thresholds`` would record for this (truth, scores), over the columns the
    thresholds were tuned on (all labels, or the head outputs only); None when they differ."""
    from .thresholds import _fingerprint

    cols = [names.index(x) for x in thresholds.labels if x in names]
    if len(cols) != len(thresholds.labels):
        return None
    return _fingerprint(yt[:, cols], ys[:, cols])


def _left_out_notes(names, **per_label: np.ndarray) -> list[str]:
    """Say which labels each macro average leaves out because the label's value is undefined (NaN)."""
    why = {"AUC": "one class only", "AP": "one class only", "recall": "no positives", "specificity": "no negatives",
           "precision": "never predicted positive", "F1": "no positives and none predicted"}
    out = []
    for metric, values in per_label.items():
        gone = [names[j] for j in range(len(names)) if not np.isfinite(values[j])]
        if gone and len(gone) < len(names):
            out.append(f"macro {metric} left out {', '.join(map(repr, gone))} ({why[metric]}: undefined, shown as n/a)")
    return out


# ------------------------------------------------------------ comparison
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
                row[f"{key}_diff"], row[f"{key}_diff_low"], row[f"{key}_diff_high"] = (
                    d.macro_point, d.macro_low, d.macro_high)
                row[f"{key}_verdict"] = _verdict(d.macro_low, d.macro_high)
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
        else:
            out.append("no bootstrap (--bootstrap 0): differences without intervals; cannot tell noise from a real gap")
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
        ``plots``. Every file is written atomically. Returns ``{relative name: path}``."""
        from .io import json_text

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
        written: dict[str, Path] = {}
        for name in self.names:
            for key, path in _write_files(out / name, rendered[name], REPORT_FILES).items():
                written[f"{name}/{key}"] = path
        written.update(_write_files(out, files, COMPARISON_FILES))
        return written


def compare(
    y_true: np.ndarray,
    scores: Mapping[str, np.ndarray],
    *,
    schema: LabelSchema | Mapping[str, Any] | str | Path | None = None,
    labels: Sequence[str] | None = None,
    reference: str | None = None,
    thresholds: Any = None,
    tune: str | None = None,
    bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    groups: Sequence[Any] | None = None,
    from_logits: bool = False,
    summary: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ComparisonResult:
    """Evaluate several strategies' scores on the same truth, side by side, with paired bootstrap differences.

    ``scores``: ``{name: (n, n_labels) scores}`` (or over the head outputs; logits with
    ``from_logits``), at least one, for the rows of ``y_true``; names as in
    :func:`check_strategy_name`. ``reference`` (default: the first) is what every other strategy
    is compared to. Each strategy gets a full :func:`evaluate` (same schema, ``tune`` applied to
    its own scores; ``thresholds`` one ``Thresholds``/path for all, or ``{name: thresholds}`` for
    each). With ``bootstrap`` > 0, every strategy is resampled on the SAME resamples
    (:func:`labelwise.metrics.bootstrap.paired_bootstrap`, of images or of ``groups``): each
    strategy's intervals equal those of ``evaluate`` with the same ``seed``, and the difference of
    macro AUC/AP and of each label's AUC/AP to the reference gets a percentile interval over the
    per-resample differences. ``summary`` is added to each strategy's summary and to the comparison.
    """
    from .metrics.bootstrap import paired_bootstrap

    if not isinstance(scores, Mapping) or not scores:
        raise InputError("compare needs scores as a non-empty mapping {strategy name: scores array}")
    names = tuple(check_strategy_name(k) for k in scores)
    ref = names[0] if reference is None else str(reference)
    if ref not in names:
        raise InputError(f"reference {ref!r} is not one of the strategies {list(names)}")
    if thresholds is not None and tune is not None:
        raise InputError("give either thresholds (from a validation set) or tune (on this data), not both")
    if isinstance(thresholds, Mapping):
        missing = [n for n in names if n not in thresholds]
        extra = [str(k) for k in thresholds if k not in names]
        if missing or extra:
            raise InputError(f"thresholds per strategy must name exactly the strategies {list(names)}"
                             + (f"; none given for {missing}" if missing else "")
                             + (f"; unknown {extra}" if extra else ""))
    if tune is not None:
        parse_tune(tune)  # fail before any work
    schema = load_schema(schema)
    prepared: dict[str, np.ndarray] = {}
    yt = None
    for name in names:
        try:
            schema, yt, prepared[name] = _prepare(y_true, scores[name], schema=schema, labels=labels,
                                                  from_logits=from_logits)
        except InputError as e:
            raise InputError(f"strategy {name!r}: {e}") from None
        labels = None  # the schema (given or built from labels) now fixes the labels
    boot = None
    if bootstrap and bootstrap > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            boot = paired_bootstrap(yt, prepared, reference=ref, metrics=("roc_auc", "average_precision"),
                                    n_resamples=int(bootstrap), level=level, seed=seed, groups=groups,
                                    labels=list(schema.labels), progress=progress)
    results = {}
    for name in names:
        th = thresholds[name] if isinstance(thresholds, Mapping) else thresholds
        try:
            results[name] = _evaluate_prepared(
                yt, prepared[name], schema, thresholds=th, tune=tune, bootstrap=bootstrap, level=level, seed=seed,
                groups=groups, summary={**dict(summary or {}), "strategy": name}, progress=None,
                boot=boot.results[name] if boot is not None else None)
        except InputError as e:
            raise InputError(f"strategy {name!r}: {e}") from None
    return ComparisonResult(names=names, reference=ref, results=results, paired=boot, summary=dict(summary or {}))


# ------------------------------------------------------------------- helpers
def _arr(x: Any) -> np.ndarray:
    return np.atleast_1d(np.asarray(x, dtype=np.float64))


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


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
