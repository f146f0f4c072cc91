"""Keras layers: the schema-aware head and multi-image (case-level) pooling.

``SchemaHead`` turns features into the schema's head outputs: one Dense layer gives
``schema.n_outputs`` logits, then a sigmoid on the independent block and a softmax per
exclusive group (:func:`schema_activation`). The implied ``none`` label is never a learned
output; it is derived when decoding (``schema.complete_scores``).

``MultiImagePooling`` runs an image encoder on every image of a case (an exam with several
views or an MRI stack) and pools the per-image features into one case vector, by masked max,
masked mean or gated attention (Ilse et al. 2018). Variable-length cases are padded and come
with an explicit 0/1 mask (see :func:`labelwise.data.stacks.pad_stack`).

Only ``keras.ops`` is used, so everything runs on every Keras backend; every layer is
registered with ``keras.saving`` and round-trips through ``get_config``.
"""

from __future__ import annotations

from typing import Any, Mapping

import keras
import numpy as np
from keras import ops

from ..errors import InputError
from ..labels.powerset import LabelPowerset
from ..labels.schema import LabelSchema, load_schema

__all__ = ["schema_activation", "structured_logits", "SchemaHead", "powerset_label_scores", "PowersetHead", "build_powerset_head", "masked_max", "masked_mean", "gated_attention", "check_mask",
           "GatedAttentionPooling", "MultiImagePooling", "POOLINGS"]

_PACKAGE = "labelwise"
POOLINGS = ("max", "mean", "attention")


def _member_logit(x, block, j):
    """The logit ``log p - log(1 - p)`` of member ``j`` of a softmax block (``p`` its softmax
    probability; an at-most-one block has the implicit absent logit 0)."""
    others = [x[..., block.start + i : block.start + i + 1] for i in range(block.stop - block.start) if i != j]
    if block.kind == "at_most_one":
        others.append(ops.zeros_like(x[..., :1]))
    return x[..., block.start + j] - ops.logsumexp(ops.concatenate(others, axis=-1), axis=-1)


def _noisy_or_logit(z):
    """``logit(1 - prod(1 - sigmoid(z_i)))`` over the last axis, stably: with
    ``S = sum softplus(z_i) = -log prod(1 - p_i)`` it is ``log(expm1(S))``."""
    s = ops.sum(ops.softplus(z), axis=-1)
    big = s + ops.log1p(-ops.exp(-ops.maximum(s, 1.0)))
    small = ops.log(ops.expm1(ops.clip(s, 1e-30, 1.0)))
    return ops.where(s > 1.0, big, small)


def structured_logits(raw, schema: LabelSchema):
    """``(..., n_free)`` Dense logits -> ``(..., n_outputs)`` head logits that obey the schema.

    Max-constraint (C-HMCNN, Giunchiglia & Lukasiewicz 2020), in logit space since the sigmoid is
    increasing: ``z'(parent) = max(z(parent), zc(d) for every descendant d)`` where ``zc`` is the
    child's own logit (for a group member, ``log p - log(1 - p)`` of its softmax probability), so
    ``P(child) <= P(parent)`` for every implication. Derived labels get the logit of their score:
    ``logit(sum p)`` over members of one group (``logsumexp`` of the sources minus ``logsumexp`` of
    the rest, with the absent 0 of an at-most-one group), the noisy-OR ``logit(1 - prod(1 - p))``
    over independent sources (their constrained logits). Identity for a schema without structure.
    """
    from ..labels.structure import descendants

    schema = load_schema(schema)
    raw = ops.convert_to_tensor(raw)
    if not schema.implies and not schema.derived:
        return raw
    blocks = {m: (b, i) for b in schema.layout if b.kind in ("softmax", "at_most_one") for i, m in enumerate(b.labels)}
    own = {}  # label -> its own logit (before the constraint)

    def own_logit(label):
        if label not in own:
            j = schema.labels.index(label)
            own[label] = raw[..., j] if label in schema.independent else _member_logit(raw, *blocks[label])
        return own[label]

    cols = [raw[..., j] for j in range(len(schema.independent))]
    for parent, kids in descendants(schema).items():
        j = schema.labels.index(parent)
        cols[j] = ops.max(ops.stack([raw[..., j]] + [own_logit(k) for k in kids], axis=-1), axis=-1)
    parts = [ops.stack(cols, axis=-1)] if cols else []
    if schema.n_free > len(schema.independent):
        parts.append(raw[..., len(schema.independent) : schema.n_free])
    derived = []
    for srcs in schema.derived.values():
        if srcs[0] in blocks:
            block = blocks[srcs[0]][0]
            x = raw[..., block.start : block.stop]
            if block.kind == "at_most_one":
                x = ops.concatenate([x, ops.zeros_like(x[..., :1])], axis=-1)
            inside = [block.labels.index(m) for m in srcs]
            outside = [i for i in range(x.shape[-1]) if i not in inside]
            pick = lambda idx: ops.stack([x[..., i] for i in idx], axis=-1)  # noqa: E731
            derived.append(ops.logsumexp(pick(inside), axis=-1) - ops.logsumexp(pick(outside), axis=-1))
        else:
            derived.append(_noisy_or_logit(ops.stack([cols[schema.labels.index(x)] for x in srcs], axis=-1)))
    if derived:
        parts.append(ops.stack(derived, axis=-1))
    return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)


