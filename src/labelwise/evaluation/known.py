"""Evaluation when some truth cells are unknown: every per-label number on that label's known rows.

A truth table read with ``[labels.unknown]`` values has a known mask beside ``y``
(:attr:`labelwise.labels.tables.LabelTable.known`). Here, for label ``j`` with known rows
``K_j``: AUC, AP, precision, recall, specificity and F1 are those of ``y[K_j, j]`` against
``s[K_j, j]`` (equal to scikit-learn on those rows); macro averages are the mean over labels
of these (labels undefined on their rows left out); micro averages pool every known cell;
weighted averages weight by known positives. Row-wise numbers (samples averages, LRAP,
coverage, ranking loss, subset accuracy, Hamming loss, the classification report) use the rows
whose every label is known, and a note says how many. Bootstrap: each label is resampled over
its own known rows (same seed and number of resamples); the macro interval averages the labels'
``b``-th resamples. numpy only.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["masked_metrics", "masked_bootstrap", "MaskedBootstrap"]


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) else math.nan


def masked_metrics(yt: np.ndarray, ys: np.ndarray, y_pred: np.ndarray, known: np.ndarray,
                   names: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, float], list[str], np.ndarray]:
    """Per-label metrics on each label's known rows, the averages (see the module docstring), notes,
    and the mask of fully known rows. Returns ``(per_label, averages, notes, full_rows)``."""
    from .. import metrics as M

    L = len(names)
    per = {k: np.full(L, np.nan) for k in ("auc", "ap", "precision", "recall", "specificity", "f1")}
    zd = {"zero_division": np.nan}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for j in range(L):
            r = known[:, j]
            if not r.any():
                continue
            t, s, d = yt[r, j : j + 1], ys[r, j : j + 1], y_pred[r, j : j + 1]
            per["auc"][j] = _num(M.roc_auc_score(t, s, average="macro"))
            per["ap"][j] = _num(M.average_precision_score(t, s, average="macro"))
            per["precision"][j] = _num(M.precision_score(t, d, average="macro", **zd))
            per["recall"][j] = _num(M.recall_score(t, d, average="macro", **zd))
            per["specificity"][j] = _num(M.specificity_score(t, d, average="macro", **zd))
            per["f1"][j] = _num(M.f1_score(t, d, average="macro", **zd))
        av: dict[str, float] = {}
        pos = (yt.astype(bool) & known).sum(axis=0).astype(np.float64)
        cells_t, cells_s, cells_d = yt[known][:, None], ys[known][:, None], y_pred[known][:, None]
        for key, metric in (("auc", "auc"), ("ap", "ap")):
            v = per[metric]
            av[f"{key}_macro"] = float(np.nanmean(v)) if np.isfinite(v).any() else math.nan
            ok = np.isfinite(v) & (pos > 0)
            av[f"{key}_weighted"] = float(np.sum(v[ok] * pos[ok]) / pos[ok].sum()) if ok.any() else math.nan
        av["auc_micro"] = _num(M.roc_auc_score(cells_t, cells_s, average="macro"))
        av["ap_micro"] = _num(M.average_precision_score(cells_t, cells_s, average="macro"))
        for kind in ("f1", "precision", "recall"):
            v = per[kind]
            av[f"{kind}_macro"] = float(np.nanmean(v)) if np.isfinite(v).any() else math.nan
        av["f1_micro"] = _num(M.f1_score(cells_t, cells_d, average="macro", **zd))
        av["precision_micro"] = _num(M.precision_score(cells_t, cells_d, average="macro", **zd))
        av["recall_micro"] = _num(M.recall_score(cells_t, cells_d, average="macro", **zd))
        v = per["specificity"]
        av["specificity_macro"] = float(np.nanmean(v)) if np.isfinite(v).any() else math.nan
        av["hamming_loss"] = float((cells_t != cells_d).mean()) if cells_t.size else math.nan
        full = known.all(axis=1)
        ft, fs, fd = yt[full], ys[full], y_pred[full]
        if full.any():
            av["auc_samples"] = _num(M.roc_auc_score(ft, fs, average="samples", labels=list(names)))
            av["ap_samples"] = _num(M.average_precision_score(ft, fs, average="samples", labels=list(names)))
            av["lrap"] = _num(M.label_ranking_average_precision_score(ft, fs, labels=list(names)))
            av["coverage_error"] = _num(M.coverage_error(ft, fs, labels=list(names)))
            av["ranking_loss"] = _num(M.label_ranking_loss(ft, fs, labels=list(names)))
            av["subset_accuracy"] = _num(M.subset_accuracy(ft, fd))
        else:
            for k in ("auc_samples", "ap_samples", "lrap", "coverage_error", "ranking_loss", "subset_accuracy"):
                av[k] = math.nan
    n_unknown = int((~known).sum())
    notes = [f"{n_unknown} truth cell(s) are unknown: each label is evaluated on its known rows only (the 'known' "
             f"count per label); micro averages pool the known cells; samples averages, LRAP, coverage, ranking "
             f"loss, subset accuracy and the classification report use the {int(full.sum())} of {len(yt)} rows "
             "with every label known"]
    return per, av, notes, full


@dataclass
class MaskedBootstrap:
    """Per-label percentile intervals from masked resampling (the fields ``evaluate`` reads)."""

    low: np.ndarray
    high: np.ndarray
    samples: np.ndarray
    macro_low: float
    macro_high: float
    point: np.ndarray
    eligible: np.ndarray
    macro_point: float


def masked_bootstrap(yt: np.ndarray, ys: np.ndarray, known: np.ndarray, names: Sequence[str], *,
                     n_resamples: int, level: float, seed: int, groups: Sequence[Any] | None = None,
                     progress: Callable[[int, int], None] | None = None,
                     min_class_count: int = 10) -> dict[str, MaskedBootstrap]:
    """``{"roc_auc": ..., "average_precision": ...}``: each label bootstrapped over its known rows
    with :func:`labelwise.metrics.bootstrap_ci` (same seed and resamples); macro interval from the
    per-resample mean over labels."""
    from .. import metrics as M

    L = len(names)
    out = {m: np.full((n_resamples, L), np.nan) for m in ("roc_auc", "average_precision")}
    points = {m: np.full(L, np.nan) for m in out}
    eligible = {m: np.zeros(L, dtype=bool) for m in out}
    g = None if groups is None else np.asarray(groups)
    for j in range(L):
        r = known[:, j]
        if r.sum() < 2:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = M.bootstrap_ci(yt[r, j : j + 1], ys[r, j : j + 1], metrics=("roc_auc", "average_precision"),
                                 n_resamples=n_resamples, level=level, seed=seed,
                                 groups=None if g is None else g[r], labels=[names[j]],
                                 min_class_count=min_class_count)
        for m in out:
            points[m][j] = float(np.asarray(res[m].point)[0])
            eligible[m][j] = bool(np.asarray(res[m].eligible)[0]) if res[m].eligible is not None else True
            if res[m].samples is not None and eligible[m][j]:
                out[m][:, j] = np.asarray(res[m].samples, dtype=np.float64)[:, 0]
        if progress is not None:
            progress(j + 1, L)
    alpha = (1 - level) / 2
    result = {}
    for m, s in out.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = np.nanquantile(s, alpha, axis=0), np.nanquantile(s, 1 - alpha, axis=0)
            macro = np.nanmean(s[:, eligible[m]], axis=1) if eligible[m].any() else np.full(len(s), np.nan)
        macro = macro[np.isfinite(macro)]
        lo, hi = ((float(np.quantile(macro, alpha)), float(np.quantile(macro, 1 - alpha))) if macro.size
                  else (math.nan, math.nan))
        ok = eligible[m] & np.isfinite(points[m])
        result[m] = MaskedBootstrap(low, high, s, lo, hi, points[m], eligible[m],
                                    float(np.mean(points[m][ok])) if ok.any() else math.nan)
    return result


def tune_known(yt: np.ndarray, ys: np.ndarray, known: np.ndarray, names: Sequence[str], schema: Any,
               kw: dict[str, Any]):
    """:func:`labelwise.decide.thresholds.tune_thresholds` with each tuned label's threshold
    tuned on its known rows only (the recorded positives count known rows)."""
    from dataclasses import replace

    from ..decide import thresholds as T

    base = T.tune_thresholds(yt, ys, labels=list(names), schema=schema, **kw)
    values, metric = base.values.copy(), base.metric_at_threshold.copy()
    positives = dict(base.tuned_on.get("positives", {}))
    for j, name in enumerate(names):
        if base.label_methods[j] != base.method:
            continue
        r = known[:, j]
        one = T.tune_thresholds(yt[r, j : j + 1], ys[r, j : j + 1], labels=[name], **kw)
        values[j], metric[j] = one.values[0], one.metric_at_threshold[0]
        positives[name] = int(yt[r, j].sum())
    return replace(base, values=values, metric_at_threshold=metric,
                   tuned_on={**base.tuned_on, "positives": positives, "known_rows_only": True})


def fit_calibration_known(y: np.ndarray, raw: np.ndarray, known: np.ndarray, schema: Any, *, method: str,
                          from_logits: bool = False):
    """:func:`labelwise.decide.calibration.fit_calibration` with each independent label fitted on
    its own known rows, and each exclusive group on the rows where all its members are known
    (identity, with a note, when it has none). Equals ``fit_calibration`` when every cell is known."""
    from dataclasses import replace

    from ..decide.calibration import fit_calibration

    if known.all():
        return fit_calibration(y, raw, method=method, schema=schema, from_logits=from_logits)
    filled = np.where(known, y, 0)
    base = fit_calibration(filled, raw, method="none", schema=schema, from_logits=from_logits)
    independent = dict(base.independent)
    groups = dict(base.groups)
    notes: list[str] = []
    positives = {}
    for label in schema.independent:
        j = schema.index(label)
        r = known[:, j]
        positives[label] = int(y[r, j].sum())
        if method == "none" or not r.any():
            continue
        one = fit_calibration(y[r, j:j + 1], raw[r, j:j + 1], method=method, labels=[label], from_logits=from_logits)
        independent[label] = dict(one.independent[label])
        notes.extend(one.notes)
    for block in (b for b in schema.layout if b.kind == "softmax"):
        cols = [schema.index(x) for x in block.labels]
        rows = known[:, cols].all(axis=1)
        if method == "none":
            continue
        if not rows.any():
            notes.append(f"group {block.name!r}: no row has all its members known; it keeps its scores")
            continue
        part = fit_calibration(filled[rows], raw[rows], method=method, schema=schema, from_logits=from_logits)
        groups[block.name] = dict(part.groups[block.name])
    notes.append(f"{int((~known).sum())} truth cell(s) are unknown: each label is calibrated on its own known rows")
    fitted_on = {"rows": int(len(y)), "known_rows_only": True, "positives": positives}
    return replace(base, method=method, independent=independent, groups=groups, notes=tuple(notes),
                   fitted_on=fitted_on)


def fit_policy_known(y: np.ndarray, raw: np.ndarray, known: np.ndarray, schema: Any, *, rule: str,
                     calibration: Any = None, min_labels: int | None = None, max_labels: int | None = None,
                     from_logits: bool = False):
    """:func:`labelwise.decide.policy.fit_policy` when some truth cells are unknown: the
    calibration (a method name) by :func:`fit_calibration_known`; a per-label rule's thresholds
    each on its label's known rows (:func:`tune_known`); a set-level rule on the rows whose every
    label is known (``InputError`` when there is none). Equals ``fit_policy`` when all are known."""
    from dataclasses import replace

    from ..decide.policy import fit_policy
    from ..decide.rules import parse_rule
    from ..errors import InputError

    if known.all():
        return fit_policy(y, raw, schema, rule=rule, calibration=calibration, min_labels=min_labels,
                          max_labels=max_labels, from_logits=from_logits)
    if isinstance(calibration, str):
        calibration = fit_calibration_known(y, raw, known, schema, method=calibration, from_logits=from_logits)
    parsed = parse_rule(rule)
    filled = np.where(known, y, 0)
    if parsed.per_label:
        pol = fit_policy(filled, raw, schema, rule=rule, calibration=calibration, min_labels=min_labels,
                         max_labels=max_labels, from_logits=from_logits)
        P = pol.probabilities(raw, from_logits=from_logits)
        th = tune_known(filled, P, known, list(schema.labels), schema, parsed.tune_kwargs())
        note = (f"{int((~known).sum())} truth cell(s) are unknown: each label's threshold is tuned on its own "
                "known rows")
        return replace(pol, thresholds=th, notes=(*pol.notes, note),
                       fitted_on={"rows": int(len(y)), "known_rows_only": True})
    full = known.all(axis=1)
    if not full.any():
        raise InputError(f"rule {rule!r} is tuned on whole rows, and no row has every label known; use a "
                         "per-label rule (e.g. --optimize f1), which tunes each label on its known rows")
    pol = fit_policy(y[full], raw[full], schema, rule=rule, calibration=calibration, min_labels=min_labels,
                     max_labels=max_labels, from_logits=from_logits)
    note = (f"rule {rule!r} is tuned on whole rows: fitted on the {int(full.sum())} of {len(y)} rows with every "
            "label known")
    return replace(pol, notes=(*pol.notes, note))
