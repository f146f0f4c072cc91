"""Plots of an evaluation, as PNG bytes (matplotlib, Agg, imported inside the functions).

Small-multiples grids keep 15 labels readable: one panel per label, shared axes.

* ``roc_grid``: ROC curve per label, AUC in the legend, the chance diagonal.
* ``pr_grid``: precision-recall curve per label, AP in the legend, prevalence as the baseline.
* ``calibration_plot``: reliability diagram pooled over labels (points sized and annotated
  by bin count), per-label curves faint behind, and the bin-count histogram.
* ``histogram_grid``: score histograms of negatives and positives per label, threshold line.
* ``roc_overlay_grid`` / ``auc_difference_plot`` (a comparison of strategies): every strategy's
  ROC curve per label in one panel; each label's AUC difference to the reference with its CI.
* ``error_cooccurrence_plot``: heatmap ``C[a, b] = P(error on b | error on a)`` over images,
  computed separately for label a's false positives and false negatives.

The curves come from :func:`labelwise.metrics.roc_curve` / ``precision_recall_curve``.
"""

from __future__ import annotations

import io
import math
import warnings
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ..results import ComparisonResult, EvaluationResult

__all__ = ["all_plots", "roc_grid", "pr_grid", "calibration_plot", "histogram_grid",
           "error_cooccurrence", "error_cooccurrence_plot", "PLOT_TITLES", "roc_overlay_grid",
           "auc_difference_plot", "comparison_plots"]

PLOT_TITLES = {
    "roc": "ROC curves",
    "pr": "Precision-recall curves",
    "calibration": "Calibration (reliability)",
    "histograms": "Score histograms by class",
    "error_cooccurrence": "Co-occurrence of errors",
    "roc_comparison": "ROC curves of every strategy",
    "auc_difference": "AUC difference to the reference per label",
}

_POS, _NEG, _LINE = "#c0392b", "#2c7fb8", "#333333"


