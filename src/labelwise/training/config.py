"""The configuration of a training run: :class:`TrainConfig`, read from TOML (every key also a
CLI flag), with every key's type and range checked up front.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import InputError
from ..labels.schema import LabelSchema

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ['TrainConfig', 'LR_SCHEDULES', 'PIPELINES', 'PRECISIONS']


LR_SCHEDULES = ("constant", "cosine", "plateau")


# Types and ranges of TrainConfig's keys, checked before any is used: a wrong type from a
# TOML file otherwise surfaces as a TensorFlow/Keras traceback deep in training, or (a string
# where a bool belongs) is silently truthy.
_INT_RANGES = {"min_labels": 0, "max_labels": 1, "epochs": 1, "batch_size": 1, "plateau_patience": 1, "freeze_epochs": 0, "seed": 0, "bootstrap": 0,
               "verbose": 0, "unfreeze_top": 0, "early_stopping_patience": 1, "devices": 1, "lr_reference_batch": 1,
               "bn_recalibrate_images": 0}
_OPTIONAL = {"unfreeze_top", "early_stopping_patience", "devices", "lr_reference_batch", "bn_momentum",
             "fine_tune_lr", "weights", "loss_weights", "split_column", "splits", "group_column", "distribute", "table",
             "images", "train_shards", "tensorboard", "id_column", "label_column",
             "min_labels", "max_labels", "threshold_method"}
# name: (low, low inclusive, high, high inclusive, what to say)
_FLOAT_RANGES = {"learning_rate": (0.0, True, math.inf, False, "at least 0"),
                 "fine_tune_lr": (0.0, True, math.inf, False, "at least 0"),
                 "dropout": (0.0, True, 1.0, False, "in [0, 1)"),
                 "bn_momentum": (0.0, True, 1.0, True, "in [0, 1] (1: statistics frozen)"),
                 "plateau_factor": (0.0, False, 1.0, False, "in (0, 1)")}
_BOOLS = ("cache", "skip_unreadable", "plots", "resume", "overwrite", "repair_implications", "allow_test_rows")
_STRINGS = ("backbone", "weights", "loss", "binary", "loss_weights", "lr_schedule", "threshold_method",
            "calibration", "decide_for",
            "split_column", "group_column", "distribute", "pipeline", "precision", "format", "id_column",
            "label_column", "sep")
PIPELINES = ("auto", "tf", "python")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
_PATHS = ("table", "images", "out_dir", "train_shards", "tensorboard", "splits")


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
    if isinstance(c.table, (list, tuple)):
        raise InputError(f"table must be one CSV file; got a list {list(c.table)!r}. Several tables are not "
                         "supported: join them into one CSV with a split column (values train/val/test) and set "
                         "split_column, or list one table and let split_fractions + group_column split it")
    for names, types, what in ((_STRINGS, str, "a string"), (_PATHS, (str, os.PathLike), "a path (string)")):
        for name in names:
            v = getattr(c, name)
            if not (isinstance(v, types) or (v is None and name in _OPTIONAL)):
                raise bad(name, what + (" (or none)" if name in _OPTIONAL else ""))
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


UNITS = ("image", "case")
POOLINGS = ("max", "mean", "attention")  # labelwise.blocks.layers.POOLINGS, without importing Keras here


def _check_case_keys(c: "TrainConfig") -> None:
    """``unit``, ``pooling`` and ``max_slices``: types, values, and no case key on an image run."""
    if c.unit not in UNITS:
        raise InputError(f"unit must be 'image' (one table row per image) or 'case' (one row per case of many "
                         f"images); got {c.unit!r}")
    if c.pooling is not None and c.pooling not in POOLINGS:
        raise InputError(f"pooling must be one of {list(POOLINGS)} (how a case's slices are pooled); got {c.pooling!r}")
    m = c.max_slices
    if m is not None and (isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1):
        raise InputError(f"max_slices must be a whole number >= 1 (the most slices of one case a batch holds), or "
                         f"none to keep every slice; got {m!r}")
    c.max_slices = None if m is None else int(m)
    if c.unit == "image" and (c.pooling is not None or c.max_slices is not None):
        raise InputError("pooling and max_slices are settings of case models; set unit = 'case' (one table row per "
                         "case, its slices in images/<id>.npy or images/<id>/) or remove them")


def _check_decisions(c: "TrainConfig") -> None:
    """Check ``calibration``, ``decide_for`` (``threshold_method``: its old name) and the label bounds."""
    from ..decide.calibration import CALIBRATION_METHODS
    from ..decide.rules import parse_rule

    if c.calibration not in CALIBRATION_METHODS:
        raise InputError(f"calibration must be one of {list(CALIBRATION_METHODS)}; got {c.calibration!r}")
    if c.threshold_method is not None:
        # the old key: it names the rule when decide_for is left at its default
        default = TrainConfig.__dataclass_fields__["decide_for"].default
        if c.decide_for not in (default, c.threshold_method):
            raise InputError(f"threshold_method ({c.threshold_method!r}) is the old name of decide_for "
                             f"({c.decide_for!r}); set only decide_for")
        c.decide_for = c.threshold_method
    try:
        c.decide_for = str(parse_rule(c.decide_for))
    except InputError as e:  # its message lists the rules
        raise InputError(f"decide_for: {e}") from None
    if c.min_labels is not None and c.max_labels is not None and c.min_labels > c.max_labels:
        raise InputError(f"min_labels ({c.min_labels}) is above max_labels ({c.max_labels})")


@dataclass
class TrainConfig:
    """Every setting of a training run (the TOML file's keys; each is also a CLI flag).

    Data: ``schema`` (TOML path or inline table; None: inferred from the table), ``table``,
    how to read it (``format``, ``id_column``, ``label_column``, ``sep``, ``repair_implications``: as
    the table flags of every command; the run writes them to ``table_spec.json``),
    ``images`` (folder the table's paths are relative to), ``split_column`` (values
    train/val/test), or ``splits`` (the CSV ``labelwise split --out`` writes: ``id,group,split``,
    joined to the table by id), or ``split_fractions`` + ``group_column`` (e.g. the patient id).
    Model: ``backbone`` ("small_cnn", "densenet121", ...), ``weights`` ("imagenet" or None),
    ``image_size`` (h, w), ``channels``, ``dropout``, ``bn_recalibrate_images`` (after every
    epoch, before validation and the checkpoint, the moving mean and variance of every trainable
    BatchNormalization layer are set to the exact statistics of this many training images,
    unaugmented, in training-mode forward passes; weights and optimizer untouched; frozen layers
    and models without BatchNormalization skip it; 0: off. Keras' running averages (momentum
    0.99, MobileNetV3 0.999) still hold their initial values after a short from-scratch run and
    the model's validation scores come out constant), ``bn_momentum`` (set on every
    BatchNormalization layer; None: the backbone's own). Loss: ``loss`` ("schema" for
    :class:`labelwise.blocks.losses.SchemaLoss`, or "bce"), ``binary`` (SchemaLoss's binary part:
    "bce", "weighted", "focal", "asymmetric"), ``loss_weights`` ("balanced" or None).
    Optimisation: ``epochs``, ``batch_size`` (global, over all replicas), ``learning_rate``,
    ``lr_schedule`` ("constant", "cosine", "plateau"), ``plateau_factor``/``plateau_patience``,
    ``freeze_epochs`` (head-only epochs), ``unfreeze_top`` (backbone layers unfrozen after them;
    None = all), ``fine_tune_lr`` (default learning_rate / 10), ``early_stopping_patience``
    (None = off), ``augment``, ``cache``, ``seed``. Decisions: ``calibration`` ("platt",
    "temperature", "isotonic", "none": fitted on the validation predictions), ``decide_for`` (the
    decision rule, any of :data:`labelwise.decide.RULES`, e.g. "f1", "instance-f1", "hamming",
    "top-k=3"; tuned on the calibrated validation probabilities), ``min_labels``/``max_labels``
    (bounds on the labels decided per image; None: none); ``threshold_method`` is the old name of
    ``decide_for`` (None: unset). The model artifact carries the calibration and the rule.
    Output: ``out_dir``,
    ``bootstrap`` (resamples for the report's confidence intervals), ``plots`` (PNG plots in
    the report), ``verbose``. Speed: ``pipeline`` ("auto": tf.data when TensorFlow is
    installed, else the Python pipeline; "tf"; "python"), ``precision`` ("float32",
    "mixed_float16" with loss scaling, "mixed_bfloat16"; the head's outputs stay float32),
    ``jit_compile`` ("auto": XLA on a GPU, and always on JAX, whose only compiler it is; true;
    false); ``tensorboard`` (a folder for TensorBoard event files: loss, learning
    rate, validation macro AUC and each label's AUC per epoch); ``resume``
    continues the run in ``out_dir`` from its last checkpoint, ``overwrite`` discards it instead.
    Cases (exams of many images, :mod:`labelwise.training.cases`): ``unit`` ("image", or "case":
    one table row per case, its slices ``images/ID.npy`` or the files of ``images/ID/``),
    ``pooling`` (case models: "max" (default), "mean", "attention") and ``max_slices`` (at most
    this many slices per case: a random subset per epoch in training, evenly spaced otherwise).
    """

    schema: Any = None
    table: str | None = None
    images: str | None = None
    format: str = "auto"
    id_column: str | None = None
    label_column: str | None = None
    sep: str = "|"
    repair_implications: bool = False
    split_column: str | None = None
    splits: str | None = None
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    group_column: str | None = None
    unit: str = "image"
    pooling: str | None = None
    max_slices: int | None = None
    backbone: str = "small_cnn"
    weights: str | None = None
    image_size: tuple[int, int] = (224, 224)
    channels: int = 3
    dropout: float = 0.0
    bn_momentum: float | None = None
    bn_recalibrate_images: int = 512
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
    allow_test_rows: bool = False
    seed: int = 0
    threshold_method: str | None = None
    # chosen by measurement (benchmarks/bench_decisions.py --trained; README "Calibrated probabilities"):
    # Platt gives the lowest ECE on both tasks and both losses; on its probabilities instance-f1 has the best
    # subset accuracy and micro/instance F1 on the 20-label task and ties the best on the demo
    calibration: str = "platt"
    decide_for: str = "instance-f1"
    min_labels: int | None = None
    max_labels: int | None = None
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
    pipeline: str = "auto"
    precision: str = "float32"
    jit_compile: Any = "auto"
    tensorboard: str | None = None

    def __post_init__(self) -> None:
        # TOML has no null: "none" or "" unsets an optional key (table and images stay as written)
        for name in (_OPTIONAL - {"table", "images"}) | {"augment", "pooling", "max_slices"}:
            if getattr(self, name) in ("none", "None", ""):
                setattr(self, name, None)
        _check_types(self)
        from ..labels.tables import FORMATS

        if self.format not in FORMATS:
            raise InputError(f"format must be one of {list(FORMATS)}; got {self.format!r}")
        if self.pipeline not in PIPELINES:
            raise InputError(f"pipeline must be one of {list(PIPELINES)}; got {self.pipeline!r}")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {list(PRECISIONS)}; got {self.precision!r}")
        jit = {"auto": "auto", "true": True, "on": True, "false": False, "off": False}
        if isinstance(self.jit_compile, (bool, np.bool_)):
            self.jit_compile = bool(self.jit_compile)
        elif isinstance(self.jit_compile, str) and self.jit_compile.lower() in jit:
            self.jit_compile = jit[self.jit_compile.lower()]
        else:
            raise InputError(f"jit_compile must be auto, true or false; got {self.jit_compile!r}")
        _check_case_keys(self)
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
        import warnings

        if self.learning_rate == 0:
            # Allowed (a fixed-weights baseline, a test of the pipeline), but never silently.
            warnings.warn("learning_rate = 0: the weights will not change, every epoch repeats the first and the "
                          "model stays at its initial weights; give a rate above 0 (e.g. 0.001) to train",
                          stacklevel=2)
        if self.fine_tune_lr == 0 and self.freeze_epochs and self.epochs > self.freeze_epochs:
            warnings.warn(f"fine_tune_lr = 0: epochs {self.freeze_epochs + 1}-{self.epochs} (after the frozen ones) "
                          "will change nothing; leave fine_tune_lr unset (learning_rate / 10) or give a rate above 0",
                          stacklevel=2)
        if len(self.image_size) != 2:
            raise InputError(f"image_size must be [height, width]; got {self.image_size!r}")
        _check_decisions(self)

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
        for key in _PATHS:
            if isinstance(data.get(key), str) and data[key] not in ("none", "None", ""):
                data[key] = str(base / data[key])
        if isinstance(data.get("schema"), str):
            data["schema"] = str(base / data["schema"])
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**data)
        except (TypeError, InputError) as e:  # the message names the key; say which file it came from
            raise InputError(f"{path}: {e}") from None

    def table_spec(self, schema: Any = None):
        """The :class:`~labelwise.labels.spec.TableSpec` of ``table`` (``schema``: instead of the config's)."""
        from ..labels.spec import TableSpec

        return TableSpec(self.table, format=self.format, id_column=self.id_column, label_column=self.label_column,
                         sep=self.sep, schema=self.schema if schema is None else schema,
                         repair_implications=self.repair_implications)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if isinstance(self.schema, LabelSchema):
            d["schema"] = self.schema.to_dict()
        if hasattr(self.augment, "to_dict"):
            d["augment"] = self.augment.to_dict()
        return d
