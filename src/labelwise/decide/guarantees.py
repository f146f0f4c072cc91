"""Decision rules with a finite-sample guarantee (ranks and counts only; no calibration needed).

Rules (written ``name op target[@confidence]``; ``;fallback=point`` lets uncertifiable labels fall back):

* ``sensitivity>=r@c`` (alias ``recall``): per independent label, the highest threshold ``t`` such that
  the one-sided Clopper-Pearson lower bound on recall, from the ``n`` validation positives, is >= r at
  confidence c. With ``k`` positives scoring >= t this is ``P(Bin(n, r) >= k) <= 1 - c``. The chosen
  threshold is the k-th largest positive score, whose recall on new data is distributed as
  ``Beta(k, n - k + 1)`` (order statistics of exchangeable scores), so ``P(recall >= r) >= c`` exactly.
  Impossible when even ``k = n`` fails: ``r**n > 1 - c``; the smallest sufficient n is
  :func:`min_count_possible`.
* ``specificity>=r@c``: the same on the ``m`` validation negatives; the LOWEST threshold whose lower
  bound on specificity clears r (just above the j-th smallest negative score).
* ``precision>=r@c``: Learn-Then-Test (Angelopoulos, Bates et al. 2021) by fixed-sequence testing over
  a fixed grid of thresholds from 1 down to 0: at ``t`` the null "precision(t) < r" has the binomial
  p-value ``P(Bin(n_t, r) >= k_t)`` (``n_t`` validation images scoring >= t, ``k_t`` positives among
  them); testing stops at the first p-value > 1 - c and the lowest rejected threshold is taken.
  Fixed-sequence testing controls the family-wise error at 1 - c, so ``P(precision >= r) >= c``,
  conditional on the validation scores (grid points with fewer validation images above than could ever
  certify r, :func:`min_count_possible`, are skipped: which they are depends on the scores only).
* ``fnr<=a``: conformal risk control (Angelopoulos et al. 2022) for the per-image false-negative rate
  ``L_i(t) = |{true independent labels with p < t}| / |true independent labels|`` (0 for an image
  with none; bounded by 1, nondecreasing in t): one threshold for all independent labels, the largest
  t with ``n/(n+1) R(t) + 1/(n+1) <= a``, which gives ``E[FNR of a new image] <= a`` (expectation
  over validation and new data). Impossible when ``a < 1/(n+1)``.
* ``fnr<=a@c``: Learn-Then-Test on the same loss with the Hoeffding-Bentkus p-value
  ``min(exp(-2n (a - R)_+^2), e P(Bin(n, a) <= ceil(n R)))``, fixed sequence over a grid of t from 0
  up; then ``P(FNR risk <= a) >= c``.

Exclusive-group members stay arg-max and the none label derived (threshold NaN), like every rule.
A parent of ``[labels.implies]`` is also decided wherever a label implying it is (the schema's
structure); ``specificity`` and ``precision``, which those extra decisions can break, are certified
on what is decided: rows its children turn on count as decided at every threshold. This holds
conditional on the children's thresholds, which come from the same validation data: a child decided
by an uncertified point estimate (``fallback=point``) can still leave its parent's promise optimistic.
``sensitivity`` and ``fnr`` only gain from those extra decisions.
This module imports neither Keras nor TensorFlow.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..errors import InputError
from .thresholds import Thresholds, tune_thresholds

__all__ = ["GuaranteeRule", "parse_guarantee", "is_guarantee", "clopper_pearson_lower", "clopper_pearson_interval",
           "min_successes", "min_count_possible", "recall_threshold", "specificity_threshold",
           "precision_threshold", "fnr_losses", "crc_fnr_threshold", "ltt_fnr_threshold", "fit_guarantee",
           "check_guarantees", "promise_lines", "GUARANTEE_RULES", "FALLBACKS"]

GUARANTEE_RULES = ("sensitivity", "specificity", "precision", "fnr")
FALLBACKS = ("none", "point")
_GRID = np.linspace(0.0, 1.0, 1001)  # fixed in advance: LTT's family of hypotheses
_MAX_THRESHOLD = float(np.nextafter(1.0, np.inf))
_NUM = r"([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)"
_PATTERN = re.compile(rf"(sensitivity|recall|specificity|precision|fnr)(>=|<=){_NUM}(?:@{_NUM})?"
                      r"(?:;fallback=([a-z]+))?")
_WHAT = {"sensitivity": ("recall", "positives"), "specificity": ("specificity", "negatives"),
         "precision": ("precision", "images above the threshold")}


@dataclass(frozen=True)
class GuaranteeRule:
    """A rule with a promise (the interface of :class:`labelwise.decide.rules.Rule`): ``name`` in
    :data:`GUARANTEE_RULES`, ``param`` the target, ``confidence`` (None only for ``fnr<=a``, a bound in
    expectation), ``fallback`` for labels that cannot be certified (``none``: refuse; ``point``: the
    plain point-estimate rule, marked)."""

    name: str
    param: float
    confidence: float | None = None
    fallback: str = "none"

    def __str__(self) -> str:
        op = "<=" if self.name == "fnr" else ">="
        text = f"{self.name}{op}{format(self.param, 'g')}"
        if self.confidence is not None:
            text += f"@{format(self.confidence, 'g')}"
        return text + ("" if self.fallback == "none" else f";fallback={self.fallback}")

    @property
    def per_label(self) -> bool:
        """False: tuned here, not by :func:`labelwise.decide.thresholds.tune_thresholds`."""
        return False

    @property
    def needs_validation(self) -> bool:
        """True: every guarantee is certified on validation data."""
        return True


def is_guarantee(text: str) -> bool:
    """True when a rule string is written as a guarantee (``>=``, ``<=`` or ``@``)."""
    return any(op in str(text) for op in (">=", "<=", "@"))


def parse_guarantee(text: str) -> GuaranteeRule:
    """``"sensitivity>=0.95@0.9"`` -> ``GuaranteeRule("sensitivity", 0.95, 0.9)``; errors say the form."""
    example = "sensitivity>=0.95@0.9, specificity>=0.9@0.9, precision>=0.8@0.9, fnr<=0.1 or fnr<=0.1@0.9"
    t = str(text).strip().lower().replace(" ", "")
    m = _PATTERN.fullmatch(t)
    if not m:
        raise InputError(f"cannot read the guarantee rule {text!r}; write e.g. {example} "
                         "(add ';fallback=point' to let labels that cannot be certified use the point estimate)")
    name, op, target, conf, fallback = m.groups()
    name = "sensitivity" if name == "recall" else name
    target = float(target)
    conf = None if conf is None else float(conf)
    fallback = fallback or "none"
    if (name == "fnr") != (op == "<="):
        raise InputError(f"rule {text!r}: write {'fnr<=a' if name == 'fnr' else name + '>=r'} (e.g. {example})")
    if not 0.0 < target < 1.0:
        raise InputError(f"rule {text!r}: the target must lie strictly between 0 and 1")
    if conf is not None and not 0.0 < conf < 1.0:
        raise InputError(f"rule {text!r}: the confidence after '@' must lie strictly between 0 and 1")
    if name != "fnr" and conf is None:
        raise InputError(f"rule {text!r} needs a confidence, e.g. {name}>={target:g}@0.9 "
                         f"(the plain {name}={target:g} is the uncertified point-estimate rule)")
    if fallback not in FALLBACKS:
        raise InputError(f"rule {text!r}: fallback must be one of {list(FALLBACKS)}")
    return GuaranteeRule(name, target, conf, fallback)


# ----------------------------------------------------------------------------------------- binomial bounds

def clopper_pearson_lower(k: int, n: int, confidence: float) -> float:
    """One-sided Clopper-Pearson lower bound on a proportion from ``k`` successes in ``n``:
    ``Beta(1 - confidence; k, n - k + 1)`` quantile (0 when k = 0, NaN when n = 0). ``LB >= r`` iff
    ``P(Bin(n, r) >= k) <= 1 - confidence``."""
    if n == 0:
        return math.nan
    if k == 0:
        return 0.0
    return float(stats.beta.ppf(1.0 - confidence, k, n - k + 1))


def clopper_pearson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval for ``k`` successes in ``n`` at ``confidence``."""
    if n == 0:
        return math.nan, math.nan
    a = (1.0 - confidence) / 2
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def min_successes(n: int, target: float, confidence: float) -> int | None:
    """Smallest ``k`` in 1..n with ``P(Bin(n, target) >= k) <= 1 - confidence`` (the fewest successes
    whose Clopper-Pearson lower bound clears ``target``); None when even ``k = n`` fails."""
    if n <= 0:
        return None
    ks = np.arange(1, n + 1)
    tail = stats.binom.sf(ks - 1, n, target)
    ok = np.flatnonzero(tail <= 1.0 - confidence)
    return int(ks[ok[0]]) if ok.size else None


