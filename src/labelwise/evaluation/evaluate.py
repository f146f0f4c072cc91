"""``evaluate``: one call from (truth, scores) to everything a practitioner reads about a multi-label model.

``evaluate`` turns scores into decisions (given thresholds, thresholds tuned on the spot, or
0.5), then computes per label: positives, AUC and AP with bootstrap confidence intervals
(resampling images, or patients with ``groups``), the threshold, precision, recall,
specificity and F1; the averages (macro/micro/weighted); the classification report; and
the model-health diagnostics. The result prints as a text table, serialises to JSON, and
saves a folder with ``metrics.json``, ``thresholds.json``, PNG plots and ``report.html``.

``compare`` (:mod:`labelwise.evaluation.compare`) runs this for several strategies on the same
resamples; the result types live in :mod:`labelwise.evaluation.results`.

The metrics themselves live in :mod:`labelwise.metrics` and :mod:`labelwise.decide.thresholds`;
this module only binds them together. It imports neither Keras nor matplotlib at the top.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..labels.schema import LabelSchema, load_schema
from ..metrics._validation import check_scores, check_targets
from .decisions import decisions_info
from .diagnostics import diagnose
from .results import EvaluationResult, LabelRow
from .text import COLLAPSE_NOTE, OPTIMISM_NOTE

__all__ = ["evaluate", "parse_tune", "scores_from_logits"]


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
    """Turn head logits (n, n_outputs) into probabilities, the head's own activations: sigmoid for
    the independent and derived blocks, softmax within each exclusive group, softmax over an
    at-most-one group and its implicit absent member (logit 0; the absent column is dropped)."""
    z = np.asarray(logits, dtype=np.float64)
    out = np.empty_like(z)
    for block in schema.layout:
        zb = z[:, block.start:block.stop]
        if block.kind in ("sigmoid", "derived"):
            out[:, block.start:block.stop] = 0.5 * (1.0 + np.tanh(0.5 * zb))  # overflow-free sigmoid
        else:
            if block.kind == "at_most_one":
                zb = np.concatenate([zb, np.zeros((len(zb), 1))], axis=1)
            e = np.exp(zb - zb.max(axis=1, keepdims=True))
            out[:, block.start:block.stop] = (e / e.sum(axis=1, keepdims=True))[:, : block.stop - block.start]
    return out


def known_truth(y_true: Any, known: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``(y, known)``: the truth with unknown cells filled by 0, and the known mask (``known`` as
    given, else ``y_true >= 0`` when ``y_true`` holds -1 cells, else None: every cell known)."""
    y = np.asarray(y_true)
    if known is None and y.ndim == 2 and np.issubdtype(y.dtype, np.number) and (y < 0).any():
        known = y >= 0
    if known is None:
        return y, None
    known = np.asarray(known, dtype=bool)
    if known.shape != y.shape:
        raise InputError(f"known has shape {known.shape} but y_true has shape {y.shape}")
    return np.where(known, y, 0), known


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
    score_source: str | None = None,
    min_class_count: int = 10,
    known: np.ndarray | None = None,
    average_over: str = "free",
) -> EvaluationResult:
    """Evaluate scores against the truth; see the module docstring.

    ``y_true`` (n, n_labels) 0/1 over ``schema.labels``. ``y_score`` over the same labels, or
    over ``schema.output_labels`` only (the none score is then ``prod(1 - p_i)``); with
    ``from_logits`` they are head logits (sigmoid / per-group softmax applied). Without a
    schema, every label is independent and named by ``labels`` (default ``label_0 ...``).
    Decisions: ``thresholds`` (a ``Thresholds`` or its JSON path), else thresholds tuned on
    this data by the rule ``tune`` (see :func:`parse_tune`; optimistic, and said so), else 0.5.
    ``bootstrap`` resamples (0 = no intervals), of images or of ``groups`` (e.g. patient ids);
    ``progress(done, total)`` is called as the resamples are computed. A label with fewer than
    ``min_class_count`` positives or negatives in this data gets no interval (its notes and the
    result's notes say so, naming it) and the macro intervals average the same other labels in
    every resample (:func:`labelwise.metrics.bootstrap_ci`); when labels are left out, the macro
    AUC/AP over the labels with intervals is ``averages["auc_macro_ci_labels"]`` with its interval.
    ``average_over``: ``"free"`` (default) averages the per-label metrics (macro, micro, weighted,
    samples; ECE, Brier) over the free labels (independent labels and group members), as the field
    reports "the mean over the findings"; derived labels and the none label, computed from the
    others, keep their own rows. ``"all"`` averages over every label. ``averages_cover`` in the
    JSON names the labels each average covers.
    ``thresholds`` may also be a :class:`~labelwise.decide.DecisionPolicy` (or a ``decision.json``
    path): its calibration is applied to the scores first (every metric is then computed on the
    calibrated probabilities), then its rule decides. ``score_source`` names the training loss the
    scores come from (``"weighted"``, ``"focal"``, ``"asymmetric"``, ``"bce"``...; the training code
    passes its config's ``binary`` setting): the report then warns when scores from a reweighting
    loss are used without calibration, since they are not probabilities.
    Unknown truth cells: ``known`` (a bool mask like ``y_true``, e.g. ``table.known``) or -1 cells
    in ``y_true``; every per-label number then uses that label's known rows (see
    :mod:`labelwise.evaluation.known`). With a structured schema (implications, derived labels,
    at-most-one groups) ``summary["structure_violations"]`` is the share of images whose naive
    ``score >= 0.5`` decisions break the schema -- what ``decide`` (which breaks none) buys.
    """
    from ..decide.guarantees import promise_lines

    yt_in, known = known_truth(y_true, known)
    schema, yt, ys = _prepare(yt_in, y_score, schema=schema, labels=labels, from_logits=from_logits)
    result = _evaluate_prepared(yt, ys, schema, thresholds=thresholds, tune=tune, bootstrap=bootstrap, level=level,
                                seed=seed, groups=groups, summary=summary, progress=progress,
                                score_source=score_source, min_class_count=min_class_count,
                                known=None if known is None or known.all() else known, average_over=average_over)
    # a guarantee rule's promise, checked on this data (met / NOT met), in the notes and the report
    result.notes.extend(promise_lines(result.thresholds, result.y_true, result.y_pred, result.schema.labels))
    return result


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
                       boot: Mapping[str, Any] | None = None, score_source: str | None = None,
                       min_class_count: int = 10, known: np.ndarray | None = None,
                       average_over: str = "free") -> EvaluationResult:
    """:func:`evaluate` on checked inputs; ``boot``: a ``bootstrap_ci`` result computed already (same
    settings), used instead of bootstrapping again (``compare`` passes its paired resamples)."""
    from .. import metrics as M
    from ..decide import thresholds as T

    names = list(schema.labels)
    n = yt.shape[0]
    notes: list[str] = []
    avg = averaged_labels(schema, average_over)

    # ---- decisions
    if thresholds is not None and tune is not None:
        raise InputError("give either thresholds (from a validation set) or tune (on this data), not both")
    policy, ys_raw, where = None, None, "the thresholds"
    if thresholds is not None and isinstance(thresholds, (str, Path)):
        from .decisions import load_decision

        where = f"{thresholds}"
        thresholds = load_decision(thresholds, schema)
    if thresholds is not None and hasattr(thresholds, "decide"):  # a DecisionPolicy
        policy = thresholds
        try:
            policy.check_labels(names)
        except InputError as e:
            raise InputError(f"{where}: {e}") from None
        ys_raw = ys
        ys, y_pred = policy.apply(ys, from_logits=False)
        thresholds = policy.thresholds
        source = (f"from {where}" if where != "the thresholds" else "given") + f" ({policy.describe()})"
        notes.extend(policy.notes)
    elif thresholds is not None:
        source = "given" if where == "the thresholds" else f"from {where}"
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
            if known is None:
                thresholds = T.tune_thresholds(yt, ys, labels=names, schema=schema, **kw)
            else:
                from .known import tune_known

                thresholds = tune_known(yt, ys, known, names, schema, kw)
        notes.extend(str(w.message) for w in caught)
        source = f"tuned on this data ({tune}); optimistic"
        notes.append(OPTIMISM_NOTE)
    else:
        source = "default 0.5"
    if policy is None:  # plain thresholds (or none: 0.5 per label), decided by the same road
        from ..decide.policy import as_policy

        y_pred = as_policy(thresholds, schema).apply(ys)[1]

    # ---- per-label metrics
    if known is not None:
        from .known import masked_metrics

        per, averages, known_notes, full_rows = masked_metrics(yt, ys, y_pred, known, names)
        auc, ap, prec, rec, spec, f1 = (per[k] for k in ("auc", "ap", "precision", "recall", "specificity", "f1"))
        notes.extend(known_notes)
        zd = {"labels": names, "zero_division": np.nan}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ece = np.array([_arr(M.expected_calibration_error(yt[known[:, j], j:j + 1], ys[known[:, j], j:j + 1],
                                                              average=None))[0] if known[:, j].any() else np.nan
                            for j in range(len(names))])
            brier = np.array([_arr(M.brier_score(yt[known[:, j], j:j + 1], ys[known[:, j], j:j + 1],
                                                 average=None))[0] if known[:, j].any() else np.nan
                              for j in range(len(names))])
            averages["ece_classwise"] = _num(np.nanmean(ece[avg]))
            averages["brier_macro"] = _num(np.nanmean(brier[avg]))
            if not avg.all():  # the macros of the labels covered (micro and the like stay over every label)
                for key, per_label in (("auc_macro", auc), ("ap_macro", ap), ("f1_macro", f1),
                                       ("precision_macro", prec), ("recall_macro", rec), ("specificity_macro", spec)):
                    if key in averages:
                        averages[key] = _num(np.nanmean(np.asarray(per_label, dtype=np.float64)[avg]))
            averages["labels_per_image_predicted"] = _num(y_pred[full_rows].sum(axis=1).mean())
            averages["labels_per_image_true"] = _num(yt[full_rows].sum(axis=1).mean())
            if full_rows.any():
                report_text = M.classification_report(yt[full_rows], y_pred[full_rows], **zd)
                report_dict = M.classification_report(yt[full_rows], y_pred[full_rows], output_dict=True, **zd)
            else:  # each label is still evaluated on its own known rows above
                report_text, report_dict = "(no row has every label known: no classification report)\n", {}
    else:
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
            a_names = [x for x, k in zip(names, avg) if k]
            at, as_, ap_ = yt[:, avg], ys[:, avg], y_pred[:, avg]
            for kind in ("macro", "micro", "weighted", "samples"):
                averages[f"auc_{kind}"] = _num(M.roc_auc_score(at, as_, average=kind, labels=a_names))
                averages[f"ap_{kind}"] = _num(M.average_precision_score(at, as_, average=kind, labels=a_names))
            averages["lrap"] = _num(M.label_ranking_average_precision_score(yt, ys, labels=names))
            averages["coverage_error"] = _num(M.coverage_error(yt, ys, labels=names))
            averages["ranking_loss"] = _num(M.label_ranking_loss(yt, ys, labels=names))
            za = {"labels": a_names, "zero_division": np.nan}
            for kind in ("macro", "micro"):
                averages[f"f1_{kind}"] = _num(M.f1_score(at, ap_, average=kind, **za))
                averages[f"precision_{kind}"] = _num(M.precision_score(at, ap_, average=kind, **za))
                averages[f"recall_{kind}"] = _num(M.recall_score(at, ap_, average=kind, **za))
            averages["specificity_macro"] = _num(M.specificity_score(at, ap_, average="macro", **za))
            ece = _arr(M.expected_calibration_error(yt, ys, average=None, labels=names))
            brier = _arr(M.brier_score(yt, ys, average=None, labels=names))
            averages["ece_classwise"] = _num(np.mean(ece[avg]))
            averages["brier_macro"] = _num(np.mean(brier[avg]))
            averages["labels_per_image_predicted"] = _num(y_pred.sum(axis=1).mean())
            averages["labels_per_image_true"] = _num(yt.sum(axis=1).mean())
            averages["hamming_loss"] = _num(M.hamming_loss(yt, y_pred))
            averages["subset_accuracy"] = _num(M.subset_accuracy(yt, y_pred))
            report_text = M.classification_report(yt, y_pred, **zd)
            report_dict = M.classification_report(yt, y_pred, output_dict=True, **zd)
    a_names = [x for x, k in zip(names, avg) if k]
    notes.extend(_left_out_notes(a_names, AUC=auc[avg], AP=ap[avg], precision=prec[avg], recall=rec[avg],
                                 specificity=spec[avg], F1=f1[avg]))
    if not avg.all():
        notes.append(f"the averages cover the {int(avg.sum())} free label(s) (independent labels and group members); "
                     f"{[x for x, k in zip(names, avg) if not k]} (computed from the others) have their own rows "
                     "(average_over='all' / --average-over all includes them)")

    ci = {k: np.full((len(names), 2), np.nan) for k in ("roc_auc", "average_precision")}
    averages_ci: dict[str, tuple[float, float]] = {}
    boot_info: dict[str, Any] = {"n_resamples": int(bootstrap), "level": level, "seed": seed,
                                 "unit": "groups" if groups is not None else str((summary or {}).get("unit", "images"))}
    if bootstrap and bootstrap > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if boot is None and known is not None:
                from .known import masked_bootstrap

                boot = masked_bootstrap(yt, ys, known, names, n_resamples=int(bootstrap), level=level, seed=seed,
                                        groups=groups, progress=progress, min_class_count=min_class_count)
            res = boot if boot is not None else M.bootstrap_ci(
                yt, ys, metrics=("roc_auc", "average_precision"), n_resamples=int(bootstrap), level=level,
                seed=seed, groups=groups, labels=names, min_class_count=min_class_count,
                **({"progress": progress} if progress is not None else {}))
        for metric, key in (("roc_auc", "auc"), ("average_precision", "ap")):
            r = res[metric]
            ci[metric][:, 0] = _arr(r.low)
            ci[metric][:, 1] = _arr(r.high)
            eligible = np.asarray(r.eligible, dtype=bool) & avg
            mp, lo, hi = _macro_over(r, avg, level)
            lo, hi = _num(lo), _num(hi)
            if not (math.isfinite(lo) and math.isfinite(hi)):
                continue
            defined = np.isfinite(_arr(r.point)) & avg
            if np.array_equal(eligible, defined):
                averages_ci[f"{key}_macro"] = (lo, hi)
            else:
                # The macro over every defined label has no interval of its own; the one computed is of
                # the mean over the labels with intervals, so it is shown beside that mean.
                averages[f"{key}_macro_ci_labels"] = _num(mp)
                averages_ci[f"{key}_macro_ci_labels"] = (lo, hi)
        left_out = _ci_left_out(names, yt, res["roc_auc"].eligible, res["roc_auc"].point, min_class_count)
        boot_info["min_class_count"] = int(min_class_count)
        boot_info["ci_left_out"] = left_out
        if left_out:
            kept = len(names) - len(left_out) - int((~np.isfinite(_arr(res["roc_auc"].point))).sum())
            notes.append(f"no confidence interval for {len(left_out)} label(s) with fewer than {min_class_count} "
                         f"positives or negatives in this data (set by min_class_count / --min-class-count): "
                         + ", ".join(f"{k} ({v})" for k, v in left_out.items())
                         + f"; the macro intervals average the same {kept} other label(s) in every resample")
        if groups is not None:
            boot_info["n_groups"] = int(len(set(np.asarray(groups).tolist())))

    # ---- rows
    rows = []
    thr_values = dict(zip(map(str, thresholds.labels), map(float, thresholds.values))) if thresholds is not None else {}
    kn = np.ones(yt.shape, dtype=bool) if known is None else known
    positives = (yt.astype(bool) & kn).sum(axis=0).astype(int)
    predicted = (y_pred.astype(bool) & kn).sum(axis=0).astype(int)
    n_known = kn.sum(axis=0).astype(int)
    for j, label in enumerate(names):
        if label == schema.none or label in schema.derived:
            rule, thr = "derived", math.nan
        elif schema.group_of(label) is not None:
            rule, thr = "argmax", math.nan
        elif policy is not None and not _thresholded(policy):
            rule, thr = policy.rule, math.nan
        else:
            rule, thr = "threshold", thr_values.get(label, 0.5)
        row_notes = []
        if rule == "threshold" and not math.isfinite(thr):
            row_notes.append("no threshold could be tuned here; decided at 0.5")
            thr = 0.5
        pos, n = int(positives[j]), int(n_known[j])
        if n < yt.shape[0]:
            row_notes.append(f"evaluated on its {n} known rows of {yt.shape[0]}")
        if pos == 0:
            row_notes.append("only negatives in this data: AUC/AP undefined; no positives, so recall"
                             + (" and F1" if not math.isfinite(f1[j]) else "") + " undefined")
        elif pos == n:
            row_notes.append("only positives in this data: AUC/AP undefined; no negatives, so specificity undefined")
        if predicted[j] == 0:
            row_notes.append("no positive decisions: precision undefined")
        if label in boot_info.get("ci_left_out", {}):
            row_notes.append(f"{boot_info['ci_left_out'][label]} (< {min_class_count}): no confidence interval")
        rows.append(LabelRow(
            label=label, positives=pos, prevalence=pos / n if n else math.nan,
            auc=float(auc[j]), auc_low=float(ci["roc_auc"][j, 0]), auc_high=float(ci["roc_auc"][j, 1]),
            ap=float(ap[j]), ap_low=float(ci["average_precision"][j, 0]), ap_high=float(ci["average_precision"][j, 1]),
            threshold=float(thr), rule=rule, predicted=int(predicted[j]), precision=float(prec[j]),
            recall=float(rec[j]), specificity=float(spec[j]), f1=float(f1[j]), notes=row_notes,
            ece=float(ece[j]), brier=float(brier[j]),
        ))

    # ---- diagnostics (on the bootstrap interval when there is one)
    auc_ci = ci["roc_auc"] if bootstrap and bootstrap > 0 else None
    full = kn.all(axis=1)
    from .decisions import info_has_cal

    findings = diagnose(yt[full], ys[full], labels=names, auc=auc, auc_ci=auc_ci, level=level,
                        independent=list(schema.independent), groups=dict(schema.exclusive), ece=ece,
                        calibration=policy.calibration.method if info_has_cal(policy) else None,
                        loss=score_source, priors=_prior_labels(policy)) if full.any() else []
    if any(f.code in ("collapse", "chance") for f in findings):
        notes.insert(0, COLLAPSE_NOTE)

    decisions = decisions_info(policy, yt, ys, ys_raw, y_pred, score_source, names,
                               rule=(thresholds.method if thresholds is not None else "default 0.5"))
    # One ECE everywhere (text, JSON, the Decisions section and its plot's legend): the classwise
    # mean over the labels the averages cover, 15 bins.
    decisions["ece_after"] = averages["ece_classwise"]
    decisions["ece_labels"] = a_names
    if decisions.get("ece_before") is not None and ys_raw is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            before = _arr(M.expected_calibration_error(yt, ys_raw, average=None, labels=names))
        decisions["ece_before"] = _num(np.nanmean(before[avg]))
    notes.extend(decisions["warnings"])
    n = yt.shape[0]
    summ = {"n_images": n, "n_labels": len(names), "positives": {x: int(p) for x, p in zip(names, positives)},
            "known": {x: int(k) for x, k in zip(names, n_known)},
            "labels_per_image": float(yt.sum(axis=1).mean()) if n else math.nan,
            "labels_per_image_counts": LABELS_PER_IMAGE,
            "averages_cover": {"over": average_over, "labels": a_names}}
    if schema.has_structure:
        from ..labels.structure import violation_rate

        summ["structure_violations"] = violation_rate(ys, schema)
        v = summ["structure_violations"]
        notes.append(f"naive score >= 0.5 decisions break the schema on {100 * v['any']:.2f}% of images ("
                     + ", ".join(f"{k} {100 * r:.2f}%" for k, r in v["by_rule"].items())
                     + "); the decisions here obey it (decide imposes the structure)")
    summ.update(dict(summary or {}))
    return EvaluationResult(
        schema=schema, rows=rows, averages=averages, averages_ci=averages_ci, thresholds=thresholds,
        threshold_source=source, classification_report=str(report_text),
        classification_report_dict=dict(report_dict), findings=findings, notes=notes, n_samples=n,
        bootstrap=boot_info, y_true=yt, y_score=ys, y_pred=y_pred, summary=summ,
        decisions=decisions, y_score_uncalibrated=ys_raw, policy=policy,
    )