def schema_activation(logits, schema: LabelSchema):
    """Apply the schema's activations to ``(..., n_outputs)`` head logits (or ``(..., n_free)``
    Dense logits, which first go through :func:`structured_logits`).

    Independent and derived columns get ``sigmoid``; each exclusive group's columns get a
    ``softmax`` over that group (so each group sums to 1); an at-most-one group a softmax over
    its members and an implicit "absent" of logit 0 (members sum to <= 1; the absent column is not
    output). Column order is kept.
    """
    schema = load_schema(schema)
    logits = ops.convert_to_tensor(logits)
    if logits.shape[-1] == schema.n_free:
        logits = structured_logits(logits, schema)
    parts = []
    for block in schema.layout:
        x = logits[..., block.start : block.stop]
        if block.kind in ("sigmoid", "derived"):
            parts.append(ops.sigmoid(x))
        elif block.kind == "softmax":
            parts.append(ops.softmax(x, axis=-1))
        else:
            p = ops.softmax(ops.concatenate([x, ops.zeros_like(x[..., :1])], axis=-1), axis=-1)
            parts.append(p[..., :-1])
    return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)


_DENSE_OBJECTS = ("kernel_initializer", "bias_initializer", "kernel_regularizer")


def _dense_config(dense: Any) -> dict[str, Any]:
    """The Dense options a head layer saves: its initializers and regularizer, serialised."""
    return {key: keras.saving.serialize_keras_object(getattr(dense, key)) for key in _DENSE_OBJECTS}


