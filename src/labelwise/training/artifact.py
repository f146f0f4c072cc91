"""The one model artifact: a ``.keras`` file that carries everything needed to predict.

:func:`save` appends a pass-through :class:`LabelwiseMetadata` layer to the model's output;
its ``get_config`` holds the label schema, the decision thresholds, the decision policy
(calibration + rule, :class:`labelwise.decide.DecisionPolicy`; absent from artifacts written
before it existed, whose thresholds then decide), the preprocessing settings (image size,
channels) and the labelwise version. So the artifact is a plain Keras
model file: ``keras.saving.load_model("model.keras")`` opens it with no ``custom_objects``
(``import labelwise`` first, which registers the layer), and :func:`load` returns the model
with its metadata unpacked.

The layer returns its input unchanged: ``model.predict`` gives the head's outputs exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import keras

from ..decide.policy import as_policy
from ..errors import InputError
from ..io import atomic_path
from ..labels.schema import LabelSchema

__all__ = ["LabelwiseMetadata", "Preprocessing", "save", "load", "attach_metadata", "metadata_of", "as_policy",
           "METADATA_LAYER"]

METADATA_LAYER = "labelwise_metadata"


@dataclass(frozen=True)
class Preprocessing:
    """How raw images become model input: resized to ``image_size`` (h, w) with ``channels``,
    pixels float32 in 0-255 (the model normalises them itself).

    For a case model (one input of stacks, see :func:`labelwise.blocks.models.build_case_model`) every
    slice of a stack is prepared like one image; ``max_slices`` (None: keep all) is the number
    of central slices a longer stack is cut to, as :func:`labelwise.data.stacks.pad_stack` cuts.
    It is written only when set, so artifacts without it read as before.
    """

    image_size: tuple[int, int]
    channels: int
    pixel_range: tuple[float, float] = (0.0, 255.0)
    extra: Mapping[str, Any] = field(default_factory=dict)
    max_slices: int | None = None

    def __post_init__(self) -> None:
        if self.max_slices is not None and int(self.max_slices) < 1:
            raise InputError(f"max_slices must be at least 1 (or None to keep every slice), got {self.max_slices}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form stored in the artifact (``max_slices`` only when set)."""
        d = {"image_size": list(self.image_size), "channels": int(self.channels),
             "pixel_range": list(self.pixel_range), **dict(self.extra)}
        if self.max_slices is not None:
            d["max_slices"] = int(self.max_slices)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Preprocessing":
        """Inverse of :meth:`to_dict`; unknown keys are kept in ``extra``."""
        d = dict(d)
        size = tuple(int(s) for s in d.pop("image_size"))
        channels = int(d.pop("channels"))
        pixel_range = tuple(float(v) for v in d.pop("pixel_range", (0.0, 255.0)))
        max_slices = d.pop("max_slices", None)
        return cls(size, channels, pixel_range, d,  # type: ignore[arg-type]
                   None if max_slices is None else int(max_slices))


@keras.saving.register_keras_serializable(package="labelwise")
class LabelwiseMetadata(keras.layers.Layer):
    """Identity layer whose config carries the artifact's metadata (schema, thresholds, decision
    policy, preprocessing, version). ``call(x) = x``."""

    def __init__(self, schema: Mapping[str, Any], thresholds: Mapping[str, Any] | None = None,
                 preprocessing: Mapping[str, Any] | None = None, version: str | None = None,
                 info: Mapping[str, Any] | None = None, policy: Mapping[str, Any] | None = None, **kwargs):
        kwargs.setdefault("name", METADATA_LAYER)
        super().__init__(**kwargs)
        self.schema_config = dict(schema.to_dict() if isinstance(schema, LabelSchema) else schema)
        self.thresholds = None if thresholds is None else dict(thresholds)
        self.preprocessing = None if preprocessing is None else dict(preprocessing)
        if version is None:
            from .. import __version__ as version
        self.version = version
        self.info = dict(info or {})
        self.policy = None if policy is None else dict(policy)

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    @property
    def schema(self) -> LabelSchema:
        return LabelSchema.from_dict(self.schema_config)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(schema=self.schema_config, thresholds=self.thresholds, preprocessing=self.preprocessing,
                      version=self.version, info=self.info)
        if self.policy is not None:  # only when set: artifacts without a policy keep their old config
            config["policy"] = self.policy
        return config


def _is_policy(obj: Any) -> bool:
    return type(obj).__name__ == "DecisionPolicy" and hasattr(obj, "calibration")


def _thresholds_dict(thresholds: Any) -> dict[str, Any] | None:
    if thresholds is None:
        return None
    if _is_policy(thresholds):  # old readers see the policy's per-label thresholds (None for set-level rules)
        return _thresholds_dict(thresholds.thresholds)
    if hasattr(thresholds, "to_dict"):
        return thresholds.to_dict()
    if isinstance(thresholds, Mapping):
        return dict(thresholds)
    raise InputError(f"thresholds must be a Thresholds object or a dict; got {type(thresholds).__name__}")


def metadata_of(model: keras.Model) -> LabelwiseMetadata | None:
    """The model's :class:`LabelwiseMetadata` layer, or None."""
    for layer in model.layers:
        if isinstance(layer, LabelwiseMetadata):
            return layer
    return None


