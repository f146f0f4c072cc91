"""What ``labelwise explain`` writes: per image and label an overlay PNG (the image, and the
image under its Grad-CAM heatmap, titled with the label's probability and decision) and an
``index.html`` that shows them all in one table (one row per image, one column per label), and
``predictions.csv``: the probabilities and decisions drawn, in ``labelwise predict``'s format.

:func:`explain_images` reads the images with the artifact's own preprocessing (as ``predict``
does), scores them and computes the maps; :func:`write_explanations` draws and writes the files,
each through a temporary name then a rename, the index last.
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..io import atomic_path, write_text

__all__ = ["Explanation", "explain_images", "write_explanations"]


@dataclass
class Explanation:
    """Grad-CAM maps of ``labels`` for ``images`` with the model's view of each image.

    ``maps``: (n, k, H, W) in [0, 1]; ``probabilities``/``decisions``: (n, k), the calibrated
    probability of each asked label and its 0/1 decision, by the artifact's decision policy (the
    numbers predict and serve give; 0.5 per label when the model carries no policy, said in
    ``threshold_note``); ``layer``: the feature map explained. ``all_probabilities`` /
    ``all_decisions``: (n, n_labels) over every label of ``schema``, as predict writes them;
    ``policy``: the :class:`labelwise.decide.DecisionPolicy` that made them.
    """

    ids: list[str]
    images: np.ndarray
    labels: list[str]
    maps: np.ndarray
    probabilities: np.ndarray
    decisions: np.ndarray
    layer: str
    threshold_note: str = ""
    all_probabilities: np.ndarray | None = None
    all_decisions: np.ndarray | None = None
    schema: Any = None
    policy: Any = None


def _read_images(source: Any, image_size: Sequence[int], channels: int,
                 column: str | None = None) -> tuple[list[str], np.ndarray]:
    from ..data.pipeline import make_dataset
    from ..training.predict import read_inputs

    if isinstance(source, np.ndarray):
        return [str(i) for i in range(len(source))], source
    ids, paths = read_inputs(source, column=column)
    if not paths:
        raise InputError(f"{source}: no images found (PNG/JPEG/BMP/GIF)")
    ds = make_dataset(paths, image_size=image_size, channels=channels, batch_size=32)
    batches = [np.asarray(b[0] if isinstance(b, tuple) else b) for b in ds.as_numpy_iterator()]
    keep = ds.labelwise_source.keep
    return [ids[i] for i in keep], np.concatenate(batches, axis=0)


def explain_images(model: Any, images: Any, labels: Sequence[str] | str | None = None, layer: str | None = None, *,
                   batch_size: int = 16, column: str | None = None) -> Explanation:
    """Probabilities, decisions and Grad-CAM maps for ``images`` (a folder, a table of paths -- its
    column ``column``, found as :func:`labelwise.training.predict.read_inputs` finds it when None --,
    a list of paths, or an (n, H, W, C) array of 0-255 pixels).

    ``model``: a path to a ``labelwise train`` artifact (loaded with its decision policy), the tuple
    ``artifact.load`` returns, or a Keras model built by ``build_model`` (then images must be an
    array and decisions use 0.5). Probabilities and decisions come from the policy's
    :meth:`~labelwise.decide.DecisionPolicy.apply`, as in predict and serve.
    """
    from ..decide.policy import as_policy
    from ..training.artifact import load as load_artifact
    from .gradcam import grad_cam, resolve_target

    decider = pre = None
    if isinstance(model, (str, os.PathLike)):
        model, _, decider, pre = load_artifact(model, policy=True)
    elif isinstance(model, tuple):
        model, _, decider, pre = model
    target = resolve_target(model, labels, layer)  # bad labels/layer fail before any image is read
    schema = target.schema
    policy = as_policy(decider, schema)
    shape = tuple(model.inputs[0].shape[1:])
    if pre is not None:
        size, channels = tuple(pre.image_size), pre.channels
    elif None not in shape:
        size, channels = shape[:2], shape[2]
    elif not isinstance(images, np.ndarray):
        raise InputError("the model takes any image size and has no preprocessing settings; pass the images as an "
                         "array of the size to explain")
    else:
        size, channels = images.shape[1:3], images.shape[3]
    ids, x = _read_images(images, size, channels, column)
    maps = grad_cam(model, x, target.labels, target.layer.name, batch_size=batch_size)
    raw = np.asarray(model.predict(x, verbose=0, batch_size=64))
    if raw.shape[-1] != schema.n_outputs:  # a powerset head: combinations -> label scores
        from ..labels.powerset import powerset_scores_to_label_scores

        scores = powerset_scores_to_label_scores(raw, target.head.classes, schema)
    else:
        scores = schema.complete_scores(raw)
    probs, decisions = policy.apply(scores)
    cols = [schema.labels.index(l) for l in target.labels]
    note = policy.notes[0] if policy.is_default and policy.notes else ""
    return Explanation(ids, x, list(target.labels), maps, probs[:, cols], decisions[:, cols], target.layer.name,
                       note, probs, decisions, schema, policy)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("_")[:80] or "image"


def overlay_png(image: np.ndarray, heat: np.ndarray, title: str) -> bytes:
    """One PNG: the image beside the image under its heatmap (jet, 45% opaque), with ``title``."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    img = np.clip(np.asarray(image, "float32") / 255.0, 0.0, 1.0)
    gray = img.shape[-1] == 1
    shown = img[..., 0] if gray else img[..., :3]
    fig = Figure(figsize=(5.2, 2.9))
    FigureCanvasAgg(fig)
    for i, ax in enumerate(fig.subplots(1, 2)):
        ax.imshow(shown, cmap="gray" if gray else None, vmin=0, vmax=1)
        if i:
            ax.imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax.set_axis_off()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def write_explanations(explanation: Explanation, out: str | os.PathLike, *, title: str = "Where did it look?") -> Path:
    """Write ``<out>/<image>__<label>.png`` for every image and label, ``<out>/predictions.csv`` (the
    probabilities and decisions drawn, in predict's format, with its sidecar), then
    ``<out>/index.html``; returns the index path."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder for the pictures and index.html")
    out.mkdir(parents=True, exist_ok=True)
    e = explanation
    rows = []
    for i, ident in enumerate(e.ids):
        cells = []
        for j, label in enumerate(e.labels):
            name = f"{i:04d}_{_safe(Path(ident).stem)}__{_safe(label)}.png"
            said = "positive" if e.decisions[i, j] else "negative"
            caption = f"{label}: p = {e.probabilities[i, j]:.3f}, {said}"
            with atomic_path(out / name) as tmp:
                Path(tmp).write_bytes(overlay_png(e.images[i], e.maps[i, j], f"{ident} | {caption}"))
            cells.append(f'<td><img src="{html.escape(name)}" alt="{html.escape(caption)}"><br>'
                         f'{html.escape(caption)}</td>')
        rows.append(f"<tr><th>{html.escape(str(ident))}</th>{''.join(cells)}</tr>")
    if e.all_probabilities is not None and e.schema is not None:
        from ..training.predict import write_predictions

        write_predictions(out / "predictions.csv", e.ids, e.all_probabilities, e.all_decisions, e.schema,
                          policy=e.policy)
    head = "".join(f"<th>{html.escape(l)}</th>" for l in e.labels)
    note = f"<p>{html.escape(e.threshold_note)}</p>" if e.threshold_note else ""
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif}td,th{padding:4px;vertical-align:top;font-size:13px}"
            "img{width:360px}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>Grad-CAM of each label's logit at layer "
            f"<code>{html.escape(e.layer)}</code>: red is where the evidence for the label sits (each map scaled "
            f"to its own maximum).</p>{note}<table><tr><th>image</th>{head}</tr>{''.join(rows)}</table></body></html>")
    return write_text(out / "index.html", page)
