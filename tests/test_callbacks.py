"""ExactMetrics in a plain model.fit: the logged values against scikit-learn on model.predict,
EarlyStopping monitoring them, a schema with groups and a none label, datasets, bad input."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
from sklearn.metrics import average_precision_score as sk_ap  # noqa: E402
from sklearn.metrics import roc_auc_score as sk_auc  # noqa: E402

from labelwise import LabelSchema  # noqa: E402
from labelwise.callbacks import ExactMetrics  # noqa: E402
from labelwise.errors import InputError  # noqa: E402


def _data(n, seed, noise=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x[:, :3] + rng.normal(scale=1.5, size=(n, 3)) > 0).astype("float32")
    if noise:
        y = (rng.uniform(size=(n, 3)) > 0.5).astype("float32")
    return x, y


class _Reference(keras.callbacks.Callback):
    """Runs after ExactMetrics: scikit-learn on model.predict, and the logs as they arrive."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y, self.seen = x, y, []

    def on_epoch_end(self, epoch, logs=None):
        p = self.model.predict(self.x, verbose=0)
        self.seen.append((dict(logs), [sk_auc(self.y[:, j], p[:, j]) for j in range(3)],
                          [sk_ap(self.y[:, j], p[:, j]) for j in range(3)]))


@pytest.mark.backend
def test_logged_values_equal_sklearn_and_early_stopping_monitors_them():
    keras.utils.set_random_seed(0)
    x, y = _data(300, 0)
    xv, yv = _data(120, 1, noise=True)  # validation AUC wanders, so EarlyStopping fires
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="sigmoid")])
    model.compile(keras.optimizers.SGD(0.05), "binary_crossentropy")
    ref = _Reference(xv, yv)
    stop = keras.callbacks.EarlyStopping(monitor="val_macro_auc", mode="max", patience=1)
    hist = model.fit(x, y, epochs=30, batch_size=32, verbose=0,
                     callbacks=[ExactMetrics((xv, yv), labels=["cat", "dog", "bird"]), ref, stop])
    aucs = []
    for logs, auc, ap in ref.seen:
        for label, a, b in zip(["cat", "dog", "bird"], auc, ap):
            assert logs[f"val_auc_{label}"] == pytest.approx(a, abs=1e-9)
            assert logs[f"val_ap_{label}"] == pytest.approx(b, abs=1e-9)
        assert logs["val_macro_auc"] == pytest.approx(np.mean(auc), abs=1e-9)
        assert logs["val_macro_ap"] == pytest.approx(np.mean(ap), abs=1e-9)
        aucs.append(logs["val_macro_auc"])
    assert hist.history["val_macro_auc"] == aucs
    # patience 1: training ends at the first epoch that does not beat the best so far
    first_no_gain = next(e for e in range(1, len(aucs)) if aucs[e] <= max(aucs[:e]))
    assert len(aucs) == first_no_gain + 1 < 30


@pytest.mark.backend
def test_schema_with_group_and_none_on_a_logits_head_and_a_dataset():
    from labelwise.blocks.layers import SchemaHead

    schema = LabelSchema(["a", "b"], {"view": ["PA", "AP"]}, none="none")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 5)).astype("float32")
    ind = (x[:, :2] + rng.normal(size=(200, 2)) > 0.3).astype("float32")
    view = (x[:, 2] > 0).astype("float32")
    y = np.column_stack([ind, view, 1 - view])  # head-output columns; none is derived
    inp = keras.Input((5,))
    model = keras.Model(inp, SchemaHead(schema, output="logits")(inp))
    model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True))
    cb = ExactMetrics((x, y), schema=schema)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[cb])
    z = model.predict(x, verbose=0).astype(np.float64)
    p = np.column_stack([1 / (1 + np.exp(-z[:, :2])), np.exp(z[:, 2:]) / np.exp(z[:, 2:]).sum(1, keepdims=True)])
    none_score = np.prod(1 - p[:, :2], axis=1)
    none_true = (ind.sum(1) == 0).astype(float)
    logged = cb.history[-1]
    for j, label in enumerate(["a", "b", "PA", "AP"]):
        assert logged[f"val_auc_{label}"] == pytest.approx(sk_auc(y[:, j], p[:, j]), abs=1e-9)
    assert logged["val_auc_none"] == pytest.approx(sk_auc(none_true, none_score), abs=1e-9)
    # the same from a dataset of (x, y) batches, the none column given
    import tensorflow as tf

    full = np.column_stack([y, none_true])
    ds = tf.data.Dataset.from_tensor_slices((x, full)).shuffle(200, seed=0).batch(32)
    from_ds = ExactMetrics(ds, schema=schema)
    from_ds.set_model(model)
    got = from_ds.compute()
    for key, value in logged.items():
        if key != "epoch":
            assert got[key] == pytest.approx(value, abs=1e-9), key


def test_bad_input_is_named():
    schema = LabelSchema(["a", "b"])
    x, y = _data(40, 3)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="sigmoid")])
    cb = ExactMetrics((x, y[:, :2]), schema=schema)
    cb.set_model(model)
    with pytest.raises(InputError, match="outputs 3 column.*schema has 2"):
        cb.compute()
    with pytest.raises(InputError, match="one row per image"):
        ExactMetrics((x, y[:10]))
    two = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2, activation="sigmoid")])
    cb = ExactMetrics((x, y), schema=schema)
    cb.set_model(two)
    with pytest.raises(InputError, match="y has 3 column"):
        cb.compute()
