"""The machine a run uses: the Keras backend (with a clear error when it is not installed), GPU
or not, XLA compilation (``jit_compile``) and mixed precision (``precision``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import warnings
from typing import Any, Iterator

from ..errors import InputError

__all__ = ["import_keras", "has_gpu", "resolve_jit_compile", "precision_policy"]

_FRAMEWORKS = {"tensorflow": "tensorflow", "jax": "jax", "jaxlib": "jax", "torch": "torch"}


def import_keras():
    """``import keras``, turning a missing backend framework into :class:`InputError`.

    Keras picks its backend from ``KERAS_BACKEND`` (or ``~/.keras/keras.json``); when that
    framework is not installed, Keras fails deep in its own import. This says which one is
    missing and how to choose another.
    """
    try:
        import keras
    except ModuleNotFoundError as e:
        missing = _FRAMEWORKS.get((e.name or "").split(".")[0])
        if missing is None:
            raise
        asked = os.environ.get("KERAS_BACKEND", "the one in ~/.keras/keras.json, else tensorflow")
        found = [f for f in ("tensorflow", "jax", "torch") if importlib.util.find_spec(f) is not None]
        raise InputError(f"Keras is set to the {missing} backend (KERAS_BACKEND: {asked}), but {missing} is not "
                         f"installed. Install it, or set KERAS_BACKEND to an installed backend"
                         + (f" ({', '.join(found)})" if found else " (none of tensorflow, jax, torch is installed)")
                         ) from None
    return keras


def has_gpu() -> bool:
    """True when the Keras backend sees a GPU (CUDA or ROCm)."""
    keras = import_keras()
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return any(d.platform in ("gpu", "cuda", "rocm") for d in jax.devices())
    if backend == "torch":
        import torch

        return bool(torch.cuda.is_available())
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    return False


def resolve_jit_compile(setting: Any) -> bool | str:
    """``jit_compile`` for ``model.compile``: true/false as given; "auto" is Keras' own rule, which
    is "on for a GPU, off on a CPU" per backend: TensorFlow compiles with XLA only when it sees a
    GPU (and not under tf.distribute; on CPU XLA measured 4x slower here); JAX always compiles (XLA
    is its only compiler: without it every op runs on its own); torch runs eagerly (its jit is
    ``torch.compile``, which compiles for minutes: set ``jit_compile = true`` to try it)."""
    if isinstance(setting, bool):
        return setting
    if setting != "auto":
        raise InputError(f"jit_compile must be auto, true or false; got {setting!r}")
    return "auto"


@contextlib.contextmanager
def precision_policy(precision: str) -> Iterator[None]:
    """Run the block under Keras' global dtype policy ``precision``, restoring the previous one after.

    "mixed_float16" and "mixed_bfloat16" compute in 16 bits and keep float32 variables;
    labelwise's heads return float32 (:class:`labelwise.blocks.layers.SchemaHead`), and
    ``model.compile`` wraps the optimizer in a ``LossScaleOptimizer`` under mixed_float16 (the
    loss is scaled so that float16 gradients do not underflow). mixed_float16 without a GPU
    warns: CPUs have no fast float16 arithmetic, so it is slower and gains nothing.
    """
    if precision not in ("float32", "mixed_float16", "mixed_bfloat16"):
        raise InputError(f"precision must be float32, mixed_float16 or mixed_bfloat16; got {precision!r}")
    keras = import_keras()
    if precision == "mixed_float16" and not has_gpu():
        warnings.warn("precision = 'mixed_float16' on a CPU: no fast float16 arithmetic there, so training is "
                      "slower and gains nothing; use float32 (or mixed_bfloat16 on CPUs that have it)", stacklevel=3)
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)
