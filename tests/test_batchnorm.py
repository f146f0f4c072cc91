"""Re-estimated BatchNormalization statistics (labelwise.training.batchnorm), checked against numpy."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from labelwise.training.batchnorm import live_batchnorm_layers, recalibrate_batchnorm  # noqa: E402


def _model(seed: int = 0):
    """image -> conv -> [BN (trained)] -> pool -> dense -> [BN (frozen)] -> dropout -> dense; the BN
    inputs are reachable as sub-models so numpy can compute their statistics."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((6, 5, 2))
    conv = keras.layers.Conv2D(3, 3, padding="same", name="conv")(inp)
    inner = keras.Model(inp, keras.layers.BatchNormalization(name="bn_live")(conv), name="backbone")
    x = keras.layers.GlobalAveragePooling2D()(inner(inp))
    dense = keras.layers.Dense(4, name="dense")(x)
    frozen = keras.layers.BatchNormalization(name="bn_frozen")
    frozen.trainable = False
    x = keras.layers.Dropout(0.5, seed=1)(frozen(dense))
    model = keras.Model(inp, keras.layers.Dense(2, name="out")(x))
    conv_of = keras.Model(inp, conv)
    return model, inner.get_layer("bn_live"), frozen, conv_of


def _batches(x, size):
    return [x[i:i + size] for i in range(0, len(x), size)]


def _weights(layer):
    return [keras.ops.convert_to_numpy(w).copy() for w in layer.weights]


def test_statistics_equal_numpy_over_all_images_and_nothing_else_changes():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(70, 6, 5, 2)) * 3 + 1).astype("float32")
    model, bn, frozen, conv_of = _model()
    trainable = [keras.ops.convert_to_numpy(v).copy() for v in model.trainable_variables]
    frozen_before = _weights(frozen)
    momentum = bn.momentum
    used = recalibrate_batchnorm(model, _batches(x, 32))  # 32 + 32 + 6: unequal batches
    assert used == 70
    feats = keras.ops.convert_to_numpy(conv_of(x)).reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_mean), feats.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_variance), feats.var(0), rtol=1e-4, atol=1e-5)
    for before, v in zip(trainable, model.trainable_variables):
        np.testing.assert_array_equal(before, keras.ops.convert_to_numpy(v))
    for before, now in zip(frozen_before, _weights(frozen)):
        np.testing.assert_array_equal(before, now)
    assert bn.momentum == momentum


def test_max_images_uses_the_first_images_only():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 6, 5, 2)).astype("float32")
    x[20:] += 10.0  # images past the limit would move the mean
    model, bn, _, conv_of = _model()
    assert recalibrate_batchnorm(model, ((b, np.zeros(len(b))) for b in _batches(x, 8)), max_images=20) == 20
    feats = keras.ops.convert_to_numpy(conv_of(x[:20])).reshape(-1, 3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_mean), feats.mean(0), rtol=1e-4, atol=1e-5)


def test_inference_then_normalizes_as_training_did_and_dropout_seeds_are_kept():
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(64, 6, 5, 2)) * 20 + 50).astype("float32")  # far from the initial mean 0, variance 1
    model, bn, _, _ = _model()
    inner = model.get_layer("backbone")
    assert not np.allclose(keras.ops.convert_to_numpy(inner(x, training=False)),
                           keras.ops.convert_to_numpy(inner(x, training=True)), atol=1e-3)
    seeds = [v for v in model.non_trainable_variables if "seed_generator_state" in v.path]
    assert seeds
    before = [keras.ops.convert_to_numpy(v).copy() for v in seeds]
    recalibrate_batchnorm(model, [x])  # one batch: its moments are the population's
    inference = keras.ops.convert_to_numpy(inner(x, training=False))
    np.testing.assert_allclose(inference, keras.ops.convert_to_numpy(inner(x, training=True)), rtol=1e-4, atol=1e-4)
    for b, v in zip(before, seeds):
        np.testing.assert_array_equal(b, keras.ops.convert_to_numpy(v))


def test_frozen_or_absent_batchnorm_reads_no_image():
    inp = keras.Input((3,))
    plain = keras.Model(inp, keras.layers.Dense(1)(inp))
    model, bn, frozen, _ = _model()
    bn.trainable = False

    def never():
        raise AssertionError("the batches were read")

    assert live_batchnorm_layers(plain) == [] and live_batchnorm_layers(model) == []
    assert recalibrate_batchnorm(plain, never) == 0
    before = _weights(bn)
    assert recalibrate_batchnorm(model, never) == 0
    for b, now in zip(before, _weights(bn)):
        np.testing.assert_array_equal(b, now)


def test_a_failing_batch_leaves_the_layer_as_it_was():
    model, bn, _, _ = _model()
    momentum = bn.momentum

    def batches():
        yield np.zeros((4, 6, 5, 2), "float32")
        raise RuntimeError("disk gone")

    before = _weights(bn)
    with pytest.raises(RuntimeError):
        recalibrate_batchnorm(model, batches)
    assert bn.momentum == momentum
    for b, now in zip(before, _weights(bn)):
        np.testing.assert_array_equal(b, now)