def _macro_over(r: Any, mask: np.ndarray, level: float) -> tuple[float, float, float]:
    """The macro (point, low, high) of a bootstrap result over the labels of ``mask``
    (:func:`labelwise.metrics.bootstrap.macro_over`); its own macro when no resamples were kept."""
    from ..metrics.bootstrap import macro_over

    if getattr(r, "samples", None) is None:
        return r.macro_point, r.macro_low, r.macro_high
    return macro_over(r.point, r.samples, r.eligible, mask, level)


def default_groups(table: Any, column: str | None = None) -> tuple[np.ndarray | None, str | None]:
    """``(groups, column)`` to resample by: ``table.groups(column)``, or with no ``column`` the first
    of :data:`labelwise.labels.stats.DEFAULT_GROUP_COLUMNS` ("Patient ID", ...) the table has, so
    the intervals resample patients rather than images by default; ``(None, None)`` when none."""
    from ..labels.stats import DEFAULT_GROUP_COLUMNS

    extra = getattr(table, "extra", None)
    if column is None:
        cols = list(getattr(extra, "columns", ()))
        column = next((c for c in DEFAULT_GROUP_COLUMNS if c in cols), None)
        if column is None:
            return None, None
    return np.asarray(table.groups(column)), column


def groups_note(groups: Any, what: str) -> str:
    """What the bootstrap resamples, said once: ``"the confidence intervals resample the 30 groups
    (what) of 120 images: images of one patient are not independent"``; when every group holds one
    image, that resampling groups is resampling images."""
    n_groups, n = len(set(map(str, groups))), len(groups)
    if n_groups == n:
        return (f"the confidence intervals resample groups ({what}), but each of the {n} groups holds one image: "
                "the same as resampling images")
    return (f"the confidence intervals resample the {n_groups} groups ({what}) of {n} images: images of one "
            "patient are not independent")