def min_count_possible(target: float, confidence: float) -> int:
    """Smallest ``n`` with ``target**n <= 1 - confidence``: with fewer, no threshold can certify a
    proportion >= target at that confidence (even all n successes leave the bound below target)."""
    delta = 1.0 - confidence
    n = max(1, math.ceil(math.log(delta) / math.log(target)))
    while target ** n > delta:
        n += 1
    while n > 1 and target ** (n - 1) <= delta:
        n -= 1
    return n


# ------------------------------------------------------------------------------------- per-label thresholds

def recall_threshold(pos_scores: np.ndarray, target: float, confidence: float) -> tuple[float, int, float]:
    """Highest threshold (rule ``score >= t``) whose Clopper-Pearson lower bound on recall over the
    positives' scores is >= target at ``confidence``. Returns ``(t, k, lower bound)``; ``t`` NaN when
    impossible (``target**n > 1 - confidence``)."""
    s = np.sort(np.asarray(pos_scores, dtype=np.float64))[::-1]
    k = min_successes(s.size, target, confidence)
    if k is None:
        return math.nan, 0, math.nan
    t = float(s[k - 1])
    k_eff = int((s >= t).sum())
    return t, k_eff, clopper_pearson_lower(k_eff, s.size, confidence)


def specificity_threshold(neg_scores: np.ndarray, target: float, confidence: float) -> tuple[float, int, float]:
    """Lowest threshold whose Clopper-Pearson lower bound on specificity (negatives scoring < t) is
    >= target: just above the j-th smallest negative score. Returns ``(t, j, lower bound)``."""
    s = np.sort(np.asarray(neg_scores, dtype=np.float64))
    j = min_successes(s.size, target, confidence)
    if j is None:
        return math.nan, 0, math.nan
    t = min(float(np.nextafter(s[j - 1], np.inf)), _MAX_THRESHOLD)
    j_eff = int((s < t).sum())
    return t, j_eff, clopper_pearson_lower(j_eff, s.size, confidence)


