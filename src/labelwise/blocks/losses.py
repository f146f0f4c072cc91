"""Imbalance-aware losses for multi-label heads, as ordinary Keras losses.

Each loss is a pure function on ``(batch, n_outputs)`` tensors that returns one value per
sample (the mean over the label axis, as Keras' own ``binary_crossentropy`` does), plus a
thin registered :class:`keras.losses.Loss` subclass that binds its arguments, reduces over
the batch like every Keras loss (``reduction=``, ``sample_weight``) and round-trips through
``get_config`` -- so ``keras.saving.load_model`` finds it without ``custom_objects``.

All of them take logits (``from_logits=True``, pair with ``SchemaHead(output="logits")``)
or probabilities. From logits the log terms use the log-sigmoid / log-softmax forms, which
are exact where ``log(sigmoid(x))`` would underflow; from probabilities the predictions are
clipped to ``[eps, 1 - eps]`` so that probabilities of exactly 0 or 1 give finite losses.

Unknown labels: write an unknown target cell as ``-1`` (:data:`labelwise.labels.structure.UNKNOWN`;
any negative value) and plain ``model.fit(x, y)`` works -- every loss here masks it (no
gradient) and averages over the known entries: a per-sample value is
``sum_j m_ij l_ij * n / sum_ij m_ij`` (``m`` the known mask, ``n`` the batch size), so the
batch mean Keras takes is the mean over the batch's known entries, and with every entry known it
is the usual per-sample mean over labels. ``unknown=`` (per loss, or per label) says what an
unknown cell trains as instead: ``"ignore"`` (masked, default), ``"positive"`` (1) or
``"negative"`` (0). :class:`SchemaLoss` takes the policy from the schema (``[labels.unknown]``);
:meth:`labelwise.labels.tables.LabelTable.targets` writes the ``-1`` cells.

Why not Keras' ``class_weight``: ``Model.fit(class_weight=...)`` turns a target row into one
class by taking its arg-max, so for a multi-hot row every sample is weighted by its *first*
true label only (and an all-zero row by class 0). That is silently wrong for multi-label
data; per-label ``pos_weight`` / ``neg_weight`` in :class:`WeightedBinaryCrossentropy`
(e.g. from :func:`balanced_weights`) is the multi-label replacement.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import keras
import numpy as np
from keras import ops

from ..errors import InputError
from ..labels.schema import LabelSchema, load_schema
from .loss_weights import balanced_weights, check_class_weight

__all__ = [
    "EPSILON", "balanced_weights", "check_class_weight",
    "weighted_binary_crossentropy", "WeightedBinaryCrossentropy",
    "binary_focal_loss", "BinaryFocalLoss",
    "asymmetric_loss", "AsymmetricLoss",
    "schema_loss", "SchemaLoss", "BINARY_LOSSES",
]

EPSILON = 1e-7
_PACKAGE = "labelwise"

Weight = float | Sequence[float] | np.ndarray


# ----------------------------------------------------------------- helpers
_INF = float("inf")
# Allowed range of each loss argument: (low, high, how the error says it). Outside these the
# loss is not a loss any more (a negative weight or alpha > 1 makes it negative and rewards
# wrong predictions), so it is refused up front rather than trained on.
_RANGES: dict[str, tuple[float, float, str]] = {
    "pos_weight": (0.0, _INF, ">= 0"),
    "neg_weight": (0.0, _INF, ">= 0"),
    "alpha": (0.0, 1.0, "in [0, 1]"),
    "gamma": (0.0, _INF, ">= 0"),
    "gamma_pos": (0.0, _INF, ">= 0"),
    "gamma_neg": (0.0, _INF, ">= 0"),
}


def _show(arr: np.ndarray) -> str:
    values = np.asarray(arr).tolist()
    if isinstance(values, list) and len(values) > 8:
        return f"[{', '.join(f'{v:g}' for v in values[:8])}, ...] ({len(values)} values)"
    return repr(values)


def _as_weight(w: Weight | None, default: float, name: str = "weight") -> float | list[float]:
    """A scalar or a per-label vector as plain Python values (so configs are JSON), checked
    against the argument's range in :data:`_RANGES`."""
    if w is None:
        return float(default)
    try:
        arr = np.asarray(w, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number or a per-label vector of numbers, got {w!r}") from None
    if arr.ndim > 1:
        raise InputError(f"{name} must be a scalar or a 1-D per-label vector, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} must be finite, got {_show(arr)}")
    low, high, text = _RANGES.get(name, (-_INF, _INF, ""))
    bad = np.flatnonzero((arr < low) | (arr > high)) if arr.ndim else ([0] if not low <= arr <= high else [])
    if len(bad):
        where = f" (label {int(bad[0])} of {arr.size})" if arr.ndim else ""
        raise InputError(f"{name} must be {text}{where}; got {name}={_show(arr)}")
    return float(arr) if arr.ndim == 0 else arr.tolist()


def _check_clip(clip: float) -> float:
    try:
        clip = float(clip)
    except (TypeError, ValueError):
        raise InputError(f"clip must be a number in [0, 1), got {clip!r}") from None
    if not 0.0 <= clip < 1.0:
        raise InputError(f"clip must be in [0, 1) (the probability margin below which negatives are ignored); "
                         f"got clip={clip}")
    return clip


def _fit_width(name: str, w: Any, width: int | None, default: float = 1.0) -> float | list[float]:
    """Check a loss argument's range and, for a per-label vector, its length against the
    prediction width, so a mismatch names the argument instead of failing inside the backend
    ("Incompatible shapes: [3] vs. [2,5]")."""
    w = _as_weight(w, default, name)
    if isinstance(w, list) and width is not None and len(w) != width:
        hint = ""
        if len(w) == width + 1:
            hint = (" It has one value too many: probably the derived 'none' column, which is not a model output; "
                    "build the weights with balanced_weights(table) or balanced_weights(y, schema=schema), which "
                    "drop it.")
        raise InputError(f"{name} has {len(w)} values but the model has {width} outputs (y_pred.shape[-1]); give "
                         f"one value per output or a single number.{hint} Got {name}={_show(np.asarray(w))}")
    return w


def _prepare(y_true, y_pred):
    y_pred = ops.convert_to_tensor(y_pred)
    if not keras.backend.is_float_dtype(y_pred.dtype):
        y_pred = ops.cast(y_pred, "float32")
    y_true = ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype)
    t, p = y_true.shape[-1], y_pred.shape[-1]
    if t is not None and p is not None and t != p:
        raise InputError(
            f"targets have {t} columns but predictions have {p}; pass the first n_outputs columns of the "
            "target matrix (the derived 'none' column is not a model output), or use SchemaLoss, which "
            "drops it for you"
        )
    return y_true, y_pred


