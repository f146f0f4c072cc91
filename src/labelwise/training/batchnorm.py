"""Re-estimating BatchNormalization's moving statistics from training images.

A BatchNormalization layer normalizes with the batch's mean and variance while training and
with its moving averages at inference. Keras updates those averages by
``moving = momentum * moving + (1 - momentum) * batch`` with momentum 0.99 (MobileNetV3: 0.999),
so after a few thousand steps of a from-scratch run they still hold part of their initial
values (mean 0, variance 1) and lag weights that changed fast: in inference mode the activations
drift, and the scores of a model whose training loss fell come out constant.

:func:`recalibrate_batchnorm` sets them right by construction, as SWA's ``bn_update`` and timm's
``update_bn`` do: forward passes in training mode over a fixed set of training images, then each
layer's moving mean and variance are set to the exact mean and variance of its inputs over all of
those images (pooled from the per-batch moments, batch-size weighted; between-batch spread
included)::

    mean = sum_b n_b m_b / N        var = sum_b n_b (v_b + m_b^2) / N - mean^2

Only layers that train (``layer.trainable``: a frozen backbone's BatchNormalization runs in
inference mode and keeps its pretrained statistics) are touched; weights, optimizer state and
every other variable are left as they were (dropout seed generators are restored). A model
without such a layer costs nothing: the images are not read.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

__all__ = ["live_batchnorm_layers", "recalibrate_batchnorm"]


def live_batchnorm_layers(model: Any) -> list:
    """The BatchNormalization layers of ``model`` (nested models included) that normalize with
    batch statistics when trained: ``trainable`` and not batch-renormalizing."""
    import keras

    found: list = []
    seen: set[int] = set()

    def visit(layer: Any) -> None:
        if id(layer) in seen:
            return
        seen.add(id(layer))
        if isinstance(layer, keras.layers.BatchNormalization):
            if layer.trainable and not getattr(layer, "renorm", False):
                found.append(layer)
            return
        for sub in getattr(layer, "layers", None) or ():
            visit(sub)
        for sub in getattr(layer, "_layers", None) or ():  # layers holding a model (case pooling's encoder)
            visit(sub)

    visit(model)
    return found


def _inputs_of(batch: Any) -> Any:
    """The model inputs of a dataset element: ``x`` of ``(x, y)`` / ``(x, y, w)``, else the element."""
    return batch[0] if isinstance(batch, tuple) else batch


def _count(x: Any) -> int:
    first = next(iter(x.values())) if isinstance(x, dict) else (x[0] if isinstance(x, (list, tuple)) else x)
    return int(first.shape[0])


def iterate_batches(dataset: Any) -> Iterable[Any]:
    """The elements of a ``tf.data.Dataset`` (as numpy), a ``keras.utils.PyDataset`` or any iterable."""
    if hasattr(dataset, "as_numpy_iterator"):
        return dataset.as_numpy_iterator()
    if hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__"):
        return (dataset[i] for i in range(len(dataset)))
    return iter(dataset)


def recalibrate_batchnorm(model: Any, batches: Iterable[Any] | Callable[[], Iterable[Any]], *,
                          max_images: int | None = None) -> int:
    """Set the moving mean and variance of every trainable BatchNormalization layer of ``model`` to
    the exact statistics of its inputs over ``batches`` (model inputs, or ``(x, y)`` pairs; a
    callable is called only when the model has such a layer), at most ``max_images`` of them.

    Per layer: ``mean = sum_b n_b m_b / N``, ``var = sum_b n_b (v_b + m_b^2) / N - mean^2`` from
    each batch's moments ``m_b, v_b`` in a training-mode forward pass (Keras' biased batch
    variance; for a case model ``n_b`` counts cases). Returns the number of images used (0: no
    such layer, or no batch; nothing changed).
    """
    import keras

    layers = live_batchnorm_layers(model)
    if not layers or (max_images is not None and max_images <= 0):
        return 0
    if callable(batches):
        batches = batches()
    seeds = [v for v in model.non_trainable_variables if "seed_generator_state" in v.path]
    seed_values = [keras.ops.convert_to_numpy(v) for v in seeds]
    momenta = [layer.momentum for layer in layers]
    saved = [(keras.ops.convert_to_numpy(layer.moving_mean), keras.ops.convert_to_numpy(layer.moving_variance))
             for layer in layers]
    sums = [[0.0, 0.0, 0.0] for _ in layers]  # sum n m, sum n (v + m^2), N per layer
    used = 0
    try:
        for layer in layers:
            layer.momentum = 0.0  # moving = this batch's moments, read back after each pass
        for batch in batches:
            x = _inputs_of(batch)
            n = _count(x)
            if max_images is not None:
                n = min(n, max_images - used)
                x = {k: v[:n] for k, v in x.items()} if isinstance(x, dict) else (
                    type(x)(v[:n] for v in x) if isinstance(x, (list, tuple)) else x[:n])
            if n <= 0:
                break
            model(x, training=True)
            for layer, acc in zip(layers, sums):
                m = keras.ops.convert_to_numpy(layer.moving_mean).astype(np.float64)
                v = keras.ops.convert_to_numpy(layer.moving_variance).astype(np.float64)
                acc[0] = acc[0] + n * m
                acc[1] = acc[1] + n * (v + m * m)
                acc[2] += n
            used += n
            if max_images is not None and used >= max_images:
                break
    except BaseException:  # a failed pass (bad file, interrupt) leaves the statistics as they were
        used = 0
        raise
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        for v, value in zip(seeds, seed_values):
            v.assign(value)
        if not used:
            for layer, (mean, var) in zip(layers, saved):
                layer.moving_mean.assign(mean)
                layer.moving_variance.assign(var)
    if not used:
        return 0
    for layer, (s1, s2, total) in zip(layers, sums):
        mean = s1 / total
        var = np.maximum(s2 / total - mean * mean, 0.0)
        layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
        layer.moving_variance.assign(var.astype(layer.moving_variance.dtype))
    return used
