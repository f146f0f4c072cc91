"""Serving: scores and schema-consistent decisions for new images from one artifact.

``predict(model_path, images_or_table)`` loads ``model.keras`` (:mod:`labelwise.artifact`),
reads the images with the artifact's own preprocessing (image size, channels), runs the
model in batches and returns a table with one probability column per label (the derived
``none`` score included: ``prod(1 - p_independent)``), one 0/1 decision column per label
(``labelwise.thresholds.decide``: thresholds for independent labels, one member per
exclusive group, ``none`` derived -- so a decision never breaks the schema), and a
``labels`` column with the decided labels joined by ``|``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import InputError
from .io import atomic_path
from .schema import LabelSchema

__all__ = ["predict", "predict_scores", "Scores", "prediction_frame", "write_predictions", "read_inputs"]

_PATH_COLUMNS = ("path", "image", "image_path", "file", "filename", "Image Index", "id")


@dataclass
class Scores:
    """Scores over ``schema.labels`` for the kept inputs; ``keep`` indexes the caller's list."""

    scores: np.ndarray
    keep: np.ndarray


def predict_scores(model: Any, x: Any, *, schema: LabelSchema, image_size: Sequence[int], channels: int,
                   batch_size: int = 64, skip_unreadable: bool = False, verbose: int = 0) -> Scores:
    """Run ``model`` on images ``x`` (paths, a folder, or an array) -> full scores (n, n_labels).

    Exactly ``model.predict`` on the tf.data pipeline, plus ``schema.complete_scores``.
    """
    from .pipeline import make_dataset

    kwargs = dict(image_size=image_size, channels=channels, batch_size=batch_size, skip_unreadable=skip_unreadable)
    if isinstance(x, np.ndarray) and x.dtype.kind in "uif":
        ds = make_dataset(x, **kwargs)
        probs = model.predict(ds, verbose=verbose)
    else:
        # Optimistic: no up-front file check (it would cost a fifth of a small model's
        # prediction time). A bad file makes TensorFlow fail without naming it; then check
        # every file, and raise naming the bad ones (or skip them, as asked) and run again.
        ds = make_dataset(x, check=False, **kwargs)
        try:
            probs = model.predict(ds, verbose=verbose)
        except Exception as failure:  # tf.errors.* surface as several types through Keras
            ds = make_dataset(x, check=True, **kwargs)  # raises InputError naming the files, or skips them
            if len(ds.labelwise_source.skipped) == 0:
                raise failure
            probs = model.predict(ds, verbose=verbose)
    if probs.ndim != 2 or probs.shape[1] != schema.n_outputs:
        raise InputError(f"the model outputs shape {probs.shape}, but its schema has {schema.n_outputs} outputs")
    return Scores(schema.complete_scores(probs), ds.labelwise_source.keep)


def prediction_frame(ids: Sequence[Any], scores: np.ndarray, decisions: np.ndarray, schema: LabelSchema):
    """A DataFrame: ``id``, ``labels`` (decided labels joined by '|'), ``p_<label>`` scores and
    ``<label>`` 0/1 decisions, in ``schema.labels`` order."""
    import pandas as pd

    decisions = np.asarray(decisions)
    cols: dict[str, Any] = {"id": list(ids), "labels": ["|".join(r) for r in schema.decode(decisions)]}
    for j, label in enumerate(schema.labels):
        cols[f"p_{label}"] = np.round(np.asarray(scores)[:, j], 6)
    for j, label in enumerate(schema.labels):
        cols[label] = decisions[:, j].astype(np.uint8)
    return pd.DataFrame(cols)


def write_predictions(path: str | os.PathLike, ids: Sequence[Any], scores: np.ndarray, decisions: np.ndarray,
                      schema: LabelSchema) -> Path:
    """Write :func:`prediction_frame` as CSV, atomically."""
    frame = prediction_frame(ids, scores, decisions, schema)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(path)


def read_inputs(source: str | os.PathLike | Sequence[str], *, images: str | os.PathLike | None = None,
                column: str | None = None) -> tuple[list[str], list[str]]:
    """Resolve what to predict on -> (ids, paths).

    A folder: every image in it (ids are paths relative to the folder). A table (CSV/TSV):
    the column ``column`` (or the first of path/image/file/filename/"Image Index"/id present,
    else the first column), relative to ``images`` or to the table's folder. A list: paths.
    """
    from .pipeline import list_images

    if not isinstance(source, (str, os.PathLike)):
        paths = [str(p) for p in source]
        return paths, paths
    source = Path(source)
    if source.is_dir():
        files = list_images(source)
        return [str(p.relative_to(source)) for p in files], [str(p) for p in files]
    if not source.exists():
        raise InputError(f"{source} does not exist; give a folder of images or a table with image paths")
    import pandas as pd

    sep = "\t" if source.suffix.lower() in (".tsv", ".tab") else ","
    try:
        frame = pd.read_csv(source, sep=sep, dtype=str)
    except Exception as e:
        raise InputError(f"{source}: cannot read as a table ({e})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if column is None:
        column = next((c for c in _PATH_COLUMNS if c in frame.columns), frame.columns[0])
    elif column not in frame.columns:
        raise InputError(f"{source}: no column {column!r}; columns are {list(frame.columns)}")
    base = Path(images) if images is not None else source.parent
    names = frame[column].astype(str).str.strip().tolist()
    if not names:
        raise InputError(f"{source}: the table has no rows")
    return names, [str(p if Path(p).is_absolute() else base / p) for p in names]


def predict(model: Any, source: Any, *, out: str | os.PathLike | None = None, images: Any = None,
            column: str | None = None, batch_size: int = 64, skip_unreadable: bool = False, verbose: int = 1):
    """Predict scores and decisions for images; returns the :func:`prediction_frame`.

    ``model``: a path to a ``model.keras`` artifact (or the tuple :func:`labelwise.artifact.load`
    returns). ``source``: a folder, a table with image paths, or a list of paths. ``out``:
    also write the frame as CSV.
    """
    from . import artifact
    from .thresholds import decide

    model, schema, thresholds, pre = artifact.load(model) if isinstance(model, (str, os.PathLike)) else model
    if pre is None:
        raise InputError("the artifact has no preprocessing settings (image size, channels)")
    if thresholds is None:
        raise InputError("the artifact has no thresholds; tune them (labelwise thresholds) and save them into it")
    ids, paths = read_inputs(source, images=images, column=column)
    result = predict_scores(model, paths, schema=schema, image_size=pre.image_size, channels=pre.channels,
                            batch_size=batch_size, skip_unreadable=skip_unreadable, verbose=verbose)
    decisions = decide(result.scores, schema, thresholds)
    ids = [ids[i] for i in result.keep]
    if out is not None:
        write_predictions(out, ids, result.scores, decisions, schema)
    return prediction_frame(ids, result.scores, decisions, schema)