def precision_threshold(y: np.ndarray, scores: np.ndarray, target: float, confidence: float,
                        grid: np.ndarray | None = None) -> tuple[float, int, float]:
    """Learn-Then-Test threshold for precision >= target (module docstring): fixed-sequence over
    ``grid`` from high to low, p-value ``P(Bin(n_t, target) >= k_t)``. Returns ``(t, n_t, precision
    on validation at t)``; NaN when the first testable threshold is not rejected. Thresholds with fewer
    than ``min_count_possible(target, confidence)`` images above are skipped (never certifiable)."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    g = np.sort(_GRID if grid is None else np.asarray(grid, dtype=np.float64))[::-1]
    order = np.argsort(-s, kind="mergesort")
    s_desc, cum_pos = s[order], np.concatenate([[0], np.cumsum(y[order])])
    n_t = np.searchsorted(-s_desc, -g, side="right")  # images with score >= t
    k_t = cum_pos[n_t]
    # a threshold with fewer images above it than min_count_possible can never be certified (even all
    # positive); which ones those are depends on the scores only, so skipping them keeps the sequence fixed
    testable = n_t >= min_count_possible(target, confidence)
    p = np.where(testable, stats.binom.sf(k_t - 1, np.maximum(n_t, 1), target), 1.0)
    reject = p <= 1.0 - confidence
    idx = np.flatnonzero(testable)
    chosen = -1
    for i in idx:  # fixed sequence: stop at the first hypothesis not rejected
        if not reject[i]:
            break
        chosen = i
    if chosen < 0:
        return math.nan, 0, math.nan
    return float(g[chosen]), int(n_t[chosen]), float(k_t[chosen] / n_t[chosen])


# ------------------------------------------------------------------------------------- set-level: FNR

def fnr_losses(Y: np.ndarray, P: np.ndarray, t: float) -> np.ndarray:
    """Per-image false-negative rate of deciding ``P >= t``: missed true labels / true labels (0 if none)."""
    Y = np.asarray(Y).astype(bool)
    npos = Y.sum(axis=1)
    missed = (Y & (np.asarray(P) < t)).sum(axis=1)
    return np.where(npos > 0, missed / np.maximum(npos, 1), 0.0)


def _cells(Y: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores of the true cells and their loss weights ``1 / (n |Y_i|)``."""
    Y = np.asarray(Y).astype(bool)
    npos = Y.sum(axis=1)
    w = np.where(Y, 1.0 / (Y.shape[0] * np.maximum(npos, 1)[:, None]), 0.0)
    return np.asarray(P, dtype=np.float64)[Y], w[Y]