def _dense_objects(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the serialised Dense options of :func:`_dense_config` turned back into objects."""
    config = dict(config)
    for key in _DENSE_OBJECTS:
        if isinstance(config.get(key), dict):
            config[key] = keras.saving.deserialize_keras_object(config[key])
    return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SchemaHead(keras.layers.Layer):
    """Dense (``schema.n_free`` units) -> :func:`structured_logits` (max-constraint of the
    implications, derived labels computed) -> schema activations; ``schema.n_outputs`` columns,
    coherent by construction (``P(child) <= P(parent)``, derived = any_of its sources, at most one
    member of an at-most-one group). ``output="logits"`` returns the structured logits instead
    (pair with a loss built with ``from_logits=True``: numerically stabler).

    The schema is kept in the layer config, so a loaded model knows its labels
    (``model.get_layer("schema_head").schema``). Outputs are float32 even under a mixed
    precision policy, as probabilities and losses need the range.
    """

    def __init__(self, schema: LabelSchema | Mapping[str, Any], output: str = "probabilities", *,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, name: str = "schema_head", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        if output not in ("probabilities", "logits"):
            raise InputError(f"SchemaHead output must be 'probabilities' or 'logits', got {output!r}")
        self._schema = load_schema(schema)
        self.output_mode = output
        self.dense = keras.layers.Dense(
            self._schema.n_free, kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer, dtype=self.dtype_policy, name="logits")

    @property
    def schema(self) -> LabelSchema:
        """The label schema this head was built for."""
        return self._schema

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, inputs):
        logits = structured_logits(ops.cast(self.dense(inputs), "float32"), self._schema)
        if self.output_mode == "logits":
            return logits
        return schema_activation(logits, self._schema)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self._schema.n_outputs)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor((*inputs.shape[:-1], self._schema.n_outputs), dtype="float32")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "schema": self._schema.to_dict(), "output": self.output_mode,
                **_dense_config(self.dense)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "SchemaHead":
        return cls(**_dense_objects(config))


# --------------------------------------------------------------- label powerset
def _powerset_classes(classes, schema: LabelSchema):
    import numpy as np

    c = np.asarray(classes)
    if c.ndim != 2 or c.shape[0] == 0 or c.shape[1] != schema.n_outputs or not np.isin(c, (0, 1)).all():
        raise InputError(f"classes must be a non-empty (n_classes, {schema.n_outputs}) 0/1 array of label "
                         f"combinations over {list(schema.output_labels)}; got shape {c.shape}")
    if len({row.tobytes() for row in c.astype("uint8")}) != c.shape[0]:
        raise InputError("classes holds the same label combination twice; each softmax class must be distinct")
    return c.astype("uint8")


def powerset_label_scores(class_probs, classes, schema: LabelSchema):
    """Per-label scores ``(..., n_labels)`` from powerset class probabilities ``(..., n_classes)``:
    the score of a label is the total probability of the combinations (rows of ``classes``)
    containing it, and a ``none`` label gets the mass of the combinations without any
    independent label. The ``keras.ops`` twin of
    :func:`labelwise.labels.powerset.powerset_scores_to_label_scores`, usable inside a model."""
    import numpy as np

    schema = load_schema(schema)
    c = _powerset_classes(classes, schema).astype("float32")
    p = ops.convert_to_tensor(class_probs)
    if p.shape[-1] is not None and p.shape[-1] != c.shape[0]:
        raise InputError(f"class_probs has {p.shape[-1]} columns but there are {c.shape[0]} powerset classes")
    p = ops.cast(p, "float32")
    scores = ops.matmul(p, ops.convert_to_tensor(c))
    if schema.none:
        none = (c[:, : len(schema.independent)].sum(axis=1) == 0).astype("float32")[:, None]
        scores = ops.concatenate([scores, ops.matmul(p, ops.convert_to_tensor(np.asarray(none)))], axis=-1)
    return scores


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PowersetHead(keras.layers.Layer):
    """Dense -> softmax over the label combinations of a fitted
    :class:`~labelwise.labels.powerset.LabelPowerset` (``output="logits"`` skips the softmax).

    The combinations (``classes``, with their training ``counts``) and the schema are kept in
    the layer config, so a model loaded from disk decodes on its own:
    ``model.get_layer("powerset_head").powerset.decode(model.predict(x))`` (or
    ``LabelPowerset.from_model(model)``). Outputs are float32 even under mixed precision.
    Train with ``categorical_crossentropy`` on ``powerset.one_hot(y)``.
    """

    def __init__(self, classes: Any, schema: LabelSchema | Mapping[str, Any], counts: Any = None, *,
                 output: str = "probabilities", kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", kernel_regularizer: Any = None, name: str = "powerset_head",
                 **kwargs: Any):
        super().__init__(name=name, **kwargs)
        if output not in ("probabilities", "logits"):
            raise InputError(f"PowersetHead output must be 'probabilities' or 'logits', got {output!r}")
        self._schema = load_schema(schema)
        self._classes = _powerset_classes(classes, self._schema)
        self._counts = None if counts is None else [int(c) for c in counts]
        if self._counts is not None and len(self._counts) != len(self._classes):
            raise InputError(f"counts has {len(self._counts)} values for {len(self._classes)} classes")
        self.output_mode = output
        self.dense = keras.layers.Dense(
            len(self._classes), kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer, dtype=self.dtype_policy, name="logits")

    @property
    def schema(self) -> LabelSchema:
        """The label schema the combinations are over."""
        return self._schema

    @property
    def classes(self):
        """The ``(n_classes, n_outputs)`` 0/1 combinations, one per softmax column."""
        return self._classes.copy()

    @property
    def powerset(self):
        """A fitted :class:`~labelwise.labels.powerset.LabelPowerset` rebuilt from the config, for
        ``decode``/``encode``/``unpredictable`` (counts are 0 when they were not stored)."""
        counts = self._counts if self._counts is not None else [0] * len(self._classes)
        return LabelPowerset.from_dict({"schema": self._schema.to_dict(), "classes": self._classes.tolist(),
                                        "counts": counts})

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, inputs):
        logits = ops.cast(self.dense(inputs), "float32")
        return logits if self.output_mode == "logits" else ops.softmax(logits, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], len(self._classes))

    def compute_output_spec(self, inputs):
        return keras.KerasTensor((*inputs.shape[:-1], len(self._classes)), dtype="float32")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "classes": self._classes.tolist(), "schema": self._schema.to_dict(),
                "counts": self._counts, "output": self.output_mode,
                **_dense_config(self.dense)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "PowersetHead":
        return cls(**_dense_objects(config))


# --------------------------------------------------------------- pooling math
def _dims(shape) -> tuple:
    return tuple(None if d is None else int(d) for d in shape)


def check_mask(values_shape, mask_shape, what: str = "features") -> None:
    """Raise :class:`InputError` unless a ``(batch, n)`` mask fits ``values`` of shape
    ``(batch, n, ...)``. Unknown (None) dimensions are not compared.

    Why here and not left to the backend: a mask one slot too long otherwise fails deep
    inside ``where``/``multiply`` with an error that names neither the mask nor the layer.
    """
    values_shape, mask_shape = _dims(values_shape), _dims(mask_shape)
    expected = values_shape[:2]
    fits = len(mask_shape) == 2 and all(m is None or v is None or m == v for m, v in zip(mask_shape, expected))
    if not fits:
        raise InputError(
            f"mask has shape {mask_shape} but the {what} have shape {values_shape}: the mask needs one 0/1 "
            f"entry per image of each case, shape (batch, n_images) = {expected}. Pad the mask like the images "
            "(labelwise.data.stacks.pad_stack returns both)")


def _mask_like(features, mask):
    """(batch, n) mask -> (batch, n, 1) in the features' dtype; None means all images valid."""
    if mask is None:
        return ops.ones_like(features[..., :1])
    mask = ops.convert_to_tensor(mask)
    check_mask(features.shape, mask.shape)
    return ops.expand_dims(ops.cast(mask, features.dtype), -1)


def masked_max(features, mask=None):
    """``max`` over valid images of ``(batch, n, F)`` features; a case with no valid image gives 0."""
    m = _mask_like(features, mask)
    very_negative = ops.full_like(features, -3.0e38 if keras.backend.standardize_dtype(features.dtype) in ("float32", "float64") else -6.0e4)
    pooled = ops.max(ops.where(m > 0, features, very_negative), axis=1)
    any_valid = ops.max(m, axis=1) > 0
    return ops.where(any_valid, pooled, ops.zeros_like(pooled))


def masked_mean(features, mask=None):
    """``sum_i m_i h_i / max(sum_i m_i, 1)`` over ``(batch, n, F)`` features."""
    m = _mask_like(features, mask)
    # ops.multiply, not *: a numpy array times a torch tensor fails on the torch backend
    return ops.sum(ops.multiply(features, m), axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0)


def gated_attention(features, scores, mask=None):
    """Attention pooling given per-image scores ``(batch, n, 1)``: ``sum_i a_i h_i`` with
    ``a = softmax(scores)`` over valid images only (masked images get weight 0)."""
    m = _mask_like(features, mask)
    scores = ops.where(m > 0, scores, ops.full_like(scores, -1.0e9))
    a = ops.softmax(scores, axis=1) * m
    a = a / ops.maximum(ops.sum(a, axis=1, keepdims=True), 1e-12)
    return ops.sum(a * features, axis=1), a[..., 0]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GatedAttentionPooling(keras.layers.Layer):
    """Gated attention MIL pooling (Ilse et al. 2018) of ``(batch, n, F)`` features.

    ``a = softmax_i(w^T (tanh(V h_i) * sigmoid(U h_i)))`` over the valid images (mask), and
    the output is ``sum_i a_i h_i``. Call as ``layer(features)`` or ``layer([features, mask])``;
    ``return_attention=True`` also returns the ``(batch, n)`` weights.
    """

    def __init__(self, units: int = 128, *, return_attention: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.units = int(units)
        self.return_attention = bool(return_attention)
        self.V = keras.layers.Dense(self.units, activation="tanh", name="V", dtype=self.dtype_policy)
        self.U = keras.layers.Dense(self.units, activation="sigmoid", name="U", dtype=self.dtype_policy)
        self.w = keras.layers.Dense(1, name="w", dtype=self.dtype_policy)

    def build(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)) \
            else input_shape
        self.V.build(shape)
        self.U.build(shape)
        self.w.build((*shape[:-1], self.units))

    def call(self, inputs):
        features, mask = _split_inputs(inputs)
        scores = self.w(self.V(features) * self.U(features))
        pooled, a = gated_attention(features, scores, mask)
        return (pooled, a) if self.return_attention else pooled

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "return_attention": self.return_attention}


