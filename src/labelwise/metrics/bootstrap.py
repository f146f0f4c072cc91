"""Bootstrap confidence intervals for per-label ROC AUC and average precision, vectorised.

A bootstrap resample is a multiset of rows; it is represented by integer *multiplicity
weights* ``w`` (row i drawn ``w_i`` times). With ``groups=`` (e.g. patient ids) whole groups
are drawn with replacement and every row gets its group's multiplicity, so the images of one
patient enter or leave a resample together.

Each label is sorted once, on the full data. For a resample, the weighted metric is a sum over
that fixed order (positives and negatives kept apart, their weights cumulated; tied scores
handled by reading the negative/positive cumulative weights at the start and end of each tie
block, as :mod:`labelwise.metrics.ranking` does), which equals the metric computed by
scikit-learn on the explicitly repeated rows (tested to 1e-9). Resamples are processed in
chunks, all labels of a chunk from one weight matrix, with exact integer arithmetic:

* ``AUC(w) = sum_{pos i} w_i (2 N_w - CN(end_i) - CN(start_i)) / (2 P_w N_w)``,
* ``AP(w) = (1 / P_w) sum_{pos i} w_i CP(end_i) / (CP(end_i) + CN(end_i))``,

where ``CN``/``CP`` are cumulative negative/positive weights down the sorted order and
``end_i``/``start_i`` delimit the tie block of row i. Only the ``CN`` values at the positives'
block boundaries are needed, so negative weights are summed segment-wise between them.

Intervals are percentile intervals: ``low``/``high`` are the ``(1 - level)/2`` and
``(1 + level)/2`` quantiles (numpy's linear interpolation) of the resampled values. A resample
in which a label has one class gives NaN for that label; NaN resamples are left out of its
quantiles (``n_valid`` says how many were used); a label with one class in the data is NaN
throughout, with an :class:`UndefinedMetricWarning` naming it.

A label with fewer than ``min_class_count`` (default 10) positives or negatives in the data gets
no interval (``low``/``high`` NaN): a label with one positive is absent from about a third of the
resamples, and the percentile interval of the rest is far too narrow. The macro average's
interval is over ONE fixed set of labels (those with an interval) in every resample; a resample in
which one of them has a single class is left out of the macro quantiles (``macro_n_valid``).

:func:`paired_bootstrap` compares several score matrices (strategies, models) on the same
truth: each is evaluated on the same resamples (the generator replayed from one state), and
the interval of ``strategy - reference`` is taken over the per-resample differences.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ._validation import check_pair
from .ranking import average_precision_score, roc_auc_score

__all__ = ["BootstrapResult", "PairedBootstrapResult", "bootstrap_ci", "paired_bootstrap", "resample_metrics",
           "resample_weights"]

METRICS = ("roc_auc", "average_precision")


@dataclass(frozen=True)
class BootstrapResult:
    """Point estimate and percentile interval of one metric for each label.

    ``point``, ``low``, ``high``: (L,) arrays; ``samples``: (n_resamples, L) resampled values
    (NaN where the resample had one class), or None when not kept. ``macro_*`` are the same for
    the mean over the labels of ``eligible`` (the same labels in every resample): those with at
    least ``min_class_count`` positives and negatives in the data, the only ones with an interval
    (``low``/``high`` NaN for the others). ``macro_n_valid``: resamples in the macro quantiles
    (those in which every eligible label had both classes).
    """

    point: np.ndarray
    low: np.ndarray
    high: np.ndarray
    samples: np.ndarray | None
    level: float = 0.95
    labels: tuple[str, ...] = ()
    n_valid: np.ndarray | None = None
    macro_point: float = float("nan")
    macro_low: float = float("nan")
    macro_high: float = float("nan")
    eligible: np.ndarray | None = None
    min_class_count: int = 1
    macro_n_valid: int = 0

    def macro_over(self, mask: np.ndarray) -> tuple[float, float, float]:
        """``(point, low, high)`` of the macro average over the ``eligible`` labels of ``mask``
        (see :func:`macro_over`)."""
        return macro_over(self.point, self.samples, self.eligible, mask, self.level)

    def to_dict(self) -> dict:
        """JSON-friendly form (NaN stays NaN; :func:`labelwise.io.write_json` writes it as null)."""
        return {
            "level": self.level,
            "labels": list(self.labels),
            "point": self.point.tolist(),
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "n_valid": None if self.n_valid is None else self.n_valid.tolist(),
            "macro": {"point": self.macro_point, "low": self.macro_low, "high": self.macro_high,
                      "n_valid": self.macro_n_valid},
            "min_class_count": self.min_class_count,
            "eligible": None if self.eligible is None else self.eligible.tolist(),
        }


class _Ranked:
    """One label sorted once, with every index a resample needs precomputed.

    ``pos_rows``/``neg_rows``: row indices of the positives/negatives in descending-score order.
    For each positive: ``kend`` = positives up to the end of its tie block (an index into the
    cumulative positive weights, leading zero included), and ``end_k``/``start_k`` = where the
    negative count at its block's end/start sits in the compressed cumulative negative weights.
    Only those counts are needed, so the negatives are summed segment by segment between the
    ``bounds`` (``np.add.reduceat``) rather than cumulated row by row.
    """

    __slots__ = ("pos_rows", "neg_rows", "kend", "end_k", "start_k", "bounds")

    def __init__(self, y: np.ndarray, s: np.ndarray):
        n = y.size
        order = np.argsort(-s, kind="mergesort")
        ss, yy = s[order], y[order].astype(bool)
        is_end = np.ones(n, dtype=bool)
        is_end[:-1] = ss[:-1] != ss[1:]
        is_start = np.ones(n, dtype=bool)
        is_start[1:] = is_end[:-1]
        idx = np.arange(n)
        end_idx = np.minimum.accumulate(np.where(is_end, idx, n - 1)[::-1])[::-1]
        start_idx = np.maximum.accumulate(np.where(is_start, idx, 0))
        tp = np.cumsum(yy)  # positives at positions <= i
        fp = idx + 1 - tp
        self.pos_rows = order[yy]
        self.neg_rows = order[~yy]
        self.kend = tp[end_idx[yy]]
        mend = fp[end_idx[yy]]  # negatives up to the block end
        st = start_idx[yy]
        mstart = st - (tp[st] - yy[st])  # negatives strictly before the block start
        n_neg = self.neg_rows.size
        # Cumulative negative counts needed: u (ascending, > 0, ending with n_neg for the total).
        u = np.unique(np.concatenate([mend, mstart, [n_neg]]))
        u = u[u > 0]
        self.bounds = np.r_[0, u[:-1]].astype(np.intp)  # segment starts for reduceat
        # Column k of [0, CN(u_1), CN(u_2), ...] holds the count at u_k (column 0: count 0).
        self.end_k = np.where(mend > 0, np.searchsorted(u, mend) + 1, 0)
        self.start_k = np.where(mstart > 0, np.searchsorted(u, mstart) + 1, 0)
        if n < 2**31:
            # Kept for every label throughout the bootstrap (14 labels x 1M rows: 230 MB as int64).
            for name in self.__slots__:
                setattr(self, name, getattr(self, name).astype(np.int32))


def _evaluate(r: _Ranked, W: np.ndarray, metrics: Sequence[str]) -> dict[str, np.ndarray]:
    R = W.shape[0]
    if r.pos_rows.size == 0 or r.neg_rows.size == 0:
        return {m: np.full(R, np.nan) for m in metrics}
    Wp = np.take(W, r.pos_rows, axis=1).astype(np.int64)
    CP = np.zeros((R, Wp.shape[1] + 1), dtype=np.int64)
    np.cumsum(Wp, axis=1, out=CP[:, 1:])
    CN = np.zeros((R, r.bounds.size + 1), dtype=np.int64)
    seg = np.add.reduceat(np.take(W, r.neg_rows, axis=1), r.bounds, axis=1, dtype=np.int64)
    np.cumsum(seg, axis=1, out=CN[:, 1:])
    P, N = CP[:, -1].astype(np.float64), CN[:, -1].astype(np.float64)
    defined = (P > 0) & (N > 0)
    cn_end = CN[:, r.end_k]
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        if "roc_auc" in metrics:
            twice = (Wp * (2 * CN[:, -1:] - cn_end - CN[:, r.start_k])).sum(axis=1)
            out["roc_auc"] = np.where(defined, twice / (2.0 * P * N), np.nan)
        if "average_precision" in metrics:
            cp_end = CP[:, r.kend]
            den = cp_end + cn_end  # > 0 wherever Wp > 0 (the row counts itself)
            prec = np.divide(cp_end, den, out=np.zeros(den.shape), where=den > 0)
            ap = np.einsum("ij,ij->i", Wp.astype(np.float64), prec) / P
            out["average_precision"] = np.where(defined, ap, np.nan)
    return out


def macro_over(point: np.ndarray, samples: np.ndarray | None, eligible: np.ndarray | None, mask: np.ndarray,
               level: float) -> tuple[float, float, float]:
    """``(point, low, high)`` of the macro average over the labels of ``mask`` that are eligible and
    defined: the mean of ``point`` over them, and the percentile interval of the per-resample mean of
    ``samples`` (R, L) over the same labels in every resample (resamples where one is undefined are
    dropped, never averaged over fewer labels). NaN when no label qualifies or no samples were kept."""
    point = np.asarray(point, dtype=np.float64)
    ok = np.asarray(mask, dtype=bool) & np.isfinite(point)
    if eligible is not None:
        ok &= np.asarray(eligible, dtype=bool)
    if not ok.any() or samples is None:
        return float("nan"), float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    macro = np.asarray(samples)[:, ok].mean(axis=1)
    macro = macro[np.isfinite(macro)]
    low, high = np.quantile(macro, [alpha, 1 - alpha]) if macro.size else (np.nan, np.nan)
    return float(point[ok].mean()), float(low), float(high)


def _check_metrics(metrics: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(metrics, str):
        metrics = (metrics,)
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise InputError(f"unknown bootstrap metric(s) {unknown}; choose from {list(METRICS)}")
    return metrics


def resample_metrics(
    y_true: np.ndarray,
    y_score: np.ndarray,
    weights: np.ndarray,
    *,
    metrics: Sequence[str] = METRICS,
    from_logits: bool = False,
) -> dict[str, np.ndarray]:
    """Per-label metrics of weighted resamples: ``weights`` (R, n) non-negative integer multiplicities.

    Returns ``{metric: (R, L) array}``; equal to the metric on ``np.repeat(rows, w)`` for each row of weights.
    """
    metrics = _check_metrics(metrics)
    Y, S, _, _ = check_pair(y_true, y_score, None, from_logits=from_logits, apply_sigmoid=False)
    W = np.asarray(weights)
    if W.ndim == 1:
        W = W[None, :]
    if W.ndim != 2 or W.shape[1] != Y.shape[0]:
        raise InputError(f"weights must have shape (n_resamples, {Y.shape[0]}); got {np.shape(weights)}")
    if W.dtype.kind not in "iu" or (W < 0).any():
        raise InputError("weights must be non-negative integers (how many times each row is drawn)")
    W = W.astype(np.int64)  # exact; _evaluate narrows the cumulative sums itself
    out = {m: np.empty((W.shape[0], Y.shape[1])) for m in metrics}
    for j in range(Y.shape[1]):
        res = _evaluate(_Ranked(Y[:, j], S[:, j]), W, metrics)
        for m in metrics:
            out[m][:, j] = res[m]
    return out


def resample_weights(
    rng: np.random.Generator, n: int, size: int, group_index: np.ndarray | None = None, n_groups: int = 0
) -> np.ndarray:
    """Draw ``size`` bootstrap resamples as (size, n) multiplicities (uint8, or int32 if any exceeds 255).

    Without groups, n rows are drawn with replacement; with ``group_index`` (row -> group
    0..n_groups-1), n_groups groups are drawn and each row takes its group's multiplicity.
    """
    m = n if group_index is None else n_groups
    draws = rng.integers(0, m, size=(size, m))
    # One bincount per resample, written straight into a small dtype: cheaper than a single
    # bincount over all resamples (whose int64 output does not fit in cache).
    counts = np.empty((size, m), dtype=np.uint8)
    for k in range(size):
        row = np.bincount(draws[k], minlength=m)
        if m >= 2**8 and row.max() >= 2**8:  # a row drawn 256+ times: widen (practically never)
            counts = counts.astype(np.int32)
        counts[k] = row
    return counts if group_index is None else counts[:, group_index]


def bootstrap_ci(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    metrics: Sequence[str] = METRICS,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int | None = 0,
    groups: Sequence[object] | None = None,
    labels: Sequence[str] | None = None,
    from_logits: bool = False,
    keep_samples: bool = True,
    chunk_bytes: int = 6 * 2**20,
    progress: Callable[[int, int], None] | None = None,
    min_class_count: int = 10,
) -> dict[str, BootstrapResult]:
    """Percentile bootstrap intervals of per-label metrics ("roc_auc", "average_precision").

    Returns ``{metric: BootstrapResult}``. ``point`` equals :func:`roc_auc_score` /
    :func:`average_precision_score` with ``average=None``. ``groups`` (length n) resamples
    whole groups. ``seed`` makes the draw reproducible (the chunks consume one random stream,
    so ``chunk_bytes`` changes memory use, not the resamples). ``progress(done, total)`` is called
    after each chunk of resamples. A label with fewer than ``min_class_count`` positives or
    negatives gets no interval and stays out of the macro interval (see the module docstring).
    """
    metrics = _check_metrics(metrics)
    _check_settings(n_resamples, level)
    min_class_count = _check_min_class_count(min_class_count)
    Y, S, names, _ = check_pair(y_true, y_score, labels, from_logits=from_logits, apply_sigmoid=False)
    group_index, n_groups = _group_index(groups, Y.shape[0])
    points = _points(Y, S, names, metrics)
    samples = _draw_samples(Y, S, metrics, n_resamples, np.random.default_rng(seed), group_index, n_groups,
                            chunk_bytes, progress)
    return _summarise(points, samples, level, names, keep_samples, _eligible(Y, min_class_count), min_class_count)


@dataclass(frozen=True)
class PairedBootstrapResult:
    """Several score matrices (strategies, models) bootstrapped on the SAME resamples of one truth.

    ``results[name]``: ``{metric: BootstrapResult}`` of that strategy, identical to
    :func:`bootstrap_ci` with the same seed (same draws). ``differences[name]`` (every strategy
    but the reference): ``{metric: BootstrapResult}`` of ``strategy - reference``, per resample
    and per label: ``point`` is the difference of the point estimates, ``low``/``high`` the
    percentile interval of the paired differences, ``macro_*`` the same for the difference of
    the macro averages (both strategies average the same labels in each resample, since a
    label's definedness depends on the truth only).
    """

    names: tuple[str, ...]
    reference: str
    results: dict[str, dict[str, BootstrapResult]]
    differences: dict[str, dict[str, BootstrapResult]]
    n_resamples: int
    level: float
    seed: int | None
    unit: str = "images"

    def to_dict(self) -> dict:
        """JSON-friendly form (per-strategy results, then the differences vs the reference)."""
        return {
            "reference": self.reference,
            "n_resamples": self.n_resamples,
            "level": self.level,
            "seed": self.seed,
            "unit": self.unit,
            "results": {k: {m: r.to_dict() for m, r in v.items()} for k, v in self.results.items()},
            "differences": {k: {m: r.to_dict() for m, r in v.items()} for k, v in self.differences.items()},
        }


def paired_bootstrap(
    y_true: np.ndarray,
    y_scores: Mapping[str, np.ndarray] | Sequence[np.ndarray],
    *,
    reference: str | None = None,
    metrics: Sequence[str] = METRICS,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int | None = 0,
    groups: Sequence[object] | None = None,
    labels: Sequence[str] | None = None,
    from_logits: bool = False,
    keep_samples: bool = True,
    chunk_bytes: int = 6 * 2**20,
    progress: Callable[[int, int], None] | None = None,
    min_class_count: int = 10,
) -> PairedBootstrapResult:
    """Paired bootstrap of several score matrices against one truth: the difference of each to a reference.

    ``y_scores``: ``{name: (n, L) scores}`` (or a list, named ``"0"``, ``"1"``, ...), all for the rows
    of ``y_true``. ``reference`` (default: the first) is subtracted from every other strategy.
    Every strategy is evaluated on the same resamples: the random generator is replayed from
    the same state for each, so the multiplicity weights (or group draws, with ``groups``) are
    identical, and strategy k's samples equal ``bootstrap_ci(y_true, y_scores[k], seed=seed)``'s.
    The difference interval is the percentile interval of the per-resample differences, which
    accounts for the correlation between strategies scored on the same images (an unpaired
    comparison of two separate intervals would not). Only one strategy's sorted indices are
    held at a time, so memory does not grow with the number of strategies.
    ``progress(done, total)`` counts resamples over all strategies. A label with fewer than
    ``min_class_count`` positives or negatives gets no interval, for each strategy and for the
    differences (so no significance can be read for it), and stays out of every macro average
    (see :func:`bootstrap_ci`); the set depends on the truth only, so it is the same for all.
    """
    metrics = _check_metrics(metrics)
    _check_settings(n_resamples, level)
    min_class_count = _check_min_class_count(min_class_count)
    if isinstance(y_scores, Mapping):
        named = [(str(k), v) for k, v in y_scores.items()]
    else:
        named = [(str(i), v) for i, v in enumerate(y_scores)]
    if not named:
        raise InputError("paired_bootstrap needs at least one score matrix")
    names_s = [k for k, _ in named]
    if len(set(names_s)) != len(names_s):
        raise InputError(f"strategy names must be unique; got {names_s}")
    ref = names_s[0] if reference is None else str(reference)
    if ref not in names_s:
        raise InputError(f"reference {ref!r} is not one of the strategies {names_s}")
    checked = {}
    for name, s in named:
        try:
            Y, S, labels_, _ = check_pair(y_true, s, labels, from_logits=from_logits, apply_sigmoid=False)
        except InputError as e:
            raise InputError(f"strategy {name!r}: {e}") from None
        checked[name] = S
    group_index, n_groups = _group_index(groups, Y.shape[0])
    eligible = _eligible(Y, min_class_count)
    rng = np.random.default_rng(seed)
    state = rng.bit_generator.state  # replayed for each strategy: the same resamples for all
    total = n_resamples * len(named)
    results: dict[str, dict[str, BootstrapResult]] = {}
    raw: dict[str, tuple[dict, dict]] = {}
    for k, name in enumerate(names_s):
        rng.bit_generator.state = state
        step = _offset_progress(progress, k * n_resamples, total)
        points = _points(Y, checked[name], labels_, metrics)
        samples = _draw_samples(Y, checked[name], metrics, n_resamples, rng, group_index, n_groups, chunk_bytes, step)
        raw[name] = (points, samples)
        results[name] = _summarise(points, samples, level, labels_, keep_samples, eligible, min_class_count)
    p_ref, s_ref = raw[ref]
    differences = {}
    for name in names_s:
        if name == ref:
            continue
        p, s = raw[name]
        differences[name] = _summarise({m: p[m] - p_ref[m] for m in metrics}, {m: s[m] - s_ref[m] for m in metrics},
                                       level, labels_, keep_samples, eligible, min_class_count)
    return PairedBootstrapResult(
        names=tuple(names_s), reference=ref, results=results, differences=differences,
        n_resamples=int(n_resamples), level=level, seed=seed, unit="groups" if groups is not None else "images",
    )


# ------------------------------------------------------------------- internals
def _check_settings(n_resamples: int, level: float) -> None:
    if not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise InputError(f"n_resamples must be a positive integer; got {n_resamples!r}")
    if not 0 < level < 1:
        raise InputError(f"level must be between 0 and 1 (e.g. 0.95); got {level!r}")


def _offset_progress(progress, base: int, total: int):
    if progress is None:
        return None
    return lambda done, _n: progress(base + done, total)


def _group_index(groups: Sequence[object] | None, n: int) -> tuple[np.ndarray | None, int]:
    if groups is None:
        return None, 0
    g = np.asarray(groups)
    if g.ndim != 1 or g.shape[0] != n:
        raise InputError(f"groups must give one group id per row ({n} rows); got shape {g.shape}")
    _, group_index = np.unique(g, return_inverse=True)
    return group_index, int(group_index.max()) + 1


def _points(Y: np.ndarray, S: np.ndarray, names: Sequence[str], metrics: Sequence[str]) -> dict[str, np.ndarray]:
    point_fns: Mapping[str, Callable] = {"roc_auc": roc_auc_score, "average_precision": average_precision_score}
    return {m: np.asarray(point_fns[m](Y, S, average=None, labels=names), dtype=np.float64) for m in metrics}


def _draw_samples(Y, S, metrics, n_resamples, rng, group_index, n_groups, chunk_bytes, progress) -> dict[str, np.ndarray]:
    """(n_resamples, L) resampled values per metric, drawing the resamples from ``rng`` chunk by chunk."""
    n, L = Y.shape
    ranked = [_Ranked(Y[:, j], S[:, j]) for j in range(L)]
    samples = {m: np.empty((n_resamples, L)) for m in metrics}
    # int64 draws for a chunk (size x n) dominate memory; the per-label arrays are smaller.
    chunk = int(max(1, min(n_resamples, chunk_bytes // (8 * max(n, 1)))))
    done = 0
    while done < n_resamples:
        size = min(chunk, n_resamples - done)
        W = resample_weights(rng, n, size, group_index, n_groups)
        for j, r in enumerate(ranked):
            res = _evaluate(r, W, metrics)
            for m in metrics:
                samples[m][done : done + size, j] = res[m]
        done += size
        if progress is not None:
            progress(done, n_resamples)
    return samples


def _check_min_class_count(value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"min_class_count must be a whole number >= 1 (positives and negatives a label needs for a "
                         f"confidence interval, e.g. 10); got {value!r}")
    return int(value)


def _eligible(Y: np.ndarray, min_class_count: int) -> np.ndarray:
    """Labels with at least ``min_class_count`` positives and as many negatives in the data."""
    pos = (np.asarray(Y) != 0).sum(axis=0)
    return (pos >= min_class_count) & (Y.shape[0] - pos >= min_class_count)


def _summarise(points, samples, level, names, keep_samples, eligible=None, min_class_count=1) -> dict[str, BootstrapResult]:
    alpha = (1.0 - level) / 2.0
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (undefined labels) stay NaN
        for m, smp in samples.items():
            n_resamples = smp.shape[0]
            low, high = np.nanquantile(smp, [alpha, 1 - alpha], axis=0)
            ok = ~np.isnan(points[m])
            if eligible is not None:
                ok = ok & eligible
            # One fixed label set in every resample: a resample where one of them is undefined is dropped,
            # never averaged over fewer labels.
            macro_s = smp[:, ok].mean(axis=1) if ok.any() else np.full(n_resamples, np.nan)
            macro_s = macro_s[np.isfinite(macro_s)]
            m_low, m_high = np.quantile(macro_s, [alpha, 1 - alpha]) if macro_s.size else (np.nan, np.nan)
            out[m] = BootstrapResult(
                point=points[m],
                low=np.where(ok, low, np.nan),
                high=np.where(ok, high, np.nan),
                samples=smp if keep_samples else None,
                level=level,
                labels=names,
                n_valid=(~np.isnan(smp)).sum(axis=0),
                macro_point=float(points[m][ok].mean()) if ok.any() else float("nan"),
                macro_low=float(m_low),
                macro_high=float(m_high),
                eligible=ok,
                min_class_count=int(min_class_count),
                macro_n_valid=int(macro_s.size),
            )
    return out
