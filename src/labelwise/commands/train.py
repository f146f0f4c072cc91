"""labelwise train CONFIG.toml [--flags]: train, fit the decisions (calibration + rule),
evaluate on the test split, write model.keras and report/.

Every setting of labelwise.training.TrainConfig is a key of the TOML file and also a
flag (--image-size 64 64, --lr-schedule cosine, --no-cache, ...) that overrides it;
"none" (e.g. --early-stopping-patience none) overrides the file with no value.
Keras and TensorFlow are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

# TrainConfig lives in labelwise.training.config, which imports only numpy at the top, so reading
# its fields here keeps `labelwise --help` fast.
from ..training.config import TrainConfig

_HELP = {
    "schema": "label schema TOML (default: inferred from the table)",
    "table": "label table (CSV) with image ids and labels",
    "images": "folder the table's image paths are relative to",
    "format": "table format: auto, nih, labels, onehot, tree, mnist (as in inspect)",
    "id_column": "the table's column of image ids (default: detected)",
    "label_column": "the table's column of label names joined by --sep (implies format labels)",
    "sep": "separator of the names in --label-column (default '|')",
    "repair_implications": "add a missing parent label (the schema's implies) instead of refusing the row",
    "split_column": "column with train/val/test per row",
    "splits": "split file from 'labelwise split --out' (id,group,split), joined to the table by id",
    "split_fractions": "train val test fractions when there is no split column",
    "group_column": "rows sharing this column's value stay in one split (e.g. the patient id)",
    "unit": "image (one table row per image) or case (one row per case; slices in IMAGES/ID.npy or IMAGES/ID/)",
    "pooling": "case models: how a case's slices are pooled: max, mean or attention",
    "max_slices": "case models: at most this many slices per case (random subset per epoch in training)",
    "backbone": "small_cnn, densenet121, ...",
    "weights": "backbone weights: imagenet or none",
    "image_size": "model input height and width in pixels",
    "channels": "image channels the model takes: 1 (grayscale) or 3 (RGB)",
    "dropout": "dropout rate before the head",
    "bn_momentum": "BatchNorm moving-average momentum of small_cnn (default: Keras' 0.99)",
    "epochs": "most epochs to train (early stopping may end sooner)",
    "learning_rate": "initial learning rate (Adam)",
    "plateau_factor": "with lr_schedule plateau: multiply the learning rate by this",
    "plateau_patience": "with lr_schedule plateau: epochs without a better val macro AUC before lowering it",
    "seed": "random seed of the split, shuffling, augmentation and initial weights",
    "threshold_method": "old name of --decide-for (kept so older configs still run)",
    "bootstrap": "bootstrap resamples for the test report's confidence intervals (0: none)",
    "plots": "write the report's PNG plots and HTML page",
    "loss": "schema (SchemaLoss) or bce",
    "binary": "SchemaLoss binary part: bce, weighted, focal, asymmetric",
    "loss_weights": "balanced or none",
    "batch_size": "global batch size (over all replicas)",
    "lr_schedule": "constant, cosine or plateau (on val macro AUC)",
    "freeze_epochs": "head-only epochs with the backbone frozen",
    "unfreeze_top": "after the frozen epochs, unfreeze this many top backbone layers (default all)",
    "fine_tune_lr": "learning rate after unfreezing (default learning_rate / 10)",
    "early_stopping_patience": "stop after this many epochs without a better val macro AUC (none: off)",
    "augment": "augmentation: default or none",
    "cache": "decode the images once and keep them in memory",
    "skip_unreadable": "leave out unreadable image files (listed in a warning) instead of stopping",
    "allow_test_rows": "fit the decisions even when a val image is also in the test split (refused by default)",
    "out_dir": "output folder: model.keras, log.csv, checkpoints/, report/",
    "resume": "continue the run in --out-dir from its last checkpoint",
    "overwrite": "discard an earlier run in --out-dir",
    "verbose": "0 silent, 1 progress bars, 2 one line per epoch",
    "distribute": "mirrored (GPUs of one machine), multiworker (machines named in TF_CONFIG) or dataparallel (JAX)",
    "devices": "with mirrored/dataparallel: use the first N devices (GPUs; JAX devices) instead of all",
    "lr_reference_batch": "batch size the learning rate was tuned for: scaled linearly to --batch-size",
    "train_shards": "folder of TFRecord shards (labelwise shard) to read the training images from",
    "pipeline": "auto (tf.data when TensorFlow is installed, else Python), tf or python",
    "precision": "float32, mixed_float16 (loss scaling; GPUs) or mixed_bfloat16",
    "jit_compile": "auto (XLA on a GPU, always on JAX), true or false",
    "tensorboard": "folder for TensorBoard event files: loss, learning rate, val macro AUC and each label's AUC "
                   "per epoch (tensorboard --logdir DIR)",
    "calibration": "calibration fitted on the validation predictions: platt (default), temperature, isotonic, none",
    "decide_for": "decision rule fitted on the calibrated validation probabilities (default instance-f1; "
                  "f1, hamming, subset, micro-f1, macro-f1, top-k=K, fbeta=B, ...); stored in model.keras",
    "min_labels": "decide at least N labels per image (default: no bound)",
    "max_labels": "decide at most K labels per image (default: no bound)",
}


def flag_help(field: dataclasses.Field) -> str:
    """A TrainConfig field's one-line help, its default appended unless the text says it."""
    text = _HELP.get(field.name, field.name.replace("_", " "))
    default = field.default
    if "default" in text or default is None or default is dataclasses.MISSING:
        return text
    if isinstance(default, bool):
        shown = "on" if default else "off"
    elif isinstance(default, tuple):
        shown = " ".join(str(v) for v in default)
    else:
        shown = str(default)
    return f"{text} (default {shown})"


def _flag_type(tp: Any):
    """The argparse type/nargs for a TrainConfig field annotation (a string under PEP 563)."""
    text = str(tp)
    if "tuple[int" in text:
        return {"type": int, "nargs": 2, "metavar": ("H", "W")}
    if "tuple[float" in text:
        return {"type": float, "nargs": 3, "metavar": ("TRAIN", "VAL", "TEST")}
    if text.startswith("bool"):
        return {"action": argparse.BooleanOptionalAction}
    if text.startswith("int"):
        return {"type": _optional(int)}
    if text.startswith("float"):
        return {"type": _optional(float)}
    return {"type": str}


def _optional(kind):
    # An explicit "none" stays the string "none" (TrainConfig turns it into None): a None here
    # would read as "flag not given" and the config file's value would silently win.
    def parse(value: str):
        return "none" if value.lower() == "none" else kind(value)
    parse.__name__ = kind.__name__
    return parse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a model from a config file; write model.keras and a report",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", help="training config TOML (flags override it)")
    for f in dataclasses.fields(TrainConfig):
        opts = _flag_type(f.type)
        p.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None,
                       help=flag_help(f), **opts)
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig from the file (if any) with every given flag applied over it."""
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if getattr(args, f.name, None) is not None}
    if args.config:
        return TrainConfig.from_toml(args.config, **overrides)
    return TrainConfig(**overrides)


def run(args: argparse.Namespace) -> int:
    from ..training import train

    config = config_from_args(args)
    result = train(config)
    print(f"labelwise train: best epoch {result.best_epoch} (val macro AUC {result.best_val_auc:.4f}); "
          f"model {result.artifact}")
    return 0
