"""SchemaHead, the pooling layers, and save/load of models using them in a fresh process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from labelwise import LabelSchema  # noqa: E402
from labelwise.blocks import losses as L  # noqa: E402
from labelwise.errors import InputError  # noqa: E402
from labelwise.blocks.layers import (GatedAttentionPooling, MultiImagePooling, SchemaHead, masked_max,  # noqa: E402
                              masked_mean, schema_activation)

SCHEMA = LabelSchema(["a", "b", "c"], {"view": ["PA", "AP", "LL"], "sex": ["F", "M"]}, none="none")


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def _ref_activation(z):
    z = z.astype(np.float64)
    out = np.empty_like(z)
    out[:, :3] = 1 / (1 + np.exp(-z[:, :3]))
    for a, b in ((3, 6), (6, 8)):
        e = np.exp(z[:, a:b] - z[:, a:b].max(axis=1, keepdims=True))
        out[:, a:b] = e / e.sum(axis=1, keepdims=True)
    return out


@pytest.mark.backend
def test_schema_activation_matches_numpy_and_groups_sum_to_one():
    z = np.random.default_rng(0).normal(0, 3, (7, 8)).astype("float32")
    out = _np(schema_activation(z, SCHEMA))
    np.testing.assert_allclose(out, _ref_activation(z), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, 3:6].sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(out[:, 6:8].sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.backend
def test_schema_head_probabilities_and_logits_share_the_dense():
    x = np.random.default_rng(1).normal(size=(5, 6)).astype("float32")
    head = SchemaHead(SCHEMA)
    probs = _np(head(x))
    assert probs.shape == (5, SCHEMA.n_outputs)  # the none label is not an output
    kernel, bias = (_np(w) for w in head.dense.weights)
    logits = x.astype(np.float64) @ kernel + bias
    np.testing.assert_allclose(probs, _ref_activation(logits), rtol=1e-4, atol=1e-6)

    raw = SchemaHead(SCHEMA, output="logits")
    raw.build((None, 6))
    raw.dense.set_weights(head.dense.get_weights())
    np.testing.assert_allclose(_np(raw(x)), logits, rtol=1e-4, atol=1e-5)

    clone = SchemaHead.from_config(head.get_config())
    assert clone.schema == SCHEMA and clone.get_config() == head.get_config()
    with pytest.raises(InputError, match="probabilities"):
        SchemaHead(SCHEMA, output="softmax")


@pytest.mark.backend
def test_masked_pooling_matches_numpy():
    r = np.random.default_rng(2)
    h = r.normal(size=(3, 4, 5)).astype("float32")
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], "float32")
    ref_max = np.stack([h[i, mask[i] > 0].max(axis=0) for i in range(3)])
    ref_mean = np.stack([h[i, mask[i] > 0].mean(axis=0) for i in range(3)])
    np.testing.assert_allclose(_np(masked_max(h, mask)), ref_max, rtol=1e-6)
    np.testing.assert_allclose(_np(masked_mean(h, mask)), ref_mean, rtol=1e-5)
    empty = np.zeros((1, 4), "float32")
    assert np.all(_np(masked_max(h[:1], empty)) == 0) and np.all(_np(masked_mean(h[:1], empty)) == 0)


@pytest.mark.backend
def test_gated_attention_matches_numpy_and_ignores_padding():
    r = np.random.default_rng(3)
    h = r.normal(size=(2, 4, 6)).astype("float32")
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], "float32")
    layer = GatedAttentionPooling(5, return_attention=True)
    pooled, a = (_np(t) for t in layer([h, mask]))
    V, bV = _np(layer.V.kernel), _np(layer.V.bias)
    U, bU = _np(layer.U.kernel), _np(layer.U.bias)
    w, bw = _np(layer.w.kernel), _np(layer.w.bias)
    hh = h.astype(np.float64)
    s = (np.tanh(hh @ V + bV) * (1 / (1 + np.exp(-(hh @ U + bU))))) @ w + bw
    for i in range(2):
        valid = mask[i] > 0
        e = np.exp(s[i, valid, 0] - s[i, valid, 0].max())
        ref_a = e / e.sum()
        np.testing.assert_allclose(a[i, valid], ref_a, rtol=1e-4)
        assert np.all(a[i, ~valid] == 0)
        np.testing.assert_allclose(pooled[i], ref_a @ hh[i, valid], rtol=1e-4, atol=1e-6)


def _encoder(shape=(8, 8, 1)):
    inp = keras.Input(shape=shape)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, x, name="encoder")


@pytest.mark.backend
@pytest.mark.parametrize("pooling", ["max", "mean", "attention"])
def test_multi_image_pooling_padding_does_not_matter(pooling):
    r = np.random.default_rng(4)
    images = r.uniform(0, 1, (2, 3, 8, 8, 1)).astype("float32")
    mask = np.array([[1, 1, 0], [1, 0, 0]], "float32")
    layer = MultiImagePooling(_encoder(), pooling, attention_units=4)
    out = _np(layer([images, mask]))
    assert out.shape == (2, 4)
    junk = images.copy()
    junk[mask == 0] = 99.0  # change only the padding images
    np.testing.assert_allclose(_np(layer([junk, mask])), out, rtol=1e-5, atol=1e-6)
    # the first case alone, without padding and mask, gives the same vector
    np.testing.assert_allclose(_np(layer(images[:1, :2]))[0], out[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="pooling"):
        MultiImagePooling(_encoder(), "median")


@pytest.mark.backend
@pytest.mark.parametrize("pooling", ["max", "attention"])
def test_mask_that_does_not_fit_the_images_is_named(pooling):
    images = np.zeros((2, 3, 8, 8, 1), "float32")
    layer = MultiImagePooling(_encoder(), pooling, attention_units=4)
    for bad in (np.ones((2, 4), "float32"), np.ones((2, 2), "float32"), np.ones((3, 3), "float32"),
                np.ones((2, 3, 1), "float32")):
        with pytest.raises(InputError, match=re.escape(f"mask has shape {tuple(bad.shape)}") + r" but the images have shape "
                                             r"\(2, 3, 8, 8, 1\).*\(batch, n_images\) = \(2, 3\)"):
            layer([images, bad])
    assert _np(layer([images, np.ones((2, 3), "float32")])).shape == (2, 4)  # the right mask still works
    # a functional model wired with mismatched Inputs fails when it is built, with the same message
    with pytest.raises(InputError, match=r"mask has shape \(None, 4\)"):
        MultiImagePooling(_encoder(), pooling)([keras.Input((3, 8, 8, 1)), keras.Input((4,))])
    # the pure pooling functions check too
    with pytest.raises(InputError, match="mask has shape"):
        masked_mean(np.zeros((2, 3, 5), "float32"), np.ones((2, 4), "float32"))


# ---------------------------------------------------------------- save / load
_LOADER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import labelwise, keras
    out = {}
    data = np.load(sys.argv[1])
    for path in sys.argv[2:]:
        m = keras.saving.load_model(path)
        x = [data["images"], data["mask"]] if len(m.inputs) == 2 else data["single"]
        pred = m.predict(x, verbose=0)
        np.save(path + ".pred.npy", pred)
        y = data["y"] if type(m.loss).__name__ == "SchemaLoss" else data["y"][:, :8]
        out[path] = {"loss": type(m.loss).__name__, "value": float(m.loss(y, pred)), "loss_config": m.loss.get_config(),
                     "schema": m.get_layer("schema_head").schema.to_dict()}
    print("RESULT" + json.dumps(out))
""")