def _figure(width: float, height: float):
    # A bare Figure renders without pyplot, so no backend is chosen here: matplotlib.use("Agg")
    # would also switch a notebook's inline backend off for the user's own plots.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _grid(k: int, panel: float = 2.3):
    ncols = min(k, 5)
    nrows = math.ceil(k / ncols)
    fig = _figure(panel * ncols + 0.4, panel * nrows + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    for ax in axes.flat[k:]:
        ax.set_visible(False)
    return fig, axes.flat[:k]


def _one_class(y: np.ndarray) -> bool:
    return y.min() == y.max()


def _undefined(ax, y):
    ax.text(0.5, 0.5, f"n/a\nonly {'positives' if y.min() == 1 else 'negatives'}",
            ha="center", va="center", fontsize=9, color="#777777", transform=ax.transAxes)


def _title(ax, label: str):
    ax.set_title(label if len(label) <= 22 else label[:20] + "...", fontsize=9)


def _finish_unit_grid(fig, axes, xlabel: str, ylabel: str, as_figure: bool = False):
    """Unit axes on every panel of a curve grid, one shared pair of axis titles; PNG bytes (or the Figure)."""
    for ax in axes:
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.tick_params(labelsize=7)
    fig.supxlabel(xlabel, fontsize=9)
    fig.supylabel(ylabel, fontsize=9)
    return fig if as_figure else _png(fig)


def _finish_roc(fig, axes, as_figure: bool = False):
    """The ROC axis titles on a grid of ROC plots (single and overlaid); PNG bytes (or the Figure)."""
    return _finish_unit_grid(fig, axes, "false positive rate (1 - specificity)", "true positive rate (sensitivity)",
                             as_figure)


def roc_grid(y_true: np.ndarray, y_score: np.ndarray, labels: Sequence[str], *, auc: Sequence[float] | None = None,
             as_figure: bool = False):
    """ROC curve per label in a grid (AUC in each panel's legend); PNG bytes, or the Figure with ``as_figure``."""
    from ...metrics import roc_auc_score, roc_curve

    y_true, y_score = np.asarray(y_true), np.asarray(y_score, dtype=np.float64)
    fig, axes = _grid(len(labels))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if auc is None:
            auc = np.atleast_1d(roc_auc_score(y_true, y_score, average=None))
        for j, (ax, label) in enumerate(zip(axes, labels)):
            ax.plot([0, 1], [0, 1], ls=":", color="#999999", lw=0.8)
            _title(ax, label)
            if _one_class(y_true[:, j]):
                _undefined(ax, y_true[:, j])
                continue
            fpr, tpr, _ = roc_curve(y_true[:, j], y_score[:, j])
            ax.plot(fpr, tpr, color=_NEG, lw=1.4, label=f"AUC {auc[j]:.3f}")
            ax.legend(loc="lower right", fontsize=8, frameon=False, handlelength=1)
    return _finish_roc(fig, axes, as_figure)


def pr_grid(y_true: np.ndarray, y_score: np.ndarray, labels: Sequence[str], *, ap: Sequence[float] | None = None,
            as_figure: bool = False):
    """Precision-recall curve per label (AP in the legend, dashed prevalence baseline); PNG bytes, or the
    Figure with ``as_figure``."""
    from ...metrics import average_precision_score, precision_recall_curve

    y_true, y_score = np.asarray(y_true), np.asarray(y_score, dtype=np.float64)
    fig, axes = _grid(len(labels))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if ap is None:
            ap = np.atleast_1d(average_precision_score(y_true, y_score, average=None))
        for j, (ax, label) in enumerate(zip(axes, labels)):
            _title(ax, label)
            if _one_class(y_true[:, j]):
                _undefined(ax, y_true[:, j])
                continue
            precision, recall, _ = precision_recall_curve(y_true[:, j], y_score[:, j])
            prev = float(y_true[:, j].mean())
            ax.step(recall, precision, where="post", color=_POS, lw=1.4, label=f"AP {ap[j]:.3f}")
            ax.axhline(prev, ls="--", color="#999999", lw=0.8, label=f"prev. {prev:.3f}")
            ax.legend(loc="upper right", fontsize=7, frameon=False, handlelength=1)
    return _finish_unit_grid(fig, axes, "recall (sensitivity)", "precision", as_figure)


def _reliability(y: np.ndarray, s: np.ndarray, bins: int):
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(s, edges[1:-1]), 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_s = np.bincount(idx, weights=s, minlength=bins) / count
        frac = np.bincount(idx, weights=y, minlength=bins) / count
    return edges, count, mean_s, frac


def calibration_plot(y_true: np.ndarray, y_score: np.ndarray, labels: Sequence[str], *, bins: int = 10,
                     as_figure: bool = False):
    """Reliability diagram pooled over all labels, per-label curves faint behind, bin counts below;
    PNG bytes, or the Figure with ``as_figure``."""
    y_true = np.asarray(y_true, dtype=np.float64)
    s = np.clip(np.asarray(y_score, dtype=np.float64), 0, 1)
    fig = _figure(9.5, 4.4)
    ax, axc = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.4, 1]})
    ax.plot([0, 1], [0, 1], ls=":", color="#999999", lw=0.8, label="perfect calibration")
    for j in range(len(labels)):
        _, count, ms, fr = _reliability(y_true[:, j], s[:, j], bins)
        ok = count >= 5
        ax.plot(ms[ok], fr[ok], color="#bbbbbb", lw=0.7, alpha=0.8)
    edges, count, ms, fr = _reliability(y_true.ravel(), s.ravel(), bins)
    ok = count > 0
    sizes = 20 + 180 * np.sqrt(count[ok] / max(count.max(), 1))
    ax.plot(ms[ok], fr[ok], color=_NEG, lw=1.5, zorder=3)
    ax.scatter(ms[ok], fr[ok], s=sizes, color=_NEG, zorder=4, label="pooled over labels")
    for i, (x, y, c) in enumerate(zip(ms[ok], fr[ok], count[ok])):
        # Alternate below/above so neighbouring counts do not overprint each other.
        ax.annotate(f"{c}", (x, y), textcoords="offset points", xytext=(5, -12 if i % 2 == 0 else 8),
                    fontsize=7, color="#555555")
    ax.plot([], [], color="#bbbbbb", lw=0.7, label="single labels (bins with >= 5)")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(-0.02, 1.08)
    ax.set_xlabel("mean predicted score in bin", fontsize=9)
    ax.set_ylabel("observed fraction positive", fontsize=9)
    ax.set_title(f"reliability, {bins} equal-width bins (numbers: label-image pairs)", fontsize=9)
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    centers = (edges[:-1] + edges[1:]) / 2
    axc.bar(centers, count, width=1 / bins * 0.9, color="#7f8c8d")
    axc.set_yscale("log")
    axc.set_xlim(0, 1)
    axc.set_xlabel("predicted score", fontsize=9)
    axc.set_ylabel("label-image pairs per bin (log)", fontsize=9)
    axc.set_title("bin counts", fontsize=9)
    for a in (ax, axc):
        a.tick_params(labelsize=8)
    return fig if as_figure else _png(fig)


