"""Keras callbacks for a user's own ``model.fit``.

:class:`ExactMetrics` computes labelwise's exact per-label ROC AUC and average precision
(:mod:`labelwise.metrics`, equal to scikit-learn's) on the whole validation set after each
epoch and writes them into ``logs``, so ``EarlyStopping``, ``ModelCheckpoint``, ``History``,
``CSVLogger`` and ``TensorBoard`` see them like Keras' own metrics. Keras' ``AUC`` metric
is approximate (a fixed grid of thresholds) and averaged over batches; these are not.
"""

from __future__ import annotations

import re
import warnings
from typing import Any, Sequence

import keras
import numpy as np

from .errors import InputError

__all__ = ["ExactMetrics", "log_key"]


def log_key(label: str) -> str:
    """The ``logs`` spelling of a label: runs of characters other than letters, digits, ``.``,
    ``-`` and ``_`` become ``_`` ("Pleural Thickening" -> "Pleural_Thickening")."""
    return re.sub(r"[^\w.-]+", "_", str(label)).strip("_") or "label"


def _activate(logits: np.ndarray, schema) -> np.ndarray:
    """numpy twin of the head's activations: sigmoid per independent column, softmax per group."""
    out = np.empty_like(logits, dtype=np.float64)
    for block in schema.layout:
        z = logits[:, block.start:block.stop].astype(np.float64)
        if block.kind == "sigmoid":
            out[:, block.start:block.stop] = 1.0 / (1.0 + np.exp(-z))
        else:
            e = np.exp(z - z.max(axis=1, keepdims=True))
            out[:, block.start:block.stop] = e / e.sum(axis=1, keepdims=True)
    return out