def _check_unknown(unknown: Any, width: int | None = None) -> str | list[str]:
    """The unknown-cell policy: one of ignore/positive/negative, or one per label."""
    from ..labels.schema import POLICIES

    items = [unknown] if isinstance(unknown, str) else list(unknown) if unknown is not None else ["ignore"]
    bad = [u for u in items if u not in POLICIES]
    if bad:
        raise InputError(f"unknown= must be one of {list(POLICIES)} (or one per label), got {bad[0]!r}")
    if isinstance(unknown, str) or unknown is None:
        return items[0]
    if width is not None and len(items) != width:
        raise InputError(f"unknown= has {len(items)} policies but the model has {width} outputs; give one per output "
                         "or a single policy")
    return items


def _known(y_true, unknown="ignore"):
    """``(targets, mask)``: cells < 0 are unknown; a positive/negative policy turns them into 1/0
    (known), ignore masks them (mask 0, target 0). ``mask`` is None when nothing can be unknown."""
    unknown_cells = ops.cast(y_true < 0, y_true.dtype)
    if isinstance(unknown, str):
        fill = {"ignore": 0.0, "positive": 1.0, "negative": 0.0}[unknown]
        mask = 1.0 - unknown_cells if unknown == "ignore" else None
    else:
        fill = _vec([1.0 if u == "positive" else 0.0 for u in unknown], y_true.dtype)
        mask = 1.0 - unknown_cells * _vec([1.0 if u == "ignore" else 0.0 for u in unknown], y_true.dtype)
    y = y_true * (1.0 - unknown_cells) + unknown_cells * fill
    return y, mask


