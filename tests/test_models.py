"""build_model: backbones, preprocessing inside the model, grayscale, offline weights, fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from labelwise import LabelSchema  # noqa: E402
from labelwise.blocks import models as M  # noqa: E402
from labelwise.errors import InputError, LabelwiseError  # noqa: E402

SCHEMA = LabelSchema(["a", "b"], {"view": ["PA", "AP"]}, none="none")


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


@pytest.mark.backend
@pytest.mark.parametrize("module,mode", [("vgg16", "caffe"), ("densenet", "torch"), ("resnet_v2", "tf"),
                                         ("efficientnet_v2", "none")])
def test_preprocess_equals_keras_preprocess_input(module, mode):
    x = np.random.default_rng(0).uniform(0, 255, (2, 5, 5, 3)).astype("float32")
    ref = getattr(keras.applications, module).preprocess_input(x.copy())
    np.testing.assert_allclose(_np(M.preprocess(x, mode)), _np(ref), rtol=1e-5, atol=1e-4)


@pytest.mark.backend
def test_grayscale_is_repeated_to_rgb():
    g = np.random.default_rng(1).uniform(0, 255, (1, 4, 4, 1)).astype("float32")
    out = _np(M.ImagePreprocess("tf", to_rgb=True)(g))
    assert out.shape == (1, 4, 4, 3)
    for c in range(3):
        np.testing.assert_allclose(out[..., c], g[..., 0] / 127.5 - 1, rtol=1e-6, atol=1e-6)


@pytest.mark.backend
def test_small_cnn_model_for_mnist_sized_images():
    model = M.build_model(SCHEMA, "small_cnn", input_shape=(28, 28, 1), weights=None, dropout=0.1)
    assert [l.name for l in model.layers] == ["image", "preprocess", "backbone", "dropout", "schema_head"]
    x = np.random.default_rng(2).uniform(0, 255, (3, 28, 28, 1)).astype("float32")
    p = model.predict(x, verbose=0)
    assert p.shape == (3, SCHEMA.n_outputs)
    np.testing.assert_allclose(p[:, 2:4].sum(axis=1), 1.0, rtol=1e-5)
    assert model.get_layer("schema_head").schema == SCHEMA


@pytest.mark.backend
@pytest.mark.parametrize("name", sorted(n for n in M.BACKBONES if n != "small_cnn"))
def test_every_backbone_preprocesses_like_its_keras_module(name):
    """The table's mode reproduces the backbone module's own preprocess_input (the reference)."""
    spec = M.BACKBONES[name]
    x = np.random.default_rng(7).uniform(0, 255, (2, 3, 3, 3)).astype("float32")
    ref = getattr(keras.applications, spec.module).preprocess_input(x.copy())
    np.testing.assert_allclose(_np(M.preprocess(x, spec.preprocess)), _np(ref), rtol=1e-5, atol=1e-4)
    assert getattr(keras.applications, spec.constructor).__module__.endswith("." + spec.module)


def test_every_keras_applications_constructor_can_be_named(monkeypatch):
    constructors = {n for n in dir(keras.applications) if n[:1].isupper() and callable(getattr(keras.applications, n))}
    assert constructors <= {b.constructor for b in M.BACKBONES.values()}
    assert M.backbone_spec("ConvNeXt-Base") is M.BACKBONES["convnext_base"]
    assert M.backbone_spec("ResNet152V2") is M.BACKBONES["resnet152v2"]
    # a constructor the table lacks (as one a newer Keras adds would be) is still found, its
    # preprocessing detected by probing the module's preprocess_input
    monkeypatch.delitem(M.BACKBONES, "convnext_base")
    monkeypatch.delitem(M.BACKBONES, "resnet152v2")
    assert M.backbone_spec("convnext_base") == M.Backbone("convnext", "ConvNeXtBase", "none")
    assert M.backbone_spec("resnet152v2") == M.Backbone("resnet_v2", "ResNet152V2", "tf")


@pytest.mark.parametrize("backbone,size,channels", [("densenet121", 32, 1), ("vgg16", 32, 3),
                                                    ("mobilenetv3small", 32, 3), ("nasnetmobile", 32, 3),
                                                    ("efficientnetb1", 32, 1)])
@pytest.mark.slow
def test_keras_applications_backbones_build_without_weights(backbone, size, channels):
    model = M.build_model(SCHEMA, backbone, input_shape=(size, size, 3), channels=channels, weights=None,
                          head_output="logits")
    spec = M.BACKBONES[backbone]
    assert model.get_layer("preprocess").mode == spec.preprocess
    assert model.input_shape == (None, size, size, channels)
    assert model.get_layer("backbone").input_shape[-1] == 3  # grayscale repeated for ImageNet backbones
    x = np.random.default_rng(3).uniform(0, 255, (2, size, size, channels)).astype("float32")
    out = _np(model(x, training=False))  # eager: tracing a DenseNet for predict() costs seconds
    assert out.shape == (2, SCHEMA.n_outputs) and np.all(np.isfinite(out))


def test_offline_imagenet_weights_give_a_clear_error(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/.../densenet121_notop.h5: None -- "
                        "[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.applications, "DenseNet121", offline)
    with pytest.raises(M.WeightsUnavailable) as info:
        M.build_model(SCHEMA, "densenet121", input_shape=(64, 64, 3))
    msg = str(info.value)
    assert isinstance(info.value, LabelwiseError)
    assert "densenet121" in msg and ".keras" in msg and "weights=None" in msg and "internet" in msg

    def corrupt(*args, **kwargs):
        raise OSError("Unable to open file (truncated file)")

    monkeypatch.setattr(keras.applications, "DenseNet121", corrupt)
    with pytest.raises(OSError, match="truncated"):  # not mistaken for being offline
        M.build_model(SCHEMA, "densenet121", input_shape=(64, 64, 3))


def test_bad_backbone_requests_are_explained(tmp_path):
    with pytest.raises(InputError, match="did you mean 'densenet121'"):
        M.build_model(SCHEMA, "densnet121", weights=None)
    with pytest.raises(InputError, match=r"unknown backbone 'resnet999'.*known: .*'convnext_base'.*'resnet152v2'"):
        M.build_model(SCHEMA, "resnet999", weights=None)
    with pytest.raises(InputError, match="at least 75x75"):
        M.build_model(SCHEMA, "inceptionv3", input_shape=(32, 32, 3), weights=None)
    with pytest.raises(InputError, match="does not exist"):
        M.build_model(SCHEMA, "vgg16", input_shape=(32, 32, 3), weights=str(tmp_path / "missing.h5"))
    with pytest.raises(InputError, match="no pretrained weights"):
        M.build_model(SCHEMA, "small_cnn", input_shape=(28, 28, 1))


def _bn_layers(layer):
    return [l for l in M._all_layers(layer) if isinstance(l, keras.layers.BatchNormalization)]


def test_freeze_and_unfreeze_keep_batchnorm_frozen():
    model = M.build_model(SCHEMA, "densenet121", input_shape=(32, 32, 3), weights=None)
    head = model.get_layer("schema_head")
    M.freeze_backbone(model)
    assert {id(w) for w in model.trainable_weights} == {id(w) for w in head.trainable_weights}
    M.unfreeze_top(model, 4)
    backbone = model.get_layer("backbone")
    trainable = [l for l in M._all_layers(backbone) if l.trainable and l.weights and l is not backbone]
    assert len(trainable) == 4 and not any(isinstance(l, keras.layers.BatchNormalization) for l in trainable)
    assert all(not bn.trainable for bn in _bn_layers(backbone))
    assert len(model.trainable_weights) == len(head.trainable_weights) + sum(len(l.trainable_weights)
                                                                            for l in trainable)
    M.unfreeze_top(model)  # everything but BatchNormalization
    assert all(not bn.trainable for bn in _bn_layers(backbone))
    convs = [l for l in M._all_layers(backbone) if isinstance(l, keras.layers.Conv2D)]
    assert convs and all(l.trainable for l in convs)


def test_unfrozen_training_keeps_batchnorm_statistics():
    """Fine-tuning changes the unfrozen conv but neither the frozen conv nor any BN statistics."""
    model = M.build_model(SCHEMA, "small_cnn", input_shape=(12, 12, 1), weights=None)
    M.unfreeze_top(model, 1)
    backbone = model.get_layer("backbone")
    before = {w.path: _np(w).copy() for w in backbone.weights}
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy")
    r = np.random.default_rng(4)
    x = r.uniform(0, 255, (8, 12, 12, 1)).astype("float32")
    y = np.concatenate([r.integers(0, 2, (8, 2)), np.eye(2)[r.integers(0, 2, 8)]], 1).astype("float32")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    after = {w.path: _np(w) for w in backbone.weights}
    changed = {p for p in before if not np.allclose(before[p], after[p])}
    assert changed == {w.path for w in backbone.get_layer("conv3").weights}


def test_case_model_pools_images_of_a_case():
    model = M.build_case_model(SCHEMA, "small_cnn", n_images=3, image_shape=(12, 12, 1), weights=None,
                               case_pooling="mean")
    r = np.random.default_rng(5)
    images = r.uniform(0, 255, (2, 3, 12, 12, 1)).astype("float32")
    mask = np.array([[1, 1, 0], [1, 1, 1]], "float32")
    out = model.predict([images, mask], verbose=0)
    assert out.shape == (2, SCHEMA.n_outputs)
    M.freeze_backbone(model)  # finds the backbone inside the case encoder
    assert len(model.trainable_weights) == len(model.get_layer("schema_head").trainable_weights)
