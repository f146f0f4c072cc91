"""Training: a :class:`TrainConfig`, and :func:`train` that runs it from data to artifact.

One run:

1. reads the table and splits it (a split column, or fractions + a group column through
   :func:`labelwise.labels.split.split_table`), or takes in-memory :class:`TrainData`;
2. builds and compiles the model in :func:`build_and_compile` (one function, so that
   ``labelwise.training.distribute`` can call it inside a strategy scope);
3. fits it, phase by phase (head-only epochs on a frozen backbone, then the top N backbone
   layers unfrozen at a lower learning rate), computing the validation macro ROC AUC exactly
   (:func:`labelwise.metrics.roc_auc_score` on all validation predictions, not Keras' binned
   AUC) after every epoch, for early stopping, reduce-on-plateau and best-model selection;
4. after every epoch writes the epoch log (``log.csv``, ``log.json``) and a checkpoint
   (model + optimizer weights, and a JSON state with epoch, best metric, early-stopping and
   plateau counters, seed and log), each file atomically, then an atomic pointer
   ``checkpoints/latest.json``: a run killed at any moment (even ``kill -9``) resumes with
   ``resume=True`` from the last finished epoch;
5. restores the best epoch's weights, tunes thresholds on the validation split, evaluates the
   test split (``report/``) and writes the one artifact ``model.keras``.

Reproducible: ``keras.utils.set_random_seed(seed)`` before the model is built; epoch ``e``
reads its batches in the order ``stateless_shuffle(seed=[seed, e])``, augments with seeds
``(seed, e, index)``, and every dropout seed generator is reset to ``(seed, e)`` at the start
of the epoch -- so an epoch's computation depends only on the weights it starts from, and a
resumed run repeats the uninterrupted one exactly (on CPU; see tests/test_train.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, LabelwiseError
from ..io import atomic_path, write_json
from ..labels.schema import LabelSchema
from .config import LR_SCHEDULES, TrainConfig
from .data import Part, TrainData, _check_test_images, load_data
from .finish import TrainResult, _finish, interactive, keras_verbose
from .guards import RunLock, check_fingerprint, checkpoint_failure, data_fingerprint
from .phases import Phase, build_and_compile, phases
from .state import (_check_resume_config, _current_lr, _latest, save_weights_file,
                    _load_model_weights_only, _reset_rng, _State, _write_logs)

__all__ = ["train", "TrainResult", "TrainConfig", "TrainData", "Part", "build_and_compile", "load_data",
           "phases", "LR_SCHEDULES"]


# ------------------------------------------------------------------ the epoch callback
def _epoch_callback(*, config: TrainConfig, schema: LabelSchema, state: _State, phase: Phase, val_ds,
                    val_y: np.ndarray, loss_fn, out: Path, ckdir: Path, printer, predicting=None, events=None,
                    fingerprint: dict[str, Any] | None = None, bn_batches=None):
    """The epoch-end callback; ``bn_batches`` (a callable returning training batches, or None)
    feeds :func:`labelwise.training.batchnorm.recalibrate_batchnorm` before validation."""
    import keras

    from ..metrics import roc_auc_score
    from .batchnorm import recalibrate_batchnorm

    class EpochEnd(keras.callbacks.Callback):
        """Exact validation AUC, logs, best weights, early stopping, plateau, atomic checkpoint."""

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()
            _reset_rng(self.model, config.seed, epoch)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            model = self.model
            # before validation, the best-weights copy and the checkpoint: all of them see (and a
            # resumed run restarts from) statistics of the weights as they are now
            t_bn = time.perf_counter()
            bn_images = (recalibrate_batchnorm(model, bn_batches, max_images=config.bn_recalibrate_images)
                         if bn_batches is not None and config.bn_recalibrate_images else 0)
            t_bn = time.perf_counter() - t_bn
            if config.verbose == 1:  # Keras' epoch bar is still open on this line: start a new one
                print(("\n" if interactive() else "") + f"validation: {len(val_y)} images", flush=True)
            with (predicting or contextlib.nullcontext)(model) as predictor:  # multi-process JAX: a local twin
                probs = predictor.predict(val_ds, verbose=keras_verbose(config.verbose))[: len(val_y)]  # even_batches may pad
            val_loss = float(keras.ops.convert_to_numpy(
                loss_fn(keras.ops.convert_to_tensor(val_y[:, : schema.n_outputs], "float32"),
                        keras.ops.convert_to_tensor(probs, "float32"))))
            scores = schema.complete_scores(probs)
            with warnings.catch_warnings():  # a label with one class in val is NaN, reported once below
                warnings.simplefilter("ignore")
                if (np.asarray(val_y) < 0).any():  # unknown cells: each label's AUC on its known rows
                    per_label = np.array([roc_auc_score(val_y[val_y[:, j] >= 0, j:j + 1],
                                                        scores[val_y[:, j] >= 0, j:j + 1], average="macro")
                                          for j in range(val_y.shape[1])], dtype=float)
                else:
                    per_label = np.asarray(roc_auc_score(val_y, scores, average=None), dtype=float)
            auc = float(np.nanmean(per_label)) if np.isfinite(per_label).any() else float("nan")
            self._check_constant(model, scores, [r["loss"] for r in state.log] + [logs.get("loss")], bn_images)
            lr = _current_lr(model)
            n = epoch + 1
            improved = math.isfinite(auc) and auc > state.best_auc
            row = {"epoch": n, "phase": phase.index, "loss": float(logs.get("loss", float("nan"))),
                   "val_loss": val_loss, "val_macro_auc": auc, "learning_rate": lr,
                   "seconds": round(time.perf_counter() - self._t0, 3), "best": improved,
                   "bn_images": bn_images, "bn_seconds": round(t_bn, 3),
                   "val_auc": {lab: float(a) for lab, a in zip(schema.labels, per_label)}}
            state.log.append(row)
            if events is not None:
                events.write(row)
            state.epoch = n
            old_best = state.best_file
            if improved:
                state.best_auc, state.best_epoch, state.wait = auc, n, 0
                state.best_file = f"best-epoch-{n:03d}.npz"
                with self._writing(n):
                    with atomic_path(ckdir / state.best_file) as tmp:
                        with open(tmp, "wb") as f:
                            np.savez(f, **{f"w{i}": w for i, w in enumerate(model.get_weights())})
            else:
                state.wait += 1
            if config.lr_schedule == "plateau":
                if math.isfinite(auc) and auc > state.plateau_best + 1e-4:
                    state.plateau_best, state.plateau_wait = auc, 0
                else:
                    state.plateau_wait += 1
                    if state.plateau_wait >= config.plateau_patience:
                        model.optimizer.learning_rate.assign(lr * config.plateau_factor)
                        state.plateau_wait = 0
                        printer(f"epoch {n}: val macro AUC has not improved for {config.plateau_patience} "
                                f"epochs; learning rate {lr:.3g} -> {lr * config.plateau_factor:.3g}")
            if config.early_stopping_patience is not None and state.wait >= config.early_stopping_patience:
                state.stopped_early = True
                model.stop_training = True
            with self._writing(n):
                _write_logs(out, state.log)
                self._checkpoint(model, n, old_best)
            # Keras' progress bar runs after this callback and prints what is in `logs`
            logs.update(val_loss=val_loss, val_macro_auc=auc)
            if state.stopped_early:
                printer(f"early stopping: no better val macro AUC for {state.wait} epochs; "
                        f"best {state.best_auc:.4f} at epoch {state.best_epoch}")

        def _check_constant(self, model, scores, losses, bn_images: int) -> None:
            """Warn once when validation scores are constant while the training loss falls."""
            if getattr(self, "_warned", False):
                return
            from ..evaluation.diagnostics import constant_while_learning
            from .batchnorm import live_batchnorm_layers

            finding = constant_while_learning(scores, losses, labels=list(schema.labels),
                                              batchnorm=bool(live_batchnorm_layers(model)), recalibrated=bn_images)
            if finding is not None:
                self._warned = True
                warnings.warn(finding.message, stacklevel=2)

        @contextlib.contextmanager
        def _writing(self, n: int):
            """Disk full (or any write failure) while saving epoch ``n``: one clear error; the
            pointer still names the previous complete checkpoint, so --resume continues from it."""
            try:
                yield
            except (OSError, RuntimeError, LabelwiseError) as e:
                raise checkpoint_failure(e, n, ckdir, _latest(ckdir)) from None

        def _checkpoint(self, model, n: int, old_best: str | None) -> None:
            weights = f"epoch-{n:03d}.weights.h5"
            state_file = f"epoch-{n:03d}.json"
            save_weights_file(model, ckdir / weights)  # model + optimizer variables, atomically
            write_json(ckdir / state_file, {"state": state.to_dict(), "phase": phase.index, "seed": config.seed,
                                            "config": config.to_dict(), "data": fingerprint})
            previous = _latest(ckdir)
            write_json(ckdir / "latest.json", {"epoch": n, "weights": weights, "state": state_file})
            # only now, with the pointer moved on, is the previous checkpoint garbage
            if previous:
                for key in ("weights", "state"):
                    with contextlib.suppress(FileNotFoundError):
                        (ckdir / previous[key]).unlink()
            if old_best and old_best != state.best_file:
                with contextlib.suppress(FileNotFoundError):
                    (ckdir / old_best).unlink()

    return EpochEnd()


# ------------------------------------------------------------------ BatchNorm statistics
def _bn_batches(config: TrainConfig, model, train_src, pipeline, strategy, steps: int, say):
    """A callable giving the unaugmented training batches whose statistics BatchNormalization's
    moving averages are re-estimated from after every epoch (``config.bn_recalibrate_images``
    of them, a fixed seeded subset), or None: off, no trainable BatchNormalization layer, or
    JAX DataParallel (several processes hold only their rows of a batch; one process skips it
    too, so that 1 and N processes train the same run). Batches of up to 128 images (at most
    ~2 megapixels, never fewer than the training batch): eager forward passes cost per call."""
    from .batchnorm import live_batchnorm_layers

    n = int(config.bn_recalibrate_images or 0)
    layers = live_batchnorm_layers(model) if n else []
    if not layers:
        return None
    if getattr(strategy, "kind", None) == "dataparallel":
        say("note: BatchNorm statistics are not re-estimated under JAX DataParallel; if validation scores "
            "come out constant, set bn_momentum = 0.9")
        return None
    say(f"BatchNorm: the moving statistics of {len(layers)} layers are re-estimated after every epoch over "
        f"{n} training images (bn_recalibrate_images)")
    if config.train_shards:
        from ..data.shards import read_shard_epochs

        return lambda: read_shard_epochs(config.train_shards, image_size=config.image_size, channels=config.channels,
                                         batch_size=config.batch_size, seed=config.seed, epochs=(0, 1),
                                         steps_per_epoch=min(steps, math.ceil(n / config.batch_size)))
    h, w = config.image_size
    batch = max(config.batch_size, min(128, 2_000_000 // max(1, h * w)))
    pick = np.sort(np.random.default_rng([config.seed, 2]).permutation(len(train_src))[:n])
    sub = pipeline.ImageSource(None if train_src.paths is None else train_src.paths[pick],
                               None if train_src.arrays is None else train_src.arrays[pick],
                               None, np.arange(len(pick)), {})
    return lambda: pipeline.make_dataset(sub, image_size=config.image_size, channels=config.channels,
                                         batch_size=batch)


# ------------------------------------------------------------------ train
def _printer(verbose: int):
    def say(msg: str) -> None:
        if verbose:
            print(msg, flush=True)
    return say


def train(config: TrainConfig, data: TrainData | None = None, *, strategy: Any = None) -> TrainResult:
    """Run ``config`` end to end (see the module docstring); returns a :class:`TrainResult`.

    ``data`` replaces reading ``config.table`` (e.g. in-memory arrays for the demo).
    ``strategy`` (a ``tf.distribute`` strategy) wraps model building and compiling in its
    scope; ``config.batch_size`` is the global batch size. ``config.pipeline`` picks the input
    pipeline (config.json records the one used), ``config.precision`` is Keras' dtype policy
    for the run (restored afterwards), ``config.jit_compile`` goes to ``model.compile``.
    """
    from ..data.choose import pipeline_module, resolve_pipeline
    from .runtime import import_keras, precision_policy

    if config.unit == "case":  # exams of many images; the epoch callback is shared, passed in (no import circle)
        from .cases import train_cases

        import_keras()
        return train_cases(config, data, epoch_callback=_epoch_callback, strategy=strategy)

    import_keras()  # a clear error when the backend's framework is missing
    kind = resolve_pipeline(config.pipeline, shards=bool(config.train_shards))
    if kind == "python" and (strategy is not None or config.distribute):
        raise InputError("distribute needs the tf.data pipeline (its batches are split by tf.data); the Python "
                         "pipeline is used here (pipeline = 'python', or TensorFlow is not installed): use "
                         "pipeline = 'tf' with TensorFlow installed, or train on one device")
    config = dataclasses.replace(config, pipeline=kind)  # config.json and checkpoints record what was used
    with precision_policy(config.precision):
        return _train(config, data, strategy, pipeline_module(kind))


def _train(config: TrainConfig, data: TrainData | None, strategy: Any, pipeline: Any) -> TrainResult:
    """The run with its pipeline module chosen: the strategy, the data, then the locked run."""
    say = _printer(config.verbose)
    if strategy is None and config.distribute:
        from .distribute import strategy_for

        strategy = strategy_for(config.distribute, devices=config.devices)  # first: multiworker must start before any TF op
    data = data or load_data(config)
    out = Path(config.out_dir)
    plan, lr_config = None, config  # lr_config: the scaled rates; config keeps the base ones (config.json)
    if hasattr(strategy, "plan"):  # a labelwise.training.distribute.Distribution
        plan = strategy.plan(config.batch_size, config.learning_rate, reference_batch=config.lr_reference_batch)
        say(plan.describe())
        if plan.learning_rate != config.learning_rate:
            factor = plan.learning_rate / config.learning_rate
            lr_config = dataclasses.replace(config, learning_rate=plan.learning_rate, fine_tune_lr=(
                None if config.fine_tune_lr is None else config.fine_tune_lr * factor))
        out = strategy.worker_path(out)  # non-chief workers write to their own folder
    # One run per out dir: a second one would overwrite this one's checkpoints epoch by epoch.
    with RunLock(out):
        return _train_locked(config, data, strategy, out, plan, lr_config, say, pipeline)


def _train_locked(config: TrainConfig, data: TrainData, strategy: Any, out: Path, plan: Any, lr_config: TrainConfig,
                  say, pipeline: Any) -> TrainResult:
    """The run itself, once :func:`train` holds the out dir's lock; ``pipeline`` is the input
    pipeline's module (:mod:`labelwise.data.pipeline` or :mod:`labelwise.data.pypipeline`)."""
    import keras

    schema = data.schema
    fingerprint = data_fingerprint(data)
    ckdir = out / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()

    state = _State()
    resumed_from = 0
    pointer = _latest(ckdir) if config.resume else None
    if config.resume and pointer is None:
        say(f"--resume: no checkpoint in {ckdir}; starting from scratch")
    elif not config.resume and _latest(ckdir) is not None and config.overwrite:
        for f in ckdir.iterdir():
            if f.is_file():
                f.unlink()
    elif not config.resume and _latest(ckdir) is not None:
        pointer = _latest(ckdir)
        raise InputError(f"{out} already holds a run (checkpoints/latest.json at epoch {pointer['epoch']}); "
                         "pass --resume to continue it, --overwrite to start again, or choose another --out-dir")
    model = None
    if pointer is not None:
        saved = json.loads((ckdir / pointer["state"]).read_text())
        _check_resume_config(config, saved.get("config"), ckdir / pointer["state"])
        check_fingerprint(saved.get("data"), fingerprint, ckdir / pointer["state"])
        state = _State.from_dict(saved["state"])
        resumed_from = state.epoch
        say(f"resuming from epoch {state.epoch} ({ckdir / pointer['weights']})")

    keras.utils.set_random_seed(config.seed)
    ds_kwargs = dict(image_size=config.image_size, channels=config.channels, batch_size=config.batch_size,
                     cache=config.cache, skip_unreadable=config.skip_unreadable)
    # From shards, the loose train files are never read (only their labels, for loss weights):
    # decoding or caching them would cost a full pass over images that may not even be here.
    train_src = pipeline.ImageSource.create(data.train.x, data.train.y[:, : schema.n_outputs],
                                            skip_unreadable=config.skip_unreadable, channels=config.channels,
                                            verbose=config.verbose, check=not config.train_shards,
                                            failures=pipeline.decode_failures)
    data = _check_test_images(config, data)  # now, not after hours of training
    if config.cache and train_src.arrays is None and not config.train_shards:
        train_src = pipeline.ImageSource(None, pipeline.load_images(train_src, image_size=config.image_size,
                                                                    channels=config.channels),
                                         train_src.y, train_src.keep, train_src.skipped)
    val_ds = pipeline.make_dataset(pipeline.ImageSource.create(  # checked here, with progress
        data.val.x, skip_unreadable=config.skip_unreadable, channels=config.channels, verbose=config.verbose,
        failures=pipeline.decode_failures), **ds_kwargs)
    val_keep = val_ds.labelwise_source.keep
    val_y = data.val.y[val_keep]
    if hasattr(strategy, "even_batches"):  # JAX DataParallel needs batches divisible by the devices
        val_ds = strategy.even_batches(val_ds)
    n_train = len(train_src)
    if config.train_shards:
        from ..data.shards import check_train_shards

        # labels, val/test leakage and files per worker, before anything is built
        n_train = check_train_shards(config.train_shards, schema, holdout={
            "val": data.val.ids, "test": None if data.test is None else data.test.ids},
            # multi-process JAX: every process reads every shard (Distribution.local_batches)
            num_workers=1 if getattr(strategy, "multi_process", False) else getattr(strategy, "num_workers", 1)
        )["n_examples"]
        if config.augment:
            raise InputError("augment is not applied to train_shards yet; leave augment unset or train from the table")
    steps = math.ceil(n_train / config.batch_size)
    y_train_out = train_src.y

    events = None
    if config.tensorboard:
        from .tensorboard import EventLog

        events = EventLog(config.tensorboard)
    for phase in phases(lr_config):
        if state.stopped_early or state.epoch >= phase.stop:
            continue
        with scope:
            model = build_and_compile(config, schema, y_train=y_train_out, phase=phase, steps_per_epoch=steps,
                                      model=model)
            if pointer is not None and state.epoch > phase.start:
                # mid-phase resume: this phase's optimizer exists in the checkpoint
                model.optimizer.build(model.trainable_variables)
                model.load_weights(ckdir / pointer["weights"])
            elif pointer is not None and state.epoch == phase.start and state.epoch > 0:
                _load_model_weights_only(model, ckdir / pointer["weights"])
        pointer = None
        if config.train_shards:
            from ..data.shards import read_shard_epochs

            # one stream per epoch seeded (seed, epoch): a resumed run reads what the uninterrupted one did
            train_ds = read_shard_epochs(config.train_shards, image_size=config.image_size, channels=config.channels,
                                         batch_size=config.batch_size, y_columns="outputs", schema=schema,
                                         seed=config.seed, epochs=(state.epoch, phase.stop), steps_per_epoch=steps)
        else:
            train_ds = pipeline.make_epoch_dataset(train_src, image_size=config.image_size, channels=config.channels,
                                                   batch_size=config.batch_size, shuffle=True, seed=config.seed,
                                                   augment=config.augment, epochs=(state.epoch, phase.stop),
                                                   # several JAX processes: each decodes only its rows
                                                   process_shard=getattr(strategy, "process_shard", None))
        sliced = getattr(strategy, "process_shard", None) is not None and not config.train_shards
        if hasattr(strategy, "local_batches") and not sliced:  # (sliced: already this process's padded rows)
            train_ds = strategy.local_batches(train_ds)  # JAX: devices divide every batch; this process's part
        callback = _epoch_callback(config=config, schema=schema, state=state, phase=phase, val_ds=val_ds,
                                   val_y=val_y, loss_fn=model.loss, out=out, ckdir=ckdir, printer=say,
                                   predicting=getattr(strategy, "predicting", None), events=events,
                                   fingerprint=fingerprint,
                                   bn_batches=_bn_batches(config, model, train_src, pipeline, strategy, steps, say))
        if phase.frozen:
            say(f"phase {phase.index + 1}: epochs {phase.start + 1}-{phase.stop}, backbone frozen, lr {phase.learning_rate:g}")
        elif config.freeze_epochs:
            say(f"phase {phase.index + 1}: epochs {phase.start + 1}-{phase.stop}, backbone "
                f"{'unfrozen' if config.unfreeze_top is None else f'top {config.unfreeze_top} layers unfrozen'}, "
                f"lr {phase.learning_rate:g}")
        with scope:  # JAX DataParallel reads the distribution while fitting, not only while building
            model.fit(train_ds, epochs=phase.stop, initial_epoch=state.epoch, steps_per_epoch=steps,
                      callbacks=[callback], verbose=keras_verbose(config.verbose), shuffle=False)
    if events is not None:
        events.close()
    if model is None:  # the checkpoint already covered every epoch
        with scope:
            model = build_and_compile(config, schema, y_train=y_train_out, phase=phases(lr_config)[-1],
                                      steps_per_epoch=steps)

    if state.best_file:
        with np.load(ckdir / state.best_file) as f:
            model.set_weights([f[f"w{i}"] for i in range(len(f.files))])
        say(f"best epoch {state.best_epoch}: val macro AUC {state.best_auc:.4f}")
    # several JAX processes: Keras cannot fetch their batch-sharded predictions, so each
    # process predicts (and saves) with a process-local twin of the model
    with (strategy.predicting(model) if hasattr(strategy, "predicting") else contextlib.nullcontext(model)) as final:
        return _finish(config, data, schema, final, state, val_ds, val_y, out, resumed_from, say, plan=plan)
