"""``compare``: several strategies' scores on the same truth, side by side, with paired bootstrap
differences (see :class:`~labelwise.evaluation.results.ComparisonResult`)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..labels.schema import LabelSchema, load_schema
from .evaluate import _evaluate_prepared, _prepare, known_truth, parse_tune
from .results import ComparisonResult
from .text import check_strategy_name

__all__ = ["compare"]


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
    min_class_count: int = 10,
    known: np.ndarray | None = None,
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
    A label with fewer than ``min_class_count`` positives or negatives gets no interval and no
    verdict (no significance mark), and the macro differences average the other labels, the same
    ones in every resample. ``known`` (a bool mask like ``y_true``, or -1 cells in ``y_true``):
    every per-label number of each strategy uses that label's known rows, as in :func:`evaluate`;
    each strategy's intervals then come from its own masked resamples (same seed) and there are no
    paired differences (a note says so).
    """
    from ..metrics.bootstrap import paired_bootstrap

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
    y_true, known = known_truth(y_true, known)
    if known is not None and known.all():
        known = None
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
    if bootstrap and bootstrap > 0 and known is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            boot = paired_bootstrap(yt, prepared, reference=ref, metrics=("roc_auc", "average_precision"),
                                    n_resamples=int(bootstrap), level=level, seed=seed, groups=groups,
                                    labels=list(schema.labels), progress=progress, min_class_count=min_class_count)
    results = {}
    for name in names:
        th = thresholds[name] if isinstance(thresholds, Mapping) else thresholds
        try:
            results[name] = _evaluate_prepared(
                yt, prepared[name], schema, thresholds=th, tune=tune, bootstrap=bootstrap, level=level, seed=seed,
                groups=groups, summary={**dict(summary or {}), "strategy": name}, progress=None,
                boot=boot.results[name] if boot is not None else None, min_class_count=min_class_count,
                known=known)
        except InputError as e:
            raise InputError(f"strategy {name!r}: {e}") from None
        if known is not None and bootstrap and bootstrap > 0:
            results[name].notes.append("unknown truth cells: each strategy's intervals come from resampling each "
                                       "label's known rows; no paired differences between strategies")
    summary = {**dict(summary or {}), **({"unknown_cells": True} if known is not None else {})}
    return ComparisonResult(names=names, reference=ref, results=results, paired=boot, summary=summary)