def histogram_grid(y_true: np.ndarray, y_score: np.ndarray, labels: Sequence[str], *,
                   thresholds: Sequence[float] | None = None, bins: int = 30) -> bytes:
    """Per label: score histograms of negatives and positives (each normalised), threshold line."""
    y_true, y_score = np.asarray(y_true), np.asarray(y_score, dtype=np.float64)
    fig, axes = _grid(len(labels))
    lo = min(0.0, float(np.nanmin(y_score))) if y_score.size else 0.0
    hi = max(1.0, float(np.nanmax(y_score))) if y_score.size else 1.0
    edges = np.linspace(lo, hi, bins + 1)
    for j, (ax, label) in enumerate(zip(axes, labels)):
        _title(ax, label)
        y, s = y_true[:, j] != 0, y_score[:, j]
        for mask, color, name in ((~y, _NEG, "negative"), (y, _POS, "positive")):
            if mask.any():
                ax.hist(s[mask], bins=edges, density=True, histtype="stepfilled", alpha=0.35, color=color,
                        label=f"{name} ({int(mask.sum())})")
                ax.hist(s[mask], bins=edges, density=True, histtype="step", color=color, lw=1)
        if thresholds is not None and np.isfinite(thresholds[j]):
            ax.axvline(thresholds[j], color=_LINE, ls="--", lw=0.9)
        ax.legend(fontsize=6.5, frameon=False, loc="upper right", handlelength=1)
        ax.set_yticks([])
        ax.tick_params(labelsize=7)
    fig.supxlabel("score (dashed: decision threshold)", fontsize=9)
    fig.supylabel("density within class", fontsize=9)
    return _png(fig)


def error_cooccurrence(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, np.ndarray]:
    """Error co-occurrence matrices over images.

    ``fp[a, b] = P(error on b | false positive on a)``, ``fn[a, b] = P(error on b | false
    negative on a)`` (error = decision != truth; diagonal set to NaN), with ``n_fp[a]``, ``n_fn[a]``.
    """
    t, p = np.asarray(y_true) != 0, np.asarray(y_pred) != 0
    err = (t != p).astype(np.float64)
    out = {}
    for name, mask in (("fp", p & ~t), ("fn", t & ~p)):
        m = mask.astype(np.float64)
        n = m.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            c = (m.T @ err) / n[:, None]
        np.fill_diagonal(c, np.nan)
        out[name], out[f"n_{name}"] = c, n.astype(int)
    return out


# The report's content column is ~1,120 px wide: a PNG at most this wide (at 100 dpi) is shown at its
# own size, so its 8-pt labels stay ~11 px on the page instead of being scaled down by half.
_PAGE_WIDTH_IN = 11.2


