"""Training case models (``unit = "case"``): one table row per case (exam), its slices in
``images/ID.npy`` or ``images/ID/`` (:mod:`labelwise.data.cases`).

The run is the image run of :mod:`labelwise.training.loop` with cases in place of images: the
table is split by ``group_column`` over cases; every case is checked once before the first epoch;
:class:`labelwise.data.casepipe.CaseDataset` streams batches of ``batch_size`` cases, each padded
to its longest case with a mask; the model is :func:`labelwise.blocks.models.build_case_model`
(``pooling`` max / mean / attention); ``max_slices`` subsamples longer cases (a random subset
per epoch in training, evenly spaced for val, test and the artifact's predictions). The same
epoch callback (exact val macro AUC, logs, atomic checkpoints, early stopping, plateau), the
same exact ``--resume``, thresholds tuned on val, a test report that counts cases and shows the
slice-count distribution, ``test_predictions.csv`` (one row per case) and ``model.keras``,
whose preprocessing records ``max_slices`` and the even slice sampling for ``labelwise predict``.

:func:`labelwise.training.loop.train` hands ``unit = "case"`` runs to :func:`train_cases`, passing
its epoch-callback factory (so this module does not import the loop back).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import InputError
from ..io import write_json
from ..labels.schema import LabelSchema, load_schema
from .config import TrainConfig
from .data import Part, TrainData, _train_data
from .finish import TrainResult
from .phases import build_and_compile, phases
from .state import _check_resume_config, _latest, _load_model_weights_only, _State

__all__ = ["load_case_data", "train_cases", "build_case_run_model", "slice_summary"]


def load_case_data(config: TrainConfig) -> TrainData:
    """Read the case table (one row per case: id, labels, group column) and split it by group
    into train / val / test; ``Part.x`` holds each case's ``.npy`` file or folder."""
    from ..data.cases import case_paths
    from ..labels.tables import read_table

    if not config.table:
        raise InputError("no table given: set `table` to a CSV with one row per case (case id, labels, group)")
    if not config.images:
        raise InputError("no images folder given: set `images` to the folder holding <case id>.npy stacks or one "
                         "folder of slices per case")
    table = read_table(config.table_spec(load_schema(config.schema)))
    paths = np.asarray([str(p) for p in case_paths(table.ids, config.images, table=config.table, lines=table.lines)])
    return _train_data(config, table, paths, empty="has no case; training needs train and val cases")


def _cases(part: Part, say: Callable[[str], None], what: str):
    """A checked :class:`CaseSet` of one split (lengths filled; the first bad case raises)."""
    from ..data.cases import CaseSet, check_cases

    cases = CaseSet(np.asarray(part.ids), [Path(p) for p in part.x], np.asarray(part.y))
    check_cases(cases)
    n = np.asarray(cases.lengths)
    say(f"{what}: {len(cases)} cases, {int(n.sum())} slices ({int(n.min())}-{int(n.max())} per case)")
    return cases


def slice_summary(lengths: np.ndarray, max_slices: int | None = None) -> dict[str, Any]:
    """Slice counts of cases: min, median, mean, max, total, and a histogram in up to 8 ranges
    (``{"8-11": cases, ...}``), plus ``max_slices``; for the report's data section."""
    n = np.asarray(lengths, dtype=np.int64)
    lo, hi = int(n.min()), int(n.max())
    edges = np.unique(np.linspace(lo, hi + 1, min(8, hi - lo + 1) + 1).round().astype(np.int64))
    counts = np.histogram(n, bins=edges)[0]
    hist = {(f"{a}" if b - a == 1 else f"{a}-{b - 1}"): int(c) for a, b, c in zip(edges[:-1], edges[1:], counts)}
    return {"min": lo, "median": float(np.median(n)), "mean": float(n.mean()), "max": hi, "total": int(n.sum()),
            "histogram": hist, "max_slices": max_slices}


def _refuse_image_only_keys(config: TrainConfig, strategy: Any) -> None:
    if strategy is not None or config.distribute:
        raise InputError("distribute is not supported for unit = 'case' yet; train case models on one device")
    if config.train_shards:
        raise InputError("train_shards hold single images; unit = 'case' reads stacks from `images`")
    if config.augment:
        raise InputError("augment is not applied to case stacks yet (max_slices subsampling is the case run's "
                         "augmentation); leave augment unset for unit = 'case'")
    if config.cache:
        raise InputError("cache keeps every decoded image in memory; a case run streams its stacks: set cache = false")
    if config.skip_unreadable:
        raise InputError("skip_unreadable is not supported for unit = 'case': fix or remove the case named in the error")


