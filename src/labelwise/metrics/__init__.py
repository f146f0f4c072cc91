"""Multi-label metrics on numpy arrays, exact and scikit-learn-shaped.

``metric(y_true, y_score, *, average=...)`` with ``y_true`` (n, L) 0/1 and ``y_score`` (n, L)
in [0, 1] (or ``y_pred`` 0/1 for the decision metrics); a 1-D input is one label.
``average=None`` gives a per-label array. ``labels=`` names the columns in messages: unlike
scikit-learn's ``labels=``, which selects a subset of columns, it must give one name per column
in order (select columns by slicing the arrays instead).
Results equal scikit-learn's to 1e-9 (tested), except where documented: a label with only one
class gets NaN (with an :class:`UndefinedMetricWarning` naming it) and is left out of averages.
The decision metrics take ``zero_division`` as scikit-learn does ("warn" -> 0.0, 0.0, 1.0 or
``np.nan``, which leaves the undefined labels out of the averages).

This package imports neither Keras nor TensorFlow.
"""

from ._validation import UndefinedMetricWarning
from .calibration import brier_score, expected_calibration_error, reliability_curve
from .bootstrap import BootstrapResult, PairedBootstrapResult, bootstrap_ci, paired_bootstrap, resample_metrics
from .curves import precision_recall_curve, roc_curve
from .decision import (
    classification_report,
    f1_score,
    fbeta_score,
    hamming_loss,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
    specificity_score,
    subset_accuracy,
    support,
)
from .ranking import (
    average_precision_score,
    coverage_error,
    label_ranking_average_precision_score,
    label_ranking_loss,
    roc_auc_score,
)

__all__ = [
    "UndefinedMetricWarning",
    "roc_auc_score",
    "average_precision_score",
    "label_ranking_average_precision_score",
    "coverage_error",
    "label_ranking_loss",
    "precision_score",
    "recall_score",
    "specificity_score",
    "f1_score",
    "fbeta_score",
    "support",
    "precision_recall_fscore_support",
    "hamming_loss",
    "subset_accuracy",
    "classification_report",
    "roc_curve",
    "precision_recall_curve",
    "bootstrap_ci",
    "BootstrapResult",
    "paired_bootstrap",
    "PairedBootstrapResult",
    "resample_metrics",
    "expected_calibration_error",
    "brier_score",
    "reliability_curve",
]
