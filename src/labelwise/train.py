"""Training: a :class:`TrainConfig`, and :func:`train` that runs it from data to artifact.

One run:

1. reads the table and splits it (a split column, or fractions + a group column through
   :func:`labelwise.split.split_table`), or takes in-memory :class:`TrainData`;
2. builds and compiles the model in :func:`build_and_compile` (one function, so that
   ``labelwise.distribute`` can call it inside a strategy scope);
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
import csv
import dataclasses
import io as _io
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import InputError
from .io import atomic_path, write_json, write_text
from .schema import LabelSchema, load_schema

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["TrainConfig", "TrainData", "Part", "TrainResult", "train", "build_and_compile", "load_data",
           "phases", "LR_SCHEDULES"]

LR_SCHEDULES = ("constant", "cosine", "plateau")
_SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                "dev": "val", "test": "test", "testing": "test"}


# Types and ranges of TrainConfig's keys, checked before any is used: a wrong type from a
# TOML file otherwise surfaces as a TensorFlow/Keras traceback deep in training, or (a string
# where a bool belongs) is silently truthy.
_INT_RANGES = {"epochs": 1, "batch_size": 1, "plateau_patience": 1, "freeze_epochs": 0, "seed": 0, "bootstrap": 0,
               "verbose": 0, "unfreeze_top": 0, "early_stopping_patience": 1, "devices": 1, "lr_reference_batch": 1}
_OPTIONAL = {"unfreeze_top", "early_stopping_patience", "devices", "lr_reference_batch", "bn_momentum",
             "fine_tune_lr", "weights", "loss_weights", "split_column", "group_column", "distribute", "table",
             "images", "train_shards"}
# name: (low, low inclusive, high, high inclusive, what to say)
_FLOAT_RANGES = {"learning_rate": (0.0, True, math.inf, False, "at least 0"),
                 "fine_tune_lr": (0.0, True, math.inf, False, "at least 0"),
                 "dropout": (0.0, True, 1.0, False, "in [0, 1)"),
                 "bn_momentum": (0.0, True, 1.0, True, "in [0, 1] (1: statistics frozen)"),
                 "plateau_factor": (0.0, False, 1.0, False, "in (0, 1)")}
_BOOLS = ("cache", "skip_unreadable", "plots", "resume", "overwrite")
_STRINGS = ("backbone", "weights", "loss", "binary", "loss_weights", "lr_schedule", "threshold_method",
            "split_column", "group_column", "distribute")
_PATHS = ("table", "images", "out_dir", "train_shards")


def _check_types(c: "TrainConfig") -> None:
    """Raise InputError naming the key for a value of the wrong type or out of range."""
    def bad(name: str, what: str) -> InputError:
        return InputError(f"{name} must be {what}; got {getattr(c, name)!r}")

    for name, low in _INT_RANGES.items():
        v = getattr(c, name)
        if v is None and name in _OPTIONAL:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise bad(name, f"a whole number >= {low}" + (" (or none)" if name in _OPTIONAL else ""))
        setattr(c, name, int(v))
    for name, (lo, lo_in, hi, hi_in, what) in _FLOAT_RANGES.items():
        v = getattr(c, name)
        if v is None and name in _OPTIONAL:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not (
                (v >= lo if lo_in else v > lo) and (v <= hi if hi_in else v < hi)):
            raise bad(name, f"a number {what}" + (" (or none)" if name in _OPTIONAL else ""))
        setattr(c, name, float(v))
    for name in _BOOLS:
        if not isinstance(getattr(c, name), (bool, np.bool_)):
            raise bad(name, "true or false")
    for name in _STRINGS:
        v = getattr(c, name)
        if not (isinstance(v, str) or (v is None and name in _OPTIONAL)):
            raise bad(name, "a string" + (" (or none)" if name in _OPTIONAL else ""))
    if isinstance(c.table, (list, tuple)):
        raise InputError(f"table must be one CSV file; got a list {list(c.table)!r}. Several tables are not "
                         "supported: join them into one CSV with a split column (values train/val/test) and set "
                         "split_column, or list one table and let split_fractions + group_column split it")
    for name in _PATHS:
        v = getattr(c, name)
        if not (isinstance(v, (str, os.PathLike)) or (v is None and name in _OPTIONAL)):
            raise bad(name, "a path (string)" + (" (or none)" if name in _OPTIONAL else ""))
    if c.channels not in (1, 3) or isinstance(c.channels, bool):
        raise bad("channels", "1 (grayscale) or 3 (RGB)")
    if not (c.schema is None or isinstance(c.schema, (str, os.PathLike, Mapping, LabelSchema))):
        raise bad("schema", "a schema TOML path, an inline [schema] table, or none (inferred from the table)")
    size = c.image_size
    size = (size, size) if isinstance(size, (int, np.integer)) and not isinstance(size, bool) else size
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in size)):
        raise bad("image_size", "[height, width], two whole numbers >= 1 (or one for a square)")
    c.image_size = (int(size[0]), int(size[1]))
    fr = c.split_fractions
    if not (isinstance(fr, (list, tuple)) and len(fr) == 3 and all(
            isinstance(f, (int, float, np.integer, np.floating)) and not isinstance(f, bool) and f >= 0 for f in fr)):
        raise bad("split_fractions", "three numbers >= 0: train, val, test")
    c.split_fractions = tuple(float(f) for f in fr)


@dataclass
class TrainConfig:
    """Every setting of a training run (the TOML file's keys; each is also a CLI flag).

    Data: ``schema`` (TOML path or inline table; None: inferred from the table), ``table``,
    ``images`` (folder the table's paths are relative to), ``split_column`` (values
    train/val/test) or ``split_fractions`` + ``group_column`` (e.g. the patient id).
    Model: ``backbone`` ("small_cnn", "densenet121", ...), ``weights`` ("imagenet" or None),
    ``image_size`` (h, w), ``channels``, ``dropout``, ``bn_momentum`` (set on every
    BatchNormalization layer; 0.9 lets the moving statistics settle in a short run, where
    Keras' 0.99 leaves them near their initial values and inference fails). Loss: ``loss`` ("schema" for
    :class:`labelwise.losses.SchemaLoss`, or "bce"), ``binary`` (SchemaLoss's binary part:
    "bce", "weighted", "focal", "asymmetric"), ``loss_weights`` ("balanced" or None).
    Optimisation: ``epochs``, ``batch_size`` (global, over all replicas), ``learning_rate``,
    ``lr_schedule`` ("constant", "cosine", "plateau"), ``plateau_factor``/``plateau_patience``,
    ``freeze_epochs`` (head-only epochs), ``unfreeze_top`` (backbone layers unfrozen after them;
    None = all), ``fine_tune_lr`` (default learning_rate / 10), ``early_stopping_patience``
    (None = off), ``augment``, ``cache``, ``seed``. Output: ``out_dir``, ``threshold_method``,
    ``bootstrap`` (resamples for the report's confidence intervals), ``plots`` (PNG plots in
    the report), ``verbose``; ``resume``
    continues the run in ``out_dir`` from its last checkpoint, ``overwrite`` discards it instead.
    """

    schema: Any = None
    table: str | None = None
    images: str | None = None
    split_column: str | None = None
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    group_column: str | None = None
    backbone: str = "small_cnn"
    weights: str | None = None
    image_size: tuple[int, int] = (224, 224)
    channels: int = 3
    dropout: float = 0.0
    bn_momentum: float | None = None
    loss: str = "schema"
    binary: str = "bce"
    loss_weights: str | None = None
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    freeze_epochs: int = 0
    unfreeze_top: int | None = None
    fine_tune_lr: float | None = None
    early_stopping_patience: int | None = 5
    augment: Any = None
    cache: bool = False
    skip_unreadable: bool = False
    seed: int = 0
    threshold_method: str = "f1"
    bootstrap: int = 1000
    plots: bool = True
    out_dir: str = "labelwise-run"
    verbose: int = 1
    resume: bool = False
    overwrite: bool = False
    distribute: str | None = None
    devices: int | None = None
    lr_reference_batch: int | None = None
    train_shards: str | None = None

    def __post_init__(self) -> None:
        for name in ("weights", "loss_weights", "split_column", "group_column", "unfreeze_top", "fine_tune_lr",
                     "early_stopping_patience", "augment", "bn_momentum", "distribute", "devices", "lr_reference_batch", "train_shards"):
            if getattr(self, name) in ("none", "None", ""):
                setattr(self, name, None)
        _check_types(self)
        if self.lr_schedule not in LR_SCHEDULES:
            raise InputError(f"lr_schedule must be one of {list(LR_SCHEDULES)}; got {self.lr_schedule!r}")
        if self.devices is not None and str(self.distribute).lower() not in ("mirrored", "dataparallel"):
            raise InputError(f"devices = {self.devices} needs distribute = 'mirrored' or 'dataparallel' (multiworker "
                             "uses every worker's devices as TF_CONFIG and CUDA_VISIBLE_DEVICES give them)")
        if self.loss not in ("schema", "bce"):
            raise InputError(f"loss must be 'schema' or 'bce'; got {self.loss!r}")
        if self.loss_weights not in (None, "balanced"):
            raise InputError(f"loss_weights must be 'balanced' or none; got {self.loss_weights!r}")
        for name in ("epochs", "batch_size", "channels"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be at least 1; got {getattr(self, name)!r}")
        if not 0 <= self.freeze_epochs <= self.epochs:
            raise InputError(f"freeze_epochs must be between 0 and epochs ({self.epochs}); got {self.freeze_epochs}")
        if len(self.image_size) != 2:
            raise InputError(f"image_size must be [height, width]; got {self.image_size!r}")

    @classmethod
    def fields(cls) -> list[dataclasses.Field]:
        return list(dataclasses.fields(cls))

    @classmethod
    def from_toml(cls, path: str | os.PathLike, **overrides: Any) -> "TrainConfig":
        """Read a config file; relative paths in it are relative to the file's folder.

        Keys may sit at the top level or in a ``[train]`` table; ``schema`` may be a path or an
        inline ``[schema]`` table. ``overrides`` (e.g. from CLI flags) win over the file.
        """
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise InputError(f"{path}: not valid TOML ({e})") from None
        if "train" in data and isinstance(data["train"], dict):
            data = {**{k: v for k, v in data.items() if k != "train"}, **data["train"]}
        known = {f.name for f in cls.fields()}
        unknown = sorted(set(data) - known)
        if unknown:
            import difflib

            hints = [f"{u!r}" + (f" (did you mean {difflib.get_close_matches(u, known, 1)[0]!r}?)"
                                 if difflib.get_close_matches(u, known, 1) else "") for u in unknown]
            raise InputError(f"{path}: unknown setting(s) {', '.join(hints)}; the settings are {sorted(known)}")
        base = path.parent
        for key in ("table", "images", "out_dir", "train_shards"):
            if isinstance(data.get(key), str):
                data[key] = str(base / data[key])
        if isinstance(data.get("schema"), str):
            data["schema"] = str(base / data["schema"])
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**data)
        except (TypeError, InputError) as e:  # the message names the key; say which file it came from
            raise InputError(f"{path}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if isinstance(self.schema, LabelSchema):
            d["schema"] = self.schema.to_dict()
        if hasattr(self.augment, "to_dict"):
            d["augment"] = self.augment.to_dict()
        return d


@dataclass
class Part:
    """One split: ``x`` (image paths, or an image array (n, h, w[, c])), ``y`` (n, n_labels) 0/1
    over ``schema.labels``, and ``ids`` (names used in outputs)."""

    x: Any
    y: np.ndarray
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class TrainData:
    """The splits of a run and their schema; ``test`` may be None."""

    schema: LabelSchema
    train: Part
    val: Part
    test: Part | None = None


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


# ------------------------------------------------------------------ data
def load_data(config: TrainConfig) -> TrainData:
    """Read ``config.table`` with its schema and split it into train / val / test."""
    if not config.table:
        raise InputError("no table given: set `table` in the config (or --table) to a CSV of image ids and labels")
    from .tables import read_table

    from .errors import TableError

    schema = load_schema(config.schema)
    try:
        table = read_table(config.table, schema=schema, images=config.images)
    except TableError as e:
        if "not found in" not in str(e):
            raise
        if not config.skip_unreadable:
            raise TableError(f"{e}; or pass --skip-unreadable (skip_unreadable = true) to leave those rows out "
                             "with a warning") from None
        table = read_table(config.table, schema=schema, images=config.images, on_missing="drop")
        # list the dropped files: the ids of the whole table that are not among the kept rows
        every = read_table(config.table, schema=schema).ids
        kept = set(map(str, table.ids))
        gone = [str(i) for i in every if str(i) not in kept]
        shown = "\n".join(f"  {i}" for i in gone[:10]) + (f"\n  ... and {len(gone) - 10} more" if len(gone) > 10 else "")
        warnings.warn(f"skip_unreadable: leaving out {len(gone)} of {len(every)} row(s) of {config.table} whose image "
                      f"file is missing from {config.images}:\n{shown}", stacklevel=2)
    schema = table.schema
    x = table.paths if table.paths is not None else table.images
    if x is None:
        raise InputError(f"{config.table}: no image paths; set `images` to the folder holding the images")
    if config.split_column:
        if config.split_column not in table.extra.columns:
            raise InputError(f"{config.table}: no column {config.split_column!r} to split by; columns are "
                             f"{list(table.extra.columns)}")
        raw = table.extra[config.split_column].astype(str).str.strip().str.lower()
        names = raw.map(_SPLIT_NAMES)
        if names.isna().any():
            bad = sorted(set(raw[names.isna()]))
            raise InputError(f"{config.table}: column {config.split_column!r} has value(s) {bad[:5]}; "
                             "use train, val or test")
        masks = {k: (names == k).to_numpy() for k in ("train", "val", "test")}
    else:
        from .split import split_table

        if min(config.split_fractions) <= 0:
            raise InputError(f"split_fractions {list(config.split_fractions)}: each of train, val and test must be "
                             "more than 0 (e.g. --split-fractions 0.7 0.1 0.2); to train without a test part, "
                             "use a split column (split_column) with only train and val values")
        parts = split_table(table, config.group_column, config.split_fractions, seed=config.seed)
        masks = _split_masks(parts, table)

    def part(mask: np.ndarray) -> Part:
        xs = np.asarray(x, dtype=str) if table.paths is not None else np.asarray(x)
        return Part(xs[mask], table.y[mask], np.asarray(table.ids)[mask])

    for k in ("train", "val"):
        if not masks[k].any():
            raise InputError(f"{config.table}: the {k} split is empty; training needs a train and a val split")
    return TrainData(schema, part(masks["train"]), part(masks["val"]),
                     part(masks["test"]) if masks["test"].any() else None)


def _split_masks(parts: Any, table: Any) -> dict[str, np.ndarray]:
    """Boolean masks over ``table`` rows from what :func:`split_table` returned (a frame with
    ``id`` and ``split`` columns aligned to the rows, or tables / id lists by split name)."""
    if hasattr(parts, "columns") and "split" in parts.columns:
        names = parts["split"].astype(str).str.lower().map(_SPLIT_NAMES).to_numpy()
        return {k: names == k for k in ("train", "val", "test")}
    if isinstance(parts, Mapping):
        items = dict(parts)
    elif hasattr(parts, "_asdict"):
        items = parts._asdict()
    elif dataclasses.is_dataclass(parts):
        items = {f.name: getattr(parts, f.name) for f in dataclasses.fields(parts)}
    else:
        items = dict(zip(("train", "val", "test"), parts))
    ids = np.asarray(table.ids)
    masks = {}
    for key, value in items.items():
        name = _SPLIT_NAMES.get(str(key).lower())
        if name is None:
            continue
        part_ids = np.asarray(value.ids if hasattr(value, "ids") else value)
        if part_ids.dtype == bool and len(part_ids) == len(ids):
            masks[name] = part_ids
        else:
            masks[name] = np.isin(ids, part_ids)
    for k in ("train", "val", "test"):
        masks.setdefault(k, np.zeros(len(ids), dtype=bool))
    return masks


# ------------------------------------------------------------------ model
@dataclass(frozen=True)
class Phase:
    """Epochs ``start .. stop-1`` trained with one set of trainable layers and one optimizer."""

    index: int
    start: int
    stop: int
    frozen: bool
    learning_rate: float


def phases(config: TrainConfig) -> list[Phase]:
    """The freeze schedule: [head-only phase,] then the (partly) unfrozen phase."""
    out = []
    if config.freeze_epochs:
        out.append(Phase(0, 0, config.freeze_epochs, True, config.learning_rate))
    if config.epochs > config.freeze_epochs:
        lr = config.learning_rate if not config.freeze_epochs else (
            config.fine_tune_lr if config.fine_tune_lr is not None else config.learning_rate / 10)
        out.append(Phase(len(out), config.freeze_epochs, config.epochs, False, lr))
    return out


def _make_loss(config: TrainConfig, schema: LabelSchema, y_train: np.ndarray | None):
    from . import losses

    weights = None
    if config.loss_weights == "balanced":
        if y_train is None:
            raise InputError("loss_weights='balanced' needs the training targets")
        weights = losses.balanced_weights(np.asarray(y_train)[:, : schema.n_outputs])
    if config.loss == "bce":
        if weights is not None:
            pos, neg = weights
            return losses.WeightedBinaryCrossentropy(pos_weight=pos, neg_weight=neg, from_logits=False)
        import keras

        return keras.losses.BinaryCrossentropy()
    kwargs: dict[str, Any] = {"binary": config.binary}
    if weights is not None:
        pos, neg = weights
        kwargs.update(pos_weight=pos, neg_weight=neg)
    return losses.SchemaLoss(schema, **kwargs)


def _make_optimizer(config: TrainConfig, phase: Phase, steps_per_epoch: int):
    import keras

    lr: Any = phase.learning_rate
    if config.lr_schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(phase.learning_rate,
                                                    decay_steps=max(1, steps_per_epoch * (phase.stop - phase.start)))
    return keras.optimizers.Adam(learning_rate=lr)


def build_and_compile(config: TrainConfig, schema: LabelSchema, *, y_train: np.ndarray | None = None,
                      phase: Phase | None = None, steps_per_epoch: int = 1, model: Any = None):
    """Build the model (unless given) and compile it for ``phase`` of the freeze schedule.

    Everything that creates variables happens here, so a caller can wrap it in
    ``strategy.scope()``. Returns the compiled model.
    """
    from .models import build_model, freeze_backbone, unfreeze_top

    if model is None:
        model = build_model(schema, backbone=config.backbone,
                            input_shape=(*config.image_size, config.channels),
                            weights=config.weights, head_output="probabilities", dropout=config.dropout)
        if config.bn_momentum is not None:
            _set_bn_momentum(model, float(config.bn_momentum))
        from .distribute import sync_batchnorm

        sync_batchnorm(model)  # under mirrored/multiworker: BN statistics over the global batch
    phase = phase or phases(config)[0]
    if phase.frozen:
        freeze_backbone(model)
    elif config.freeze_epochs:
        freeze_backbone(model)
        # unfreeze_top keeps BatchNormalization frozen; backbone.trainable = True would let BN
        # overwrite its pretrained statistics with those of small fine-tuning batches.
        unfreeze_top(model, None if config.unfreeze_top is None else int(config.unfreeze_top))
    model.compile(optimizer=_make_optimizer(config, phase, steps_per_epoch),
                  loss=_make_loss(config, schema, y_train))
    return model


def _set_bn_momentum(model, momentum: float) -> None:
    import keras

    def visit(layer):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
        for sub in getattr(layer, "layers", []):
            visit(sub)

    visit(model)


# ------------------------------------------------------------------ state
@dataclass
class _State:
    epoch: int = 0  # epochs completed
    best_auc: float = -math.inf
    best_epoch: int = 0
    best_file: str | None = None
    wait: int = 0
    plateau_best: float = -math.inf
    plateau_wait: int = 0
    stopped_early: bool = False
    log: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("best_auc", "plateau_best"):
            if not math.isfinite(d[k]):
                d[k] = None
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "_State":
        d = dict(d)
        for k in ("best_auc", "plateau_best"):
            d[k] = -math.inf if d.get(k) is None else float(d[k])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


LOG_COLUMNS = ("epoch", "phase", "loss", "val_loss", "val_macro_auc", "learning_rate", "seconds", "best")


def _write_logs(out: Path, log: list[dict[str, Any]]) -> None:
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in log:
        writer.writerow({k: row.get(k) for k in LOG_COLUMNS})
    write_text(out / "log.csv", buf.getvalue())
    write_json(out / "log.json", log)


def _seed_generators(model) -> list:
    return [v for v in model.non_trainable_variables if "seed_generator_state" in v.path]


def _reset_rng(model, seed: int, epoch: int) -> None:
    """Put every dropout/noise seed generator of ``model`` in the state ``(seed, epoch)``."""
    for k, v in enumerate(_seed_generators(model)):
        v.assign(np.array([(seed * 7919 + k) % 2**31, epoch], dtype=v.dtype))


def _current_lr(model) -> float:
    import keras

    opt = model.optimizer
    lr = opt.learning_rate
    try:
        return float(keras.ops.convert_to_numpy(lr))
    except Exception:  # a schedule: evaluate it at the current step
        return float(keras.ops.convert_to_numpy(opt._learning_rate(opt.iterations)))


def _latest(ckdir: Path) -> dict[str, Any] | None:
    pointer = ckdir / "latest.json"
    if not pointer.exists():
        return None
    return json.loads(pointer.read_text())


# ------------------------------------------------------------------ the epoch callback
def _epoch_callback(*, config: TrainConfig, schema: LabelSchema, state: _State, phase: Phase, val_ds,
                    val_y: np.ndarray, loss_fn, out: Path, ckdir: Path, printer, predicting=None):
    import keras

    from .metrics import roc_auc_score

    class EpochEnd(keras.callbacks.Callback):
        """Exact validation AUC, logs, best weights, early stopping, plateau, atomic checkpoint."""

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()
            _reset_rng(self.model, config.seed, epoch)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            model = self.model
            if config.verbose == 1:  # Keras' epoch bar is still open on this line: start a new one
                print(f"\nvalidation: {len(val_y)} images", flush=True)
            with (predicting or contextlib.nullcontext)(model) as predictor:  # multi-process JAX: a local twin
                probs = predictor.predict(val_ds, verbose=min(config.verbose, 2))[: len(val_y)]  # even_batches may pad
            val_loss = float(keras.ops.convert_to_numpy(
                loss_fn(keras.ops.convert_to_tensor(val_y[:, : schema.n_outputs], "float32"),
                        keras.ops.convert_to_tensor(probs, "float32"))))
            scores = schema.complete_scores(probs)
            with warnings.catch_warnings():  # a label with one class in val is NaN, reported once below
                warnings.simplefilter("ignore")
                per_label = np.asarray(roc_auc_score(val_y, scores, average=None), dtype=float)
            auc = float(np.nanmean(per_label)) if np.isfinite(per_label).any() else float("nan")
            lr = _current_lr(model)
            n = epoch + 1
            improved = math.isfinite(auc) and auc > state.best_auc
            row = {"epoch": n, "phase": phase.index, "loss": float(logs.get("loss", float("nan"))),
                   "val_loss": val_loss, "val_macro_auc": auc, "learning_rate": lr,
                   "seconds": round(time.perf_counter() - self._t0, 3), "best": improved,
                   "val_auc": {lab: float(a) for lab, a in zip(schema.labels, per_label)}}
            state.log.append(row)
            state.epoch = n
            old_best = state.best_file
            if improved:
                state.best_auc, state.best_epoch, state.wait = auc, n, 0
                state.best_file = f"best-epoch-{n:03d}.npz"
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
            _write_logs(out, state.log)
            self._checkpoint(model, n, old_best)
            # Keras' progress bar runs after this callback and prints what is in `logs`
            logs.update(val_loss=val_loss, val_macro_auc=auc)
            if state.stopped_early:
                printer(f"early stopping: no better val macro AUC for {state.wait} epochs; "
                        f"best {state.best_auc:.4f} at epoch {state.best_epoch}")

        def _checkpoint(self, model, n: int, old_best: str | None) -> None:
            weights = f"epoch-{n:03d}.weights.h5"
            state_file = f"epoch-{n:03d}.json"
            with _atomic_keras_path(ckdir / weights) as tmp:
                model.save_weights(tmp)  # model + optimizer variables
            write_json(ckdir / state_file, {"state": state.to_dict(), "phase": phase.index, "seed": config.seed,
                                            "config": config.to_dict()})
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
    scope; ``config.batch_size`` is the global batch size.
    """
    import keras

    from . import pipeline

    say = _printer(config.verbose)
    if strategy is None and config.distribute:
        from .distribute import strategy_for

        strategy = strategy_for(config.distribute, devices=config.devices)  # first: multiworker must start before any TF op
    data = data or load_data(config)
    schema = data.schema
    out = Path(config.out_dir)
    plan, lr_config = None, config  # lr_config: the scaled rates; config keeps the base ones (config.json)
    if hasattr(strategy, "plan"):  # a labelwise.distribute.Distribution
        plan = strategy.plan(config.batch_size, config.learning_rate, reference_batch=config.lr_reference_batch)
        say(plan.describe())
        if plan.learning_rate != config.learning_rate:
            factor = plan.learning_rate / config.learning_rate
            lr_config = dataclasses.replace(config, learning_rate=plan.learning_rate, fine_tune_lr=(
                None if config.fine_tune_lr is None else config.fine_tune_lr * factor))
        out = strategy.worker_path(out)  # non-chief workers write to their own folder
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
                                            verbose=config.verbose, check=not config.train_shards)
    data = _check_test_images(config, data)  # now, not after hours of training
    if config.cache and train_src.arrays is None and not config.train_shards:
        train_src = pipeline.ImageSource(None, pipeline.load_images(train_src, image_size=config.image_size,
                                                                    channels=config.channels),
                                         train_src.y, train_src.keep, train_src.skipped)
    val_ds = pipeline.make_dataset(pipeline.ImageSource.create(  # checked here, with progress
        data.val.x, skip_unreadable=config.skip_unreadable, channels=config.channels, verbose=config.verbose),
        **ds_kwargs)
    val_keep = val_ds.labelwise_source.keep
    val_y = data.val.y[val_keep]
    if hasattr(strategy, "even_batches"):  # JAX DataParallel needs batches divisible by the devices
        val_ds = strategy.even_batches(val_ds)
    n_train = len(train_src)
    if config.train_shards:
        from .shards import check_train_shards

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
            from .shards import read_shard_epochs

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
                                   predicting=getattr(strategy, "predicting", None))
        if phase.frozen:
            say(f"phase {phase.index + 1}: epochs {phase.start + 1}-{phase.stop}, backbone frozen, lr {phase.learning_rate:g}")
        elif config.freeze_epochs:
            say(f"phase {phase.index + 1}: epochs {phase.start + 1}-{phase.stop}, backbone "
                f"{'unfrozen' if config.unfreeze_top is None else f'top {config.unfreeze_top} layers unfrozen'}, "
                f"lr {phase.learning_rate:g}")
        with scope:  # JAX DataParallel reads the distribution while fitting, not only while building
            model.fit(train_ds, epochs=phase.stop, initial_epoch=state.epoch, steps_per_epoch=steps,
                      callbacks=[callback], verbose=config.verbose, shuffle=False)
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


