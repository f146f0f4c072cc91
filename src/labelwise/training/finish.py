"""The end of a training run: restore the best epoch, fit the decision policy on validation
(``calibration``, then the ``decide_for`` rule), evaluate the test split with it into ``report/``
and write the one artifact ``model.keras`` carrying the policy.
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
    policy: Any = None  # the DecisionPolicy in the artifact (calibration + rule); thresholds: its per-label ones


def _warn_if_overdeciding(policy, val_y, val_scores, schema, config) -> None:
    """Say so when the policy decides more than twice the true labels per image on validation (the
    sign of uncalibrated scores from a reweighting loss under a set-level rule)."""
    from ..decide.rules import labels_per_image

    if not schema.independent:
        return
    predicted = labels_per_image(policy.decide(val_scores), schema)
    true = labels_per_image(np.asarray(val_y), schema)
    if predicted > 2 * true:
        import warnings

        # a warning, not a progress line: it must show at verbose = 0 too
        warnings.warn(f"on validation the decisions ({config.decide_for}, calibration {config.calibration}) give "
            f"{predicted:.2f} labels per image for {true:.2f} true; "
            + ("set calibration = 'platt' (the scores are not probabilities)" if policy.calibration is None
               or config.calibration == "none" else "consider decide_for = 'hamming' or max_labels"), stacklevel=3)


def _write_val_scores(out: Path, ids, val_scores, schema) -> None:
    """``val_scores.csv``: the raw validation scores the decision policy was fitted on (marked raw in
    its sidecar), so calibrate / thresholds --compare can be re-run without predicting again."""
    from ..decide.scorefile import write_scores

    if len(ids) != len(val_scores):
        return  # the ids cannot be matched to the rows: better no file than a misaligned one
    write_scores(out / "val_scores.csv", list(ids), val_scores, schema.labels, values="raw",
                 note="the validation scores train calibrated and tuned the decision policy on (model outputs, "
                      "no calibration)")


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
    from ..decide.policy import fit_policy

    say(f"fitting the decisions on {len(val_y)} validation images (the {len(val_y)} rows of the val split; no test "
        f"row): calibration {config.calibration}, rule {config.decide_for}")
    val_scores = schema.complete_scores(model.predict(val_ds, verbose=keras_verbose(config.verbose))[: len(val_y)])
    src = getattr(val_ds, "labelwise_source", None)  # unreadable validation images were left out
    _write_val_scores(out, np.asarray(data.val.ids)[src.keep] if src is not None else data.val.ids, val_scores, schema)
    if (np.asarray(val_y) < 0).any():  # unknown cells: each threshold tuned on its label's known rows
        from ..decide.rules import parse_rule
        from ..evaluation.known import tune_known
        from ..decide.policy import as_policy

        rule = parse_rule(config.decide_for)
        kwargs = rule.tune_kwargs() if rule.per_label else {"method": "f1"}
        say(f"note: the validation labels have unknown cells: per-label {kwargs['method']} thresholds are tuned on "
            "each label's known rows, without calibration (calibration and set-level rules need full rows)")
        thresholds = tune_known(np.maximum(val_y, 0), val_scores, np.asarray(val_y) >= 0, list(schema.labels),
                                schema, kwargs)
        policy = as_policy(thresholds, schema)
        judge = thresholds  # evaluate reads unknown cells with plain thresholds, as before
    else:
        policy = fit_policy(val_y, val_scores, schema, rule=config.decide_for,
                            calibration=None if config.calibration == "none" else config.calibration,
                            min_labels=config.min_labels, max_labels=config.max_labels)
        for note in policy.notes:
            say(f"note: {note}")
        _warn_if_overdeciding(policy, val_y, val_scores, schema, config)
        thresholds = policy.thresholds
        judge = policy
    evaluation = None
    if data.test is not None:
        from ..evaluation import evaluate
        from ..evaluation.evaluate import groups_note

        test = predict_scores(model, data.test.x, schema=schema, image_size=config.image_size,
                              channels=config.channels, batch_size=config.batch_size,
                              skip_unreadable=config.skip_unreadable, verbose=keras_verbose(config.verbose))
        test_y = data.test.y[test.keep]
        # score_source: the report says when a reweighting loss's scores go uncalibrated
        groups = None if data.test.groups is None else np.asarray(data.test.groups)[test.keep]
        said = groups_note(groups, "patients of the test split") if groups is not None and config.bootstrap else None
        if said:
            say(said)
        evaluation = evaluate(test_y, test.scores, schema=schema, thresholds=judge, bootstrap=config.bootstrap,
                              score_source=config.binary if config.loss == "schema" else config.loss, groups=groups)
        if said:
            evaluation.notes.append(said)
        evaluation.training = training_summary(config, data, state, resumed_from, n_test=len(test_y),
                                                n_val=len(val_y))
        evaluation.save(out / "report", plots=config.plots)
        probs, decisions = policy.apply(test.scores)
        write_predictions(out / "test_predictions.csv", np.asarray(data.test.ids)[test.keep], probs,
                          decisions, schema, policy=policy)
        say(evaluation.format_table())
        say(f"report: {out / 'report' / 'report.html'}")
    else:
        say("no test split: nothing evaluated, no report written (the decisions are fitted on val)")
    pre = Preprocessing(tuple(config.image_size), config.channels)
    path = artifact.save(model, out / "model.keras", schema, policy, pre,
                         info={"backbone": config.backbone, "best_epoch": state.best_epoch,
                               "val_macro_auc": state.best_auc if math.isfinite(state.best_auc) else None,
                               "epochs_run": state.epoch, "seed": config.seed})
    # learning_rate stays the base rate the user gave; the plan (replicas, batches, the scaled
    # rate actually used) sits beside it, so the run can be repeated on other hardware
    write_json(out / "config.json", {**config.to_dict(), **({"distribution": plan.to_dict()} if plan else {})})
    if config.table:  # how the table was read, for a later command to read it the same way
        config.table_spec(schema).save(out / "table_spec.json")
    say(f"model: {path}")
    return TrainResult(model, schema, thresholds, state.log, state.best_epoch, state.best_auc, evaluation, out,
                       path, resumed_from, policy)