def error_cooccurrence_plot(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> bytes:
    """Two heatmaps (rows: a's false positives / false negatives; columns: errors on b).

    Sized to be read embedded in the report: never wider than the page column (so never scaled
    down), side by side for a few labels and one above the other beyond 8, cells of at least
    ~0.25 in with the percentage written in each up to 32 labels."""
    co = error_cooccurrence(y_true, y_pred)
    k = len(labels)
    short = [x if len(x) <= 16 else x[:14] + ".." for x in labels]
    label_in = 0.2 + 0.075 * max((len(f"{s} ({n})") for s, n in zip(short, co["n_fp"])), default=4)
    side = k <= 8
    room = (_PAGE_WIDTH_IN - 1.0) / (2 if side else 1) - label_in  # cells' width per panel (1 in: colour bar)
    cell = float(np.clip(room / max(k, 1), 0.12, 0.45))
    panel_h = k * cell + 0.5 + 0.075 * max((len(x) for x in short), default=4) * 0.87 + 0.6  # cells, ticks, title
    width = min(_PAGE_WIDTH_IN, (2 if side else 1) * (label_in + k * cell) + 1.0)
    fig = _figure(max(width, 4.0), max(panel_h, 2.5) * (1 if side else 2))
    axes = fig.subplots(1, 2) if side else fig.subplots(2, 1)
    annotate = cell >= 0.24
    num_size = float(np.clip(cell * 22, 6.0, 8.0))
    im = None
    for ax, key, title in ((axes[0], "fp", "false positives"), (axes[1], "fn", "false negatives")):
        c = co[key]
        im = ax.imshow(100 * np.nan_to_num(c, nan=0.0), vmin=0, vmax=100, cmap="Reds")
        ax.set_xticks(range(k), short, rotation=60, ha="right", rotation_mode="anchor", fontsize=8)
        ax.set_yticks(range(k), [f"{s} ({n})" for s, n in zip(short, co[f"n_{key}"])], fontsize=8)
        ax.set_title(f"rows a: images with {title} on a (count)\ncells: % of them with an error on b", fontsize=9)
        ax.set_xlabel("b: label with an error on the same image", fontsize=8)
        if annotate:
            for a in range(k):
                for b in range(k):
                    v = c[a, b]
                    if np.isfinite(v):
                        ax.text(b, a, f"{100 * v:.0f}", ha="center", va="center", fontsize=num_size,
                                color="white" if v > 0.6 else "#333333")
    cb = fig.colorbar(im, ax=axes, shrink=0.6 if side else 0.4, fraction=0.03, pad=0.01)
    cb.set_label("P(error on b | error on a), %", fontsize=8)
    cb.ax.tick_params(labelsize=8)
    return _png(fig)


_STRATEGY_COLORS = ("#2c7fb8", "#c0392b", "#27ae60", "#8e44ad", "#e67e22", "#16a085", "#7f8c8d", "#d35400")


def roc_overlay_grid(y_true: np.ndarray, scores: "Mapping[str, np.ndarray]", labels: Sequence[str], *,
                     auc: "Mapping[str, Sequence[float]] | None" = None, as_figure: bool = False):
    """ROC curves of several strategies overlaid, one panel per label (each strategy's AUC in the
    panel's legend, one colour per strategy throughout); PNG bytes."""
    from ...metrics import roc_auc_score, roc_curve

    y_true = np.asarray(y_true)
    scores = {k: np.asarray(v, dtype=np.float64) for k, v in scores.items()}
    fig, axes = _grid(len(labels))
    colors = {k: _STRATEGY_COLORS[i % len(_STRATEGY_COLORS)] for i, k in enumerate(scores)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aucs = {k: np.atleast_1d(auc[k] if auc is not None else roc_auc_score(y_true, s, average=None))
                for k, s in scores.items()}
        for j, (ax, label) in enumerate(zip(axes, labels)):
            ax.plot([0, 1], [0, 1], ls=":", color="#999999", lw=0.8)
            _title(ax, label)
            if _one_class(y_true[:, j]):
                _undefined(ax, y_true[:, j])
                continue
            for k, s in scores.items():
                fpr, tpr, _ = roc_curve(y_true[:, j], s[:, j])
                short = k if len(k) <= 10 else k[:9] + "."
                ax.plot(fpr, tpr, color=colors[k], lw=1.1, alpha=0.9, label=f"{short} {aucs[k][j]:.3f}")
            ax.legend(loc="lower right", fontsize=6.5, frameon=False, handlelength=1)
    return _finish_roc(fig, axes, as_figure)


def auc_difference_plot(labels: Sequence[str], differences: "Mapping[str, tuple]", reference: str, *,
                        level: float = 0.95) -> bytes:
    """Per label, each strategy's AUC minus the reference's with its paired CI (a forest plot);
    ``differences``: ``{name: (point (L,), low (L,), high (L,))}``; PNG bytes."""
    k = len(labels)
    fig = _figure(7.5, 0.32 * k + 1.4)
    ax = fig.subplots(1, 1)
    m = max(len(differences), 1)
    offsets = (np.arange(m) - (m - 1) / 2) * (0.6 / m)
    y = np.arange(k)
    for i, (name, (point, low, high)) in enumerate(differences.items()):
        point, low, high = (np.asarray(a, dtype=np.float64) for a in (point, low, high))
        color = _STRATEGY_COLORS[(i + 1) % len(_STRATEGY_COLORS)]  # colour 0 is the reference in the ROC grid
        err = np.vstack([point - low, high - point])
        ok = np.isfinite(err).all(axis=0)
        ax.errorbar(point[ok], y[ok] + offsets[i], xerr=err[:, ok], fmt="o", ms=3.5, lw=1.1, capsize=2,
                    color=color, label=f"{name} - {reference}")
        ax.plot(point[~ok], y[~ok] + offsets[i], "o", ms=3.5, color=color, mfc="none")
    ax.axvline(0, color=_LINE, lw=0.8, ls="--")
    short = [x if len(x) <= 22 else x[:20] + ".." for x in labels]
    ax.set_yticks(y, short, fontsize=7.5)
    ax.invert_yaxis()
    ax.set_xlabel(f"AUC difference (strategy - {reference}), paired {int(round(100 * level))}% CI", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    fig.legend(fontsize=8, frameon=False, loc="outside upper center", ncols=min(m, 4))
    return _png(fig)


def comparison_plots(comparison: "ComparisonResult") -> dict[str, bytes]:
    """The plots of a comparison: ``roc_comparison`` (overlaid ROC per label) and, with a paired
    bootstrap and two or more strategies, ``auc_difference``; ``{name: png_bytes}``."""
    labels = list(comparison.labels)
    ref = comparison.results[comparison.reference]
    scores = {n: comparison.results[n].y_score for n in comparison.names}
    auc = {n: np.array([r.auc for r in comparison.results[n].rows]) for n in comparison.names}
    out = {"roc_comparison": roc_overlay_grid(ref.y_true, scores, labels, auc=auc)}
    if comparison.paired is not None and comparison.paired.differences:
        diffs = {n: (d["roc_auc"].point, d["roc_auc"].low, d["roc_auc"].high)
                 for n, d in comparison.paired.differences.items()}
        out["auc_difference"] = auc_difference_plot(labels, diffs, comparison.reference, level=comparison.level)
    return out


def all_plots(result: "EvaluationResult") -> dict[str, bytes]:
    """Every plot of an evaluation: ``{name: png_bytes}`` (names are the keys of ``PLOT_TITLES``;
    the Decisions plots come from :func:`.decisions.decision_plots`)."""
    labels = list(result.labels)
    yt, ys, yp = result.y_true, result.y_score, result.y_pred
    auc = np.array([r.auc for r in result.rows])
    ap = np.array([r.ap for r in result.rows])
    thr = np.array([r.threshold if r.rule == "threshold" else np.nan for r in result.rows])
    keep = [j for j, x in enumerate(labels) if x != result.schema.none]
    return {
        "roc": roc_grid(yt, ys, labels, auc=auc),
        "pr": pr_grid(yt, ys, labels, ap=ap),
        "calibration": calibration_plot(yt, ys, labels),
        "histograms": histogram_grid(yt, ys, labels, thresholds=thr),
        # The derived none label's errors mirror the others' (a false positive on a finding is a
        # false negative on "No Finding"), so it would only light up one column.
        "error_cooccurrence": error_cooccurrence_plot(yt[:, keep], yp[:, keep], [labels[j] for j in keep]),
    }