# ----------------------------------------------------------------- the diagnostic
def _flat_scores(n_constant: int, k: int = 10, rows: int = 200):
    rng = np.random.default_rng(3)
    s = rng.uniform(size=(rows, k))
    s[:, :n_constant] = 0.31 + rng.normal(scale=1e-7, size=(rows, n_constant))
    return s


def test_constant_scores_while_the_loss_falls_name_batchnorm():
    from labelwise.evaluation.diagnostics import LIKELY_CAUSES, constant_while_learning

    labels = [f"l{j}" for j in range(10)]
    s = _flat_scores(7)
    f = constant_while_learning(s, [0.56, 0.41, 0.32], labels=labels)
    assert f is not None and f.severity == "error" and f.label is None
    assert f.evidence["constant_labels"] == int((s.std(axis=0) < 1e-3).sum()) == 7
    assert "BatchNorm" in f.message and "bn_recalibrate_images" in f.message
    assert "bn_momentum" in LIKELY_CAUSES[f.causes[0]]
    # with re-estimated statistics BatchNorm is not what is blamed first
    again = constant_while_learning(s, [0.56, 0.32], labels=labels, recalibrated=512)
    assert again is not None and "batchnorm_statistics" not in again.causes
    none = constant_while_learning(s, [0.56, 0.32], labels=labels, batchnorm=False)
    assert none is not None and "no trainable BatchNorm" in none.message


@pytest.mark.parametrize("n_constant, losses", [(7, [0.56, 0.55]),   # the loss did not fall
                                                (7, [0.56]),         # one epoch: no trend
                                                (5, [0.56, 0.30]),   # half the labels, not more
                                                (0, [0.56, 0.30])])
def test_no_finding_without_both_signs(n_constant, losses):
    from labelwise.evaluation.diagnostics import constant_while_learning

    assert constant_while_learning(_flat_scores(n_constant), losses, labels=[f"l{j}" for j in range(10)]) is None


# ----------------------------------------------------------------- in the training loop
@pytest.mark.slow
def test_training_re_estimates_statistics_without_changing_the_training_path(monkeypatch, tmp_path):
    """BatchNorm statistics frozen at their initial values (bn_momentum = 1): the losses of the
    two runs are identical (re-estimation touches no weight), and the re-estimated run
    validates better; the diagnostic is consulted every epoch and its finding is a warning."""
    import warnings

    from conftest import MNIST_IDX, require

    from labelwise.evaluation import diagnostics
    from labelwise.labels.schema import LabelSchema
    from labelwise.labels.tables import load_mnist_idx
    from labelwise.training import TrainConfig, train
    from labelwise.training.data import Part, TrainData

    x = load_mnist_idx(require(MNIST_IDX) / "t10k-images-idx3-ubyte.gz")[:320, ..., None]
    d = load_mnist_idx(MNIST_IDX / "t10k-labels-idx1-ubyte.gz")[:320].astype(int)
    y = np.stack([d > 5, d % 2 == 0, d == 1], 1).astype(np.int8)
    schema = LabelSchema(independent=("big", "even", "one"))
    data = TrainData(schema, Part(x[:240], y[:240], np.arange(240).astype(str)),
                     Part(x[240:], y[240:], np.arange(80).astype(str)))
    seen = []

    def spy(scores, losses, **kw):
        seen.append((len(losses), kw["batchnorm"], kw["recalibrated"]))
        return diagnostics.Finding(None, "constant_while_learning", "error", "spy finding") if len(losses) > 1 else None

    monkeypatch.setattr(diagnostics, "constant_while_learning", spy)
    runs = {}
    for n in (0, 100):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            runs[n] = train(TrainConfig(
                schema=schema, backbone="small_cnn", image_size=(28, 28), channels=1, epochs=2, batch_size=32,
                learning_rate=3e-3, bn_momentum=1.0, bn_recalibrate_images=n, verbose=0, bootstrap=0, plots=False,
                out_dir=str(tmp_path / str(n)), early_stopping_patience=None), data)
        assert sum("spy finding" in str(w.message) for w in caught) == 1
    assert seen[:2] == [(1, True, 0), (2, True, 0)]
    assert seen[2:] == [(1, True, 100), (2, True, 100)]
    assert [r["bn_images"] for r in runs[100].history] == [100, 100]
    assert [r["loss"] for r in runs[0].history] == [r["loss"] for r in runs[100].history]
    assert runs[100].best_val_auc > runs[0].best_val_auc


def test_config_key_defaults_on_and_rejects_negative_counts():
    from labelwise.errors import InputError
    from labelwise.training import TrainConfig

    assert TrainConfig().bn_recalibrate_images == 512
    assert TrainConfig(bn_recalibrate_images=0).bn_recalibrate_images == 0
    with pytest.raises(InputError, match="bn_recalibrate_images"):
        TrainConfig(bn_recalibrate_images=-1)
    with pytest.raises(InputError, match="bn_recalibrate_images"):
        TrainConfig(bn_recalibrate_images=2.5)
