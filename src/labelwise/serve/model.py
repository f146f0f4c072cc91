"""The served model: one artifact opened once, with the steps a request goes through.

:class:`ServedModel` holds the model, its schema, thresholds and preprocessing, and does for
the server exactly what ``labelwise predict`` does for files, through the same functions
(:func:`labelwise.training.predict.image_inputs`, :func:`~labelwise.training.predict.outputs_to_scores`,
:meth:`labelwise.decide.DecisionPolicy.apply`): encoded bytes -> model input, model outputs ->
scores with the derived ``none`` score -> the artifact's policy: calibrated probabilities and
schema-consistent decisions. The app decodes each request's images in one call, in its decode
pool (:mod:`labelwise.serve.limits`), and queues the decoded rows for the model. It also checks what a
client sends and words the refusal (:class:`RequestError`, with an HTTP status), and describes
itself in Open Inference Protocol v2 terms (:meth:`ServedModel.metadata`).
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..training.predict import image_inputs, model_inputs, outputs_to_scores

__all__ = ["ServedModel", "RequestError", "READABLE_FORMATS"]

# What TensorFlow's decoder reads (Pillow names), the formats predict accepts too.
READABLE_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "BMP": "BMP", "DIB": "BMP", "GIF": "GIF"}
_FORMATS_TEXT = "PNG, JPEG, BMP or GIF"


class RequestError(InputError):
    """A request the server refuses: ``status`` is the HTTP status (400, 404, 413, 415, 501),
    the message says what was wrong and what to send instead."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = int(status)