def _case_model(loss):
    images = keras.Input(shape=(3, 8, 8, 1), name="images")
    mask = keras.Input(shape=(3,), name="mask")
    x = MultiImagePooling(_encoder(), "attention", attention_units=4, name="case_pooling")([images, mask])
    x = SchemaHead(SCHEMA, output="logits" if getattr(loss, "from_logits", False) else "probabilities")(x)
    model = keras.Model([images, mask], x)
    model.compile(optimizer="adam", loss=loss)
    return model


@pytest.mark.slow
def test_models_save_and_load_in_a_fresh_process(tmp_path):
    """Registration works through the import hook alone: the child does `import labelwise, keras`."""
    r = np.random.default_rng(5)
    images = r.uniform(0, 255, (4, 3, 8, 8, 1)).astype("float32")
    mask = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 0]], "float32")
    ind = r.integers(0, 2, (4, 3))
    y = SCHEMA.complete(np.concatenate([ind, np.eye(3)[[0, 1, 2, 0]], np.eye(2)[[0, 1, 1, 0]]], 1).astype("float32"))
    pos, neg = L.balanced_weights(y[:, :3], on_missing="clamp")
    losses = {
        "wbce": L.WeightedBinaryCrossentropy(pos_weight=[1.0] * 8, neg_weight=0.5),
        "focal": L.BinaryFocalLoss(alpha=0.25, gamma=[2.0] * 8, from_logits=True),
        "asl": L.AsymmetricLoss(from_logits=True),
        "schema": L.SchemaLoss(SCHEMA, "weighted", pos_weight=pos, neg_weight=neg, group_weights={"view": 2.0}),
    }
    paths, preds, configs = [], {}, {}
    for name, loss in losses.items():
        model = _case_model(loss)
        # No fit: the random weights are as good a test of the weights' round trip, and
        # training four models would dominate this file's runtime.
        path = str(tmp_path / f"{name}.keras")
        model.save(path)
        paths.append(path)
        preds[path] = model.predict([images, mask], verbose=0)
        yt = y if name == "schema" else y[:, :8]
        configs[path] = (type(loss).__name__, loss.get_config(), float(_np(loss(yt, preds[path]))))
    # and a build_model() model: ImagePreprocess + nested backbone + SchemaHead
    from labelwise.blocks.models import build_model

    single = images[:, 0]
    model = build_model(SCHEMA, "small_cnn", input_shape=(8, 8, 1), weights=None, head_output="logits")
    model.compile(optimizer="adam", loss=L.SchemaLoss(SCHEMA, "asymmetric", gamma_neg=2.0, from_logits=True))
    path = str(tmp_path / "built.keras")
    model.save(path)
    paths.append(path)
    preds[path] = model.predict(single, verbose=0)
    configs[path] = ("SchemaLoss", model.loss.get_config(), float(_np(model.loss(y, preds[path]))))
    np.savez(tmp_path / "data.npz", images=images, mask=mask, y=y, single=single)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", _LOADER, str(tmp_path / "data.npz"), *paths],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    for path in paths:
        np.testing.assert_allclose(np.load(path + ".pred.npy"), preds[path], rtol=1e-5, atol=1e-6)
        assert result[path]["loss"] == configs[path][0]
        assert result[path]["loss_config"] == json.loads(json.dumps(configs[path][1]))
        assert result[path]["value"] == pytest.approx(configs[path][2], rel=1e-5)
        assert LabelSchema.from_dict(result[path]["schema"]) == SCHEMA
