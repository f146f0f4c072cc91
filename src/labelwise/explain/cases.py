"""Which slices drove a case model's labels, and where in them it looked.

A case model (:func:`labelwise.blocks.models.build_case_model`) encodes every slice of a stack and
pools the features (max, mean or attention) before its head. :func:`explain_case` scores each
slice on its own -- the head applied to that slice's features, which is what the model says of a
case made of that slice alone (max, mean and attention pooling of one image return its
features) -- ranks the slices per label by that score, and draws the Grad-CAM maps of the top
slices through the per-slice model ``encoder -> head``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import InputError

__all__ = ["CaseExplanation", "slice_model", "explain_case", "explain_cases_to"]


@dataclass
class CaseExplanation:
    """``slice_scores``: (n_slices, k) each slice's own score per asked label; ``top``: (k, top_k)
    slice indices, best first; ``maps``: (k, top_k, H, W) Grad-CAM of those slices; ``case_scores``:
    (k,) the case-level scores (the model's own); ``case_outputs``: (n_outputs,) every head output
    of the case, for the decision policy."""

    labels: list[str]
    slice_scores: np.ndarray
    top: np.ndarray
    maps: np.ndarray
    case_scores: np.ndarray
    case_outputs: np.ndarray | None = None

    def describe(self) -> str:
        """One line per label naming the slices that drove it, e.g. ``Tear (p=0.91): slices 12 (0.88), 13 (0.80)``."""
        lines = []
        for j, label in enumerate(self.labels):
            top = ", ".join(f"{int(i)} ({self.slice_scores[i, j]:.2f})" for i in self.top[j])
            lines.append(f"{label} (p={self.case_scores[j]:.2f}): slices {top}")
        return "\n".join(lines)


def _pooling_layer(model: Any):
    from ..blocks.layers import MultiImagePooling
    from .gradcam import _walk

    pools = [l for l in _walk(model) if isinstance(l, MultiImagePooling)]
    if len(pools) != 1:
        raise InputError(f"model {model.name!r} is not a case model (no MultiImagePooling layer); use grad_cam")
    return pools[0]


def slice_model(model: Any):
    """The per-slice model ``image -> encoder -> head`` of a case model (weights shared)."""
    import keras

    from ..blocks.layers import PowersetHead, SchemaHead
    from .gradcam import _walk

    pool = _pooling_layer(model)
    heads = [l for l in _walk(model) if isinstance(l, (SchemaHead, PowersetHead))]
    if len(heads) != 1:
        raise InputError(f"model {model.name!r} has no single labelwise head; build it with build_case_model")
    encoder = pool.encoder
    inp = keras.Input(tuple(encoder.inputs[0].shape[1:]), name="slice")
    return keras.Model(inp, heads[0](encoder(inp)), name=f"{model.name}_slice")


def explain_case(model: Any, stack: np.ndarray, labels: Sequence[str] | str | None = None, *, top_k: int = 3,
                 layer: str | None = None) -> CaseExplanation:
    """Explain one case: ``stack`` is its ``(n_slices, H, W, C)`` model input (0-255 pixels, prepared as
    :func:`labelwise.training.predict.prepare_stack` prepares it). See the module docstring."""
    from .gradcam import grad_cam, resolve_target

    per_slice = slice_model(model)
    target = resolve_target(per_slice, labels, layer)
    x = np.asarray(stack, dtype="float32")
    if x.ndim != 4:
        raise InputError(f"a case is a stack (n_slices, H, W, C); got shape {x.shape}")
    cols = list(target.columns)
    scores = np.asarray(per_slice.predict(x, verbose=0))
    if scores.shape[-1] != target.schema.n_outputs:
        raise InputError("explain_case handles case models with a SchemaHead (not a powerset head)")
    from ..training.predict import model_inputs

    cases = [x[None], np.ones((1, len(x)), "float32")]
    if model_inputs(model).mask_first:
        cases = cases[::-1]
    outputs = np.asarray(model.predict(cases, verbose=0))[0]
    case = outputs[cols]
    top_k = max(1, min(int(top_k), len(x)))
    slice_scores = scores[:, cols]
    top = np.argsort(-slice_scores, axis=0, kind="stable")[:top_k].T  # (k, top_k)
    maps = np.zeros((len(cols), top_k, x.shape[1], x.shape[2]), "float32")
    for j, label in enumerate(target.labels):
        maps[j] = grad_cam(per_slice, x[top[j]], [label], target.layer.name)[:, 0]
    return CaseExplanation(list(target.labels), slice_scores, top, maps, case, outputs)


def explain_cases_to(model_path: Any, source: Any, out: Any, labels: Sequence[str] | str | None = None, *,
                     layer: str | None = None, top_k: int = 3, images: Any = None) -> tuple[int, int, Any]:
    """``labelwise explain`` for a case artifact: per case and label one PNG of the ``top_k`` slices
    under their heatmaps (titled with the case's calibrated probability and decision, by the
    artifact's decision policy as predict gives them, and each slice's own score), ``index.html``
    with a line per case and label naming the slices, and ``predictions.csv`` in predict's format.
    The slices are those predict uses (:func:`labelwise.training.predict.sample_slices`). Returns
    ``(cases, labels, index path)``."""
    import html
    from pathlib import Path

    from ..data.stacks import read_cases
    from ..decide.policy import as_policy
    from ..io import atomic_path, write_text
    from ..training.artifact import load
    from ..training.predict import prepare_stack, sample_slices, write_predictions
    from .overlay import _safe, overlay_png

    model, schema, decider, pre = load(model_path, policy=True) if not isinstance(model_path, tuple) else model_path
    policy = as_policy(decider, schema)
    if pre is None:
        raise InputError("the artifact has no preprocessing settings (image size, channels)")
    cases = read_cases(source, images)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder for the pictures and index.html")
    out.mkdir(parents=True, exist_ok=True)
    sampling = str(pre.extra.get("slice_sampling", "center"))
    rows, n_labels, all_p, all_d = [], 0, [], []
    for i, case_id in enumerate(cases.case_ids):
        raw = sample_slices(cases.load(i), pre.max_slices, sampling)
        stack = prepare_stack(raw, image_size=pre.image_size, channels=pre.channels)
        e = explain_case(model, stack, labels, top_k=top_k, layer=layer)
        n_labels = len(e.labels)
        probs, said = policy.apply(schema.complete_scores(np.asarray(e.case_outputs, "float64")[None]))
        all_p.append(probs[0])
        all_d.append(said[0])
        for j, label in enumerate(e.labels):
            k = schema.labels.index(label)
            positive, p = bool(said[0, k]), float(probs[0, k])
            for r, s in enumerate(e.top[j]):
                name = f"{i:04d}_{_safe(case_id)}__{_safe(label)}__slice{int(s)}.png"
                title = (f"{case_id} | {label}: p = {p:.3f}, {'positive' if positive else 'negative'}"
                         f" | slice {int(s)} alone: {e.slice_scores[s, j]:.3f}")
                with atomic_path(out / name) as tmp:
                    Path(tmp).write_bytes(overlay_png(stack[s], e.maps[j, r], title))
                rows.append(f"<tr><td>{html.escape(case_id)}</td><td>{html.escape(label)}</td>"
                            f"<td>{p:.3f}</td><td>{int(s)} ({e.slice_scores[s, j]:.3f})</td>"
                            f'<td><img src="{html.escape(name)}" style="width:360px"></td></tr>')
    if all_p:
        write_predictions(out / "predictions.csv", list(cases.case_ids), np.stack(all_p), np.stack(all_d), schema,
                          policy=policy)
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>Which slices?</title></head><body>"
            "<h1>Which slices drove each label?</h1><p>Each slice's own score is what the model says of a case "
            "made of that slice alone; the top slices are shown under the Grad-CAM of the label's logit.</p>"
            "<table><tr><th>case</th><th>label</th><th>case p</th><th>slice (its own score)</th><th></th></tr>"
            + "".join(rows) + "</table></body></html>")
    return len(cases.case_ids), n_labels, write_text(out / "index.html", page)