def _split_inputs(inputs):
    if isinstance(inputs, (list, tuple)):
        if len(inputs) == 1:
            return inputs[0], None
        if len(inputs) != 2:
            raise InputError(f"expected [values, mask], got {len(inputs)} inputs")
        return inputs[0], inputs[1]
    return inputs, None


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MultiImagePooling(keras.layers.Layer):
    """Encode every image of a case with ``encoder`` and pool them into one case vector.

    Input: ``images`` of shape ``(batch, n_images, H, W, C)``, or ``[images, mask]`` with a
    ``(batch, n_images)`` 0/1 mask for padded, variable-length cases (padding images are
    ignored; pass the mask explicitly -- an all-zero image is NOT treated as padding).
    The encoder (any Keras model/layer mapping ``(H, W, C)`` images to a feature vector, e.g.
    a ``keras.applications`` model with ``pooling="avg"``; a 4-D feature map is averaged) runs
    once on all ``batch * n_images`` images. ``pooling`` is ``"max"``, ``"mean"`` or
    ``"attention"`` (:class:`GatedAttentionPooling` with ``attention_units``).
    Output: ``(batch, F)``.
    """

    def __init__(self, encoder: keras.layers.Layer | Mapping[str, Any], pooling: str = "max", *,
                 attention_units: int = 128, **kwargs: Any):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise InputError(f"pooling must be one of {list(POOLINGS)}, got {pooling!r}")
        if isinstance(encoder, Mapping):
            encoder = keras.saving.deserialize_keras_object(encoder)
        self.encoder = encoder
        self.pooling = pooling
        self.attention_units = int(attention_units)
        self.attention = (GatedAttentionPooling(self.attention_units, name="attention", dtype=self.dtype_policy)
                          if pooling == "attention" else None)

    def _feature_shape(self, image_shape):
        out = self.encoder.compute_output_shape((None, *image_shape))
        return out

    def build(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)) \
            else input_shape
        if len(shape) != 5:
            raise InputError(f"MultiImagePooling expects (batch, n_images, H, W, C) images, got shape {tuple(shape)}")
        if shape is not input_shape and len(input_shape) == 2:
            check_mask(shape, input_shape[1], "images")
        image_shape = tuple(shape[2:])
        if not self.encoder.built:
            self.encoder.build((None, *image_shape))
        feat = self._feature_shape(image_shape)
        if self.attention is not None:
            self.attention.build((None, shape[1], feat[-1]))

    def call(self, inputs):
        images, mask = _split_inputs(inputs)
        if mask is not None:
            mask = ops.convert_to_tensor(mask)
            check_mask(images.shape, mask.shape, "images")  # before the encoder runs on every image
        shape = ops.shape(images)
        batch, n = shape[0], shape[1]
        flat = ops.reshape(images, (-1, *images.shape[2:]))
        feats = self.encoder(flat)
        if len(feats.shape) == 4:
            feats = ops.mean(feats, axis=(1, 2))
        feats = ops.reshape(feats, (batch, n, feats.shape[-1]))
        if self.pooling == "max":
            return masked_max(feats, mask)
        if self.pooling == "mean":
            return masked_mean(feats, mask)
        return self.attention(feats if mask is None else [feats, mask])

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)) \
            else input_shape
        feat = self._feature_shape(tuple(shape[2:]))
        return (shape[0], feat[-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "encoder": keras.saving.serialize_keras_object(self.encoder),
                "pooling": self.pooling, "attention_units": self.attention_units}


def build_powerset_head(n_classes: int | LabelPowerset, **kwargs: Any):
    """The softmax head over label combinations, named ``"powerset_head"`` (float32 output).

    Given a fitted :class:`LabelPowerset` this is a :class:`labelwise.blocks.layers.PowersetHead`,
    which stores the combinations and the schema in its config, so a saved model decodes on
    its own (:meth:`LabelPowerset.from_model`); ``kwargs`` go to it. Given only a class count
    it is a plain ``Dense(n, softmax)``, which cannot (decoding then needs the fitted powerset
    kept separately). ``build_model(schema, ..., powerset=ps)`` uses it in place of the
    SchemaHead; train with ``categorical_crossentropy`` on ``ps.one_hot(y)``.
    """
    if isinstance(n_classes, LabelPowerset):  # the numpy powerset, fitted
        n_classes._check_fitted()
        return PowersetHead(n_classes.classes.tolist(), n_classes.schema, n_classes.counts.tolist(), **kwargs)
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise InputError(f"powerset must be a fitted LabelPowerset or a class count >= 1, got {n_classes!r}")
    return keras.layers.Dense(int(n_classes), activation="softmax", dtype="float32", name="powerset_head", **kwargs)


# Keras objects of the modules that could not be imported while this one was half-loaded
# (a first `import keras` from here) register now; see labelwise._register_keras_objects.
from .. import _register_keras_objects  # noqa: E402

_register_keras_objects()
