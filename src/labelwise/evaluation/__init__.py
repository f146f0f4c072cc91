"""Evaluation: :func:`evaluate` and :func:`compare` bind the metrics, the decisions and the
diagnostics into one result (:class:`EvaluationResult`, :class:`ComparisonResult`) that prints,
serialises and renders as a report (``report/``; matplotlib, loaded when a report is drawn).

Who imports whom inside: ``text`` (notes, formatting) <- ``diagnostics`` / ``results`` <-
``evaluate`` <- ``compare``; ``report/`` reads results by duck typing and imports only ``text``
and ``diagnostics``. Nothing here imports Keras or TensorFlow.
"""

from .compare import compare
from .evaluate import evaluate, parse_tune, scores_from_logits
from .results import ComparisonResult, EvaluationResult, LabelRow
from .text import check_strategy_name

__all__ = ["evaluate", "compare", "EvaluationResult", "ComparisonResult", "LabelRow", "parse_tune",
           "scores_from_logits", "check_strategy_name"]