class ExactMetrics(keras.callbacks.Callback):
    """After each epoch: exact per-label AUC and AP on ``val_data``, written into ``logs``.

    Keys (``prefix`` "val_" by default): ``val_macro_auc``, ``val_macro_ap`` (means over the
    labels where they are defined: a label with one class in ``val_data`` is NaN and left out, as
    in :func:`labelwise.metrics.roc_auc_score`), and per label ``val_auc_<label>``,
    ``val_ap_<label>`` (label spelled by :func:`log_key`). Put it before the callbacks that read
    these keys in ``callbacks=[...]`` (Keras calls them in order); monitor with ``mode="max"``.

    ``val_data``: ``(x, y)`` arrays, or a dataset / ``keras.utils.PyDataset`` of ``(x, y)``
    batches (read once per epoch, predictions and targets from the same batches). ``y`` has one
    0/1 column per head output, or per schema label (the derived ``none`` column included).
    ``schema``: a :class:`~labelwise.labels.schema.LabelSchema` (default: every column an
    independent label named by ``labels`` or ``label_0``...); with a schema that has a ``none``
    label, its score is derived from the outputs as labelwise does (``prod(1 - p_independent)``).
    ``from_logits``: the model outputs logits (default: read from the model's
    :class:`~labelwise.layers.SchemaHead` when it has one, else False); the head's activations
    are applied before scoring, since a softmax changes the order across images.
    ``every``: compute every ``every`` epochs (other epochs log nothing new).
    """

    def __init__(self, val_data: Any, schema: Any = None, *, labels: Sequence[str] | None = None,
                 prefix: str = "val_", batch_size: int = 64, from_logits: bool | None = None, every: int = 1,
                 verbose: int = 0):
        super().__init__()
        from .labels.schema import LabelSchema, load_schema

        self.schema = load_schema(schema) if schema is not None else None
        if self.schema is None and labels is not None:
            self.schema = LabelSchema(independent=tuple(labels))
        self.val_data = val_data
        if isinstance(val_data, (tuple, list)):
            if len(val_data) < 2:
                raise InputError("val_data must be (x, y) arrays or a dataset of (x, y) batches")
            x, y = val_data[0], np.asarray(val_data[1])
            if y.ndim != 2 or len(y) != len(x):
                raise InputError(f"val_data's y must be a (n, n_labels) 0/1 array with one row per image; "
                                 f"got shape {y.shape} for {len(x)} image(s)")
        self.prefix, self.batch_size, self.from_logits = prefix, int(batch_size), from_logits
        self.every, self.verbose = max(1, int(every)), verbose
        self.history: list[dict[str, float]] = []
        self._warned = False

    # ------------------------------------------------------------------ data
    def _predict(self) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(self.val_data, (tuple, list)):
            x, y = self.val_data[0], np.asarray(self.val_data[1])
            return y, np.asarray(self.model.predict(x, batch_size=self.batch_size, verbose=0))
        ys, ps = [], []
        for batch in self.val_data:
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                raise InputError("val_data yields batches without targets; it must yield (x, y) batches")
            # np.asarray reads tf, jax and numpy batches alike, whatever backend Keras runs on
            ys.append(np.asarray(batch[1]))
            ps.append(np.asarray(self.model.predict_on_batch(np.asarray(batch[0]))))
        if not ys:
            raise InputError("val_data yielded no batches")
        return np.concatenate(ys), np.concatenate(ps)

    def _schema_for(self, width: int):
        from .labels.schema import LabelSchema

        if self.schema is None:
            self.schema = LabelSchema(independent=tuple(f"label_{j}" for j in range(width)))
        if width != self.schema.n_outputs:
            raise InputError(f"the model outputs {width} column(s) but the schema has {self.schema.n_outputs} "
                             f"outputs {list(self.schema.output_labels)}")
        return self.schema

    def _logits(self) -> bool:
        if self.from_logits is not None:
            return bool(self.from_logits)
        from .blocks.layers import SchemaHead

        heads = [l for l in self.model.layers if isinstance(l, SchemaHead)]
        return bool(heads) and heads[0].output_mode == "logits"

    def compute(self) -> dict[str, float]:
        """The metrics on ``val_data`` for the model as it is now (what ``on_epoch_end`` logs)."""
        from .metrics import average_precision_score, roc_auc_score

        y, p = self._predict()
        if p.ndim != 2:
            raise InputError(f"the model outputs shape {p.shape}; ExactMetrics needs (n, n_outputs) scores")
        schema = self._schema_for(p.shape[1])
        if self._logits():
            p = _activate(p, schema)
        scores = schema.complete_scores(p)
        if y.shape[1] == schema.n_outputs and schema.n_labels != schema.n_outputs:
            y = schema.complete(y.astype(np.uint8))
        if y.shape != scores.shape:
            raise InputError(f"val_data's y has {y.shape[1]} column(s); expected {schema.n_outputs} (head outputs) "
                             f"or {schema.n_labels} (labels {list(schema.labels)})")
        with warnings.catch_warnings():
            if self._warned:  # the same validation set: its undefined labels were said on the first epoch
                warnings.simplefilter("ignore")
            auc = np.asarray(roc_auc_score(y, scores, average=None, labels=schema.labels), dtype=float)
            ap = np.asarray(average_precision_score(y, scores, average=None, labels=schema.labels), dtype=float)
        self._warned = True
        logs = {f"{self.prefix}macro_auc": float(np.nanmean(auc)) if np.isfinite(auc).any() else float("nan"),
                f"{self.prefix}macro_ap": float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")}
        for label, a, b in zip(schema.labels, auc, ap):
            logs[f"{self.prefix}auc_{log_key(label)}"] = float(a)
            logs[f"{self.prefix}ap_{log_key(label)}"] = float(b)
        return logs

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if (epoch + 1) % self.every:
            return
        values = self.compute()
        self.history.append({"epoch": epoch, **values})
        if logs is not None:
            logs.update(values)
        if self.verbose:
            print(f"epoch {epoch + 1}: {self.prefix}macro_auc {values[f'{self.prefix}macro_auc']:.4f}, "
                  f"{self.prefix}macro_ap {values[f'{self.prefix}macro_ap']:.4f}", flush=True)
