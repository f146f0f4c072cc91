"""Which input pipeline reads the images: tf.data (:mod:`labelwise.data.pipeline`) or the
backend-neutral Python one (:mod:`labelwise.data.pypipeline`), from ``pipeline = "auto" | "tf" | "python"``.
"""

from __future__ import annotations

import importlib
import importlib.util

from ..errors import InputError

__all__ = ["tensorflow_installed", "resolve_pipeline", "pipeline_module"]


def tensorflow_installed() -> bool:
    """True when TensorFlow can be imported (looked up without importing it)."""
    return importlib.util.find_spec("tensorflow") is not None


def resolve_pipeline(name: str = "auto", *, shards: bool = False) -> str:
    """``"tf"`` or ``"python"`` for the setting ``pipeline = name``.

    "auto": tf.data when TensorFlow is installed (also under JAX or torch: it is what earlier
    runs used), else the Python pipeline. "tf" without TensorFlow, and TFRecord ``shards``
    without TensorFlow or with "python", raise :class:`InputError` saying what to do.
    """
    if name not in ("auto", "tf", "python"):
        raise InputError(f"pipeline must be 'auto', 'tf' or 'python'; got {name!r}")
    have_tf = tensorflow_installed()
    if shards and not have_tf:
        raise InputError("train_shards are TFRecord files, which only the tf.data pipeline reads, and TensorFlow "
                         "is not installed: install tensorflow, or train from the table (leave train_shards unset)")
    if shards and name == "python":
        raise InputError("train_shards are TFRecord files, which only the tf.data pipeline reads: use "
                         "pipeline = 'tf' or 'auto' with train_shards, or train from the table")
    if name == "tf" and not have_tf:
        raise InputError("pipeline = 'tf' needs TensorFlow, which is not installed: use pipeline = 'python' "
                         "(or 'auto', which picks it) or install tensorflow")
    if name == "auto":
        return "tf" if have_tf else "python"
    return name


def pipeline_module(name: str = "auto"):
    """The pipeline module for ``name``: ``make_dataset``, ``make_epoch_dataset``, ``load_images``,
    ``ImageSource`` and ``decode_failures`` (its file check's decode)."""
    resolved = resolve_pipeline(name)
    return importlib.import_module("labelwise.data.pipeline" if resolved == "tf" else "labelwise.data.pypipeline")