def _masked_mean(loss, mask):
    """Per-sample values whose batch mean is the mean of ``loss`` over the known entries (see
    the module docstring); the plain mean over labels when ``mask`` is None."""
    if mask is None:
        return ops.mean(loss, axis=-1)
    n = ops.cast(ops.shape(loss)[0], loss.dtype)
    total = ops.maximum(ops.sum(mask), 1.0)
    return ops.sum(loss * mask, axis=-1) * n / total


def _vec(w, dtype):
    return ops.convert_to_tensor(np.asarray(w, dtype=np.float64), dtype=dtype)


def _log_probs(y_pred, from_logits: bool):
    """``(log p, log(1 - p))``, stable: log-sigmoid from logits, clipped from probabilities."""
    if from_logits:
        return -ops.softplus(-y_pred), -ops.softplus(y_pred)
    p = ops.clip(y_pred, EPSILON, 1.0 - EPSILON)
    return ops.log(p), ops.log(1.0 - p)


def _probs(y_pred, from_logits: bool):
    return ops.sigmoid(y_pred) if from_logits else ops.clip(y_pred, 0.0, 1.0)


def _class_weights(y_true, pos_weight, neg_weight):
    """``w+ y + w- (1 - y)`` (1 when both weights are the scalar 1)."""
    if np.ndim(pos_weight) == 0 and np.ndim(neg_weight) == 0 and float(pos_weight) == float(neg_weight) == 1.0:
        return 1.0
    wp, wn = _vec(pos_weight, y_true.dtype), _vec(neg_weight, y_true.dtype)
    return wp * y_true + wn * (1.0 - y_true)


def _pow(base, gamma, dtype):
    """``base ** gamma`` for a modulating factor with ``base`` in [0, 1] and ``gamma >= 0``.

    The base is floored at EPSILON: ``d/db b^g`` is 0 * inf = NaN at ``b = 0`` for ``g = 0``
    (and inf for ``0 < g < 1``), which would poison the gradient of a confidently right label.
    """
    g = np.asarray(gamma, dtype=np.float64)
    if g.ndim == 0 and float(g) == 0.0:
        return ops.ones_like(base)
    return ops.power(ops.maximum(base, EPSILON), _vec(g, dtype))