LABELS_PER_IMAGE = "every label column of the schema: the none label and derived labels included"


def averaged_labels(schema: LabelSchema, average_over: str = "free") -> np.ndarray:
    """Mask over ``schema.labels`` of the labels the averages cover: ``"free"`` the free labels
    (independent labels and group members; all labels when there is none), ``"all"`` every label."""
    if average_over not in ("free", "all"):
        raise InputError(f"average_over must be 'free' or 'all'; got {average_over!r}")
    free = set(schema.free_labels)
    mask = np.array([x in free for x in schema.labels], dtype=bool)
    if average_over == "all" or not mask.any():
        return np.ones(len(schema.labels), dtype=bool)
    return mask


def _thresholded(policy) -> bool:
    """True when the policy's rule decides independent labels by a threshold (shown per label)."""
    return policy.thresholds is not None or policy.parsed_rule.name in ("hamming", "subset")


def _fingerprint_for(thresholds, yt: np.ndarray, ys: np.ndarray, names: Sequence[str]) -> str | None:
    """The hash ``tune_thresholds`` would record for this (truth, scores), over the columns the
    thresholds were tuned on (all labels, or the head outputs only); None when they differ."""
    from ..decide.thresholds import _fingerprint

    cols = [names.index(x) for x in thresholds.labels if x in names]
    if len(cols) != len(thresholds.labels):
        return None
    return _fingerprint(yt[:, cols], ys[:, cols])


def _ci_left_out(names, yt: np.ndarray, eligible, point, min_class_count: int) -> dict[str, str]:
    """``{label: "3 positives"}`` for the labels with a defined metric but no interval (too few of a class)."""
    out = {}
    n = yt.shape[0]
    for j, label in enumerate(names):
        if eligible is not None and not eligible[j] and math.isfinite(float(point[j])):
            pos = int(yt[:, j].sum())
            few, what = (pos, "positive") if pos < min_class_count else (n - pos, "negative")
            out[label] = f"{few} {what}{'s' if few != 1 else ''}"
    return out


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


def _arr(x: Any) -> np.ndarray:
    return np.atleast_1d(np.asarray(x, dtype=np.float64))


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _prior_labels(policy: Any) -> list[str]:
    """The labels ``policy``'s calibration set to their prevalence (kind ``prior``), or the calibration
    its scores already hold (a predict file's sidecar policy, ``fitted_on["calibration_in_scores"]``)."""
    cal = getattr(policy, "calibration", None)
    specs = (cal.independent if cal is not None else
             (getattr(policy, "fitted_on", None) or {}).get("calibration_in_scores", {}).get("independent", {}))
    return [label for label, spec in specs.items() if spec.get("kind") == "prior"]
