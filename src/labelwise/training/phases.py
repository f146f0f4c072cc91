"""The model of a training run: its phases (head-only epochs on a frozen backbone, then the top
layers unfrozen at a lower rate), its loss and optimizer, and :func:`build_and_compile` (one
function, so :mod:`labelwise.training.distribute` can call it inside a strategy scope).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..labels.schema import LabelSchema
from .config import TrainConfig

__all__ = ['Phase', 'phases', 'build_and_compile']


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
    from ..blocks import losses

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
    from ..blocks.models import build_model, freeze_backbone, unfreeze_top

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
    from .runtime import resolve_jit_compile

    # under mixed_float16 compile wraps the optimizer in a LossScaleOptimizer (auto_scale_loss)
    model.compile(optimizer=_make_optimizer(config, phase, steps_per_epoch),
                  loss=_make_loss(config, schema, y_train), jit_compile=resolve_jit_compile(config.jit_compile))
    return model


def _set_bn_momentum(model, momentum: float) -> None:
    import keras

    def visit(layer):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
        for sub in getattr(layer, "layers", []):
            visit(sub)

    visit(model)
