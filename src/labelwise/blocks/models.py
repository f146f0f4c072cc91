"""Ready-made models: a pretrained ``keras.applications`` backbone (or a small CNN) + a
:class:`~labelwise.blocks.layers.SchemaHead`.

``build_model(schema, "densenet121")`` gives ``keras.Model`` with layers named
``"preprocess"`` (the backbone's own ``preprocess_input``, so raw 0-255 pixels go in, and
grayscale is repeated to 3 channels for ImageNet backbones), ``"backbone"``, optionally
``"dropout"``, and ``"schema_head"``. It is an ordinary model: compile it with any loss from
:mod:`labelwise.blocks.losses` (or Keras').

Transfer learning: :func:`freeze_backbone` trains only the head; :func:`unfreeze_top` makes
the top ``n`` backbone layers trainable again. BatchNormalization layers stay frozen in both:
in Keras 3 a BN layer with ``trainable = False`` runs in inference mode (it uses and keeps its
moving mean/variance, even inside ``fit``), which is what fine-tuning on a small dataset needs;
the moving statistics from ImageNet would otherwise be overwritten by a few small batches.
Recompile after changing ``trainable`` (with a lower learning rate when fine-tuning).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.error import URLError

import keras
from keras import ops

from ..errors import InputError, LabelwiseError
from .layers import MultiImagePooling, SchemaHead
from ..labels.schema import LabelSchema, load_schema

__all__ = ["BACKBONES", "Backbone", "ImagePreprocess", "backbone_spec", "detect_preprocess", "build_backbone",
           "build_model", "build_case_model", "small_cnn", "freeze_backbone", "unfreeze_top", "WeightsUnavailable"]

_PACKAGE = "labelwise"


class WeightsUnavailable(LabelwiseError):
    """Pretrained weights could not be downloaded (no internet) or read."""


@dataclass(frozen=True)
class Backbone:
    """How to build one backbone: ``keras.applications.<module>.<constructor>`` and the
    preprocessing mode its ``preprocess_input`` uses ("caffe", "torch", "tf", or "none" when
    the model rescales inside itself; "scale" = x / 255 for :func:`small_cnn`)."""

    module: str
    constructor: str
    preprocess: str
    min_size: int = 32


BACKBONES: dict[str, Backbone] = {
    "small_cnn": Backbone("", "small_cnn", "scale", 1),
    "vgg16": Backbone("vgg16", "VGG16", "caffe"),
    "vgg19": Backbone("vgg19", "VGG19", "caffe"),
    "resnet50": Backbone("resnet", "ResNet50", "caffe"),
    "resnet101": Backbone("resnet", "ResNet101", "caffe"),
    "resnet152": Backbone("resnet", "ResNet152", "caffe"),
    "resnet50v2": Backbone("resnet_v2", "ResNet50V2", "tf"),
    "resnet101v2": Backbone("resnet_v2", "ResNet101V2", "tf"),
    "densenet121": Backbone("densenet", "DenseNet121", "torch"),
    "densenet169": Backbone("densenet", "DenseNet169", "torch"),
    "densenet201": Backbone("densenet", "DenseNet201", "torch"),
    "mobilenet": Backbone("mobilenet", "MobileNet", "tf"),
    "mobilenetv2": Backbone("mobilenet_v2", "MobileNetV2", "tf"),
    "mobilenetv3small": Backbone("mobilenet_v3", "MobileNetV3Small", "none"),
    "mobilenetv3large": Backbone("mobilenet_v3", "MobileNetV3Large", "none"),
    "resnet152v2": Backbone("resnet_v2", "ResNet152V2", "tf"),
    **{f"efficientnetb{i}": Backbone("efficientnet", f"EfficientNetB{i}", "none") for i in range(8)},
    **{f"efficientnetv2{v}": Backbone("efficientnet_v2", f"EfficientNetV2{v.upper()}", "none")
       for v in ("b0", "b1", "b2", "b3", "s", "m", "l")},
    **{f"convnext_{v.lower()}": Backbone("convnext", f"ConvNeXt{v}", "none")
       for v in ("Tiny", "Small", "Base", "Large", "XLarge")},
    "nasnetmobile": Backbone("nasnet", "NASNetMobile", "tf"),
    "nasnetlarge": Backbone("nasnet", "NASNetLarge", "tf"),
    "inceptionv3": Backbone("inception_v3", "InceptionV3", "tf", 75),
    "xception": Backbone("xception", "Xception", "tf", 71),
    "inception_resnet_v2": Backbone("inception_resnet_v2", "InceptionResNetV2", "tf", 75),
}
"""Every ``keras.applications`` constructor (Keras 3.x has 40) plus ``small_cnn``. A constructor a
newer Keras adds is found too, under any spelling of its name (see :func:`backbone_spec`)."""

_CAFFE_MEAN = (103.939, 116.779, 123.68)  # BGR
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)
PREPROCESS_MODES = ("caffe", "torch", "tf", "scale", "none")


def preprocess(x, mode: str, *, to_rgb: bool = False):
    """The ``keras.applications`` ``preprocess_input`` formulas on 0-255 pixels (channels last).

    caffe: RGB -> BGR, minus the ImageNet BGR mean; torch: ``(x / 255 - mean) / std``;
    tf: ``x / 127.5 - 1``; scale: ``x / 255``; none: unchanged. ``to_rgb`` first repeats a
    single grayscale channel to three.
    """
    x = ops.cast(x, "float32")
    if to_rgb:
        x = ops.concatenate([x, x, x], axis=-1)
    if mode == "caffe":
        x = ops.flip(x, axis=-1) - ops.convert_to_tensor(_CAFFE_MEAN, dtype=x.dtype)
    elif mode == "torch":
        x = (x / 255.0 - ops.convert_to_tensor(_TORCH_MEAN, dtype=x.dtype)) / ops.convert_to_tensor(
            _TORCH_STD, dtype=x.dtype)
    elif mode == "tf":
        x = x / 127.5 - 1.0
    elif mode == "scale":
        x = x / 255.0
    elif mode != "none":
        raise InputError(f"unknown preprocessing mode {mode!r}; one of {list(PREPROCESS_MODES)}")
    return x


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ImagePreprocess(keras.layers.Layer):
    """:func:`preprocess` as a layer, so the model takes raw 0-255 pixels (and saves with it)."""

    def __init__(self, mode: str = "none", to_rgb: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        if mode not in PREPROCESS_MODES:
            raise InputError(f"unknown preprocessing mode {mode!r}; one of {list(PREPROCESS_MODES)}")
        self.mode = mode
        self.to_rgb = bool(to_rgb)

    def call(self, inputs):
        return preprocess(inputs, self.mode, to_rgb=self.to_rgb)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 3) if self.to_rgb else tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode, "to_rgb": self.to_rgb}


def small_cnn(input_shape: Sequence[int], *, filters: Sequence[int] = (32, 64, 128), pooling: str = "avg",
              name: str = "backbone") -> keras.Model:
    """A small conv net for tiny images (e.g. 28x28 MNIST): per block Conv3x3-BN-ReLU then
    2x2 max-pool (skipped when the map is already small), then global pooling."""
    inputs = keras.Input(shape=tuple(input_shape))
    x = inputs
    h, w = input_shape[0], input_shape[1]
    for i, f in enumerate(filters):
        x = keras.layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
        # momentum 0.9, not Keras' 0.99: on short runs (a few hundred steps) 0.99 leaves the moving
        # statistics near their init and inference collapses (14% MNIST accuracy in the demo).
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i + 1}")(x)
        x = keras.layers.Activation("relu", name=f"relu{i + 1}")(x)
        if i < len(filters) - 1 and (h is None or min(h, w) >= 4):
            x = keras.layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
            h, w = (None, None) if h is None else (h // 2, w // 2)
    x = _global_pool(x, pooling)
    return keras.Model(inputs, x, name=name)


def _global_pool(x, pooling: str | None):
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    if pooling is None:
        return x
    raise InputError(f"pooling must be 'avg', 'max' or None, got {pooling!r}")


def _squash(name: str) -> str:
    """Spelling-insensitive key: "ConvNeXt-Base", "convnext_base" and "convnextbase" agree."""
    return name.lower().replace("-", "").replace("_", "")


def detect_preprocess(module: str) -> str:
    """The :data:`PREPROCESS_MODES` entry that ``keras.applications.<module>.preprocess_input``
    computes, found by running it on a probe image and comparing with each formula.

    Why probe rather than keep a table only: a constructor missing from :data:`BACKBONES` (added
    in a newer Keras) still gets the preprocessing its weights were trained with.
    """
    import numpy as np

    fn = getattr(getattr(keras.applications, module, None), "preprocess_input", None)
    if fn is None:
        raise InputError(f"keras.applications.{module} has no preprocess_input")
    probe = np.linspace(0.0, 255.0, 12, dtype="float32").reshape(1, 2, 2, 3)
    ref = np.asarray(ops.convert_to_numpy(fn(probe.copy())), dtype="float64")
    for mode in ("none", "tf", "torch", "caffe"):
        ours = np.asarray(ops.convert_to_numpy(preprocess(probe, mode)), dtype="float64")
        if ours.shape == ref.shape and np.allclose(ours, ref, rtol=1e-5, atol=1e-3):
            return mode
    raise InputError(f"keras.applications.{module}.preprocess_input is none of the known modes "
                     f"{list(PREPROCESS_MODES)}; labelwise cannot put it inside the model")


def backbone_spec(backbone: str) -> Backbone:
    """The :class:`Backbone` for a name: a :data:`BACKBONES` key, any spelling of one
    ("ConvNeXtBase", "resnet152-v2"), or the name of any other ``keras.applications``
    constructor (its preprocessing found by :func:`detect_preprocess`). Unknown names raise an
    :class:`InputError` listing the valid ones."""
    if not isinstance(backbone, str):
        raise InputError(f"backbone must be a name such as 'densenet121', got {type(backbone).__name__}")
    key = backbone.lower().replace("-", "_")
    if key in BACKBONES:
        return BACKBONES[key]
    squashed = {_squash(k): v for k, v in BACKBONES.items()}
    if _squash(backbone) in squashed:
        return squashed[_squash(backbone)]
    constructors = {_squash(n): n for n in dir(keras.applications) if n[:1].isupper()}
    if _squash(backbone) in constructors:
        name = constructors[_squash(backbone)]
        module = getattr(keras.applications, name).__module__.rsplit(".", 1)[-1]
        return Backbone(module, name, detect_preprocess(module))
    import difflib

    close = difflib.get_close_matches(key, BACKBONES, n=1)
    raise InputError(f"unknown backbone {backbone!r}" + (f"; did you mean {close[0]!r}?" if close else "")
                     + f" (known: {sorted(BACKBONES)})")



def build_backbone(backbone: str, input_shape: Sequence[int], *, weights: str | None = "imagenet",
                   pooling: str | None = "avg", name: str = "backbone") -> keras.Model:
    """The backbone alone (no preprocessing, no head): 3-channel input unless ``small_cnn``.

    ``weights`` is "imagenet" (downloaded by Keras on first use into ``~/.keras/models``), None
    (random init) or a path to a weights file. Offline, the download failure becomes a
    :class:`WeightsUnavailable` error that says what to do.
    """
    spec = backbone_spec(backbone)
    input_shape = tuple(int(s) if s is not None else None for s in input_shape)
    if any(s is not None and s < spec.min_size for s in input_shape[:2]):
        raise InputError(f"backbone {backbone!r} needs images of at least {spec.min_size}x{spec.min_size}; "
                         f"got {input_shape[0]}x{input_shape[1]}")
    if spec.constructor == "small_cnn":
        if weights not in (None, "none"):
            if weights == "imagenet" or not Path(str(weights)).exists():
                raise InputError(f"small_cnn has no pretrained weights; pass weights=None (got {weights!r})")
        model = small_cnn(input_shape, pooling=pooling or "avg", name=name)
        if weights not in (None, "none"):
            model.load_weights(str(weights))
        return model
    if weights not in (None, "imagenet") and not Path(str(weights)).exists():
        raise InputError(f"weights file {weights} does not exist; pass 'imagenet', None or an existing file")
    ctor: Callable[..., keras.Model] = getattr(keras.applications, spec.constructor)
    try:
        model = ctor(include_top=False, weights=weights, input_shape=input_shape, pooling=pooling)
    except LabelwiseError:
        raise
    except Exception as e:  # Keras raises a bare Exception("URL fetch failure on ...") offline
        text = str(e)
        # Only network failures: a corrupt cached file must keep its own error.
        if weights == "imagenet" and ("URL fetch failure" in text or isinstance(e, (URLError, ConnectionError,
                                                                                      TimeoutError))):
            import os

            cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
            raise WeightsUnavailable(
                f"could not download the ImageNet weights of {backbone!r} ({spec.constructor}): {text.splitlines()[0]}. "
                f"Connect to the internet once (Keras caches the file in {cache}), or copy the weights file "
                f"(the 'no top' .h5 of {spec.constructor} from keras.applications) into {cache}, or pass "
                "weights=<path to a local weights file>, or weights=None to train from scratch"
            ) from None
        raise
    model.name = name
    return model


def _head_dtype() -> str | None:
    """float32 for the head under a mixed policy (its logits and probabilities need the range;
    the features come in float16/bfloat16 and are cast up), else the global policy."""
    return "float32" if keras.config.dtype_policy().name.startswith("mixed") else None


def build_model(schema: LabelSchema | Any, backbone: str = "densenet121", *,
                input_shape: Sequence[int] = (224, 224, 3), weights: str | None = "imagenet",
                head_output: str = "probabilities", dropout: float = 0.0, pooling: str = "avg",
                channels: int | None = None, powerset: Any = None, name: str | None = None) -> keras.Model:
    """Image model: ``Input(0-255 pixels) -> preprocess -> backbone -> [dropout] -> head``.

    ``backbone`` names any ``keras.applications`` model (``"convnext_base"``,
    ``"efficientnetb3"``, ``"ResNet152V2"``, ...; see :func:`backbone_spec`) or ``"small_cnn"``,
    and the matching ``preprocess_input`` goes inside the model. ``channels`` overrides ``input_shape[-1]``; 1-channel (grayscale) input
    is repeated to 3 channels for ImageNet backbones. The head is a :class:`SchemaHead`
    (``head_output`` "probabilities" or "logits"), or, with ``powerset`` (a fitted
    :class:`labelwise.labels.powerset.LabelPowerset`), a softmax over label combinations: the
    :class:`~labelwise.blocks.layers.PowersetHead` named ``"powerset_head"``, which keeps the
    combinations in the saved model (``LabelPowerset.from_model(model)`` decodes it). A bare
    class count gives a plain Dense head that cannot decode on its own.
    """
    schema = load_schema(schema)
    spec = backbone_spec(backbone)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise InputError(f"input_shape must be (height, width, channels), got {input_shape}")
    if channels is not None:
        input_shape = (*input_shape[:2], int(channels))
    c = input_shape[2]
    if c not in (1, 3) and spec.constructor != "small_cnn":
        raise InputError(f"backbone {backbone!r} takes 1 (grayscale) or 3 (RGB) channels, got {c}")
    to_rgb = c == 1 and spec.constructor != "small_cnn"
    inputs = keras.Input(shape=input_shape, name="image")
    x = ImagePreprocess(spec.preprocess, to_rgb=to_rgb, name="preprocess")(inputs)
    net = build_backbone(backbone, (*input_shape[:2], 3 if to_rgb else c), weights=weights, pooling=pooling)
    x = net(x)
    if dropout:
        x = keras.layers.Dropout(float(dropout), name="dropout")(x)
    if powerset is not None:
        from ..labels.powerset import LabelPowerset
        from .layers import build_powerset_head

        if isinstance(powerset, LabelPowerset) and powerset.schema != schema:
            raise InputError("the powerset was fitted for a different schema than the model's; fit it with "
                             "LabelPowerset(schema).fit(y_train) for this schema")
        x = build_powerset_head(powerset)(x)
    else:
        x = SchemaHead(schema, output=head_output, name="schema_head", dtype=_head_dtype())(x)
    return keras.Model(inputs, x, name=name or f"labelwise_{backbone}")


def build_case_model(schema: LabelSchema | Any, backbone: str = "densenet121", *, n_images: int | None = None,
                     image_shape: Sequence[int] = (224, 224, 3), weights: str | None = "imagenet",
                     case_pooling: str = "max", attention_units: int = 128, head_output: str = "probabilities",
                     dropout: float = 0.0, name: str | None = None) -> keras.Model:
    """Multi-image (case) model: inputs ``images (batch, n_images, H, W, C)`` and
    ``mask (batch, n_images)``; every image goes through preprocess + backbone, features are
    pooled by :class:`MultiImagePooling` (``case_pooling``), then the :class:`SchemaHead`."""
    schema = load_schema(schema)
    spec = backbone_spec(backbone)
    image_shape = tuple(image_shape)
    c = image_shape[2]
    to_rgb = c == 1 and spec.constructor != "small_cnn"
    enc_in = keras.Input(shape=image_shape)
    x = ImagePreprocess(spec.preprocess, to_rgb=to_rgb, name="preprocess")(enc_in)
    x = build_backbone(backbone, (*image_shape[:2], 3 if to_rgb else c), weights=weights, pooling="avg")(x)
    encoder = keras.Model(enc_in, x, name="encoder")
    images = keras.Input(shape=(n_images, *image_shape), name="images")
    mask = keras.Input(shape=(n_images,), name="mask")
    x = MultiImagePooling(encoder, case_pooling, attention_units=attention_units, name="case_pooling")([images, mask])
    if dropout:
        x = keras.layers.Dropout(float(dropout), name="dropout")(x)
    x = SchemaHead(schema, output=head_output, name="schema_head", dtype=_head_dtype())(x)
    return keras.Model([images, mask], x, name=name or f"labelwise_case_{backbone}")


# --------------------------------------------------------------- fine-tuning
def _backbone_of(model: keras.Model) -> keras.layers.Layer:
    try:
        return model.get_layer("backbone")
    except ValueError:
        for layer in model.layers:  # a case model: the backbone sits inside the encoder
            inner = getattr(layer, "encoder", None) or (layer if isinstance(layer, keras.Model) else None)
            if inner is not None:
                try:
                    return inner.get_layer("backbone")
                except (ValueError, AttributeError):
                    pass
        raise InputError(f"model {model.name!r} has no layer named 'backbone'; build it with labelwise.build_model"
                         ) from None


def _freeze_batchnorm(layer: keras.layers.Layer) -> None:
    for sub in _all_layers(layer):
        if isinstance(sub, keras.layers.BatchNormalization):
            sub.trainable = False


def _all_layers(layer):
    yield layer
    for sub in getattr(layer, "layers", ()) or ():
        yield from _all_layers(sub)


def freeze_backbone(model: keras.Model) -> keras.Model:
    """Make the backbone non-trainable (head-only training). Recompile afterwards."""
    _backbone_of(model).trainable = False
    return model


def unfreeze_top(model: keras.Model, n_layers: int | None = None) -> keras.Model:
    """Make the top ``n_layers`` backbone layers that hold weights (BatchNormalization not
    counted) trainable, all others frozen; ``None`` unfreezes them all. BatchNormalization layers
    always stay frozen (inference mode, see the module docstring) -- unlike
    ``backbone.trainable = True``, which would unfreeze them too. ``n_layers <= 0`` freezes the
    whole backbone. Recompile afterwards."""
    backbone = _backbone_of(model)
    backbone.trainable = True
    layers = [l for l in _all_layers(backbone) if l is not backbone and not getattr(l, "layers", None)]
    weighted = [l for l in layers if l.weights and not isinstance(l, keras.layers.BatchNormalization)]
    if n_layers is None:
        n_layers = len(weighted)
    keep = set(map(id, weighted[len(weighted) - n_layers:])) if n_layers > 0 else set()
    for layer in layers:
        layer.trainable = id(layer) in keep
    _freeze_batchnorm(backbone)
    if n_layers <= 0:
        backbone.trainable = False
    return model


# Keras objects of the modules that could not be imported while this one was half-loaded
# (a first `import keras` from here) register now; see labelwise._register_keras_objects.
from .. import _register_keras_objects  # noqa: E402

_register_keras_objects()