def crc_fnr_threshold(Y: np.ndarray, P: np.ndarray, alpha: float) -> tuple[float, float]:
    """Conformal risk control: the largest ``t`` with ``n/(n+1) R(t) + 1/(n+1) <= alpha``, ``R`` the mean
    per-image FNR on validation (exact over all true-cell scores). Returns ``(t, R(t))``; NaN when
    ``alpha < 1/(n+1)``."""
    n = np.asarray(Y).shape[0]
    bound = (alpha * (n + 1) - 1.0) / n if n else -1.0
    if bound < 0:
        return math.nan, math.nan
    s, w = _cells(Y, P)
    if s.size == 0:
        return _MAX_THRESHOLD, 0.0
    order = np.argsort(s, kind="mergesort")
    s, w = s[order], w[order]
    cum = np.concatenate([[0.0], np.cumsum(w)])
    if cum[-1] <= bound + 1e-12:  # every true cell may be missed
        return min(float(np.nextafter(s[-1], np.inf)), _MAX_THRESHOLD), float(cum[-1])
    first = np.searchsorted(s, s, side="left")  # R(s_k) = weight strictly below s_k
    ok = np.flatnonzero(cum[first] <= bound + 1e-12)
    k = ok[-1]
    return float(s[k]), float(cum[first[k]])


def _hb_pvalue(risk: np.ndarray, n: int, alpha: float) -> np.ndarray:
    hoeffding = np.exp(-2.0 * n * np.maximum(alpha - risk, 0.0) ** 2)
    bentkus = math.e * stats.binom.cdf(np.ceil(n * risk - 1e-9), n, alpha)
    return np.minimum(np.minimum(hoeffding, bentkus), 1.0)


def ltt_fnr_threshold(Y: np.ndarray, P: np.ndarray, alpha: float, confidence: float,
                      grid: np.ndarray | None = None) -> tuple[float, float]:
    """Learn-Then-Test for "P(FNR risk <= alpha) >= confidence": Hoeffding-Bentkus p-values on the
    ``grid`` from 0 up (risk nondecreasing), fixed sequence; the highest rejected threshold.
    Returns ``(t, R(t))``; NaN when even ``t = 0`` (risk 0) is not rejected (too few images)."""
    g = np.sort(_GRID if grid is None else np.asarray(grid, dtype=np.float64))
    n = np.asarray(Y).shape[0]
    if n == 0:
        return math.nan, math.nan
    s, w = _cells(Y, P)
    idx = np.searchsorted(g, s, side="right")  # grid points g[i] > s for i >= idx
    risk = np.cumsum(np.bincount(idx, weights=w, minlength=g.size + 1))[:g.size]
    p = _hb_pvalue(risk, n, alpha)
    bad = np.flatnonzero(p > 1.0 - confidence)
    last = (bad[0] if bad.size else g.size) - 1
    if last < 0:
        return math.nan, math.nan
    return float(g[last]), float(risk[last])


def _ltt_min_images(alpha: float, confidence: float) -> int:
    """Smallest n for which risk 0 is rejected by the Hoeffding-Bentkus p-value."""
    delta = 1.0 - confidence
    n_h = math.ceil(math.log(1 / delta) / (2 * alpha ** 2))
    n_b = math.ceil(math.log(delta / math.e) / math.log(1 - alpha))
    return max(1, min(n_h, n_b))


# ------------------------------------------------------------------------------------- fitting a rule

def _pct(c: float) -> str:
    return f"{c * 100:g} %"