def build_case_run_model(config: TrainConfig, schema: LabelSchema):
    """The case model of a run: :func:`labelwise.blocks.models.build_case_model` with the run's
    backbone, image size, channels, weights, pooling (default max), dropout and bn_momentum."""
    from ..blocks.models import build_case_model
    from .phases import _set_bn_momentum

    model = build_case_model(schema, config.backbone, image_shape=(*config.image_size, config.channels),
                             weights=config.weights, case_pooling=config.pooling or "max", dropout=config.dropout)
    if config.bn_momentum is not None:
        _set_bn_momentum(model, float(config.bn_momentum))
    return model


def _open_run(config: TrainConfig, ckdir: Path, say) -> tuple[_State, dict | None]:
    """The run's state and checkpoint pointer (None: from scratch), as the image loop opens it."""
    pointer = _latest(ckdir) if config.resume else None
    if config.resume and pointer is None:
        say(f"--resume: no checkpoint in {ckdir}; starting from scratch")
    elif not config.resume and _latest(ckdir) is not None:
        if not config.overwrite:
            raise InputError(f"{ckdir.parent} already holds a run (checkpoints/latest.json at epoch "
                             f"{_latest(ckdir)['epoch']}); pass --resume to continue it, --overwrite to start "
                             "again, or choose another --out-dir")
        for f in ckdir.iterdir():
            if f.is_file():
                f.unlink()
    if pointer is None:
        return _State(), None
    saved = json.loads((ckdir / pointer["state"]).read_text())
    _check_resume_config(config, saved.get("config"), ckdir / pointer["state"])
    state = _State.from_dict(saved["state"])
    say(f"resuming from epoch {state.epoch} ({ckdir / pointer['weights']})")
    return state, pointer


def train_cases(config: TrainConfig, data: TrainData | None = None, *, epoch_callback: Callable[..., Any],
                strategy: Any = None) -> TrainResult:
    """Run a ``unit = "case"`` config end to end (see the module docstring)."""
    import keras

    from ..data.casepipe import CaseDataset
    from .predict import prepare_stack

    say = (lambda msg: print(msg, flush=True)) if config.verbose else (lambda msg: None)
    _refuse_image_only_keys(config, strategy)
    data = data or load_case_data(config)
    schema = data.schema
    say("checking every case once (shapes, slice files, NaN/inf)")
    train_cases_, val_cases = _cases(data.train, say, "train"), _cases(data.val, say, "val")
    test_cases = _cases(data.test, say, "test") if data.test is not None else None
    out = Path(config.out_dir)
    ckdir = out / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    state, pointer = _open_run(config, ckdir, say)
    resumed_from = state.epoch

    keras.utils.set_random_seed(config.seed)
    kw = dict(batch_size=config.batch_size, image_size=config.image_size, channels=config.channels,
              max_slices=config.max_slices, prepare=prepare_stack, seed=config.seed)
    train_set = CaseDataset(train_cases_, train=True, y_columns=schema.n_outputs, **kw)
    val_set = CaseDataset(val_cases, **kw)
    val_y = np.asarray(data.val.y)
    steps = len(train_set)
    model = None
    for phase in phases(config):
        if state.stopped_early or state.epoch >= phase.stop:
            continue
        model = build_and_compile(config, schema, y_train=data.train.y, phase=phase, steps_per_epoch=steps,
                                  model=model if model is not None else build_case_run_model(config, schema))
        if pointer is not None and state.epoch > phase.start:  # mid-phase: this phase's optimizer is saved
            model.optimizer.build(model.trainable_variables)
            model.load_weights(ckdir / pointer["weights"])
        elif pointer is not None and state.epoch == phase.start and state.epoch > 0:
            _load_model_weights_only(model, ckdir / pointer["weights"])
        pointer = None
        callback = epoch_callback(config=config, schema=schema, state=state, phase=phase,
                                  val_ds=val_set.for_predict(), val_y=val_y, loss_fn=model.loss, out=out,
                                  ckdir=ckdir, printer=say, bn_batches=_bn_batches(config, model, train_cases_, kw))
        model.fit(train_set.for_fit(state.epoch, phase.stop), epochs=phase.stop, initial_epoch=state.epoch,
                  steps_per_epoch=steps, callbacks=[callback], verbose=config.verbose, shuffle=False)
    if model is None:  # the checkpoint already covered every epoch
        model = build_and_compile(config, schema, y_train=data.train.y, phase=phases(config)[-1],
                                  steps_per_epoch=steps, model=build_case_run_model(config, schema))
    if state.best_file:
        with np.load(ckdir / state.best_file) as f:
            model.set_weights([f[f"w{i}"] for i in range(len(f.files))])
        say(f"best epoch {state.best_epoch}: val macro AUC {state.best_auc:.4f}")
    test_set = CaseDataset(test_cases, **kw) if test_cases is not None else None
    return _finish_cases(config, data, schema, model, state, val_set, test_set, out, resumed_from, say)


