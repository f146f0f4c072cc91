"""One call from (truth, scores) to everything a practitioner reads about a multi-label model.

``evaluate`` turns scores into decisions (given thresholds, thresholds tuned on the spot, or
0.5), then computes per label: positives, AUC and AP with bootstrap confidence intervals
(resampling images, or patients with ``groups``), the threshold, precision, recall,
specificity and F1; the averages (macro/micro/weighted); the classification report; and
the model-health diagnostics. The result prints as a text table, serialises to JSON, and
saves a folder with ``metrics.json``, ``thresholds.json``, PNG plots and ``report.html``.

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
from .schema import LabelSchema, load_schema

__all__ = ["evaluate", "EvaluationResult", "LabelRow", "parse_tune", "scores_from_logits"]

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
            for kind in ("macro", "micro", "weighted"):
                k = f"{key}_{kind}"
                if k in av:
                    low, high = self.averages_ci.get(k, (math.nan, math.nan))
                    avg_rows.append([f"{kind} {name}", _fmt_ci(av[k], low, high, k in self.averages_ci)])
        for k, name in (("f1_macro", "macro F1"), ("f1_micro", "micro F1"), ("precision_macro", "macro precision"),
                        ("recall_macro", "macro recall"), ("specificity_macro", "macro specificity"),
                        ("hamming_loss", "Hamming loss"), ("subset_accuracy", "subset accuracy")):
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

        Every file is written atomically. Returns ``{name: path}``.
        """
        from .io import write_bytes, write_json

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written: dict[str, Path] = {}
        written["metrics.json"] = write_json(out / "metrics.json", self.to_dict())
        written["thresholds.json"] = self._save_thresholds(out / "thresholds.json")
        images: dict[str, bytes] = {}
        if plots or html:
            from .report import plots as P

            images = P.all_plots(self)
            if plots:
                for name, png in images.items():
                    written[f"{name}.png"] = write_bytes(out / f"{name}.png", png)
        if html:
            from .report.html import write_report

            written["report.html"] = write_report(self, out / "report.html", images=images)
        return written

    def _save_thresholds(self, path: Path) -> Path:
        from .io import write_json

        if self.thresholds is not None and hasattr(self.thresholds, "save"):
            self.thresholds.save(path)
            return path
        return write_json(path, {
            "method": "default", "labels": list(self.labels),
            "values": [0.5] * len(self.labels), "params": {}, "tuned_on": None,
            "note": "no thresholds given or tuned: every label decided at 0.5",
        })


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
    from . import metrics as M
    from . import thresholds as T

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
    if from_logits:
        ys = scores_from_logits(ys[:, : schema.n_outputs], schema)
    elif ys.size and np.isfinite(ys).all() and (ys.min() < 0 or ys.max() > 1):
        raise InputError(
            f"y_score ranges {ys.min():.4g}..{ys.max():.4g}, outside [0, 1]: these look like logits; pass "
            "from_logits=True (labelwise evaluate --from-logits) to apply the head's sigmoid/softmax"
        )
    if ys.shape[1] == schema.n_outputs and schema.none:
        ys = schema.complete_scores(ys)
    yt = yt.astype(np.uint8)
    names = list(schema.labels)
    n = yt.shape[0]
    notes: list[str] = []

    # ---- decisions
    if thresholds is not None and tune is not None:
        raise InputError("give either thresholds (from a validation set) or tune (on this data), not both")
    if thresholds is not None:
        if isinstance(thresholds, (str, Path)):
            source = f"from {thresholds}"
            thresholds = T.Thresholds.load(thresholds)
        else:
            source = "given"
        missing = [x for x in schema.independent if x not in list(thresholds.labels)]
        if missing:
            raise InputError(f"the thresholds have no value for {missing}; tune them over this schema's labels")
        source += f" ({thresholds.method})"
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined values become n/a with a note below
        auc = _arr(M.roc_auc_score(yt, ys, average=None, labels=names))
        ap = _arr(M.average_precision_score(yt, ys, average=None, labels=names))
        prec = _arr(M.precision_score(yt, y_pred, average=None, labels=names))
        rec = _arr(M.recall_score(yt, y_pred, average=None, labels=names))
        spec = _arr(M.specificity_score(yt, y_pred, average=None, labels=names))
        f1 = _arr(M.f1_score(yt, y_pred, average=None, labels=names))
        averages: dict[str, float] = {}
        for kind in ("macro", "micro", "weighted"):
            averages[f"auc_{kind}"] = _num(M.roc_auc_score(yt, ys, average=kind, labels=names))
            averages[f"ap_{kind}"] = _num(M.average_precision_score(yt, ys, average=kind, labels=names))
        for kind in ("macro", "micro"):
            averages[f"f1_{kind}"] = _num(M.f1_score(yt, y_pred, average=kind, labels=names))
            averages[f"precision_{kind}"] = _num(M.precision_score(yt, y_pred, average=kind, labels=names))
            averages[f"recall_{kind}"] = _num(M.recall_score(yt, y_pred, average=kind, labels=names))
        averages["specificity_macro"] = _num(M.specificity_score(yt, y_pred, average="macro", labels=names))
        averages["hamming_loss"] = _num(M.hamming_loss(yt, y_pred))
        averages["subset_accuracy"] = _num(M.subset_accuracy(yt, y_pred))
        report_text = M.classification_report(yt, y_pred, labels=names)
        report_dict = M.classification_report(yt, y_pred, labels=names, output_dict=True)

    ci = {k: np.full((len(names), 2), np.nan) for k in ("roc_auc", "average_precision")}
    averages_ci: dict[str, tuple[float, float]] = {}
    boot_info: dict[str, Any] = {"n_resamples": int(bootstrap), "level": level, "seed": seed,
                                 "unit": "groups" if groups is not None else "images"}
    if bootstrap and bootstrap > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = M.bootstrap_ci(yt, ys, metrics=("roc_auc", "average_precision"), n_resamples=int(bootstrap),
                                 level=level, seed=seed, groups=groups, labels=names,
                                 **({"progress": progress} if progress is not None else {}))
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
        if pos == 0 or pos == n:
            row_notes.append(f"only {'positives' if pos else 'negatives'} in this data: AUC/AP undefined")
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
                        independent=list(schema.independent))
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