def fit_guarantee(Y: np.ndarray, P: np.ndarray, schema, rule: GuaranteeRule, *, _forced: np.ndarray | None = None):
    """Thresholds for ``rule`` over ``schema.labels`` from validation truth ``Y`` and scores ``P``
    ((n, n_outputs) or (n, n_labels)); ``params["promises"]`` holds the promise in words per label.
    Labels that cannot be certified raise :class:`InputError` naming them and the positives needed,
    unless ``rule.fallback == "point"`` (then the point-estimate threshold, said uncertified).
    Parents of implications are certified on their final decisions (module docstring)."""
    labels = list(schema.labels)
    n_ind = len(schema.independent)
    Y_in, P_in = Y, P
    Y = np.asarray(Y)[:, :n_ind].astype(np.uint8)
    P = np.asarray(P, dtype=np.float64)[:, :n_ind]
    if _forced is not None:  # turned on by an implying label: decided at every threshold
        P = np.where(_forced, _ALWAYS, P)
    values = np.full(len(labels), np.nan)
    metric = np.full(len(labels), np.nan)
    methods = [str(rule) if j < n_ind else ("derived" if x == schema.none else "argmax")
               for j, x in enumerate(labels)]
    promises: list[str] = []
    r, c = float(rule.param), rule.confidence
    if rule.name == "fnr":
        n = Y.shape[0]
        if c is None:
            t, risk = crc_fnr_threshold(Y, P, r)
            need = math.ceil(1.0 / r - 1.0 - 1e-12)
            how = (f"mean per-image false-negative rate ≤ {r:g} on new images (conformal risk control, "
                   f"in expectation), certified on {n} validation images")
        else:
            t, risk = ltt_fnr_threshold(Y, P, r, c)
            need = _ltt_min_images(r, c)
            how = (f"per-image false-negative rate ≤ {r:g} on new images with {_pct(c)} confidence "
                   f"(Learn-Then-Test), certified on {n} validation images")
        if math.isnan(t):
            raise InputError(f"rule {rule}: cannot be certified on {n} validation images; it needs at least "
                             f"{need} (add validation images, or raise the target)")
        values[:n_ind], metric[:n_ind] = t, risk
        promises.append(f"all {n_ind} independent labels, one threshold {t:.4g}: {how}")
    else:
        what, unit = _WHAT[rule.name]
        impossible: list[str] = []
        why: dict[int, str] = {}
        for j in range(n_ind):
            y, s = Y[:, j].astype(bool), P[:, j]
            if rule.name == "sensitivity":
                t, k, lb = recall_threshold(s[y], r, c)
                count, need = int(y.sum()), min_count_possible(r, c)
            elif rule.name == "specificity":
                t, k, lb = specificity_threshold(s[~y], r, c)
                count, need = int((~y).sum()), min_count_possible(r, c)
            else:
                t, k, lb = precision_threshold(y, s, r, c)
                count, need = k, min_count_possible(r, c)
            too_many = rule.name == "specificity" and not math.isnan(t) and lb < r
            if math.isnan(t) or too_many:
                base = "positives" if rule.name != "specificity" else "negatives"
                have = int(y.sum()) if rule.name != "specificity" else int((~y).sum())
                msg = f"{labels[j]} ({have} validation {base}; needs at least {need})"
                if rule.name == "precision":
                    msg = (f"{labels[j]} (no threshold passed; needs at least {need} validation images "
                           "above a threshold, nearly all positive)")
                if too_many:  # the labels implying it decide too many of its negatives at any threshold
                    msg = f"{labels[j]} (the labels implying it are decided on too many of its validation negatives)"
                impossible.append(msg)
                why[j] = msg.split(" (", 1)[1].rstrip(")")
                continue
            values[j], metric[j] = t, lb
            forced_note = "" if _forced is None or not _forced[:, j].any() else (
                f", counting the {int(_forced[:, j].sum())} validation images its implying labels turn on")
            promises.append(f"{labels[j]}: {what} ≥ {r:g} with {_pct(c)} confidence, certified on {count} "
                            f"validation {unit}{forced_note}")
        if impossible:
            head = (f"{rule}: no threshold can certify {what} ≥ {r:g} at {_pct(c)} confidence for "
                    f"{len(impossible)} label(s): " + "; ".join(impossible))
            if rule.fallback != "point":
                raise InputError(head + ". Add validation data, lower the target or the confidence, or allow "
                                        "a fallback (--fallback point / ';fallback=point') to decide those "
                                        "labels by the uncertified point estimate")
            import warnings

            warnings.warn(head + "; those labels use the point estimate (NOT certified)", stacklevel=2)
            method = {"sensitivity": "sensitivity", "specificity": "specificity", "precision": "precision"}
            for j in range(n_ind):
                if not math.isnan(values[j]):
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    th = tune_thresholds(Y[:, [j]], np.minimum(P[:, [j]], 1.0), method=method[rule.name], target=r)
                values[j], metric[j] = th.values[0], th.metric_at_threshold[0]
                methods[j] = f"{rule.name}={r:g} (fallback: point estimate, not certified)"
                promises.append(f"{labels[j]}: NOT certified ({why[j]}); point estimate only, {what} "
                                f"{metric[j]:.3g} on validation")
    if rule.name in ("specificity", "precision"):
        forced = _forced_on(values[:n_ind], np.asarray(P_in, dtype=np.float64), schema)
        if _forced is not None:
            forced |= _forced
        if forced.any() and (_forced is None or (forced != _forced).any()):
            return fit_guarantee(Y_in, P_in, schema, rule, _forced=forced)
    params = {"rule": "score >= threshold", "guarantee": str(rule), "promises": promises}
    tuned_on = {"rows": int(Y.shape[0]), "positives": {x: int(v) for x, v in zip(labels, Y.sum(axis=0))}}
    return Thresholds(tuple(labels), values, str(rule), params, tuned_on, metric, tuple(methods))


_ALWAYS = 2.0  # a score above every threshold (thresholds lie in [0, 1] or just above 1)


def _forced_on(values: np.ndarray, P: np.ndarray, schema) -> np.ndarray:
    """(n, n_independent) bool: rows where the schema's structure (:meth:`LabelSchema.enforce`) decides an
    independent label that its own score and threshold (``values``) leave off -- a label implying it is on."""
    n_ind = len(values)
    own = P[:, :n_ind] >= np.where(np.isnan(values), np.inf, values)
    if not schema.implies:
        return np.zeros_like(own)
    d = np.zeros((P.shape[0], schema.n_free), dtype=np.uint8)
    d[:, :n_ind] = own
    final = schema.enforce(d, P[:, : schema.n_free] if P.shape[1] >= schema.n_free else None)
    return final[:, :n_ind].astype(bool) & ~own