@contextlib.contextmanager
def _atomic_keras_path(path: Path):
    """Like :func:`labelwise.io.atomic_path`, but the temporary name keeps the whole
    ``.weights.h5`` / ``.keras`` ending, which Keras checks."""
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _load_model_weights_only(model, path: Path) -> None:
    """Load the model's weights from a checkpoint whose optimizer belongs to another phase."""
    import h5py

    with h5py.File(path, "r") as f:
        has_opt = "optimizer" in f
    if not has_opt:
        model.load_weights(path)
        return
    # copy without the optimizer group, then load (phase changed: a fresh optimizer starts)
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d) / "model.weights.h5"
        with h5py.File(path, "r") as src, h5py.File(tmp, "w") as dst:
            for key in src.keys():
                if key != "optimizer":
                    src.copy(key, dst)
            for k, v in src.attrs.items():
                dst.attrs[k] = v
        with warnings.catch_warnings():  # "skipping variable loading for optimizer": intended here
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model.load_weights(tmp)


def _check_test_images(config: TrainConfig, data: TrainData) -> TrainData:
    """Check the test split's image files before training (a bad one found only in
    :func:`_finish` lost the whole run's artifact); with ``skip_unreadable`` the unreadable
    rows are left out of ``data.test``, so the test prediction needs no second check."""
    from . import pipeline

    if data.test is None:
        return data
    src = pipeline.ImageSource.create(data.test.x, skip_unreadable=config.skip_unreadable,
                                      channels=config.channels, verbose=config.verbose)
    if not src.skipped:
        return data
    keep = src.keep
    test = Part(np.asarray(data.test.x)[keep], data.test.y[keep], np.asarray(data.test.ids)[keep])
    return dataclasses.replace(data, test=test)


