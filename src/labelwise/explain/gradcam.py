"""Per-label Grad-CAM (Selvaraju et al. 2017) for Keras 3 models, on every backend.

For an image ``x``, a label ``j`` and a convolutional feature map ``A`` (``h x w x c``)::

    alpha_c = mean_{u,v} d z_j / d A_{u,v,c}        (z_j: the label's pre-activation logit)
    cam     = ReLU(sum_c alpha_c A_c)               (h x w)
    map     = resize(cam / max(cam), H x W)         (0 everywhere when cam has no positive part)

``z_j`` is the head's Dense output before the sigmoid (independent labels) or before the
group's softmax (an exclusive-group member: that member's logit). A powerset head has no
per-label logit: there ``z_j = log(p_j / (1 - p_j))`` with ``p_j`` the summed probability of the
label combinations that contain ``j`` (the label's score, as labelwise decodes it). The derived
``none`` label has no logit of its own and is refused.

All asked labels of one image are done in one backward pass: the image is repeated once per
label in the batch and the sum of each row's own label logit is differentiated; rows do not
interact (the model runs in inference mode), so each row's gradient is that label's gradient.
The repetition is made at the feature map, not at the input, so the layers before it run once
per image instead of once per label (the backward pass only ever crosses the layers after it).
That is exact when every path from the input to the head goes through the feature map (true of
the default layer of every backbone); where it is not (a layer inside a residual block, whose
shortcut bypasses it), the batch shapes disagree, and the images are repeated at the input instead.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import keras
import numpy as np
from keras import ops

from ..errors import InputError

__all__ = ["grad_cam", "GradCamTarget", "resolve_target", "feature_map_candidates", "model_head"]

_CONV_TYPES = tuple(getattr(keras.layers, n) for n in (
    "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose") if hasattr(keras.layers, n))


def _functional(op: Any):
    """The functional graph behind ``op`` (a Functional model, or a built Sequential's), else None."""
    if isinstance(op, keras.Sequential):
        op = getattr(op, "_functional", None)
    return op if isinstance(op, keras.Model) and hasattr(op, "_run_through_graph") else None


def _walk(model: Any):
    """Every layer in graph order, nested functional models opened (the model itself not yielded)."""
    for layer in model.layers:
        inner = _functional(layer)
        if inner is not None and inner is not model:
            yield from _walk(inner)
        else:
            yield layer


def _rank4(layer: Any) -> tuple | None:
    try:
        shape = tuple(layer.output.shape)
    except (AttributeError, ValueError):  # a layer used twice has no single output
        return None
    return shape if len(shape) == 4 else None


def model_head(model: Any):
    """The model's :class:`~labelwise.layers.SchemaHead` or :class:`~labelwise.layers.PowersetHead`.

    Raises :class:`InputError` for case models and models without a labelwise head."""
    from ..blocks.layers import MultiImagePooling, PowersetHead, SchemaHead

    layers = list(_walk(model))
    if any(isinstance(l, MultiImagePooling) for l in layers):
        raise InputError(f"model {model.name!r} is a case model (several images pooled into one prediction); "
                         "grad_cam explains per-image models; labelwise.explain.cases.explain_case(model, stack) names the slices "
                         "that drove each label and maps them")
    heads = [l for l in layers if isinstance(l, (SchemaHead, PowersetHead))]
    if len(heads) != 1:
        raise InputError(f"model {model.name!r} has {'no' if not heads else len(heads)} labelwise head(s) "
                         "(SchemaHead / PowersetHead); grad_cam needs exactly one to know the labels and their "
                         "logits: build the model with labelwise.build_model or end it in a SchemaHead")
    return heads[0]


def feature_map_candidates(model: Any) -> list[str]:
    """Names of the layers Grad-CAM can use: every layer with a 4-D ``(batch, h, w, c)`` output
    from the first convolution on, in graph order (nested models opened). The last is the default."""
    out, seen_conv = [], False
    for layer in _walk(model):
        seen_conv = seen_conv or isinstance(layer, _CONV_TYPES)
        if seen_conv and _rank4(layer) is not None:
            out.append(layer.name)
    return out


class GradCamTarget:
    """What :func:`grad_cam` differentiates: the feature-map ``layer``, the ``head``, its
    ``schema``, and the head-output ``columns`` of the asked ``labels``."""

    def __init__(self, model: Any, layer: Any, head: Any, labels: Sequence[str], columns: Sequence[int]):
        self.model, self.layer, self.head = model, layer, head
        self.schema = head.schema
        self.labels, self.columns = tuple(labels), tuple(int(c) for c in columns)


def _find_layer(model: Any, name: str):
    for layer in _walk(model):
        if layer.name == name:
            return layer
    return None


def _short_list(names: Sequence[str], n: int = 12) -> str:
    names = list(names)
    if len(names) <= n:
        return ", ".join(names)
    return f"... {len(names) - n} more, " + ", ".join(names[-n:])


def resolve_target(model: Any, labels: Sequence[str] | str | None = None, layer: str | None = None) -> GradCamTarget:
    """Check ``labels`` and ``layer`` against the model; :class:`InputError` names what is wrong."""
    if not isinstance(model, keras.Model) or _functional(model) is None:
        raise InputError(f"grad_cam needs a functional Keras model (keras.Model(inputs, outputs), as "
                         f"labelwise.build_model builds); got {type(model).__name__}")
    head = model_head(model)
    schema = head.schema
    candidates = feature_map_candidates(model)
    if not candidates:
        raise InputError(f"model {model.name!r} has no convolutional layer, so there is no feature map to "
                         "explain; Grad-CAM needs a conv net (e.g. labelwise.build_model(schema, 'small_cnn'))")
    if layer is None:
        layer = candidates[-1]
    elif not isinstance(layer, str):
        layer = getattr(layer, "name", str(layer))
    if layer not in candidates:
        what = "no layer" if _find_layer(model, layer) is None else "a layer that is not a convolutional feature map"
        raise InputError(f"layer {layer!r} is {what} of model {model.name!r}; the feature maps (h x w x channels "
                         f"outputs) are: {_short_list(candidates)} (default: the last, {candidates[-1]!r})")
    if labels is None:
        labels = list(schema.output_labels)
    elif isinstance(labels, str):
        labels = [s.strip() for s in labels.split(",") if s.strip()]
    labels = list(labels)
    if not labels:
        raise InputError(f"no labels asked; give some of {list(schema.output_labels)}")
    columns = []
    for label in labels:
        if label == schema.none:
            raise InputError(f"{label!r} is the derived 'none' label (true when no independent label is): it has "
                             "no logit of its own to explain; explain the independent labels "
                             f"{list(schema.independent)} instead")
        if label not in schema.output_labels:
            import difflib

            close = difflib.get_close_matches(label, schema.output_labels, n=1)
            raise InputError(f"label {label!r} is not in the model's schema" + (
                f"; did you mean {close[0]!r}?" if close else "") + f" (labels: {list(schema.output_labels)})")
        columns.append(schema.output_labels.index(label))
    return GradCamTarget(model, _find_layer(model, layer), head, labels, columns)


# ------------------------------------------------------------------ the forward pass
def _label_logits(head: Any, features):
    """Per-label pre-activation logits ``(rows, n_outputs)`` from the head's input features."""
    from ..blocks.layers import PowersetHead

    z = ops.cast(head.dense(features), "float32")
    if not isinstance(head, PowersetHead):
        # Implications and derived labels: the head's own logits over every output --
        # a parent's max-constrained logit, a derived label's logit(score) -- from the free ones.
        from ..blocks.layers import structured_logits

        return structured_logits(z, head.schema)
    # A powerset head's softmax is over combinations: the label's logit is that of its summed score.
    p = ops.matmul(ops.softmax(z, axis=-1), ops.convert_to_tensor(head.classes.astype("float32")))
    p = ops.clip(p, 1e-7, 1.0 - 1e-7)
    return ops.log(p) - ops.log1p(-p)


def _forward(target: GradCamTarget, repeat: int = 1) -> Callable:
    """``f(images, delta) -> (A, logits)``: the model in inference mode with ``delta`` added to the
    feature map ``A`` of ``target.layer`` (so d logits / d delta = d logits / d A) and the head's
    activation skipped. ``repeat``: each row of ``A`` is repeated that many times first.

    Why Functional._run_through_graph (Keras' own executor of a functional graph, what
    ``Model.call`` runs): it lets one layer's output be replaced and the head be cut before its
    activation without rebuilding the model, for any nesting and on every backend.
    """
    from ..blocks.layers import PowersetHead, SchemaHead

    record: list = []

    def hook(op):
        inner = _functional(op)
        if inner is not None:
            def run(*args, **kwargs):
                x = inner._standardize_inputs(args[0] if len(args) == 1 else list(args))
                out = inner._run_through_graph(x, operation_fn=hook)
                return out[0] if isinstance(out, (list, tuple)) and len(out) == 1 else out
            return run
        if isinstance(op, (SchemaHead, PowersetHead)):
            return lambda x, *a, **k: _label_logits(op, x)
        if op is target.layer:
            def tapped(*args, **kwargs):
                out = op(*args, **{**kwargs, "training": False})
                if repeat > 1:
                    out = ops.repeat(out, repeat, axis=0)
                out = out + record[0]
                record.append(out)
                return out
            return tapped
        if isinstance(op, keras.layers.Layer):
            return lambda *a, **k: op(*a, **{**k, "training": False})
        return op

    def forward(images, delta):
        del record[:]
        record.append(delta)
        logits = hook(target.model)(images)
        return record[1], logits

    return forward


# ------------------------------------------------------------------ per-backend gradients
# The one place labelwise touches a backend directly: keras.ops has no gradient op, and each
# backend has its own autodiff (TensorFlow's GradientTape, jax.value_and_grad, torch.autograd).
def _grad_tensorflow(forward, images, delta, weights):
    import tensorflow as tf

    delta = tf.convert_to_tensor(delta)
    with tf.GradientTape() as tape:
        tape.watch(delta)
        fmap, logits = forward(images, delta)
        objective = tf.reduce_sum(logits * weights)
    return fmap, tape.gradient(objective, delta)


def _grad_jax(forward, images, delta, weights):
    import jax
    import jax.numpy as jnp

    def objective(d):
        fmap, logits = forward(images, d)
        return jnp.sum(logits * weights), fmap

    (_, fmap), grads = jax.value_and_grad(objective, has_aux=True)(jnp.asarray(delta))
    return fmap, grads


def _grad_torch(forward, images, delta, weights):
    import torch

    delta = torch.as_tensor(delta).requires_grad_(True)
    fmap, logits = forward(images, delta)
    (logits * torch.as_tensor(weights, device=logits.device)).sum().backward()
    return fmap.detach(), delta.grad


_GRADIENTS = {"tensorflow": _grad_tensorflow, "jax": _grad_jax, "torch": _grad_torch}


def _gradients(backend: str):
    if backend not in _GRADIENTS:
        raise InputError(f"grad_cam runs on the TensorFlow, JAX and PyTorch backends; Keras runs on {backend!r}")
    return _GRADIENTS[backend]


# ------------------------------------------------------------------ the public function
def _check_images(model: Any, images: Any) -> np.ndarray:
    x = np.asarray(images)
    if x.dtype.kind not in "uif" or x.ndim != 4:
        raise InputError(f"images must be a numeric array (n, height, width, channels) of 0-255 pixels; got "
                         f"{'shape ' + str(x.shape) if x.dtype.kind in 'uif' else 'dtype ' + str(x.dtype)}: add a "
                         "batch axis (images[None]) or a channel axis (images[..., None])")
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3:
        raise InputError(f"model {model.name!r} takes inputs of shape {tuple(model.inputs[0].shape)}, not images "
                         "(batch, height, width, channels)")
    if shape[2] is not None and x.shape[3] != shape[2]:
        hint = ("average the colour channels (images.mean(-1, keepdims=True))" if shape[2] == 1
                else "repeat the grey channel (np.repeat(images, 3, -1))" if x.shape[3] == 1 else "convert them")
        raise InputError(f"the images have {x.shape[3]} channel(s) but model {model.name!r} takes {shape[2]}: {hint}")
    if any(m is not None and m != s for m, s in zip(shape[:2], x.shape[1:3])):
        raise InputError(f"the images are {x.shape[1]}x{x.shape[2]} but model {model.name!r} takes "
                         f"{shape[0]}x{shape[1]}; resize them first")
    return x.astype("float32")


def _cams(fmap: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """ReLU(sum_c mean_uv(grad) * A): ``(rows, h, w)`` from ``(rows, h, w, c)`` maps and gradients."""
    alpha = grads.mean(axis=(1, 2), keepdims=True)
    return np.maximum((alpha * fmap).sum(axis=-1), 0.0)


def _normalise_resize(cams: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    peak = cams.max(axis=(1, 2), keepdims=True)
    cams = np.divide(cams, peak, out=np.zeros_like(cams), where=peak > 0)
    if cams.shape[1:] != size:
        cams = ops.convert_to_numpy(ops.image.resize(cams[..., None], size, interpolation="bilinear"))[..., 0]
    return np.clip(cams, 0.0, 1.0).astype("float32")


def grad_cam(model: Any, images: Any, labels: Sequence[str] | str | None = None, layer: str | None = None, *,
             batch_size: int = 16) -> np.ndarray:
    """Per-label Grad-CAM maps, shape ``(n_images, n_labels_asked, H, W)``, values in [0, 1].

    ``model``: a model built by :func:`labelwise.build_model` or a loaded ``labelwise train``
    artifact (any functional model ending in a labelwise head). ``images``: ``(n, H, W, C)`` pixels
    as the model takes them (0-255). ``labels``: names from the schema (default: every head
    output, in schema order); ``layer``: the feature map to explain (default: the last one, see
    :func:`feature_map_candidates`). ``batch_size`` images go through each backward pass, each
    repeated once per asked label. The formula is in the module docstring.
    """
    target = resolve_target(model, labels, layer)
    x = _check_images(model, images)
    k = len(target.columns)
    grad = _gradients(keras.backend.backend())
    maps = np.zeros((x.shape[0], k, x.shape[1], x.shape[2]), dtype="float32")
    batch_size = max(1, int(batch_size))
    at_map = k > 1  # repeat at the feature map; at the input after a shape clash (see module docstring)
    for start in range(0, x.shape[0], batch_size):
        chunk = x[start:start + batch_size]
        if at_map:
            try:
                fmap, grads = _chunk_gradients(target, grad, chunk, k, repeat_at_map=True)
            except Exception:  # the backends raise different types for mismatched batch sizes
                at_map = False
        if not at_map:
            fmap, grads = _chunk_gradients(target, grad, chunk, k, repeat_at_map=False)
        maps[start:start + chunk.shape[0]] = _normalise_resize(_cams(fmap, grads), x.shape[1:3]).reshape(
            chunk.shape[0], k, x.shape[1], x.shape[2])
    return maps


def _chunk_gradients(target: GradCamTarget, grad: Callable, chunk: np.ndarray, k: int, *, repeat_at_map: bool):
    """Feature maps and gradients ``(n * k, h, w, c)`` for ``n`` images: row ``i * k + j`` is image
    ``i`` and asked label ``j``."""
    rows = chunk.shape[0] * k
    inputs = chunk if repeat_at_map else np.repeat(chunk, k, axis=0)
    forward = _forward(target, k if repeat_at_map else 1)
    weights = np.zeros((rows, target.schema.n_outputs), dtype="float32")
    weights[np.arange(rows), np.tile(target.columns, chunk.shape[0])] = 1.0
    shape = tuple(target.layer.output.shape[1:])
    if None in shape:
        shape = tuple(_forward(target)(ops.convert_to_tensor(chunk[:1]), 0.0)[0].shape[1:])
    delta = np.zeros((rows, *shape), dtype="float32")
    fmap, grads = grad(forward, ops.convert_to_tensor(inputs), delta, ops.convert_to_tensor(weights))
    fmap = np.asarray(ops.convert_to_numpy(fmap), "float32")
    grads = np.asarray(ops.convert_to_numpy(grads), "float32")
    if fmap.shape[0] != rows or grads.shape != fmap.shape:
        raise InputError(f"layer {target.layer.name!r} gave {fmap.shape[0]} feature-map rows for {rows} "
                         "image-label pairs; choose another --layer")
    return fmap, grads