def check_guarantees(y_true: np.ndarray, decisions: np.ndarray, rule: "str | GuaranteeRule",
                     labels, confidence: float = 0.95) -> list[dict]:
    """Check a guarantee on test data: per label (or once for ``fnr``) the test estimate, its
    two-sided Clopper-Pearson interval at ``confidence`` (for fnr: mean ± t-interval), the target and
    ``met`` (estimate on the promised side of the target). ``y_true``/``decisions``: (n, L) 0/1 over
    ``labels`` (only independent labels should be passed)."""
    rule = parse_guarantee(str(rule)) if not isinstance(rule, GuaranteeRule) else rule
    Y, D = np.asarray(y_true).astype(bool), np.asarray(decisions).astype(bool)
    out = []
    if rule.name == "fnr":
        npos = Y.sum(axis=1)
        loss = np.where(npos > 0, (Y & ~D).sum(axis=1) / np.maximum(npos, 1), 0.0)
        est = float(loss.mean())
        half = float(stats.t.ppf(0.5 + confidence / 2, max(len(loss) - 1, 1)) * loss.std(ddof=1)
                     / math.sqrt(max(len(loss), 1))) if len(loss) > 1 else math.nan
        return [{"label": "(all)", "target": rule.param, "estimate": est, "ci": (est - half, est + half),
                 "met": est <= rule.param, "n": int(len(loss))}]
    for j, label in enumerate(labels):
        y, d = Y[:, j], D[:, j]
        if rule.name == "sensitivity":
            k, n = int((y & d).sum()), int(y.sum())
        elif rule.name == "specificity":
            k, n = int((~y & ~d).sum()), int((~y).sum())
        else:
            k, n = int((y & d).sum()), int(d.sum())
        est = k / n if n else math.nan
        out.append({"label": str(label), "target": rule.param, "estimate": est,
                    "ci": clopper_pearson_interval(k, n, confidence), "met": bool(n and est >= rule.param),
                    "n": n})
    return out


def promise_lines(thresholds, y_true: np.ndarray, decisions: np.ndarray, labels, confidence: float = 0.95) -> list[str]:
    """The promise of a guarantee rule checked on other data, one line per certified label (or one for
    ``fnr``): the estimate, its interval (:func:`check_guarantees`) and met / NOT met. ``thresholds``
    from a guarantee rule (else ``[]``); ``y_true``/``decisions`` (n, len(labels)) in ``labels`` order."""
    spec = (getattr(thresholds, "params", None) or {}).get("guarantee")
    if not spec:
        return []
    rule = parse_guarantee(spec)
    labels = [str(x) for x in labels]
    certified = [x for x, m in zip(thresholds.labels, thresholds.label_methods) if m == str(rule) and x in labels]
    if not certified:
        return []
    idx = [labels.index(x) for x in certified]
    rows = check_guarantees(np.asarray(y_true)[:, idx], np.asarray(decisions)[:, idx], rule, certified, confidence)
    what = {"sensitivity": ("recall", "positives", "≥"), "specificity": ("specificity", "negatives", "≥"),
            "precision": ("precision", "decided positives", "≥"), "fnr": ("mean false-negative rate", "images", "≤")}
    name, unit, op = what[rule.name]
    out = []
    for r in rows:
        lo, hi = r["ci"]
        who = "all certified labels" if rule.name == "fnr" else r["label"]
        out.append(f"promise check ({rule}): {who}: {name} {r['estimate']:.3f} ({_pct(confidence)} CI "
                   f"{lo:.3f}-{hi:.3f}, {r['n']} {unit}) vs target {op} {r['target']:g}: "
                   f"{'met' if r['met'] else 'NOT met'}")
    return out
