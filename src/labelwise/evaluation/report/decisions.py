"""The report's "Decisions" section: the rule, labels per image decided vs true (histogram), the
reliability diagram before/after calibration, and the warnings of
:func:`labelwise.evaluation.decisions.decisions_info`. Plots are PNG bytes (matplotlib, Agg,
imported inside the functions); the section is HTML text.
"""

from __future__ import annotations

import base64
import html
import math
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["labels_per_image_plot", "reliability_before_after_plot", "decision_plots", "decisions_section",
           "DECISION_PLOTS"]

DECISION_PLOTS = {
    "labels_per_image": "Labels per image, decided vs true",
    "reliability_before_after": "Reliability before and after calibration",
}


def labels_per_image_plot(hist_predicted: Sequence[int], hist_true: Sequence[int]) -> bytes:
    """Side-by-side bars: how many images have 0, 1, 2, ... labels, in the decisions and in the truth."""
    from .plots import _figure, _png

    k = max(len(hist_predicted), len(hist_true))
    hp = np.pad(np.asarray(hist_predicted, float), (0, k - len(hist_predicted)))
    ht = np.pad(np.asarray(hist_true, float), (0, k - len(hist_true)))
    n = max(hp.sum(), 1.0)
    x = np.arange(k)
    fig = _figure(6.5, 3.4)
    ax = fig.subplots()
    ax.bar(x - 0.2, ht / n, width=0.4, color="#7f8c8d", label=f"true (mean {np.dot(x, ht) / n:.2f})")
    ax.bar(x + 0.2, hp / n, width=0.4, color="#2c7fb8", label=f"decided (mean {np.dot(x, hp) / n:.2f})")
    ax.set_xticks(x)
    ax.set_xlabel("labels per image (every label column, the none label included)", fontsize=9)
    ax.set_ylabel("share of images", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    ax.tick_params(labelsize=8)
    return _png(fig)


def reliability_before_after_plot(y_true: np.ndarray, before: np.ndarray, after: np.ndarray, *,
                                  bins: int = 15, ece: "tuple[float, float] | None" = None) -> bytes:
    """Pooled reliability curves (all label-image pairs, ``bins`` equal-width bins), before and after.
    The legend shows ``ece`` (before, after) when given (the evaluation's own numbers), else the
    classwise ECE of these columns."""
    from ...metrics import expected_calibration_error, reliability_curve
    from .plots import _figure, _png

    fig = _figure(5.0, 4.4)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ls=":", color="#999999", lw=0.8, label="perfect calibration")
    for k, (scores, name, colour) in enumerate(((before, "before", "#c0392b"), (after, "after", "#2c7fb8"))):
        m, f, _ = reliability_curve(y_true, scores, n_bins=bins)
        e = ece[k] if ece is not None else expected_calibration_error(y_true, scores, n_bins=bins)
        ax.plot(m, f, marker="o", ms=3, color=colour, lw=1.4, label=f"{name} calibration (ECE {e:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("mean predicted probability in bin", fontsize=9)
    ax.set_ylabel("observed fraction positive", fontsize=9)
    ax.set_title(f"pooled over labels, {bins} bins; ECE classwise", fontsize=9)
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    ax.tick_params(labelsize=8)
    return _png(fig)


def decision_plots(result: Any) -> dict[str, bytes]:
    """The Decisions plots of an evaluation result (duck-typed ``EvaluationResult``)."""
    info = getattr(result, "decisions", None) or {}
    if not info:
        return {}
    out = {"labels_per_image": labels_per_image_plot(info["histogram_predicted"], info["histogram_true"])}
    raw = getattr(result, "y_score_uncalibrated", None)
    if raw is not None and info.get("ece_before") is not None:
        # the labels the evaluation's ECE covers (the free labels by default): one number everywhere
        labels = list(result.schema.labels)
        cover = info.get("ece_labels") or list(result.schema.output_labels)
        cols = [labels.index(x) for x in cover if x in labels]
        out["reliability_before_after"] = reliability_before_after_plot(
            result.y_true[:, cols], raw[:, cols], result.y_score[:, cols],
            ece=(info["ece_before"], info.get("ece_after", math.nan)))
    return out


def _e(x: object) -> str:
    return html.escape(str(x))


def _img(name: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    title = DECISION_PLOTS.get(name, name)
    return (f'<figure id="plot-{_e(name)}"><img alt="{_e(title)}" src="data:image/png;base64,{data}">'
            f"<figcaption><b>{_e(title)}.</b> {_e(caption)}</figcaption></figure>")


def decisions_section(result: Any, images: Mapping[str, bytes]) -> str:
    """HTML of the "Decisions" section ('' when the result carries no decision summary)."""
    info = getattr(result, "decisions", None) or {}
    if not info:
        return ""
    parts = ['<h2 id="decisions">Decisions</h2>']
    rule = info.get("rule") or "default 0.5"
    bounds = []
    if info.get("min_labels") is not None:
        bounds.append(f"at least {info['min_labels']}")
    if info.get("max_labels") is not None:
        bounds.append(f"at most {info['max_labels']}")
    cal = info.get("calibration")
    parts.append(f"<p>Rule: <b>{_e(rule)}</b>" + (f" ({_e(', '.join(bounds))} labels per image)" if bounds else "")
                 + f"; calibration: <b>{_e(cal or 'none')}</b>.</p>")
    pred, true = info.get("labels_per_image_predicted", math.nan), info.get("labels_per_image_true", math.nan)
    parts.append(f"<p>Labels per image: <b>{pred:.2f}</b> decided vs <b>{true:.2f}</b> true. "
                 f"Classwise ECE ({info.get('ece_bins', 15)} bins): "
                 + (f"{info['ece_before']:.3f} before calibration, " if info.get("ece_before") is not None else "")
                 + f"{info.get('ece_after', math.nan):.3f}"
                 + (" after." if info.get("ece_before") is not None else ".") + "</p>")
    for w in info.get("warnings", []):
        parts.append(f'<div class="finding warning"><b>warning</b>{_e(w)}</div>')
    if "labels_per_image" in images:
        parts.append(_img("labels_per_image", images["labels_per_image"],
                          "Share of images with 0, 1, 2, ... labels in the decisions and in the truth."))
    if "reliability_before_after" in images:
        parts.append(_img("reliability_before_after", images["reliability_before_after"],
                          "Observed positive rate against the mean probability per bin, before and after the "
                          "decision file's calibration."))
    return "\n".join(parts)