# Keys that change the model, the data or their order: a resumed run with other values would
# not be the run its checkpoint belongs to (or would fail loading the weights). epochs may grow.
_RESUME_KEYS = ("schema", "table", "images", "split_column", "split_fractions", "group_column", "backbone", "weights",
                "image_size", "channels", "dropout", "bn_momentum", "loss", "binary", "loss_weights", "batch_size",
                "freeze_epochs", "unfreeze_top", "augment", "seed", "train_shards")


def _check_resume_config(config: TrainConfig, saved: Mapping[str, Any] | None, where: Path) -> None:
    """Raise InputError listing the model/data keys whose value differs from the checkpoint's."""
    if not saved:
        return

    def norm(key: str, value: Any) -> Any:
        value = json.loads(json.dumps(value, default=str))  # tuples -> lists, as in the saved JSON
        if key in ("table", "images", "train_shards") or (key == "schema" and isinstance(value, str)):
            return None if value is None else str(Path(value).resolve())
        return value

    now = config.to_dict()
    changed = [f"{k}: {saved[k]!r} -> {now[k]!r}" for k in _RESUME_KEYS
               if k in saved and norm(k, saved[k]) != norm(k, now[k])]
    if changed:
        raise InputError("--resume: these settings differ from the run's checkpoint (" + str(where) + "):\n  "
                         + "\n  ".join(changed) + "\nresume with the checkpoint's settings (epochs may grow), or "
                         "start a new run (--overwrite, or another --out-dir)")


def _finish(config, data, schema, model, state, val_ds, val_y, out, resumed_from, say, *, plan=None) -> TrainResult:
    from . import artifact
    from .artifact import Preprocessing
    from .predict import predict_scores, write_predictions
    from .thresholds import decide, tune_thresholds

    say(f"tuning thresholds on {len(val_y)} validation images")
    val_scores = schema.complete_scores(model.predict(val_ds, verbose=min(config.verbose, 2))[: len(val_y)])
    thresholds = tune_thresholds(val_y, val_scores, method=config.threshold_method, schema=schema)
    evaluation = None
    if data.test is not None:
        from .evaluate import evaluate

        test = predict_scores(model, data.test.x, schema=schema, image_size=config.image_size,
                              channels=config.channels, batch_size=config.batch_size,
                              skip_unreadable=config.skip_unreadable, verbose=min(config.verbose, 2))
        test_y = data.test.y[test.keep]
        evaluation = evaluate(test_y, test.scores, schema=schema, thresholds=thresholds,
                              bootstrap=config.bootstrap)
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
