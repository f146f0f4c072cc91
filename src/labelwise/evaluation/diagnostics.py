"""Model-health diagnostics: catch a collapsed or chance-level model before trusting its metrics.

A real case: a knee-MRI model whose every prediction lay in 0.49-0.51. Its AUCs looked like
noise, its F1 at 0.5 swung wildly, and nothing said "this model learned nothing". ``diagnose``
looks at the score distribution of each label and names what it sees:

Per label (at most one of the first three; a collapsed label's AUC is folded into its message):

* ``prevalence`` (error): scores ~ constant (std < 10% of the mean) at the label's prevalence,
  or chance ranking while the mean score matches the prevalence: the model predicts the base rate.
* ``near_constant`` (error): std of the scores < ``std_tol`` (1e-3): the output ignores the input.
  Scores that vary only by float rounding noise (spread below ``noise_tol`` = 1e-6, relative to the
  scores' size) are always this, whatever AUC ranking the noise gives: it is an artefact.
* ``narrow_band`` (error): every score inside ``band`` (0.45-0.55): a head stuck near 0.5.
* ``compressed`` (warning): scores near-constant, in the narrow band or flat at the prevalence,
  but the AUC interval lies above 0.5: the ranking is informative, the scores are uncalibrated
  (thresholds near 0.5 and probabilities cannot be read as such). Not a collapse. An interval
  that contains 0.5, or a label without one (too few of a class for the bootstrap: the
  Hanley-McNeil interval is used), never reads as ranking well.
* ``auc_inverted`` (error): the whole AUC interval lies below 0.5: inverted or misaligned labels.
* ``auc_chance`` (warning): the AUC's confidence interval contains 0.5: no evidence of ranking.
* ``single_class`` (info): one class only in this data: AUC/AP undefined.

Global (``label`` None):

* ``collapse`` (error): more than half of the labels with both classes collapsed (the three first
  codes above).
* ``chance`` (error): more than half of the labels rank at chance while their scores vary.
* ``too_few_rows`` (warning): fewer than ``min_rows`` rows: too few to judge the model's health.
* ``not_probs`` (warning): scores outside [0, 1] (logits passed as probabilities?).
* ``softmax_head`` (warning): the independent labels' scores sum to 1 on every row.
* ``group_collapse`` (warning): an exclusive group's arg-max picks one member for most rows, far
  more often than that member is true (e.g. "8" for 90% of the digits), whatever the AUCs say.

Each finding carries the numbers it was decided on (``evidence``) and the causes a
practitioner checks first (``causes``). Numpy only; the AUC comes from ``labelwise.metrics``
when the caller does not pass it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError

__all__ = ["Finding", "diagnose", "LIKELY_CAUSES", "format_findings", "headline", "constant_while_learning"]

# The checklist a practitioner walks through when a model's outputs collapse.
LIKELY_CAUSES: dict[str, str] = {
    "learning_rate": "learning rate too high (weights blew up, then saturated) or too low (nothing moved); "
                     "try a learning-rate range test",
    "loss_weighting": "loss weighting: positive weights / class weights so strong (or wrong-way) that a "
                      "constant output minimises the loss",
    "frozen_layers": "frozen/unfrozen layers: the backbone left frozen with a tiny head, or unfrozen with "
                     "a large learning rate that destroyed the pretrained features",
    "batchnorm": "batch size 1 (or tiny batches) with batch statistics: BatchNorm normalises every "
                 "image to the same activations; use larger batches, freeze BN, or GroupNorm",
    "batchnorm_statistics": "BatchNorm moving statistics that never settled: scores constant in inference mode "
                            "while the training loss falls (Keras' momentum 0.99, MobileNetV3's 0.999, leaves a "
                            "short from-scratch run near the initial statistics); re-estimate them after each "
                            "epoch (labelwise train: bn_recalibrate_images, default 512) or set bn_momentum = 0.9",
    "misaligned": "labels misaligned with images (ids shuffled, rows sorted differently in the label "
                  "table and the image list); check a few images by eye",
    "head": "sigmoid vs softmax head: a softmax over independent labels (or a sigmoid over an exclusive "
            "group) makes the scores compete; multi-label needs one sigmoid per label",
    "preprocessing": "input preprocessing: images all black/constant after a wrong scaling, or the "
                     "inference preprocessing differs from training",
}

_COLLAPSE_CAUSES = ("learning_rate", "loss_weighting", "frozen_layers", "batchnorm", "head", "preprocessing")
_CHANCE_CAUSES = ("misaligned", "learning_rate", "frozen_layers", "preprocessing")


@dataclass(frozen=True)
class Finding:
    """One observation about the model's outputs.

    ``label`` is None for a global finding; ``severity`` is "error" (do not trust the metrics),
    "warning" (look closer) or "info"; ``evidence`` holds the numbers the rule was decided on;
    ``causes`` are keys of :data:`LIKELY_CAUSES`.
    """

    label: str | None
    code: str
    severity: str
    message: str
    evidence: Mapping[str, float] = field(default_factory=dict)
    causes: tuple[str, ...] = ()

    def cause_texts(self) -> list[str]:
        """The human-readable causes to check, in order."""
        return [LIKELY_CAUSES[c] for c in self.causes]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "label": self.label,
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "evidence": {k: float(v) for k, v in self.evidence.items()},
            "causes": self.cause_texts(),
        }

    def __str__(self) -> str:
        where = self.label if self.label is not None else "all labels"
        return f"[{self.severity}] {where}: {self.message}"


def diagnose(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    labels: Sequence[str],
    auc: Sequence[float] | None = None,
    auc_ci: Sequence[Sequence[float]] | Mapping[str, Sequence[float]] | None = None,
    level: float = 0.95,
    std_tol: float = 1e-3,
    band: tuple[float, float] = (0.45, 0.55),
    independent: Sequence[str] | None = None,
    majority: float = 0.5,
    min_class: int = 20,
    min_rows: int = 20,
    groups: Mapping[str, Sequence[str]] | None = None,
    group_excess: float = 0.3,
    noise_tol: float = 1e-6,
    flat_std: float = 1e-5,
    ece: Sequence[float] | None = None,
    ece_tol: float = 0.05,
    calibration: str | None = None,
    loss: str | None = None,
    priors: Sequence[str] = (),
) -> list[Finding]:
    """Look for a collapsed, chance-level or mis-wired model; return the findings (empty = healthy).

    What the caller knows shapes the advice: ``ece`` (per label, same order as ``labels``) lets a
    compressed label be called uncalibrated only when its ECE exceeds ``ece_tol``; ``calibration``
    (the method already applied, e.g. "platt") stops advice to recalibrate; ``loss`` (the training
    loss, e.g. "bce", "weighted") puts "loss weighting" among the causes only when the loss
    reweights. Scores whose std is below ``flat_std`` (1e-5: float32 rounding scale) count as
    collapsed whatever ranking their rounding noise gives. ``priors`` names the labels the
    calibration set to their prevalence (it could not rank them on the validation data): their
    near-constant probabilities are the calibration's doing, said as ``calibrated_to_prior``, not a
    collapse of the model.

    ``y_true`` (n, k) 0/1 and ``y_score`` (n, k) probabilities, columns named by ``labels``.
    ``auc`` per label (computed with :func:`labelwise.metrics.roc_auc_score` when None) and
    ``auc_ci`` per label as ``(low, high)`` rows or ``{label: (low, high)}``; without it the
    interval is the Hanley-McNeil normal approximation
    ``AUC +- z * sqrt((A(1-A) + (P-1)(Q1-A^2) + (N-1)(Q2-A^2)) / (P N))``,
    ``Q1 = A/(2-A)``, ``Q2 = 2A^2/(1+A)``. ``independent`` names the labels that should each
    have their own sigmoid (default: all) for the softmax-head check. A label counts as
    collapsed when near_constant, narrow_band or prevalence fires; the global ``collapse``
    finding fires when more than ``majority`` of the labels with both classes collapsed. A chance
    AUC with fewer than ``min_class`` cases of the rarer class is "info" (too few to tell).
    Compressed scores whose AUC interval lies above 0.5 rank well, so they are the ``compressed``
    warning, not a collapse; labels with one class only are not judged for collapse (a good model
    of a label absent from the data gives near-constant low scores). Fewer than ``min_rows`` rows
    gives ``too_few_rows``. ``groups`` (``{group: members}``, the schema's exclusive groups) adds
    ``group_collapse``: the group's arg-max picks one member for at least half of the rows and for
    ``group_excess`` more of them than that member's true share (a model calling most digits "8"
    can keep a high per-label AUC while its decisions are useless).
    """
    yt = np.asarray(y_true)
    ys = np.asarray(y_score, dtype=np.float64)
    labels = [str(x) for x in labels]
    if yt.ndim != 2 or ys.shape != yt.shape or yt.shape[1] != len(labels):
        raise InputError(
            f"diagnose needs y_true and y_score of the same shape (n, {len(labels)}); "
            f"got {yt.shape} and {ys.shape}"
        )
    n, k = yt.shape
    if n == 0:
        raise InputError("diagnose needs at least one row")
    yt = (yt != 0)
    if auc is None:
        auc = _auc_per_label(yt, ys, labels)
    auc = np.asarray(auc, dtype=np.float64)
    ci = _ci_array(auc_ci, labels)
    hm = _hanley_mcneil_ci(auc, yt.sum(axis=0), n - yt.sum(axis=0), level)
    if ci is None:
        ci = hm
    else:
        # A label the bootstrap gave no interval (too few of a class) is judged on the wide normal
        # approximation, never on the point AUC alone.
        missing = ~np.isfinite(ci).all(axis=1)
        ci = np.where(missing[:, None], hm, ci)

    findings: list[Finding] = []
    collapsed: list[str] = []
    chance: list[str] = []
    two_class = 0
    lo_band, hi_band = band
    for j, label in enumerate(labels):
        s = ys[:, j]
        finite = s[np.isfinite(s)]
        if finite.size == 0:
            findings.append(Finding(label, "no_scores", "error", "no finite score for this label (all NaN/inf)"))
            continue
        pos = int(yt[:, j].sum())
        prev = pos / n
        mean, std = float(finite.mean()), float(finite.std())
        smin, smax = float(finite.min()), float(finite.max())
        a, (lo, hi) = float(auc[j]), (float(ci[j, 0]), float(ci[j, 1]))
        ev = {"mean": mean, "std": std, "min": smin, "max": smax, "prevalence": prev, "positives": pos}
        if not math.isnan(a):
            ev.update(auc=a, auc_low=lo, auc_high=hi)
        has_both = 0 < pos < n
        two_class += has_both
        if not has_both:
            findings.append(Finding(
                label, "single_class", "info",
                f"only {'positives' if pos else 'negatives'} in this data ({pos} of {n} positive): "
                "AUC and AP are undefined (n/a); evaluate on data that has both classes", ev))

        if label in priors:
            findings.append(Finding(
                label, "calibrated_to_prior", "warning",
                f"the calibration set this label to its prevalence (the validation data could not rank it: no "
                f"positives, or a fit that would reverse the ranking), so its probabilities barely vary; its "
                + (f"{auc_text_of(a, lo, hi)} is the model's own ranking. " if not math.isnan(a) else "")
                + "More validation positives (a larger validation split) or a better model let it be calibrated", ev))
            continue
        # Constant-at-prevalence is the most specific reading of a constant output, so check it first.
        prev_tol = max(0.02, 0.1 * prev)
        chance_auc = has_both and not math.isnan(a) and lo <= 0.5 <= hi
        auc_text = auc_text_of(a, lo, hi) if not math.isnan(a) else "AUC n/a"
        # "Constant" relative to the mean: a good model of a rare label also has a small std.
        flat = std < max(std_tol, 0.1 * abs(mean))
        # Float rounding noise (float32 eps ~1.2e-7 times the score): a ranking of it is an artefact.
        noise = (smax - smin) <= noise_tol * max(1.0, abs(mean)) or std < flat_std * max(1.0, abs(mean))
        if noise:
            ev["float_noise"] = 1.0
        collapse: Finding | None = None
        if noise:
            collapse = Finding(
                label, "near_constant", "error",
                f"the scores vary only by float rounding noise (std {std:.2g}, all in {smin:.9g}-{smax:.9g}): the "
                "output does not depend on the image, and any AUC computed from this noise means nothing", ev,
                _COLLAPSE_CAUSES)
        elif has_both and abs(mean - prev) <= prev_tol and (flat or chance_auc):
            collapse = Finding(
                label, "prevalence", "error",
                f"predicts the base rate only: mean score {mean:.3f} matches the prevalence {prev:.3f} "
                + (f"and the scores barely vary (std {std:.2g})" if flat else "while the ranking is at chance"),
                ev, ("loss_weighting", "learning_rate", "frozen_layers", "batchnorm"))
        elif std < std_tol:
            collapse = Finding(
                label, "near_constant", "error",
                f"near-constant scores: std {std:.2g} < {std_tol:g} (all in {smin:.4f}-{smax:.4f}); "
                "the output does not depend on the image", ev, _COLLAPSE_CAUSES)
        elif lo_band <= smin and smax <= hi_band:
            collapse = Finding(
                label, "narrow_band", "error",
                f"every score lies in {smin:.3f}-{smax:.3f}, inside {lo_band:g}-{hi_band:g}: the head is stuck "
                "near 0.5 (decisions at any threshold near 0.5 are noise)", ev, _COLLAPSE_CAUSES)
        informative = has_both and not noise and not math.isnan(a) and lo > 0.5 and not chance_auc
        if collapse is not None and informative:
            # Compressed but well-ranked (e.g. every score in 0.49-0.51, positives on top): the model
            # learned the task; its scores only need recalibration. Calling this collapse sends people
            # debugging a working model.
            e = float(ece[j]) if ece is not None and math.isfinite(float(ece[j])) else math.nan
            if math.isfinite(e):
                ev["ece"] = e
            if math.isfinite(e) and e <= ece_tol:
                advice = (f"their ECE is {e:.3f}, so they read as probabilities: the narrow range reflects a rare or "
                          "hard label, and thresholds near 0.5 decide it rarely; tune thresholds on a validation set "
                          "if it must be decided more often")
            elif calibration and calibration != "none":
                advice = (f"they are already calibrated ({calibration})"
                          + (f" and keep an ECE of {e:.3f}" if math.isfinite(e) else "")
                          + ": check the calibration data (enough rows, the same distribution as this data)")
            else:
                advice = ("the scores are uncalibrated" + (f" (ECE {e:.3f})" if math.isfinite(e) else "")
                          + ", so probabilities and thresholds near 0.5 mean little; tune thresholds on a validation "
                          "set or recalibrate (e.g. Platt/isotonic) before reading them as probabilities")
            findings.append(Finding(
                label, "compressed", "warning",
                f"scores are compressed (all in {smin:.4f}-{smax:.4f}, std {std:.2g}) but rank well, {auc_text}: "
                + advice, ev))
            continue
        if collapse is not None and not has_both:
            continue  # one class only: flat scores are what a good model gives; single_class says the rest
        if collapse is not None:
            # One finding per collapsed label; its ranking is folded into the message.
            collapsed.append(label)
            if has_both:
                extra = "; not distinguishable from 0.5" if chance_auc else ""
                collapse = Finding(label, collapse.code, collapse.severity,
                                   f"{collapse.message}; {auc_text}{extra}", ev, collapse.causes)
            findings.append(collapse)
            continue
        if not has_both or math.isnan(a):
            continue
        if hi < 0.5:
            findings.append(Finding(
                label, "auc_inverted", "error",
                f"{auc_text} is below 0.5 beyond chance: the scores rank negatives above positives; "
                "labels and scores are inverted or misaligned", ev, ("misaligned", "head")))
        elif chance_auc:
            chance.append(label)
            few = min(pos, n - pos) < min_class
            findings.append(Finding(
                label, "auc_chance", "info" if few else "warning",
                f"{auc_text} is not distinguishable from 0.5 ({pos} positives): "
                + (f"too few {'positives' if pos < n - pos else 'negatives'} to tell; collect more before "
                   "judging this label" if few else "no evidence that the model ranks this label"),
                ev, () if few else _CHANCE_CAUSES))

    findings = _global_findings(findings, ys, labels, collapsed, chance, two_class, independent, majority)
    findings += _group_findings(yt, ys, labels, groups or {}, group_excess)
    from .decisions import REWEIGHTING_LOSSES

    if loss is not None and str(loss).lower() not in REWEIGHTING_LOSSES:
        # no loss weighting was used: it cannot be the cause
        findings = [Finding(f.label, f.code, f.severity, f.message, f.evidence,
                            tuple(c for c in f.causes if c != "loss_weighting")) for f in findings]
    if n < min_rows:
        findings.insert(0, Finding(
            None, "too_few_rows", "warning",
            f"only {n} row(s): too few to judge whether the model collapsed or ranks at chance; "
            f"evaluate on at least {min_rows} rows (ideally hundreds) with both classes of each label",
            {"rows": float(n), "min_rows": float(min_rows)}))
    return findings


def _global_findings(findings, ys, labels, collapsed, chance, two_class, independent, majority):
    k = len(labels)
    out: list[Finding] = []
    finite = ys[np.isfinite(ys)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        out.append(Finding(
            None, "not_probs", "warning",
            f"scores range {finite.min():.3g}..{finite.max():.3g}, outside [0, 1]: these look like logits; "
            "pass from_logits=True (--from-logits) so they are turned into probabilities",
            {"min": float(finite.min()), "max": float(finite.max())}))
    ind = [labels.index(x) for x in (independent if independent is not None else labels) if x in labels]
    if len(ind) >= 3:
        sums = ys[:, ind].sum(axis=1)
        if np.all(np.abs(sums - 1.0) < 1e-3):
            out.append(Finding(
                None, "softmax_head", "warning",
                f"the scores of the {len(ind)} independent labels sum to 1 on every row: the head looks like "
                "a softmax, which makes labels compete; multi-label needs one sigmoid per label",
                {"mean_row_sum": float(sums.mean())}, ("head",)))
    # Only labels with both classes are judged (collapsed and chance hold no others).
    base = max(two_class, 1)
    if collapsed and len(collapsed) > majority * base:
        out.append(Finding(
            None, "collapse", "error",
            f"the model has collapsed: {len(collapsed)} of {k} labels give (near-)constant or chance-band "
            f"scores ({', '.join(collapsed[:6])}{', ...' if len(collapsed) > 6 else ''}); the metrics "
            "describe noise, not the task. Check the likely causes listed under Diagnostics",
            {"collapsed_labels": float(len(collapsed)), "labels": float(k)},
            _COLLAPSE_CAUSES + ("misaligned",)))
    elif chance and len(chance) > majority * base:
        out.append(Finding(
            None, "chance", "error",
            f"{len(chance)} of {k} labels rank at chance although the scores vary: the model's outputs are "
            "unrelated to these labels (misaligned ids are the usual cause)",
            {"chance_labels": float(len(chance)), "labels": float(k)}, _CHANCE_CAUSES))
    return out + findings


def _group_findings(yt, ys, labels, groups, excess):
    out: list[Finding] = []
    for group, members in groups.items():
        cols = [labels.index(m) for m in members if m in labels]
        if len(cols) < 2 or not np.isfinite(ys[:, cols]).all():
            continue
        picked = np.bincount(np.argmax(ys[:, cols], axis=1), minlength=len(cols)) / len(ys)
        top = int(np.argmax(picked))
        true_share = float(yt[:, cols[top]].mean())
        if picked[top] >= 0.5 and picked[top] - true_share >= excess:
            member = labels[cols[top]]
            out.append(Finding(
                None, "group_collapse", "warning",
                f"exclusive group '{group}': the arg-max picks '{member}' for {picked[top]:.0%} of the rows, "
                f"but '{member}' is true for {true_share:.0%}; the group's decisions have collapsed onto one "
                "member even if its per-label AUCs look fine",
                {"picked_share": float(picked[top]), "true_share": true_share},
                ("learning_rate", "batchnorm", "loss_weighting")))
    return out


def headline(findings: Sequence[Finding], *, derived: Sequence[str] = ()) -> Finding | None:
    """The error to lead a report with (its MODEL HEALTH banner), or None without errors.

    A model-level error (``label`` None: collapse, chance) first; else the label error with the most
    evidence: labels not in ``derived`` (the none label, computed from the others) before derived
    ones, then the most cases of the rarer class (an error on a label with 2 positives is the
    weakest finding on the page)."""
    errors = [f for f in findings if f.severity == "error"]
    if not errors:
        return None
    model = [f for f in errors if f.label is None]
    if model:
        return model[0]

    def weight(f: Finding):
        ev = f.evidence
        pos = float(ev.get("positives", 0.0))
        n = pos / ev["prevalence"] if ev.get("prevalence") else pos
        return (f.label in derived, -min(pos, n - pos))

    return sorted(errors, key=weight)[0]


def auc_text_of(a: float, lo: float, hi: float) -> str:
    """``AUC 0.612 (CI 0.55-0.67)``."""
    return f"AUC {a:.3f} (CI {lo:.3f}-{hi:.3f})"


def format_findings(findings: Sequence[Finding], *, causes: bool = True) -> str:
    """Human text: one line per finding, errors first, then the causes to check."""
    if not findings:
        return "No problems found: scores vary, and every label ranks better than chance."
    order = {"error": 0, "warning": 1, "info": 2}
    lines = [str(f) for f in sorted(findings, key=lambda f: (order.get(f.severity, 3), f.label is not None))]
    seen: list[str] = []
    for f in findings:
        if f.severity != "info":
            seen += [c for c in f.causes if c not in seen]
    if causes and seen:
        lines.append("Likely causes to check:")
        lines += [f"  - {LIKELY_CAUSES[c]}" for c in seen]
    return "\n".join(lines)


# ----------------------------------------------------------------- helpers
def _auc_per_label(yt: np.ndarray, ys: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    from ..metrics import roc_auc_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # single-class labels are reported as their own finding
        s = np.nan_to_num(ys, nan=0.5)
        # AUC depends on the ranking only; logits are ranked through the (monotone) sigmoid.
        logits = bool(s.size) and (s.min() < 0 or s.max() > 1)
        return np.asarray(roc_auc_score(yt.astype(np.uint8), s, average=None, from_logits=logits),
                          dtype=np.float64)


def _ci_array(auc_ci, labels):
    if auc_ci is None:
        return None
    if isinstance(auc_ci, Mapping):
        rows = [auc_ci.get(label, (np.nan, np.nan)) for label in labels]
    else:
        rows = list(auc_ci)
    ci = np.asarray(rows, dtype=np.float64)
    if ci.shape != (len(labels), 2):
        raise InputError(f"auc_ci must give (low, high) for each of the {len(labels)} labels; got shape {ci.shape}")
    return ci


def _hanley_mcneil_ci(auc, n_pos, n_neg, level):
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + level / 2)
    a = np.clip(auc, 1e-9, 1 - 1e-9)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
        se = np.sqrt(np.maximum(var, 0))
    # AUC lives in [0, 1]; the normal approximation does not know that near the ends
    return np.clip(np.stack([auc - z * se, auc + z * se], axis=1), 0.0, 1.0)


def constant_while_learning(y_score: np.ndarray, train_loss: Sequence[float], *, labels: Sequence[str],
                            std_tol: float = 1e-3, majority: float = 0.5, fall: float = 0.05,
                            batchnorm: bool = True, recalibrated: int = 0) -> Finding | None:
    """The ``constant_while_learning`` error, or None: more than ``majority`` of the labels have
    validation scores with std < ``std_tol`` while the training loss fell (its last value at least
    ``fall`` below its first, relative; two epochs or more), i.e. the model learned in training
    mode but ignores its input in inference mode. With ``batchnorm`` (the model has trainable
    BatchNormalization layers) and ``recalibrated == 0`` (their statistics were not re-estimated)
    the cause named is BatchNorm's moving statistics, with what to do."""
    ys = np.asarray(y_score, dtype=np.float64)
    loss = [float(v) for v in train_loss if v is not None and math.isfinite(float(v))]
    if ys.ndim != 2 or not len(ys) or len(loss) < 2 or not loss[-1] < loss[0] * (1 - fall):
        return None
    std = np.nanstd(ys, axis=0)
    flat = [name for name, s in zip(labels, std) if s < std_tol]
    if len(flat) <= majority * len(labels):
        return None
    said = (f"validation scores are constant for {len(flat)} of {len(labels)} labels (std < {std_tol:g}; "
            f"{', '.join(flat[:5])}{', ...' if len(flat) > 5 else ''}) while the training loss fell "
            f"{loss[0]:.4g} -> {loss[-1]:.4g}: the model learned in training mode but ignores its input in "
            "inference mode")
    evidence = {"constant_labels": float(len(flat)), "labels": float(len(labels)), "first_loss": loss[0],
                "last_loss": loss[-1]}
    if batchnorm and not recalibrated:
        return Finding(None, "constant_while_learning", "error",
                       said + ". BatchNorm's moving statistics are the likely cause: they lag (or still hold "
                       "their initial values) after a short from-scratch run. Re-estimate them after every "
                       "epoch (bn_recalibrate_images, default 512; it is 0 here) or set bn_momentum = 0.9",
                       evidence, ("batchnorm_statistics", "learning_rate"))
    if batchnorm:
        return Finding(None, "constant_while_learning", "error",
                       said + f". BatchNorm's statistics were re-estimated over {recalibrated} training images, "
                       "so they match the weights; check the learning rate and whether the validation images "
                       "are preprocessed as the training images are",
                       {**evidence, "recalibrated_images": float(recalibrated)}, ("learning_rate", "preprocessing"))
    return Finding(None, "constant_while_learning", "error", said + "; the model has no trainable BatchNorm layer: "
                   "check the learning rate and the validation images' preprocessing", evidence,
                   ("learning_rate", "preprocessing"))
