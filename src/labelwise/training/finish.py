"""The end of a training run: restore the best epoch, tune thresholds on validation, evaluate
the test split into ``report/`` and write the one artifact ``model.keras``.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io import write_json
from ..labels.schema import LabelSchema

__all__ = ["TrainResult", "interactive", "keras_verbose", "training_summary"]


@dataclass
class TrainResult:
    """What :func:`train` returns; everything is also on disk under ``out_dir``."""

    model: Any
    schema: LabelSchema
    thresholds: Any
    history: list[dict[str, Any]]
    best_epoch: int
    best_val_auc: float
    evaluation: Any
    out_dir: Path
    artifact: Path
    resumed_from: int = 0


def interactive() -> bool:
    """Whether stdout is a terminal: Keras' progress bars there, one line per stage elsewhere."""
    return bool(getattr(sys.stdout, "isatty", lambda: False)())


def keras_verbose(verbose: int) -> int:
    """Keras' ``verbose`` for ``verbose``: a bar (1) only on a terminal; into a file or pipe one
    line per epoch or prediction (2), since a bar there is a stream of escape codes."""
    return 0 if not verbose else 1 if verbose == 1 and interactive() else 2


def training_summary(config, data, state, resumed_from: int = 0, *, n_test: int | None = None,
                     n_val: int | None = None) -> dict[str, Any]:
    """What the report's Training section shows: the run's settings, images per split, the
    epoch log (for the learning curves) and the best epoch."""
    best = state.best_auc if math.isfinite(state.best_auc) else None
    settings = {
        "backbone": config.backbone, "weights": config.weights, "image size": list(config.image_size),
        "channels": config.channels,
        "loss": config.loss + (f" ({config.binary})" if config.loss == "schema" else "")
        + (f", {config.loss_weights} weights" if config.loss_weights else ""),
        "epochs run / asked": f"{state.epoch} / {config.epochs}" + (" (stopped early)" if state.stopped_early else ""),
        "best epoch": f"{state.best_epoch} (val macro AUC {best:.4f})" if best is not None else "none",
        "batch size": config.batch_size, "learning rate": config.learning_rate, "lr schedule": config.lr_schedule,
        "augment": config.augment if config.augment else "none", "seed": config.seed,
    }
    if config.freeze_epochs:
        settings["frozen epochs"] = config.freeze_epochs
        settings["fine-tune learning rate"] = (config.fine_tune_lr if config.fine_tune_lr is not None
                                               else config.learning_rate / 10)
    if resumed_from:
        settings["resumed from epoch"] = resumed_from
    test = data.test
    sizes = {"train": len(data.train), "val": n_val if n_val is not None else len(data.val),
             "test": n_test if n_test is not None else (None if test is None else len(test))}
    return {"settings": settings, "data": sizes, "log": list(state.log), "best_epoch": state.best_epoch}


def _finish(config, data, schema, model, state, val_ds, val_y, out, resumed_from, say, *, plan=None) -> TrainResult:
    from . import artifact
    from .artifact import Preprocessing
    from .predict import predict_scores, write_predictions
    from ..decide.thresholds import decide, tune_thresholds

    say(f"tuning thresholds on {len(val_y)} validation images")
    val_scores = schema.complete_scores(model.predict(val_ds, verbose=keras_verbose(config.verbose))[: len(val_y)])
    if (np.asarray(val_y) < 0).any():  # unknown cells: each threshold tuned on its label's known rows
        from ..evaluation.known import tune_known

        thresholds = tune_known(np.maximum(val_y, 0), val_scores, np.asarray(val_y) >= 0, list(schema.labels),
                                schema, {"method": config.threshold_method})
    else:
        thresholds = tune_thresholds(val_y, val_scores, method=config.threshold_method, schema=schema)
    evaluation = None
    if data.test is not None:
        from ..evaluation import evaluate

        test = predict_scores(model, data.test.x, schema=schema, image_size=config.image_size,
                              channels=config.channels, batch_size=config.batch_size,
                              skip_unreadable=config.skip_unreadable, verbose=keras_verbose(config.verbose))
        test_y = data.test.y[test.keep]
        evaluation = evaluate(test_y, test.scores, schema=schema, thresholds=thresholds,
                              bootstrap=config.bootstrap)
        evaluation.training = training_summary(config, data, state, resumed_from, n_test=len(test_y),
                                                n_val=len(val_y))
        evaluation.save(out / "report", plots=config.plots)
        decisions = decide(test.scores, schema, thresholds)
        write_predictions(out / "test_predictions.csv", np.asarray(data.test.ids)[test.keep], test.scores,
                          decisions, schema)
        say(evaluation.format_table())
        say(f"report: {out / 'report' / 'report.html'}")
    else:
        say("no test split: nothing evaluated, no report written (thresholds are tuned on val)")
    pre = Preprocessing(tuple(config.image_size), config.channels)
    path = artifact.save(model, out / "model.keras", schema, thresholds, pre,
                         info={"backbone": config.backbone, "best_epoch": state.best_epoch,
                               "val_macro_auc": state.best_auc if math.isfinite(state.best_auc) else None,
                               "epochs_run": state.epoch, "seed": config.seed})
    # learning_rate stays the base rate the user gave; the plan (replicas, batches, the scaled
    # rate actually used) sits beside it, so the run can be repeated on other hardware
    write_json(out / "config.json", {**config.to_dict(), **({"distribution": plan.to_dict()} if plan else {})})
    say(f"model: {path}")
    return TrainResult(model, schema, thresholds, state.log, state.best_epoch, state.best_auc, evaluation, out,
                       path, resumed_from)