def attach_metadata(model: keras.Model, schema: LabelSchema, thresholds: Any = None,
                    preprocessing: Preprocessing | Mapping[str, Any] | None = None,
                    info: Mapping[str, Any] | None = None) -> keras.Model:
    """Return a functional model ``model.inputs -> model(...) -> LabelwiseMetadata``.

    The new model shares the layers (and weights) of ``model``; a model that already ends in a
    metadata layer has that layer's settings replaced instead.
    """
    pre = preprocessing.to_dict() if isinstance(preprocessing, Preprocessing) else (
        None if preprocessing is None else dict(preprocessing))
    existing = metadata_of(model)
    if existing is not None:
        existing.schema_config = schema.to_dict()
        existing.thresholds = _thresholds_dict(thresholds)
        existing.policy = thresholds.to_dict() if _is_policy(thresholds) else None
        if pre is not None:
            existing.preprocessing = pre
        if info:
            existing.info.update(info)
        return model
    if len(model.outputs) != 1:
        raise InputError(f"the model has {len(model.outputs)} outputs; a labelwise artifact has one score output")
    meta = LabelwiseMetadata(schema.to_dict(), _thresholds_dict(thresholds), pre, info=info,
                             policy=thresholds.to_dict() if _is_policy(thresholds) else None)
    return keras.Model(model.inputs, meta(model.outputs[0]), name=model.name)


def save(model: keras.Model, path: str | os.PathLike, schema: LabelSchema, thresholds: Any = None,
         preprocessing: Preprocessing | Mapping[str, Any] | None = None,
         info: Mapping[str, Any] | None = None, include_optimizer: bool = False) -> Path:
    """Write the one artifact to ``path`` (``.keras``) atomically; returns the path.

    ``thresholds``: a ``Thresholds`` (or its dict), or a :class:`labelwise.decide.DecisionPolicy`
    (calibration + rule), stored whole; its per-label thresholds are also stored where older
    readers look for them.

    The optimizer state is left out unless asked for: an artifact is for predicting.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise InputError(f"a labelwise model file must end in .keras; got {path}")
    check_outputs(model, schema)
    full = attach_metadata(model, schema, thresholds, preprocessing, info)
    with atomic_path(path) as tmp:
        if include_optimizer:
            full.save(tmp)
        else:
            _save_no_optimizer(full, tmp)
    return path


def check_outputs(model: keras.Model, schema: LabelSchema) -> None:
    """Refuse a schema that does not fit the model: its one output must give ``schema.n_outputs``
    scores per item (the derived none label not among them)."""
    outputs = getattr(model, "outputs", None) or []
    if len(outputs) != 1:
        return  # attach_metadata names this case
    width = tuple(outputs[0].shape)[-1]
    if width is not None and int(width) != schema.n_outputs:
        raise InputError(f"the model outputs {int(width)} scores per image, but the schema has {schema.n_outputs} "
                         f"outputs {list(schema.output_labels)}; save it with the schema it was trained for")


def _save_no_optimizer(model: keras.Model, path: Path) -> None:
    # Keras 3 .keras saving always includes a compiled model's optimizer; an uncompiled twin
    # sharing the same layers writes only what prediction needs.
    if getattr(model, "optimizer", None) is None:
        model.save(path)
        return
    twin = keras.Model(model.inputs, model.outputs, name=model.name)
    twin.save(path)


def _check_keras_file(path: Path) -> None:
    """A ``.keras`` file is a zip archive holding ``config.json``: say so plainly when it is not
    (Keras would report "File not found" for a truncated file that exists)."""
    import zipfile

    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{path} is not a valid .keras file: it is empty (0 bytes); save or copy the model again")
    if path.suffix != ".keras":
        return  # other formats (.h5) are Keras's to judge
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError) as e:
        raise InputError(f"{path} is not a valid .keras file: it is truncated or not a zip archive ({size:,} bytes; "
                         f"{e}); save or copy the model again") from None
    if "config.json" not in names:
        raise InputError(f"{path} is not a valid .keras file: the zip archive has no config.json; "
                         "save the model with labelwise (or keras.Model.save) again")


def load(path: str | os.PathLike, *, compile: bool = False, policy: bool = False):
    """Open an artifact: returns ``(model, schema, thresholds, preprocessing)``.

    ``thresholds`` is a :class:`labelwise.decide.thresholds.Thresholds` when that module is available
    (else the stored dict), or None when the artifact has none; ``preprocessing`` a
    :class:`Preprocessing` (or None). With ``policy=True`` the third item is instead the
    :class:`labelwise.decide.DecisionPolicy` that decides, always one: the stored policy
    (calibration + rule); for an artifact written before policies, its thresholds with no
    calibration; for a model saved with neither, :meth:`DecisionPolicy.identity` (0.5 per label,
    no calibration; ``policy.is_default`` is True and its note says so).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"model file {path} does not exist")
    if path.is_dir():
        raise InputError(f"{path} is a folder; give the model's .keras file")
    _check_keras_file(path)
    try:
        model = keras.saving.load_model(path, compile=compile)
    except Exception as e:
        raise InputError(f"{path}: cannot open as a Keras model ({type(e).__name__}: {e})") from None
    meta = metadata_of(model)
    if meta is None:
        raise InputError(f"{path} is a Keras model but not a labelwise artifact (no {METADATA_LAYER} layer); "
                         "save it with labelwise.training.artifact.save(model, path, schema, thresholds, preprocessing)")
    thresholds: Any = meta.thresholds
    pre = None if meta.preprocessing is None else Preprocessing.from_dict(meta.preprocessing)
    if policy:
        stored = meta.policy if meta.policy is not None else thresholds
        return model, meta.schema, as_policy(stored, meta.schema, source=str(path)), pre
    if thresholds is not None:
        try:
            from ..decide.thresholds import Thresholds

            thresholds = Thresholds.from_dict(thresholds)
        except ImportError:
            pass
    return model, meta.schema, thresholds, pre
