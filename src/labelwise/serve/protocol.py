"""Open Inference Protocol v2 (KServe) request parsing and response building, no HTTP here.

An infer request carries one input: either ``FP32`` pixels of the model's input shape
``[n, h, w, c]`` (0-255 unless the server says otherwise, already resized; data flat in row-major
order or nested; values outside the range, NaN or infinite are refused), or ``BYTES``
of shape ``[n]`` whose elements are base64-encoded image files, decoded as ``labelwise
predict`` decodes files. Anything else is refused with a :class:`RequestError` (400) naming
the datatypes and shapes the model takes. The response has ``probabilities`` (FP32) and
``decisions`` (BOOL), both ``[n, n_labels]`` in the order of ``parameters.labels``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

import numpy as np

from .limits import check_json
from .model import RequestError, ServedModel

__all__ = ["parse_infer_request", "infer_response", "OUTPUTS", "DEFAULT_INPUT_RANGE"]

OUTPUTS = ("probabilities", "decisions")
DEFAULT_INPUT_RANGE = (0.0, 255.0)


def _expected(served: ServedModel, input_range=DEFAULT_INPUT_RANGE) -> str:
    h, w, c = served.input_shape
    lo, hi = input_range
    return (f"expected one input 'images' with datatype FP32 and shape [n, {h}, {w}, {c}] (pixels {lo:g}-{hi:g}), "
            "or datatype BYTES and shape [n] holding base64-encoded PNG/JPEG/BMP/GIF files")


def parse_infer_request(body: bytes, served: ServedModel,
                        input_range: tuple[float, float] = DEFAULT_INPUT_RANGE) -> tuple[str, Any, dict[str, Any]]:
    """Read an infer request body -> ``(kind, payload, request)``.

    ``kind`` "FP32": payload is a float32 array ``(n, h, w, c)`` whose values all lie in
    ``input_range`` (inclusive); "BYTES": a list of encoded images (bytes). ``request`` is the
    parsed JSON (for ``id`` and requested ``outputs``). JSON nesting is bounded before parsing
    (:func:`~labelwise.serve.limits.check_json`).
    """
    if not body or not body.strip():
        raise RequestError(400, f"empty body; send an inference request as JSON: {_expected(served)}")
    try:
        req = check_json(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RequestError(400, f"the body is not valid JSON ({e}); {_expected(served)}") from None
    if not isinstance(req, dict) or not isinstance(req.get("inputs"), list) or not req["inputs"]:
        raise RequestError(400, f"the request needs a non-empty list 'inputs'; {_expected(served)}")
    if len(req["inputs"]) != 1:
        raise RequestError(400, f"got {len(req['inputs'])} inputs; {_expected(served)}")
    tensor = req["inputs"][0]
    if not isinstance(tensor, dict):
        raise RequestError(400, f"an input must be an object with name, datatype, shape and data; {_expected(served)}")
    missing = [k for k in ("name", "datatype", "shape", "data") if k not in tensor]
    if missing:
        raise RequestError(400, f"the input lacks {missing}; {_expected(served)}")
    if tensor["name"] != "images":
        raise RequestError(400, f"unknown input {tensor['name']!r}; {_expected(served)}")
    _check_outputs(req)
    shape = tensor["shape"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise RequestError(400, f"shape must be a list of non-negative integers, got {shape!r}; {_expected(served)}")
    dtype = tensor["datatype"]
    if dtype == "FP32":
        return "FP32", _fp32(tensor["data"], shape, served, input_range), req
    if dtype == "BYTES":
        return "BYTES", _bytes(tensor["data"], shape, served), req
    raise RequestError(400, f"datatype {dtype!r} is not accepted; {_expected(served)}")


def _check_outputs(req: dict[str, Any]) -> None:
    wanted = req.get("outputs")
    if wanted is None:
        return
    if not isinstance(wanted, list) or not all(isinstance(o, dict) and "name" in o for o in wanted):
        raise RequestError(400, "'outputs' must be a list of objects with a 'name'")
    unknown = [o["name"] for o in wanted if o["name"] not in OUTPUTS]
    if unknown:
        raise RequestError(400, f"unknown output(s) {unknown}; this model has outputs {list(OUTPUTS)}")


def _fp32(data: Any, shape: list[int], served: ServedModel, input_range=DEFAULT_INPUT_RANGE) -> np.ndarray:
    want = list(served.input_shape)
    if len(shape) != 4 or shape[1:] != want or shape[0] < 1:
        raise RequestError(400, f"FP32 input of shape {shape} does not fit the model; {_expected(served)}")
    try:
        x = np.asarray(data, dtype=np.float32)
    except (TypeError, ValueError):
        raise RequestError(400, "FP32 data must be numbers (a flat list in row-major order, or nested lists "
                           f"of shape {shape})") from None
    if x.size != math.prod(shape):
        raise RequestError(400, f"FP32 data holds {x.size} numbers but shape {shape} needs {math.prod(shape)}")
    if not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x.reshape(-1)))[0])
        raise RequestError(400, f"FP32 data holds NaN or infinite values (the first at flat index {bad}, image "
                           f"{bad // max(1, x.size // shape[0])}); send pixels in {input_range[0]:g}-{input_range[1]:g}")
    lo, hi = input_range
    outside = (x < lo) | (x > hi)
    if outside.any():
        flat = x.reshape(-1)
        bad = int(np.flatnonzero(outside.reshape(-1))[0])
        raise RequestError(400, f"FP32 pixel values must lie in {lo:g}-{hi:g} (--input-range), but the data holds "
                           f"{float(flat.min()):g} to {float(flat.max()):g} (the first outside at flat index {bad}, "
                           f"image {bad // max(1, x.size // shape[0])}); send unnormalised pixels, the model "
                           "normalises them itself")
    return x.reshape(shape)


def _bytes(data: Any, shape: list[int], served: ServedModel) -> list[bytes]:
    if len(shape) != 1 or shape[0] < 1:
        raise RequestError(400, f"BYTES input of shape {shape} does not fit; {_expected(served)}")
    if not isinstance(data, list) or len(data) != shape[0]:
        got = len(data) if isinstance(data, list) else type(data).__name__
        raise RequestError(400, f"BYTES data must be a list of {shape[0]} base64 string(s), got {got}")
    out = []
    for i, item in enumerate(data):
        if isinstance(item, dict) and "b64" in item:  # the KServe v1 / TF Serving spelling
            item = item["b64"]
        if not isinstance(item, str):
            raise RequestError(400, f"BYTES element {i} must be a base64 string, got {type(item).__name__}")
        try:
            out.append(base64.b64decode(item, validate=True))
        except (binascii.Error, ValueError) as e:
            raise RequestError(400, f"BYTES element {i} is not valid base64 ({e}); encode each image file with "
                               "base64") from None
    return out


def infer_response(served: ServedModel, scores: np.ndarray, decisions: np.ndarray, req: dict[str, Any]) -> dict:
    """The infer response: requested outputs (default both), flat row-major data."""
    n, L = scores.shape
    wanted = [o["name"] for o in req.get("outputs") or []] or list(OUTPUTS)
    tensors = {
        "probabilities": {"name": "probabilities", "datatype": "FP32", "shape": [n, L],
                          "data": [float(v) for v in np.asarray(scores, dtype=np.float64).reshape(-1)]},
        "decisions": {"name": "decisions", "datatype": "BOOL", "shape": [n, L],
                      "data": [bool(v) for v in np.asarray(decisions).reshape(-1)]},
    }
    resp: dict[str, Any] = {"model_name": served.name, "model_version": "1",
                            "parameters": {"labels": list(served.schema.labels)},
                            "outputs": [tensors[name] for name in wanted]}
    if "id" in req:
        resp["id"] = req["id"]
    return resp
