"""Checkpoint and resume state of a training run: the JSON state, the epoch logs, the atomic
Keras checkpoint files, the RNG resets that make a resumed run repeat the uninterrupted one,
and the check that a resumed run has its checkpoint's settings.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io as _io
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import InputError
from ..io import write_json, write_text
from .config import TrainConfig
from .guards import release_hdf5

__all__ = ['LOG_COLUMNS', 'save_weights_file']


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


@contextlib.contextmanager
def _atomic_keras_path(path: Path):
    """Like :func:`labelwise.io.atomic_path`, but the temporary name keeps the whole
    ``.weights.h5`` / ``.keras`` ending, which Keras checks."""
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        release_hdf5(tmp)  # a half-written .h5 left open would crash the interpreter at exit
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _weights_bytes(model) -> bytes | None:
    """``model``'s weights and optimizer variables as the bytes of Keras' ``.weights.h5`` file, built
    in memory (what ``model.save_weights`` writes, through the same Keras store); None where this
    Keras does not have that store."""
    import io

    try:
        from keras.src.saving import saving_lib

        store_class, save_state = saving_lib.H5IOStore, saving_lib._save_state
    except (ImportError, AttributeError):
        return None
    buf = io.BytesIO()
    store = store_class(buf, mode="w")
    try:
        save_state(model, weights_store=store, assets_store=None, inner_path="", visited_saveables=set())
    finally:
        store.close()
    return buf.getvalue()


def save_weights_file(model, path: Path) -> None:
    """Write ``model.save_weights(path)``'s file atomically, HDF5 never writing on the disk.

    HDF5 builds the file in memory and Python writes its bytes (then fsync, then rename): a full
    disk is one ``OSError`` (ENOSPC) and nothing else. HDF5 writing on a full disk itself can
    fail in its last flush, inside h5py's close, where the error is swallowed: the file looks
    saved but is cut short, and the half-closed file crashes the interpreter at exit. A Keras
    without the in-memory store falls back to ``model.save_weights`` (see :func:`release_hdf5`).
    """
    data = _weights_bytes(model)
    with _atomic_keras_path(path) as tmp:
        if data is None:
            model.save_weights(tmp)
            return
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


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


# Keys that change the model, the data or their order: a resumed run with other values would
# not be the run its checkpoint belongs to (or would fail loading the weights). epochs may grow.
_RESUME_KEYS = ("schema", "table", "images", "split_column", "split_fractions", "group_column", "backbone", "weights",
                "image_size", "channels", "dropout", "bn_momentum", "loss", "binary", "loss_weights", "batch_size",
                "freeze_epochs", "unfreeze_top", "augment", "seed", "train_shards", "pipeline", "precision", "splits",
                # the rates of the epochs already run are history (log.csv, config.json): a resumed
                # run that changed them would record a rate its first epochs never had
                "learning_rate", "fine_tune_lr", "lr_schedule")

_RESUME_KEYS += ("unit", "pooling", "max_slices")  # case runs (labelwise.training.cases)
_RESUME_KEYS += ("bn_recalibrate_images",)  # the statistics every later epoch's checkpoint holds


def _check_resume_config(config: TrainConfig, saved: Mapping[str, Any] | None, where: Path) -> None:
    """Raise InputError listing the model/data keys whose value differs from the checkpoint's."""
    if not saved:
        return

    def norm(key: str, value: Any) -> Any:
        value = json.loads(json.dumps(value, default=str))  # tuples -> lists, as in the saved JSON
        if key in ("table", "images", "train_shards", "splits") or (key == "schema" and isinstance(value, str)):
            return None if value is None else str(Path(value).resolve())
        return value

    now = config.to_dict()
    changed = [f"{k}: {saved[k]!r} -> {now[k]!r}" for k in _RESUME_KEYS
               if k in saved and norm(k, saved[k]) != norm(k, now[k])]
    if changed:
        raise InputError("--resume: these settings differ from the run's checkpoint (" + str(where) + "):\n  "
                         + "\n  ".join(changed) + "\nresume with the checkpoint's settings (epochs may grow), or "
                         "start a new run (--overwrite, or another --out-dir)")