# ------------------------------------------------------------ weighted BCE
@keras.saving.register_keras_serializable(package=_PACKAGE)
def weighted_binary_crossentropy(y_true, y_pred, pos_weight: Weight = 1.0, neg_weight: Weight = 1.0,
                                 from_logits: bool = False, unknown: str | Sequence[str] = "ignore"):
    """``mean_j -(w+_j y_j log p_j + w-_j (1 - y_j) log(1 - p_j))`` per sample, over known entries.

    ``pos_weight`` / ``neg_weight`` are scalars or per-label vectors; 1 and 1 is plain BCE.
    Targets < 0 are unknown (``unknown=``: see the module docstring).
    """
    y_true, y_pred = _prepare(y_true, y_pred)
    width = y_pred.shape[-1]
    pos_weight, neg_weight = _fit_width("pos_weight", pos_weight, width), _fit_width("neg_weight", neg_weight, width)
    y_true, mask = _known(y_true, _check_unknown(unknown, width))
    log_p, log_q = _log_probs(y_pred, from_logits)
    wp, wn = _vec(pos_weight, y_pred.dtype), _vec(neg_weight, y_pred.dtype)
    return _masked_mean(-(wp * y_true * log_p + wn * (1.0 - y_true) * log_q), mask)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class WeightedBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy with per-label positive and negative weights.

    ``weights="balanced"`` with ``y=`` (or :meth:`from_labels`) sets them with
    :func:`balanced_weights`; ``y`` is a :class:`~labelwise.labels.tables.LabelTable` or a target
    matrix with ``schema=`` (then the derived ``none`` column is dropped), or a matrix of the
    model outputs alone. Use this instead of ``Model.fit(class_weight=...)``, which takes
    the arg-max of each multi-hot row and so weights multi-label samples wrongly.
    """

    def __init__(self, pos_weight: Weight | None = None, neg_weight: Weight | None = None, *,
                 weights: str | None = None, y: Any = None, schema: LabelSchema | Mapping[str, Any] | None = None,
                 from_logits: bool = False, unknown: str | Sequence[str] = "ignore",
                 reduction: str = "sum_over_batch_size", name: str = "weighted_binary_crossentropy",
                 dtype: Any = None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if weights is not None:
            if weights != "balanced":
                raise InputError(f"weights must be 'balanced' or None, got {weights!r}")
            if y is None:
                raise InputError("weights='balanced' needs the training targets: pass y= (a LabelTable, or the "
                                 "target matrix with schema=)")
            if pos_weight is not None or neg_weight is not None:
                raise InputError("pass either weights='balanced' or pos_weight/neg_weight, not both")
            pos_weight, neg_weight = balanced_weights(y, schema=schema)
        elif y is not None or schema is not None:
            raise InputError("y= and schema= are only used with weights='balanced'")
        self.pos_weight = _as_weight(pos_weight, 1.0, "pos_weight")
        self.neg_weight = _as_weight(neg_weight, 1.0, "neg_weight")
        self.from_logits = bool(from_logits)
        self.unknown = _check_unknown(unknown)

    @classmethod
    def from_labels(cls, y: Any, labels: Sequence[str] | None = None, *,
                    schema: LabelSchema | Mapping[str, Any] | None = None, on_missing: str = "raise",
                    **kwargs: Any) -> "WeightedBinaryCrossentropy":
        """Balanced weights from the training targets ``y`` (see :func:`balanced_weights`)."""
        pos, neg = balanced_weights(y, labels, schema=schema, on_missing=on_missing)
        return cls(pos_weight=pos, neg_weight=neg, **kwargs)

    def call(self, y_true, y_pred):
        return weighted_binary_crossentropy(y_true, y_pred, self.pos_weight, self.neg_weight, self.from_logits,
                                            self.unknown)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pos_weight": self.pos_weight, "neg_weight": self.neg_weight,
                "from_logits": self.from_logits, "unknown": self.unknown}


# ------------------------------------------------------------------ focal
@keras.saving.register_keras_serializable(package=_PACKAGE)
def binary_focal_loss(y_true, y_pred, alpha: Weight | None = None, gamma: Weight = 2.0, from_logits: bool = False,
                      pos_weight: Weight = 1.0, neg_weight: Weight = 1.0, unknown: str | Sequence[str] = "ignore"):
    """Focal loss (Lin et al. 2017): ``mean_j a_t (1 - p_t)^gamma * BCE_j`` per sample.

    ``p_t = y p + (1 - y)(1 - p)``; ``a_t = y alpha + (1 - y)(1 - alpha)`` when ``alpha`` is
    given (scalar or per label; it is always applied -- no separate switch), 1 when None.
    ``gamma`` is a scalar or per label; ``gamma = 0`` and ``alpha = None`` is plain BCE.
    ``pos_weight`` / ``neg_weight`` (e.g. from :func:`balanced_weights`) multiply the positive
    and negative terms as in :func:`weighted_binary_crossentropy`. Targets < 0 are unknown
    (masked; ``unknown=``, see the module docstring).
    """
    y_true, y_pred = _prepare(y_true, y_pred)
    width = y_pred.shape[-1]
    pos_weight, neg_weight = _fit_width("pos_weight", pos_weight, width), _fit_width("neg_weight", neg_weight, width)
    y_true, mask = _known(y_true, _check_unknown(unknown, width))
    gamma = _fit_width("gamma", gamma, width)
    alpha = None if alpha is None else _fit_width("alpha", alpha, width)
    log_p, log_q = _log_probs(y_pred, from_logits)
    p = _probs(y_pred, from_logits)
    ce = -(y_true * log_p + (1.0 - y_true) * log_q)
    one_minus_pt = y_true * (1.0 - p) + (1.0 - y_true) * p
    loss = _pow(one_minus_pt, gamma, y_pred.dtype) * ce
    if alpha is not None:
        a = _vec(alpha, y_pred.dtype)
        loss = (y_true * a + (1.0 - y_true) * (1.0 - a)) * loss
    return _masked_mean(_class_weights(y_true, pos_weight, neg_weight) * loss, mask)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BinaryFocalLoss(keras.losses.Loss):
    """:func:`binary_focal_loss` as a Keras loss; ``alpha`` and ``gamma`` scalar or per label."""

    def __init__(self, alpha: Weight | None = None, gamma: Weight = 2.0, *, from_logits: bool = False,
                 pos_weight: Weight | None = None, neg_weight: Weight | None = None,
                 unknown: str | Sequence[str] = "ignore",
                 reduction: str = "sum_over_batch_size", name: str = "binary_focal_loss", dtype: Any = None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.pos_weight = _as_weight(pos_weight, 1.0, "pos_weight")
        self.neg_weight = _as_weight(neg_weight, 1.0, "neg_weight")
        self.alpha = None if alpha is None else _as_weight(alpha, 0.25, "alpha")
        self.gamma = _as_weight(gamma, 2.0, "gamma")
        self.from_logits = bool(from_logits)
        self.unknown = _check_unknown(unknown)

    def call(self, y_true, y_pred):
        return binary_focal_loss(y_true, y_pred, self.alpha, self.gamma, self.from_logits, self.pos_weight,
                                 self.neg_weight, self.unknown)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma, "from_logits": self.from_logits,
                "pos_weight": self.pos_weight, "neg_weight": self.neg_weight, "unknown": self.unknown}


# ------------------------------------------------------------- asymmetric
@keras.saving.register_keras_serializable(package=_PACKAGE)
def asymmetric_loss(y_true, y_pred, gamma_pos: Weight = 0.0, gamma_neg: Weight = 4.0, clip: float = 0.05,
                    from_logits: bool = False, pos_weight: Weight = 1.0, neg_weight: Weight = 1.0,
                    unknown: str | Sequence[str] = "ignore"):
    """Asymmetric loss (Ridnik et al. 2021, ASL), mean over labels per sample.

    ``L = -y (1 - p)^gamma_pos log p - (1 - y) p_m^gamma_neg log(1 - p_m)`` with the shifted
    probability ``p_m = max(p - clip, 0)`` for negatives, so easy negatives (p < clip) are
    discarded. ``gamma_pos = gamma_neg = clip = 0`` is plain BCE. (The paper's reference code
    sums over labels; we average, like every Keras loss -- a constant factor.)
    ``pos_weight`` / ``neg_weight`` multiply the two terms, as in weighted BCE. Targets < 0 are
    unknown (masked; ``unknown=``, see the module docstring).
    """
    y_true, y_pred = _prepare(y_true, y_pred)
    clip = _check_clip(clip)
    width = y_pred.shape[-1]
    pos_weight, neg_weight = _fit_width("pos_weight", pos_weight, width), _fit_width("neg_weight", neg_weight, width)
    y_true, mask = _known(y_true, _check_unknown(unknown, width))
    gamma_pos, gamma_neg = _fit_width("gamma_pos", gamma_pos, width), _fit_width("gamma_neg", gamma_neg, width)
    log_p, log_q = _log_probs(y_pred, from_logits)
    p = _probs(y_pred, from_logits)
    if clip > 0:
        # 1 - p_m = min(1 - p + clip, 1) >= clip > 0: its log is finite without clipping.
        q_m = ops.minimum((1.0 - p) + clip, 1.0)
        p_m = 1.0 - q_m
        log_q = ops.log(q_m)
    else:
        p_m = p
    pos = _pow(1.0 - p, gamma_pos, y_pred.dtype) * log_p
    neg = _pow(p_m, gamma_neg, y_pred.dtype) * log_q
    return _masked_mean(-_class_weights(y_true, pos_weight, neg_weight) * (y_true * pos + (1.0 - y_true) * neg),
                        mask)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AsymmetricLoss(keras.losses.Loss):
    """:func:`asymmetric_loss` as a Keras loss (defaults from the paper: 0, 4, clip 0.05)."""

    def __init__(self, gamma_pos: Weight = 0.0, gamma_neg: Weight = 4.0, clip: float = 0.05, *,
                 from_logits: bool = False, pos_weight: Weight | None = None, neg_weight: Weight | None = None,
                 unknown: str | Sequence[str] = "ignore",
                 reduction: str = "sum_over_batch_size", name: str = "asymmetric_loss", dtype: Any = None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.pos_weight = _as_weight(pos_weight, 1.0, "pos_weight")
        self.neg_weight = _as_weight(neg_weight, 1.0, "neg_weight")
        self.gamma_pos = _as_weight(gamma_pos, 0.0, "gamma_pos")
        self.gamma_neg = _as_weight(gamma_neg, 4.0, "gamma_neg")
        self.clip = _check_clip(clip)
        self.from_logits = bool(from_logits)
        self.unknown = _check_unknown(unknown)

    def call(self, y_true, y_pred):
        return asymmetric_loss(y_true, y_pred, self.gamma_pos, self.gamma_neg, self.clip, self.from_logits,
                               self.pos_weight, self.neg_weight, self.unknown)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "gamma_pos": self.gamma_pos, "gamma_neg": self.gamma_neg,
                "clip": self.clip, "from_logits": self.from_logits, "pos_weight": self.pos_weight,
                "neg_weight": self.neg_weight, "unknown": self.unknown}


# ------------------------------------------------------------- schema loss
BINARY_LOSSES = {
    "bce": WeightedBinaryCrossentropy,
    "weighted": WeightedBinaryCrossentropy,
    "focal": BinaryFocalLoss,
    "asymmetric": AsymmetricLoss,
}
_BINARY_KWARGS = {
    "bce": {"pos_weight", "neg_weight"},
    "weighted": {"pos_weight", "neg_weight"},
    "focal": {"alpha", "gamma", "pos_weight", "neg_weight"},
    "asymmetric": {"gamma_pos", "gamma_neg", "clip", "pos_weight", "neg_weight"},
}


def _categorical_ce(y_true, y_pred, from_logits: bool):
    if from_logits:
        logp = y_pred - ops.logsumexp(y_pred, axis=-1, keepdims=True)
    else:
        logp = ops.log(ops.clip(y_pred, EPSILON, 1.0))
    return -ops.sum(y_true * logp, axis=-1)


def _drop_none(y_true, schema: LabelSchema):
    y_true = ops.convert_to_tensor(y_true)
    t = y_true.shape[-1]
    if t is not None and t == schema.n_labels and t != schema.n_outputs:
        return y_true[..., : schema.n_outputs]
    if t is not None and t != schema.n_outputs:
        raise InputError(
            f"targets have {t} columns; the schema has {schema.n_outputs} outputs {list(schema.output_labels)}"
            + (f" (or {schema.n_labels} with the none label)" if schema.none else "")
        )
    return y_true


def _group_ce(y_true, y_pred, from_logits: bool, absent: bool):
    """Per-sample categorical cross-entropy of one group block and its known-row mask (a row is
    known when none of its member targets is < 0). ``absent``: an at-most-one group, whose
    implicit "absent" member has logit 0 (target ``1 - sum(members)``)."""
    known = ops.cast(ops.all(y_true >= 0, axis=-1), y_pred.dtype)
    yt = ops.maximum(y_true, 0.0)
    if absent:
        yt = ops.concatenate([yt, 1.0 - ops.sum(yt, axis=-1, keepdims=True)], axis=-1)
        if from_logits:
            y_pred = ops.concatenate([y_pred, ops.zeros_like(y_pred[..., :1])], axis=-1)
        else:
            y_pred = ops.concatenate([y_pred, ops.maximum(1.0 - ops.sum(y_pred, axis=-1, keepdims=True), 0.0)],
                                     axis=-1)
    return _categorical_ce(yt, y_pred, from_logits), known


def _fill_policy(y_true, schema: LabelSchema):
    """Independent-label targets with unknown (< 0) cells set by each label's policy: 1, 0, or
    left at -1 (ignore, masked by the binary loss)."""
    policies = [schema.policy(x) for x in schema.independent]
    if all(p == "ignore" for p in policies):
        return y_true
    fill = _vec([{"positive": 1.0, "negative": 0.0, "ignore": -1.0}[p] for p in policies], y_true.dtype)
    return ops.where(y_true < 0, fill + 0.0 * y_true, y_true)


def schema_loss(y_true, y_pred, schema: LabelSchema, binary=None, binary_weight: float = 1.0,
                group_weights: Mapping[str, float] | None = None, from_logits: bool = False,
                derived_weight: float = 1.0):
    """Per-sample loss that obeys the schema's head layout.

    ``binary_weight * binary(y[:, ind], p[:, ind]) + sum_g w_g * CE_g + derived_weight *
    BCE(y[:, derived], p[:, derived])`` where ``binary`` is a per-sample binary loss function on
    the independent columns (default: BCE), ``CE_g`` the categorical cross-entropy of exclusive
    group ``g`` (softmax block) or of an at-most-one group with its implicit absent member, and the
    derived columns (computed by the head, so their gradient reaches their sources) get BCE.
    ``y_true`` may be the (n, n_outputs) head targets or the full (n, n_labels) matrix (the none
    column is dropped). Unknown targets (< 0) of independent labels follow the schema's policy
    (ignore: masked; positive/negative: trained as 1/0); a group row with an unknown member and a
    derived label's unknown cell are masked. Every term averages over its known entries/rows.
    """
    schema = load_schema(schema)
    y_true = _drop_none(y_true, schema)
    y_true, y_pred = _prepare(y_true, y_pred)
    group_weights = dict(group_weights or {})
    total = None
    for block in schema.layout:
        yt, yp = y_true[..., block.start : block.stop], y_pred[..., block.start : block.stop]
        if block.kind == "sigmoid":
            fn = binary or (lambda a, b: weighted_binary_crossentropy(a, b, from_logits=from_logits))
            term = binary_weight * fn(_fill_policy(yt, schema), yp)
        elif block.kind == "derived":
            if not derived_weight:
                continue
            term = derived_weight * weighted_binary_crossentropy(yt, yp, from_logits=from_logits)
        else:
            ce, known = _group_ce(yt, yp, from_logits, absent=block.kind == "at_most_one")
            n = ops.cast(ops.shape(ce)[0], ce.dtype)
            term = float(group_weights.get(block.name, 1.0)) * ce * known * n / ops.maximum(ops.sum(known), 1.0)
        total = term if total is None else total + term
    return total


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SchemaLoss(keras.losses.Loss):
    """Binary loss on the independent labels + categorical cross-entropy per exclusive group.

    ``binary`` is ``"bce"``, ``"weighted"``, ``"focal"``, ``"asymmetric"`` or a Keras loss
    object (whose ``call`` must return one value per sample). Keyword arguments of the named
    binary loss (``pos_weight``/``neg_weight`` for all of them; ``alpha``/``gamma``;
    ``gamma_pos``/``gamma_neg``/``clip``) pass through; per-label vectors may cover the independent labels or all head
    outputs (then sliced). ``binary_weight`` scales the binary term, ``group_weights={group: w}``
    each group's term (default 1), ``derived_weight`` the derived labels' BCE (default 1; 0 leaves
    them out). ``from_logits`` applies to every term. Unknown targets (-1) are masked or filled
    by the schema's ``[labels.unknown]`` policy (see :func:`schema_loss`). The schema is in the
    config, so a saved model's loss knows its labels.
    """

    def __init__(self, schema: LabelSchema | Mapping[str, Any], binary: str | keras.losses.Loss | Mapping = "bce", *,
                 binary_weight: float = 1.0, group_weights: Mapping[str, float] | None = None,
                 derived_weight: float = 1.0,
                 from_logits: bool = False, reduction: str = "sum_over_batch_size", name: str = "schema_loss",
                 dtype: Any = None, **binary_kwargs: Any):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.schema = load_schema(schema)
        self.from_logits = bool(from_logits)
        self.binary_weight = _term_weight(binary_weight, "binary_weight")
        self.derived_weight = _term_weight(derived_weight, "derived_weight")
        self.group_weights = {str(k): _term_weight(v, f"group_weights[{k!r}]")
                              for k, v in dict(group_weights or {}).items()}
        groups = [*self.schema.exclusive, *self.schema.at_most_one]
        unknown = set(self.group_weights) - set(groups)
        if unknown:
            raise InputError(f"group_weights names unknown group(s) {sorted(unknown)}; the schema's "
                             f"groups are {groups}")
        n_ind = len(self.schema.independent)
        if isinstance(binary, Mapping):  # a serialised loss, from get_config
            binary = keras.saving.deserialize_keras_object(binary)
        if isinstance(binary, str):
            if binary not in BINARY_LOSSES:
                raise InputError(f"binary must be one of {sorted(BINARY_LOSSES)} or a Keras loss, got {binary!r}")
            bad = set(binary_kwargs) - _BINARY_KWARGS[binary]
            if bad:
                raise InputError(f"binary={binary!r} takes {sorted(_BINARY_KWARGS[binary])}, not {sorted(bad)}")
            kwargs = {k: _slice_weight(v, n_ind, self.schema, k) for k, v in binary_kwargs.items()}
            binary = BINARY_LOSSES[binary](from_logits=self.from_logits, **kwargs)
        elif binary_kwargs:
            raise InputError(f"{sorted(binary_kwargs)} only apply to a named binary loss, not to {binary!r}")
        if not isinstance(binary, keras.losses.Loss):
            raise InputError(f"binary must be a name or a keras.losses.Loss, got {type(binary).__name__}")
        if getattr(binary, "from_logits", self.from_logits) != self.from_logits:
            raise InputError(f"the binary loss has from_logits={binary.from_logits} but SchemaLoss has "
                             f"from_logits={self.from_logits}; they must agree")
        self.binary = binary

    def call(self, y_true, y_pred):
        return schema_loss(y_true, y_pred, self.schema, self.binary.call, self.binary_weight, self.group_weights,
                           self.from_logits, self.derived_weight)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "schema": self.schema.to_dict(),
                "binary": keras.saving.serialize_keras_object(self.binary), "binary_weight": self.binary_weight,
                "group_weights": self.group_weights, "from_logits": self.from_logits,
                "derived_weight": self.derived_weight}


def _term_weight(v: Any, name: str) -> float:
    try:
        w = float(v)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number >= 0, got {v!r}") from None
    if not np.isfinite(w) or w < 0:
        raise InputError(f"{name} must be a finite number >= 0 (it scales one term of the loss), got {w}")
    return w


def _slice_weight(v, n_ind: int, schema: LabelSchema, key: str):
    arr = np.asarray(v, dtype=np.float64) if v is not None else None
    if arr is None or arr.ndim == 0:
        return v
    if arr.shape == (n_ind,):
        return arr
    if arr.shape == (schema.n_outputs,) or arr.shape == (schema.n_labels,):
        return arr[:n_ind]
    raise InputError(f"{key} has {arr.shape[0]} values; give one per independent label ({n_ind}) or per head "
                     f"output ({schema.n_outputs})")


# Keras objects of the modules that could not be imported while this one was half-loaded
# (a first `import keras` from here) register now; see labelwise._register_keras_objects.
from .. import _register_keras_objects  # noqa: E402

_register_keras_objects()