def _bn_batches(config: TrainConfig, model, cases, kw: dict):
    """Batches of the training cases (a fixed seeded order, training's slice sampling) for
    :func:`labelwise.training.batchnorm.recalibrate_batchnorm`; None when there is nothing to re-estimate."""
    from ..data.casepipe import CaseDataset
    from .batchnorm import live_batchnorm_layers

    if not config.bn_recalibrate_images or not live_batchnorm_layers(model):
        return None
    ds = CaseDataset(cases, train=True, **kw)
    return lambda: (ds.batch(0, i) for i in range(len(ds)))


def _finish_cases(config, data, schema, model, state, val_set, test_set, out, resumed_from, say) -> TrainResult:
    """The decision policy fitted on val (calibration + rule, as for image runs), the test report
    and predictions, ``model.keras`` and ``config.json``."""
    from ..decide.policy import fit_policy
    from . import artifact
    from .artifact import Preprocessing
    from .finish import _write_val_scores, keras_verbose
    from .predict import write_predictions

    val_y = np.asarray(data.val.y)
    say(f"fitting the decisions on {len(val_y)} validation cases: calibration {config.calibration}, "
        f"rule {config.decide_for}")
    val_scores = schema.complete_scores(model.predict(val_set.for_predict(), verbose=keras_verbose(config.verbose)))
    _write_val_scores(out, data.val.ids, val_scores, schema)
    policy = fit_policy(val_y, val_scores, schema, rule=config.decide_for,
                        calibration=None if config.calibration == "none" else config.calibration,
                        min_labels=config.min_labels, max_labels=config.max_labels)
    for note in policy.notes:
        say(f"note: {note}")
    thresholds = policy.thresholds
    evaluation = None
    if test_set is not None:
        from ..evaluation import evaluate

        scores = schema.complete_scores(model.predict(test_set.for_predict(), verbose=keras_verbose(config.verbose)))
        summary = {"unit": "cases", "slices_per_case": slice_summary(test_set.cases.lengths, config.max_slices)}
        evaluation = evaluate(np.asarray(data.test.y), scores, schema=schema, thresholds=policy,
                              bootstrap=config.bootstrap, summary=summary,
                              score_source=config.binary if config.loss == "schema" else config.loss)
        evaluation.save(out / "report", plots=config.plots)
        probs, decisions = policy.apply(scores)
        write_predictions(out / "test_predictions.csv", np.asarray(data.test.ids), probs, decisions, schema,
                          policy=policy)
        say(evaluation.format_table())
        say(f"report: {out / 'report' / 'report.html'}")
    else:
        say("no test split: nothing evaluated, no report written (the decisions are fitted on val)")
    pre = Preprocessing(tuple(config.image_size), config.channels, max_slices=config.max_slices,
                        extra={"unit": "case", "slice_sampling": "even", "pooling": config.pooling or "max"})
    path = artifact.save(model, out / "model.keras", schema, policy, pre,
                         info={"backbone": config.backbone, "unit": "case", "best_epoch": state.best_epoch,
                               "val_macro_auc": state.best_auc if math.isfinite(state.best_auc) else None,
                               "epochs_run": state.epoch, "seed": config.seed})
    write_json(out / "config.json", config.to_dict())
    if config.table:  # how the table was read, for a later command to read it the same way
        config.table_spec(schema).save(out / "table_spec.json")
    say(f"model: {path}")
    return TrainResult(model, schema, thresholds, state.log, state.best_epoch, state.best_auc, evaluation, out,
                       path, resumed_from, policy)