def check_image_bytes(data: bytes, *, name: str = "the image") -> None:
    """Refuse bytes TensorFlow's decoder would fail on, with Pillow's specific reason.

    Empty or unidentifiable bytes -> 400; a real image in another format (TIFF, WebP, ...) ->
    415; a damaged or truncated file (Pillow's verify walks PNG chunks and their CRCs) -> 400;
    more pixels than Pillow's decompression-bomb limit -> 413.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise RequestError(400, f"{name} is empty (0 bytes); send a {_FORMATS_TEXT} file")
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt, size = im.format, im.size
            if fmt in READABLE_FORMATS and size[0] * size[1] > Image.MAX_IMAGE_PIXELS:
                raise RequestError(413, f"{name} is {size[0]}x{size[1]} pixels, more than the "
                                   f"{Image.MAX_IMAGE_PIXELS:,} this server decodes; send a smaller image")
            im.verify()
    except RequestError:
        raise
    except UnidentifiedImageError:
        raise RequestError(400, f"{name} is not an image ({len(data):,} bytes Pillow cannot identify); "
                           f"send a {_FORMATS_TEXT} file") from None
    except Image.DecompressionBombError as e:
        raise RequestError(413, f"{name}: {e}") from None
    except Exception as e:  # Pillow raises many types for damaged files; its message is what matters
        raise RequestError(400, f"{name} is damaged or truncated ({type(e).__name__}: {e}); send the whole file")
    if fmt not in READABLE_FORMATS:
        raise RequestError(415, f"{name} is a {fmt} image; this server reads {_FORMATS_TEXT} "
                           "(the formats labelwise predict reads): convert it to PNG")


def _num(v: float) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v


@dataclass
class ServedModel:
    """An opened artifact plus the request steps (see the module docstring).

    ``input_shape`` is ``(h, w, c)`` of one model input; ``policy`` is the artifact's
    :class:`labelwise.decide.DecisionPolicy` (always one: 0.5 per label for a model saved without),
    ``thresholds`` its per-label thresholds (None for rules that need none).
    """

    name: str
    model: Any
    schema: Any
    thresholds: Any
    pre: Any
    input_shape: tuple[int, int, int]
    path: str = ""
    policy: Any = None

    def __post_init__(self) -> None:
        from ..decide.policy import as_policy

        self.policy = as_policy(self.policy if self.policy is not None else self.thresholds, self.schema)
        if self.thresholds is None:
            self.thresholds = self.policy.thresholds

    @classmethod
    def open(cls, path: str | os.PathLike, *, name: str | None = None) -> "ServedModel":
        """Load ``model.keras`` with its decision policy and check it can be served: a per-image model
        (not a case model) with preprocessing stored; :class:`InputError` otherwise. A model saved
        without a policy decides at 0.5 per label (a ``UserWarning`` says so)."""
        import warnings

        from ..training.artifact import load

        model, schema, policy, pre = load(path, policy=True)
        if pre is None:
            raise InputError(f"{path}: the artifact has no preprocessing settings (image size, channels)")
        if policy.is_default:
            warnings.warn(f"{path}: {policy.notes[0]}", stacklevel=2)
        spec = model_inputs(model)
        if spec.kind != "image":
            raise InputError(f"{path}: the model is {spec.describe()}; labelwise serve serves per-image models "
                             "(use labelwise predict for cases)")
        h, w, c = (int(pre.image_size[0]), int(pre.image_size[1]), int(pre.channels))
        given = tuple(spec.image_shape)
        if any(g is not None and g != e for g, e in zip(given, (h, w, c))):
            raise InputError(f"{path}: the artifact's preprocessing gives {h}x{w}x{c} inputs, but the model takes "
                             f"{given}; save the artifact again with matching Preprocessing")
        name = name or Path(path).stem
        return cls(name, model, schema, policy.thresholds, pre, (h, w, c), str(path), policy)

    # ------------------------------------------------------------- the steps
    def check(self, data: bytes, *, name: str = "the image") -> None:
        """Refuse bytes that are no readable image (:func:`check_image_bytes`), before they queue."""
        check_image_bytes(data, name=name)

    def inputs(self, items: Sequence[Any]) -> np.ndarray:
        """Items -> model input ``(n, h, w, c)`` float32: encoded images (bytes) are decoded
        together exactly as predict reads files; arrays ``(h, w, c)`` are taken as they are."""
        x = np.zeros((len(items), *self.input_shape), dtype=np.float32)
        encoded = [i for i, item in enumerate(items) if isinstance(item, (bytes, bytearray))]
        if encoded:
            try:
                x[encoded] = image_inputs([bytes(items[i]) for i in encoded], image_size=self.input_shape[:2],
                                          channels=self.input_shape[2])
            except InputError as e:
                which = "the image" if len(encoded) == 1 else "an image"
                raise RequestError(400, f"{which} cannot be decoded: {e}; send an undamaged {_FORMATS_TEXT} "
                                   "file") from None
        for i, item in enumerate(items):
            if not isinstance(item, (bytes, bytearray)):
                x[i] = item
        return x

    def run(self, items: Sequence[Any]) -> np.ndarray:
        """One model call on a batch of items (see :meth:`inputs`) -> head outputs ``(n, n_outputs)``."""
        return np.asarray(self.model.predict_on_batch(self.inputs(items)))

    def finish(self, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Head outputs ``(n, n_outputs)`` -> ``(scores, decisions)``, both ``(n, n_labels)``."""
        return self.policy.apply(outputs_to_scores(outputs, self.schema))

    def explain(self, items: Sequence[Any], label: str, scores: np.ndarray, decisions: np.ndarray) -> list[str]:
        """Base64 PNG overlays of ``label``'s Grad-CAM heatmap (:func:`labelwise.explain.grad_cam`),
        one per item, titled with the label's probability and decision. A label that has no logit
        (the derived none label) is a 400 naming why."""
        import base64

        from ..explain.gradcam import grad_cam
        from ..explain.overlay import overlay_png

        x = self.inputs(items)
        try:
            maps = grad_cam(self.model, x, labels=[label])
        except InputError as e:
            raise RequestError(400, f"explain={label!r}: {e}") from None
        j = list(self.schema.labels).index(label)
        out = []
        for i in range(len(items)):
            title = f"{label}: p = {float(scores[i, j]):.3f}, decided {'yes' if decisions[i, j] else 'no'}"
            out.append(base64.b64encode(overlay_png(x[i], maps[i, 0], title)).decode("ascii"))
        return out

    def warm_up(self, max_batch: int = 1) -> None:
        """Run a blank image, then a full batch of ``max_batch``, through decode and model, so
        the first requests do not pay for tracing and the largest batch's memory is taken up
        front (the RSS then stays level under load)."""
        from PIL import Image

        buf = io.BytesIO()
        Image.new("L" if self.input_shape[2] == 1 else "RGB", self.input_shape[1::-1]).save(buf, format="PNG")
        for n in sorted({1, max(1, int(max_batch))}):
            self.finish(self.run([buf.getvalue()] * n))

    # ------------------------------------------------------------- descriptions
    def label_rules(self) -> list[dict[str, Any]]:
        """Per label: ``name``, ``role`` (independent / group / none), ``group`` and the threshold
        ``decide`` applies (``default`` 0.5 where the stored one is missing; None for group
        members, which are decided by arg-max, and the derived none label). Under a rule that
        decides without per-label thresholds (top-k, instance-f1, ...) an independent label's
        threshold is None and ``rule`` names that rule, as :meth:`decision_rule` says."""
        values = self.thresholds.as_dict() if hasattr(self.thresholds, "as_dict") else dict(self.thresholds or {})
        rule = self.policy.parsed_rule
        by_rule = self.policy.thresholds is None and rule.name not in ("hamming", "subset")
        rules = []
        for label in self.schema.labels:
            if label in self.schema.independent and by_rule:
                rules.append({"name": label, "role": "independent", "group": None, "threshold": None,
                              "threshold_is_default": False, "rule": str(rule)})
            elif label in self.schema.independent:
                t = _num(values.get(label, float("nan")))
                rules.append({"name": label, "role": "independent", "group": None,
                              "threshold": 0.5 if t is None else t, "threshold_is_default": t is None})
            elif label == self.schema.none:
                rules.append({"name": label, "role": "none", "group": None, "threshold": None})
            else:
                rules.append({"name": label, "role": "group", "group": self.schema.group_of(label), "threshold": None})
        return rules

    def decision_rule(self) -> str:
        """The decision rule in words."""
        parts = []
        rule = self.policy.parsed_rule
        if self.policy.calibration is not None:
            parts.append(f"probabilities calibrated ({self.policy.calibration.method}, fitted on validation)")
        if self.policy.thresholds is None and rule.name not in ("hamming", "subset"):
            parts.append(f"independent labels: decided by the rule {rule} on the probabilities "
                         "(per-label thresholds do not apply)")
        elif self.schema.independent:
            parts.append("independent labels: probability >= the label's threshold (0.5 where none is stored)")
        if self.schema.exclusive:
            parts.append("each exclusive group: exactly its highest-probability member")
        if self.schema.none:
            parts.append(f"{self.schema.none!r}: decided exactly when no independent label is; its probability is "
                         "prod(1 - p) over the independent labels")
        return "; ".join(parts)

    def metadata(self) -> dict[str, Any]:
        """Open Inference Protocol v2 model metadata; the schema, thresholds, preprocessing and
        decision rule are in ``parameters``."""
        from .. import __version__

        h, w, c = self.input_shape
        n = self.schema.n_labels
        thr = self.thresholds.to_dict() if hasattr(self.thresholds, "to_dict") else self.thresholds
        return {
            "name": self.name,
            "versions": ["1"],
            "platform": "labelwise_keras",
            "inputs": [{"name": "images", "datatype": "FP32", "shape": [-1, h, w, c]}],
            "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, n]},
                        {"name": "decisions", "datatype": "BOOL", "shape": [-1, n]}],
            "parameters": {
                "labels": list(self.schema.labels),
                "label_rules": self.label_rules(),
                "schema": self.schema.to_dict(),
                "thresholds": _clean(thr),
                # None: probabilities are the model's own
                "calibration": _clean(self.policy.calibration.to_dict())
                if self.policy.calibration is not None else None,
                "rule": self.policy.rule,
                "decision_rule": self.decision_rule(),
                "promises": self.policy.promises,  # a guarantee rule's promise per label, in words
                "preprocessing": self.pre.to_dict(),
                "pixel_values": "FP32 inputs are pixels in 0-255, already resized; the model normalises them",
                "bytes_input": {"datatype": "BYTES", "shape": [-1],
                                "data": f"base64-encoded {_FORMATS_TEXT} files, decoded and resized as "
                                        "labelwise predict reads files"},
                "labelwise_version": __version__,
            },
        }

    def image_results(self, scores: np.ndarray, decisions: np.ndarray, names: Sequence[str]) -> list[dict[str, Any]]:
        """Per image: probabilities, decisions, decided labels, each group's winner and the none
        label's state -- what ``POST /predict`` returns."""
        labels = self.schema.labels
        out = []
        for name, s, d in zip(names, np.asarray(scores), np.asarray(decisions)):
            decided = [label for label, v in zip(labels, d) if v]
            groups = {g: next(m for m in members if d[labels.index(m)]) for g, members in self.schema.exclusive.items()}
            out.append({
                "file": name,
                "probabilities": {label: float(v) for label, v in zip(labels, s)},
                "decisions": {label: int(v) for label, v in zip(labels, d)},
                "labels": decided,
                "groups": groups,
                "none": None if self.schema.none is None else bool(d[labels.index(self.schema.none)]),
            })
        return out


def _clean(obj: Any) -> Any:
    """NaN -> None throughout, so the JSON is strict."""
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj
