"""The evaluation as ONE self-contained HTML page (and a comparison of strategies as another).

Images are embedded as base64 ``data:`` URIs and the CSS is inline, so the file can be
mailed, archived or opened offline; the page loads nothing from anywhere. A tiny inline
script marks ``<body data-images-ok="true|false">`` once every image has decoded, which the
headless-browser test reads. Wide tables scroll inside the content column and the Data table's
long values wrap, so the page never overflows (checked at 1,400 px with 25 labels).
"""

from __future__ import annotations

import base64
import html
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from ..results import ComparisonResult, EvaluationResult

__all__ = ["render_report", "write_report", "render_comparison_report", "write_comparison_report"]

_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:0;color:#222;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:24px 28px 60px;background:#fff}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.2em;margin:32px 0 10px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin:0 0 18px}
table{border-collapse:collapse;font-size:13px;margin:6px 0;display:block;max-width:100%;overflow-x:auto}
th,td{padding:4px 9px;border-bottom:1px solid #e6e6e6;text-align:right;white-space:nowrap}
th{background:#f0f2f5;font-weight:600}td:first-child,th:first-child{text-align:left}
tr:hover td{background:#fafbfc}
.ci{color:#777;font-size:11.5px}.na{color:#999;font-style:italic}
.kv td{text-align:left;white-space:normal;overflow-wrap:anywhere}.kv td:first-child{color:#555;padding-right:18px;white-space:nowrap}
.finding{border-left:5px solid;padding:8px 12px;margin:8px 0;border-radius:3px}
.error{border-color:#c0392b;background:#fdecea}.warning{border-color:#e67e22;background:#fff4e5}
.info{border-color:#2c7fb8;background:#eaf3fb}.ok{border-color:#27ae60;background:#eafaf1}
.finding b{text-transform:uppercase;font-size:11px;letter-spacing:.04em;margin-right:6px}
.note{background:#fff8d6;border:1px solid #f1d96b;padding:8px 12px;border-radius:3px;margin:8px 0}
pre{background:#f6f8fa;padding:10px;font-size:12px;overflow-x:auto;border-radius:3px}
figure{margin:14px 0 26px}figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#555;font-size:13px;margin-top:4px}
nav a{margin-right:14px;font-size:13px;color:#2c7fb8}
.bad td{background:#fdecea}
"""

# Sets data-images-ok on <body> after every <img> has loaded with a nonzero size.
_SCRIPT = """
window.addEventListener('load',function(){var imgs=document.images,ok=imgs.length>0;
for(var i=0;i<imgs.length;i++){if(!(imgs[i].complete&&imgs[i].naturalWidth>0)){ok=false;}}
document.body.setAttribute('data-images-ok',ok?'true':'false');
document.body.setAttribute('data-image-count',String(imgs.length));});
"""

_CAPTIONS = {
    "roc": "ROC curve per label; the dotted diagonal is chance. AUC in each legend.",
    "pr": "Precision-recall per label; the dashed line is the prevalence (a random model's precision).",
    "calibration": "Reliability: mean predicted score vs observed positive rate per score bin. "
                   "Points above the diagonal: under-confident; below: over-confident.",
    "histograms": "Score distributions of negatives (blue) and positives (red) per label; "
                  "well separated histograms mean good ranking. Dashed: threshold.",
    "error_cooccurrence": "How often an error on label a comes with an error on label b on the same image. "
                          "Bright rows point at labels that fail together (shared confounders, label noise).",
    "roc_comparison": "Per label, the ROC curve of every strategy (one colour each); AUCs in the legends.",
    "auc_difference": "Per label, AUC of each strategy minus the reference's, with the paired bootstrap interval "
                      "(the same resamples for both). An interval wholly left or right of the dashed zero line is "
                      "unlikely to be resampling noise; intervals are not adjusted for the number of labels.",
}


def _page_start(add, title: str) -> str:
    """Add the document head, the opening tags and the title heading; return the UTC time stamp."""
    add("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">")
    add("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
    add(f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>")
    add(f"<h1>{_e(title)}</h1>")
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _num(x: float, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return '<span class="na">n/a</span>'
    return f"{x:.{digits}f}"


def _ci(v: float, lo: float, hi: float) -> str:
    if v is None or not math.isfinite(v):
        return '<span class="na">n/a</span>'
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{v:.3f}"
    return f'{v:.3f} <span class="ci">[{lo:.3f}, {hi:.3f}]</span>'


def render_report(result: "EvaluationResult", images: Mapping[str, bytes] | None = None, *,
                  title: str = "labelwise evaluation") -> str:
    """The HTML text of the report (images: ``{plot name: PNG bytes}``, embedded as data URIs)."""
    from .plots import PLOT_TITLES

    images = dict(images or {})
    level = int(round(100 * result.bootstrap.get("level", 0.95)))
    boot_n = int(result.bootstrap.get("n_resamples", 0))
    s = result.summary
    errors = [f for f in result.findings if f.severity == "error"]
    parts: list[str] = []
    add = parts.append
    stamp = _page_start(add, title)
    unit_name = str(s.get("unit", "images"))  # "cases" for case models (labelwise.training.cases)
    add(f'<p class="sub">{result.n_samples} {_e(unit_name)}, {len(result.labels)} labels, generated {stamp} by labelwise</p>')
    add('<nav><a href="#summary">Data</a><a href="#labels">Per label</a><a href="#averages">Averages</a>'
        '<a href="#decisions">Decisions</a><a href="#report">Classification report</a><a href="#diagnostics">Diagnostics</a><a href="#plots">Plots</a></nav>')
    if errors:
        from ..diagnostics import headline

        lead = headline(result.findings, derived=[result.schema.none] if result.schema.none else [])
        where = "" if lead.label is None else f"<strong>{_e(lead.label)}</strong>: "
        more = len(errors) - 1
        add('<div class="finding error"><b>model health</b>' + where + _e(lead.message)
            + (f" ({more} more error(s))" if more else "") + ' <a href="#diagnostics">See Diagnostics.</a></div>')
    from ..text import COLLAPSE_NOTE

    for note in result.notes:
        if not (errors and note == COLLAPSE_NOTE):  # the red banner above already says it
            add(f'<div class="note">{_e(note)}</div>')

    images = dict(images)
    curves = images.pop("learning_curves", None)  # shown in the Training section, not among the plots
    if getattr(result, "training", None):
        from .training import training_section

        add(training_section(result.training, curves))

    # ---- data summary
    add('<h2 id="summary">Data</h2><table class="kv">')
    rows = [(unit_name, result.n_samples), ("labels", len(result.labels))]
    if "slices_per_case" in s:  # {min, median, mean, max, total, histogram}: what a case model pooled
        d = s["slices_per_case"]
        rows.append(("slices per case", f"min {d['min']}, median {d['median']:g}, mean {d['mean']:.1f}, max {d['max']}; "
                                        f"{d['total']} slices in all"))
        if d.get("histogram"):
            rows.append(("slice count distribution", "; ".join(f"{k}: {v} cases" for k, v in d["histogram"].items())))
        if d.get("max_slices") is not None:
            rows.append(("max_slices", f"{d['max_slices']} (longer cases: {d['max_slices']} evenly spaced slices)"))
    for key in ("truth", "split", "scores", "format"):
        if key in s:
            rows.append(({"split": "split evaluated", "format": "truth format"}.get(key, f"{key} file"), s[key]))
    if math.isfinite(s.get("labels_per_image", math.nan)):
        rows.append(("mean positive labels per image", f"{s['labels_per_image']:.2f}"))
    schema = result.schema
    rows.append(("independent labels", ", ".join(schema.independent) or "none"))
    for g, members in schema.exclusive.items():
        rows.append((f"exclusive group {g}", ", ".join(members)))
    if schema.none:
        rows.append(("implied none label", f"{schema.none} (true when no independent label is; score = prod(1 - p))"))
    rows.append(("thresholds", result.threshold_source))
    if boot_n:
        unit = result.bootstrap.get("unit", "images")
        extra = f" ({result.bootstrap['n_groups']} groups)" if "n_groups" in result.bootstrap else ""
        rows.append(("confidence intervals", f"{level}% percentile bootstrap, {boot_n} resamples of {unit}{extra}, "
                                             f"seed {result.bootstrap.get('seed', 0)}"))
    else:
        rows.append(("confidence intervals", "none (bootstrap off)"))
    for k, v in rows:
        add(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>")
    add("</table>")

    # ---- per-label table
    bad_labels = {f.label for f in errors if f.label is not None}
    add(f'<h2 id="labels">Per label</h2><table><tr><th>label</th><th>positives</th><th>prevalence</th>'
        f'<th>AUC [{level}% CI]</th><th>AP [{level}% CI]</th><th>threshold</th><th>predicted +</th>'
        '<th>precision</th><th>recall</th><th>specificity</th><th>F1</th><th>notes</th></tr>')
    for r in result.rows:
        thr = _num(r.threshold) if r.rule == "threshold" else f'<span class="na">{_e(r.rule)}</span>'
        cls = ' class="bad"' if r.label in bad_labels else ""
        add(f"<tr{cls}><td>{_e(r.label)}</td><td>{r.positives}</td><td>{_num(r.prevalence)}</td>"
            f"<td>{_ci(r.auc, r.auc_low, r.auc_high)}</td><td>{_ci(r.ap, r.ap_low, r.ap_high)}</td>"
            f"<td>{thr}</td><td>{r.predicted}</td><td>{_num(r.precision)}</td><td>{_num(r.recall)}</td>"
            f"<td>{_num(r.specificity)}</td><td>{_num(r.f1)}</td><td style=\"text-align:left\">{_e('; '.join(r.notes))}</td></tr>")
    add("</table>")

    # ---- averages
    add('<h2 id="averages">Averages</h2><table><tr><th>average</th><th>value</th></tr>')
    av, avci = result.averages, result.averages_ci
    names = {"auc": "AUC", "ap": "AP", "f1": "F1", "precision": "precision", "recall": "recall",
             "specificity": "specificity"}
    order = ["auc_macro", "auc_macro_ci_labels", "auc_micro", "auc_weighted", "auc_samples", "ap_macro",
             "ap_macro_ci_labels", "ap_micro", "ap_weighted",
             "ap_samples", "f1_macro", "f1_micro", "precision_macro", "precision_micro", "recall_macro",
             "recall_micro", "specificity_macro", "hamming_loss", "subset_accuracy", "lrap", "coverage_error",
             "ranking_loss"]
    plain = {"hamming_loss": "Hamming loss", "subset_accuracy": "subset accuracy", "lrap": "label ranking AP",
             "coverage_error": "coverage error", "ranking_loss": "ranking loss",
             "auc_macro_ci_labels": "macro AUC, labels with a CI", "ap_macro_ci_labels": "macro AP, labels with a CI"}
    for key in sorted(av, key=lambda k: order.index(k) if k in order else len(order)):
        value = av[key]
        if key in plain or "_" not in key:
            label = plain.get(key, key)
        else:
            metric, kind = key.rsplit("_", 1)
            label = f"{kind} {names.get(metric, metric)}"
        lo, hi = avci.get(key, (math.nan, math.nan))
        add(f"<tr><td>{_e(label)}</td><td>{_ci(value, lo, hi)}</td></tr>")
    add("</table>")
    policy = getattr(result, "policy", None)
    if policy is not None:  # what was actually applied; the Decisions section below has the details
        cal = policy.calibration.method if policy.calibration is not None else "none"
        add(f"<p>Decisions: rule <b>{_e(policy.rule)}</b> after calibration <b>{_e(cal)}</b>; "
            f"{_e(result.threshold_source)}.</p>")
    elif result.thresholds is not None:
        params = {k: v for k, v in dict(getattr(result.thresholds, "params", {}) or {}).items() if v is not None}
        text = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        add(f"<p>Threshold method: <b>{_e(result.thresholds.method)}</b>" + (f" ({_e(text)})" if text else "")
            + f"; {_e(result.threshold_source)}.</p>")
    else:
        add("<p>Threshold method: <b>default 0.5</b> for every label (no thresholds given or tuned).</p>")

    from .decisions import DECISION_PLOTS, decisions_section

    section = decisions_section(result, images)
    if section:
        add(section)
    add(f'<h2 id="report">Classification report</h2><pre>{_e(result.classification_report)}</pre>')

    # ---- diagnostics
    from ..diagnostics import LIKELY_CAUSES

    add('<h2 id="diagnostics">Diagnostics</h2>')
    if not result.findings:
        add('<div class="finding ok"><b>ok</b>No problems found: scores vary, and every label ranks better than chance.</div>')
    order = {"error": 0, "warning": 1, "info": 2}
    causes: list[str] = []
    for f in sorted(result.findings, key=lambda f: (order.get(f.severity, 3), f.label is not None)):
        where = _e(f.label) if f.label is not None else "all labels"
        add(f'<div class="finding {_e(f.severity)}"><b>{_e(f.severity)}</b><strong>{where}</strong> '
            f"({_e(f.code)}): {_e(f.message)}</div>")
        if f.severity != "info":
            causes += [c for c in f.causes if c not in causes]
    if causes:
        add("<p>Likely causes to check:</p><ul>" + "".join(f"<li>{_e(LIKELY_CAUSES[c])}</li>" for c in causes) + "</ul>")

    # ---- plots
    add('<h2 id="plots">Plots</h2>')
    for name, png in images.items():
        if name in DECISION_PLOTS:  # shown in the Decisions section
            continue
        data = base64.b64encode(png).decode("ascii")
        caption = _CAPTIONS.get(name, "")
        add(f'<figure id="plot-{_e(name)}"><img alt="{_e(PLOT_TITLES.get(name, name))}" '
            f'src="data:image/png;base64,{data}"><figcaption><b>{_e(PLOT_TITLES.get(name, name))}.</b> '
            f"{_e(caption)}</figcaption></figure>")
    add(f"</main><script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"


def _diff(point: float, lo: float, hi: float, verdict: str | None = None) -> str:
    if point is None or not math.isfinite(point):
        return '<span class="na">n/a</span>'
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{point:+.3f}"
    text = f'{point:+.3f} <span class="ci">[{lo:+.3f}, {hi:+.3f}]</span>'
    if verdict in ("higher", "lower"):
        text = f"<b>{text}</b>"
    return text


def _figures(images: Mapping[str, bytes]) -> list[str]:
    from .plots import PLOT_TITLES

    out = []
    for name, png in images.items():
        data = base64.b64encode(png).decode("ascii")
        title = PLOT_TITLES.get(name, name)
        out.append(f'<figure id="plot-{_e(name)}"><img alt="{_e(title)}" src="data:image/png;base64,{data}">'
                   f"<figcaption><b>{_e(title)}.</b> {_e(_CAPTIONS.get(name, ''))}</figcaption></figure>")
    return out


def render_comparison_report(comparison: "ComparisonResult", images: Mapping[str, bytes] | None = None, *,
                             title: str = "labelwise comparison") -> str:
    """The HTML text of a comparison of strategies: summary table, paired differences to the reference,
    per-label AUC side by side, and the plots (``{name: PNG bytes}``, embedded as data URIs). Each
    strategy's full report is linked at ``<name>/report.html`` (written beside it by ``save``)."""
    images = dict(images or {})
    c = comparison
    level = int(round(100 * c.level))
    ref = c.results[c.reference]
    boot = ref.bootstrap
    has_ci = c.paired is not None
    ci = f" [{level}% CI]" if has_ci else ""
    parts: list[str] = []
    add = parts.append
    stamp = _page_start(add, title)
    add(f'<p class="sub">{len(c.names)} strategies on {c.n_samples} images, {len(c.labels)} labels; reference '
        f"<b>{_e(c.reference)}</b>; generated {stamp} by labelwise</p>")
    add('<nav><a href="#summary">Summary</a><a href="#differences">Differences</a>'
        '<a href="#labels">AUC per label</a><a href="#plots">Plots</a><a href="#strategies">Strategies</a></nav>')
    from ..diagnostics import headline

    for name in c.names:
        r = c.results[name]
        lead = headline(r.findings, derived=[r.schema.none] if r.schema.none else [])
        if lead is not None:
            where = "" if lead.label is None else f" ({_e(lead.label)})"
            add(f'<div class="finding error"><b>model health</b><strong>{_e(name)}</strong>{where}: {_e(lead.message)} '
                f"(see {_e(name)}/report.html)</div>")
    for note in c.notes():
        add(f'<div class="note">{_e(note)}</div>')

    # ---- summary
    add(f'<h2 id="summary">Summary</h2><table><tr><th>strategy</th><th>macro AUC{ci}</th><th>macro AP{ci}</th>'
        "<th>micro F1</th><th>macro F1</th><th>subset accuracy</th><th>Hamming loss</th>"
        '<th style="text-align:left">thresholds</th></tr>')
    rows = c.summary_rows()
    for r in rows:
        name = _e(r["strategy"]) + (" (reference)" if r["reference"] else "")
        add(f"<tr><td>{name}</td><td>{_ci(r['auc_macro'], r['auc_macro_low'], r['auc_macro_high'])}</td>"
            f"<td>{_ci(r['ap_macro'], r['ap_macro_low'], r['ap_macro_high'])}</td><td>{_num(r['f1_micro'])}</td>"
            f"<td>{_num(r['f1_macro'])}</td><td>{_num(r['subset_accuracy'])}</td><td>{_num(r['hamming_loss'])}</td>"
            f'<td style="text-align:left">{_e(r["thresholds"])}</td></tr>')
    add("</table>")
    if has_ci:
        unit = boot.get("unit", "images")
        extra = f" ({boot['n_groups']} groups)" if "n_groups" in boot else ""
        add(f"<p>Intervals: {level}% percentile bootstrap, {boot.get('n_resamples', 0)} resamples of {_e(unit)}{extra}, "
            f"seed {_e(boot.get('seed', 0))}; the same resamples for every strategy.</p>")

    # ---- differences
    add(f'<h2 id="differences">Paired difference to {_e(c.reference)}</h2>')
    others = [r for r in rows if not r["reference"]]
    if others:
        add(f"<table><tr><th>strategy</th><th>macro AUC difference{ci}</th><th>macro AP difference{ci}</th>"
            "<th>verdict (AUC)</th></tr>")
        for r in others:
            add(f"<tr><td>{_e(r['strategy'])}</td>"
                f"<td>{_diff(r['auc_macro_diff'], r['auc_macro_diff_low'], r['auc_macro_diff_high'], r['auc_macro_verdict'])}</td>"
                f"<td>{_diff(r['ap_macro_diff'], r['ap_macro_diff_low'], r['ap_macro_diff_high'], r['ap_macro_verdict'])}</td>"
                f"<td>{_e(r['auc_macro_verdict'])}</td></tr>")
        add("</table>")
    else:
        add("<p>Only one strategy: nothing to compare.</p>")

    # ---- per label
    add('<h2 id="labels">AUC per label</h2><table><tr><th>label</th><th>positives</th>'
        + "".join(f"<th>{_e(n)}</th>" for n in c.names)
        + "".join(f"<th>{_e(n)} - {_e(c.reference)}{ci}</th>" for n in c.names if n != c.reference) + "</tr>")
    for r in c.per_label_auc():
        cells = [f"<td>{_e(r['label'])}</td><td>{r['positives']}</td>"]
        best = max((v for v in r["auc"].values() if math.isfinite(v)), default=math.nan)
        for n in c.names:
            v = r["auc"][n]
            text = _ci(v, r["auc_low"][n], r["auc_high"][n])
            cells.append(f"<td>{'<b>' + text + '</b>' if math.isfinite(v) and v == best and len(c.names) > 1 else text}</td>")
        for n in c.names:
            if n != c.reference:
                d = r["difference"][n]
                cells.append(f"<td>{_diff(d['point'], d['low'], d['high'], d['verdict'])}</td>")
        add("<tr>" + "".join(cells) + "</tr>")
    add("</table><p>Bold AUC: the best strategy for that label; bold difference: its interval excludes 0.</p>")

    # ---- plots
    add('<h2 id="plots">Plots</h2>')
    parts.extend(_figures(images))

    # ---- strategies
    add('<h2 id="strategies">Strategies</h2><table class="kv">')
    s = c.summary
    if "truth" in s:
        add(f"<tr><td>truth file</td><td>{_e(s['truth'])}</td></tr>")
    for name in c.names:
        r = c.results[name]
        src = r.summary.get("scores", "")
        add(f"<tr><td>{_e(name)}</td><td>{_e(src)} &mdash; thresholds {_e(r.threshold_source)} &mdash; "
            f'full report: <a href="{_e(name)}/report.html">{_e(name)}/report.html</a></td></tr>')
    add("</table>")
    add(f"</main><script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"


def write_comparison_report(comparison: "ComparisonResult", path: str | Path, *,
                            images: Mapping[str, bytes] | None = None, title: str = "labelwise comparison") -> Path:
    """Render the comparison report and write it atomically to ``path``; return the path."""
    from ...io import write_text

    return write_text(path, render_comparison_report(comparison, images, title=title))


def write_report(result: "EvaluationResult", path: str | Path, *, images: Mapping[str, bytes] | None = None,
                 title: str = "labelwise evaluation") -> Path:
    """Render the report and write it atomically to ``path``; return the path."""
    from ...io import write_text

    return write_text(path, render_report(result, images, title=title))
