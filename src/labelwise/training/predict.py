"""Serving: scores and schema-consistent decisions for new images from one artifact.

``predict(model_path, images_or_table)`` loads ``model.keras`` (:mod:`labelwise.training.artifact`),
reads the images with the artifact's own preprocessing (image size, channels), runs the
model in batches and returns a table with one probability column per label: the model's
scores calibrated by the artifact's decision policy (the derived ``none`` probability included:
``prod(1 - p_independent)``), one 0/1 decision column per label by the policy's rule (one member
per exclusive group, ``none`` derived -- so a decision never breaks the schema), and a ``labels``
column with the decided labels joined by ``|``. That last step ("scores -> (probabilities,
decisions)") is :meth:`labelwise.decide.DecisionPolicy.apply`, the one road serve, explain and
train take too. An artifact written before policies decides by its stored thresholds with no
calibration, as it did; a model saved with neither decides at 0.5 per label (said once).

Case models (:func:`labelwise.blocks.models.build_case_model`: inputs ``images (b, n, H, W, C)`` and
``mask (b, n)``, told apart by the model's input shapes) get one row per case instead: the
cases are ``.npy`` stacks (:func:`labelwise.data.stacks.read_cases`), each slice prepared like one
image (channels, then resized as the image pipeline resizes, pixels kept in the model's
0-255 range), optionally cut to the central ``max_slices`` slices, and each batch of cases
padded to its longest case with a 0/1 mask -- the pooling ignores the padding, so a case's
scores do not depend on the batch it is in. Cases are batched by length to pad little.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..io import atomic_path
from ..decide.policy import resolve_policy
from ..labels.schema import LabelSchema

__all__ = ["predict", "predict_scores", "predict_case_scores", "Scores", "ModelInputs", "model_inputs",
           "prepare_stack", "prediction_frame", "write_predictions", "read_inputs", "image_inputs", "outputs_to_scores",
           "resolve_policy", "sample_slices"]

@dataclass
class Scores:
    """Scores over ``schema.labels`` for the kept inputs; ``keep`` indexes the caller's list;
    ``skipped`` is ``{path: reason}`` for each input left out (``skip_unreadable``)."""

    scores: np.ndarray
    keep: np.ndarray
    skipped: dict[str, str] = field(default_factory=dict)


def predict_scores(model: Any, x: Any, *, schema: LabelSchema, image_size: Sequence[int], channels: int,
                   batch_size: int = 64, skip_unreadable: bool = False, verbose: int = 0,
                   pipeline: str = "auto") -> Scores:
    """Run ``model`` on images ``x`` (paths, a folder, or an array) -> full scores (n, n_labels).

    Exactly ``model.predict`` on the input pipeline ``pipeline`` ("auto": tf.data when
    TensorFlow is installed, else the Python pipeline; "tf"; "python"), plus ``schema.complete_scores``.
    """
    from ..data.choose import pipeline_module
    from ..data.sources import ImageSource

    chosen = pipeline_module(pipeline)
    make_dataset = chosen.make_dataset

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
        except Exception as failure:  # tf.errors.* / Pillow's errors surface as several types through Keras
            if verbose:
                print("a file could not be decoded; checking every file to find it", flush=True)
            # raises InputError naming the files, or leaves them out with a warning when asked
            src = ImageSource.create(x, skip_unreadable=skip_unreadable, channels=channels, verbose=verbose,
                                     failures=chosen.decode_failures)
            if len(src.skipped) == 0:
                raise failure  # not a file problem: every file decodes on its own
            ds = make_dataset(src, check=False, **kwargs)
            probs = model.predict(ds, verbose=verbose)
    return Scores(outputs_to_scores(probs, schema), ds.labelwise_source.keep, dict(ds.labelwise_source.skipped))


def prediction_frame(ids: Sequence[Any], scores: np.ndarray, decisions: np.ndarray, schema: LabelSchema):
    """A DataFrame: ``id``, ``labels`` (decided labels joined by '|'), ``p_<label>`` scores and
    ``<label>`` 0/1 decisions, in ``schema.labels`` order."""
    import pandas as pd

    decisions = np.asarray(decisions)
    cols: dict[str, Any] = {"id": list(ids), "labels": ["|".join(r) for r in schema.decode(decisions)]}
    for j, label in enumerate(schema.labels):
        cols[f"p_{label}"] = np.asarray(scores, dtype=np.float64)[:, j]
    for j, label in enumerate(schema.labels):
        cols[label] = decisions[:, j].astype(np.uint8)
    return pd.DataFrame(cols)


def write_predictions(path: str | os.PathLike, ids: Sequence[Any], scores: np.ndarray, decisions: np.ndarray,
                      schema: LabelSchema, *, policy: Any = None, values: str | None = None) -> Path:
    """Write :func:`prediction_frame` as CSV, atomically. Scores keep 9 significant digits (``%.9g``),
    so a tiny probability (a derived none score of 1e-7) is written as such, never as 0, and ranks.

    With ``policy`` (the :class:`labelwise.decide.DecisionPolicy` that made them) the sidecar
    ``<path>.json`` records what the ``p_`` columns hold (:mod:`labelwise.decide.scorefile`):
    calibrated probabilities under that policy, or raw ones when it has no calibration (or ``values``
    says "raw": the model's own probabilities, decided under ``policy``)."""
    frame = prediction_frame(ids, scores, decisions, schema)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.9g")
    if policy is not None:
        from ..decide.scorefile import values_of, write_state

        write_state(path, values or values_of(policy), policy)
    return Path(path)


def _per_item(shape: Sequence[Any]) -> str:
    """A batch shape said per item: ``(64, 3)`` -> ``"3 scores"``, ``(64, 2, 3)`` -> ``"(2, 3) scores"``."""
    rest = tuple(int(d) if d is not None else None for d in tuple(shape)[1:])
    return f"{rest[0]} scores" if len(rest) == 1 else f"{rest} scores"


_GLOB_CHARS = set("*?[")


def read_inputs(source: str | os.PathLike | Sequence[str], *, images: str | os.PathLike | None = None,
                column: str | None = None) -> tuple[list[str], list[str]]:
    """Resolve what to predict on -> (ids, paths).

    A folder: every image in it (ids are paths relative to the folder). One image file: that
    image (id = the path as given). A glob pattern (``"photos/*.jpg"``, for a shell that did not
    expand it): the matching files, sorted. A table (CSV/TSV): the column ``column``, else the id
    column ``labelwise train`` reads (the first of :data:`labelwise.labels.csvread.ID_COLUMN_NAMES`
    present, e.g. "Image Index"/image/id/filename/path, else the first column), relative to ``images``
    or to the table's folder. A list: paths (folders and patterns in it expanded).
    """
    import glob

    from ..data.sources import IMAGE_SUFFIXES, is_input_file, list_images

    if not isinstance(source, (str, os.PathLike)):
        ids: list[str] = []
        paths: list[str] = []
        for item in source:
            item = str(item)
            if Path(item).is_dir() or (_GLOB_CHARS & set(item) and not Path(item).exists()):
                more_ids, more = read_inputs(item, images=images, column=column)
                ids += more if Path(item).is_dir() else more_ids
                paths += more
            else:
                ids.append(item)
                paths.append(item)
        if not paths:
            raise InputError("no images given")
        return ids, paths
    if _GLOB_CHARS & set(str(source)) and not Path(source).exists():
        found = sorted(p for p in glob.glob(str(source), recursive=True)
                       if is_input_file(p) and Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise InputError(f"{source}: the pattern matches no image file ({', '.join(IMAGE_SUFFIXES)})")
        return found, found
    source = Path(source)
    if source.is_file() and source.suffix.lower() in (*IMAGE_SUFFIXES, ".tif", ".tiff", ".webp"):
        # one image, not a table: reading it as CSV would fail on its bytes
        return [str(source)], [str(source)]
    if source.is_dir():
        files = list_images(source)
        return [str(p.relative_to(source)) for p in files], [str(p) for p in files]
    if not source.exists():
        raise InputError(f"{source} does not exist; give a folder of images or a table with image paths")
    from ..errors import TableError
    from ..labels.csvread import ID_COLUMN_NAMES, _data_rows, _pick_column, read_csv

    try:
        frame, lines = _data_rows(read_csv(source, sep="\t" if source.suffix.lower() in (".tsv", ".tab") else ","),
                                  source, first_line=2)
        column = _pick_column(frame, source, column, ID_COLUMN_NAMES, "id", default_first=True)  # as train reads it
    except TableError as e:
        raise InputError(str(e)) from None
    base = Path(images) if images is not None else source.parent
    empty = np.flatnonzero(frame[column].isna().to_numpy())
    if empty.size:
        raise InputError(f"{source}, line {lines[empty[0]]}: empty {column!r}; every row needs an image path"
                         + (f" ({empty.size - 1} more row(s) like this)" if empty.size > 1 else ""))
    names = [str(x).strip() for x in frame[column].tolist()]
    from ..labels.ids import resolve_files

    paths, _, n_stem = resolve_files(names, base)
    if n_stem:
        warnings.warn(f"{source}: {n_stem} id(s) have no file extension; each was matched to the one image file "
                      f"with that name in {base}", stacklevel=2)
    return names, list(paths)


@dataclass(frozen=True)
class ModelInputs:
    """What a model takes, read from its input shapes.

    ``kind`` is ``"image"`` (one input ``(batch, H, W, C)``) or ``"case"`` (an input
    ``(batch, n, H, W, C)`` of stacks and a ``(batch, n)`` mask, in ``model.inputs`` order
    ``mask_first`` or not). ``image_shape`` is ``(H, W, C)`` (None where any size goes);
    ``n_images`` the fixed case length of a case model (None: any length).
    """

    kind: str
    image_shape: tuple[int | None, ...]
    n_images: int | None = None
    mask_first: bool = False

    def describe(self) -> str:
        """A phrase for error messages, e.g.
        "a case model (inputs: stacks (batch, any, 16, 16, 1) and a mask (batch, any))"."""
        dims = ", ".join("any" if d is None else str(d) for d in self.image_shape)
        if self.kind == "image":
            return f"a per-image model (input: images (batch, {dims}))"
        n = "any" if self.n_images is None else str(self.n_images)
        return f"a case model (inputs: stacks (batch, {n}, {dims}) and a mask (batch, {n}))"


def model_inputs(model: Any) -> ModelInputs:
    """Tell a per-image model from a case model by its input shapes (not by names).

    Raises :class:`InputError` for any other layout (more inputs, other ranks).
    """
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise InputError(f"cannot tell what model {getattr(model, 'name', model)!r} takes: it has no defined inputs; "
                         "build it with keras.Input (labelwise.blocks.models.build_model / build_case_model do)")
    shapes = [tuple(t.shape) for t in inputs]
    ranks = [len(sh) for sh in shapes]
    if ranks == [4]:
        return ModelInputs("image", shapes[0][1:])
    if sorted(ranks) == [2, 5]:
        stacks, mask = (shapes[0], shapes[1]) if ranks[0] == 5 else (shapes[1], shapes[0])
        n = stacks[1] if stacks[1] is not None else mask[1]
        return ModelInputs("case", stacks[2:], n, mask_first=ranks[0] == 2)
    raise InputError(f"model {model.name!r} takes inputs of shapes {[sh[1:] for sh in shapes]} (per item); predict handles a per-image model "
                     "(one input (batch, H, W, C)) or a case model (stacks (batch, n, H, W, C) and a mask (batch, n), "
                     "as labelwise.blocks.models.build_case_model builds)")


def prepare_stack(stack: np.ndarray, *, image_size: Sequence[int], channels: int) -> np.ndarray:
    """One stack -> float32 ``(slices, h, w, channels)`` model input, each slice prepared exactly as
    the image pipeline prepares one image array (:mod:`labelwise.data.pipeline`): a ``slices x H x W``
    stack gets one channel; 1 -> 3 channels repeats gray, 3/4 -> 1 takes the luma, 4 -> 3 drops
    alpha; then slices are shrunk by area averaging, enlarged bilinearly (antialiased) or left
    alone at the right size. Pixel values are not rescaled (models take 0-255 and normalise
    inside).
    """
    h, w = (int(v) for v in image_size)
    x = np.asarray(stack, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise InputError(f"a stack must be slices x H x W (or x C), got shape {np.shape(stack)}")
    c = x.shape[-1]
    if c == channels and x.shape[1:3] == (h, w):
        return x
    try:
        import tensorflow as tf
    except ImportError:  # no TensorFlow: the Python pipeline's numpy twin of the same math (within 0.01)
        from ..data.pypipeline import prepare

        return np.stack([prepare(s, (h, w), channels) for s in x]).astype(np.float32, copy=False)

    t = tf.convert_to_tensor(x)
    if c != channels:
        if c == 1 and channels == 3:
            t = tf.image.grayscale_to_rgb(t)
        elif c in (3, 4) and channels == 1:
            t = tf.image.rgb_to_grayscale(t[..., :3])
        elif c == 4 and channels == 3:
            t = t[..., :3]
        else:
            raise InputError(f"cannot convert stacks with {c} channels to the model's {channels}")
    if x.shape[1:3] != (h, w):
        # the rule of labelwise.data.pipeline._resize, on all slices at once
        if x.shape[1] >= h and x.shape[2] >= w:
            t = tf.image.resize(t, (h, w), method="area")
        else:
            t = tf.image.resize(t, (h, w), method="bilinear", antialias=True)
    return t.numpy().astype(np.float32, copy=False)


def _central(stack: np.ndarray, n: int | None) -> np.ndarray:
    """The central ``n`` slices (the cut :func:`labelwise.data.stacks.pad_stack` makes)."""
    s = stack.shape[0]
    if n is None or s <= n:
        return stack
    start = (s - n) // 2
    return stack[start : start + n]


def sample_slices(stack: np.ndarray, max_slices: int | None, slice_sampling: str = "center") -> np.ndarray:
    """The slices of a raw stack a case model sees: all of them when ``max_slices`` is None or the
    stack is no longer; else ``max_slices`` evenly spaced ones (``slice_sampling="even"``,
    :func:`labelwise.data.cases.even_slices`) or the central ones ("center"). predict and explain
    both cut through this function."""
    if slice_sampling == "even" and max_slices is not None:
        from ..data.cases import even_slices

        stack = stack[even_slices(stack.shape[0], max_slices)]
    return _central(stack, max_slices)


def predict_case_scores(model: Any, cases: Any, *, schema: LabelSchema, image_size: Sequence[int], channels: int,
                        batch_size: int = 8, max_slices: int | None = None,
                        pixel_range: Sequence[float] = (0.0, 255.0), skip_unreadable: bool = False,
                        verbose: int = 0, slice_sampling: str = "center") -> Scores:
    """Run a case model on stacks -> full scores (n_cases, n_labels), one row per kept case.

    ``cases``: a :class:`labelwise.data.stacks.StackSet` (or what :func:`labelwise.data.stacks.read_cases`
    takes). Every case is checked first, by the check ``labelwise train`` runs
    (:func:`labelwise.data.cases.case_length`): an unreadable file, a stack that is not
    ``slices x H x W (x C)``, has no slice, holds no numbers or NaN/inf, or a folder of slice
    images of different sizes raises :class:`InputError` listing the files (or,
    with ``skip_unreadable``, they are left out with a warning; ``Scores.keep`` indexes the
    cases kept). Stacks are cut to their central ``max_slices`` slices (and to the model's
    fixed case length, if it has one), prepared by :func:`prepare_stack`, sorted by length and
    run ``batch_size`` cases at a time, each batch padded to its longest case with a mask.
    Stacks with values outside ``pixel_range`` give one warning naming them. ``verbose=1``
    shows a progress bar over cases. ``slice_sampling="even"`` takes ``max_slices`` evenly spaced
    slices instead of the central ones (:func:`labelwise.data.cases.even_slices`; what
    ``labelwise train`` with ``unit = "case"`` records in its artifact).
    """
    import keras

    from ..data.cases import case_length
    from ..data.sources import _bad_files_message
    from ..data.stacks import StackSet, pad_stack, read_cases

    spec = model_inputs(model)
    if spec.kind != "case":
        raise InputError(f"the model is {spec.describe()}: it predicts single images, not stacks of slices")
    if not isinstance(cases, StackSet):
        cases = read_cases(cases)
    if int(batch_size) < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    if max_slices is not None and int(max_slices) < 1:
        raise InputError(f"max_slices must be at least 1 (or None to keep every slice), got {max_slices}")
    cut = min((int(v) for v in (max_slices, spec.n_images) if v is not None), default=None)

    # train's own check of every case (labelwise.data.cases.case_length: shape, dtype, no slice,
    # NaN/inf, slice images of one size), up front: lengths for batching, every bad case named
    lengths = np.zeros(len(cases), dtype=np.int64)
    bad: dict[str, str] = {}
    for i in range(len(cases)):
        try:
            lengths[i] = case_length(cases.paths[i], cases.case_ids[i])
        except InputError as e:
            bad[str(cases.paths[i])] = str(e).split(": ", 1)[-1]
    keep = np.array([i for i in range(len(cases)) if str(cases.paths[i]) not in bad], dtype=np.int64)
    if bad:
        if not skip_unreadable:
            raise InputError(f"{len(bad)} of {len(cases)} stack file(s) cannot be used:\n{_bad_files_message(bad)}\n"
                             "Fix or remove them, or pass skip_unreadable=True (--skip-unreadable) to leave them out.")
        warnings.warn(f"skipping {len(bad)} unusable stack file(s) of {len(cases)}:\n{_bad_files_message(bad)}",
                      stacklevel=3)
        if keep.size == 0:
            raise InputError("every stack file is unusable; nothing left to predict")

    used = np.minimum(lengths[keep], cut) if cut is not None else lengths[keep]
    order = keep[np.argsort(used, kind="stable")]
    lo, hi = float(pixel_range[0]), float(pixel_range[1])
    out_of_range: dict[str, str] = {}
    probs: np.ndarray | None = None
    bar = keras.utils.Progbar(len(order), unit_name="case", verbose=1 if verbose == 1 else 2) if verbose else None
    for start in range(0, len(order), int(batch_size)):
        idx = order[start : start + int(batch_size)]
        stacks = []
        for i in idx:
            raw = sample_slices(cases.load(int(i)), cut, slice_sampling)
            vmin, vmax = float(np.min(raw)), float(np.max(raw))
            if vmin < lo or vmax > hi:
                out_of_range[str(cases.paths[i])] = f"values {vmin:g} to {vmax:g}"
            stacks.append(prepare_stack(raw, image_size=image_size, channels=channels))
        batch, mask = pad_stack(stacks, spec.n_images, names=[cases.case_ids[i] for i in idx])
        p = np.asarray(model.predict_on_batch([mask, batch] if spec.mask_first else [batch, mask]))
        if p.ndim != 2 or p.shape[1] != schema.n_outputs:
            raise InputError(f"the model outputs shape {p.shape}, but its schema has {schema.n_outputs} outputs")
        if probs is None:
            probs = np.zeros((len(cases), p.shape[1]), dtype=np.float32)
        probs[idx] = p
        if bar is not None:
            bar.add(len(idx))
    if out_of_range:
        warnings.warn(f"{len(out_of_range)} stack(s) have values outside the model's pixel range {lo:g} to {hi:g}, "
                      f"so the model sees them unlike its training images:\n{_bad_files_message(out_of_range)}\n"
                      "Rescale the stacks the way the training stacks were scaled.", stacklevel=3)
    assert probs is not None
    return Scores(schema.complete_scores(probs[keep]), keep, bad)


def _has_files(folder: Path, suffixes: Sequence[str]) -> bool:
    return any(p.suffix.lower() in suffixes for p in folder.rglob("*") if p.is_file())


def _check_pre(spec: ModelInputs, pre: Any) -> None:
    """The artifact's preprocessing must agree with what the model's input takes."""
    h, w, c = spec.image_shape
    if (h is not None and h != pre.image_size[0]) or (w is not None and w != pre.image_size[1]):
        raise InputError(f"the artifact's preprocessing resizes to {tuple(pre.image_size)}, but the model takes "
                         f"{h}x{w} images; save the artifact again with Preprocessing(({h}, {w}), {c})")
    if c is not None and c != pre.channels:
        raise InputError(f"the artifact's preprocessing gives {pre.channels} channel(s), but the model takes {c}; "
                         f"save the artifact again with Preprocessing(..., channels={c})")


def predict(model: Any, source: Any, *, out: str | os.PathLike | None = None, images: Any = None,
            column: str | None = None, batch_size: int | None = None, skip_unreadable: bool = False,
            max_slices: int | None = None, verbose: int = 1, pipeline: str = "auto",
            decide_for: str | None = None, raw: bool = False):
    """Predict scores and decisions for images, or for cases with a case model; returns the
    :func:`prediction_frame` (``frame.attrs["kind"]`` is "image" or "case"; ``frame.attrs["skipped"]``
    is ``{path: reason}`` for every input found but left out with ``skip_unreadable``).

    Every input found is predicted or named: a file that cannot be read (a broken or looping
    symbolic link included) raises :class:`InputError` naming it unless ``skip_unreadable``.

    ``model``: a path to a ``model.keras`` artifact (or the tuple :func:`labelwise.training.artifact.load`
    returns). Which kind of model it is comes from its input shapes (:func:`model_inputs`).

    A per-image model: ``source`` is a folder, a table with image paths (``column``, relative
    to ``images`` or the table's folder), or a list of paths; one row per image.
    A case model: ``source`` is a folder of ``.npy`` stacks, a ``.npy`` file or list of them,
    or a table of case ids (``column``; stacks in ``images`` or the table's folder), see
    :func:`labelwise.data.stacks.read_cases`; one row per case. ``max_slices`` cuts longer stacks to
    their central slices (default: the artifact's ``Preprocessing.max_slices``).

    ``batch_size`` defaults to 64 images or 8 cases. Inputs of the other kind (stacks for a
    per-image model, images for a case model) raise :class:`InputError` saying what the model
    takes. ``out``: also write the frame as CSV (atomically). ``pipeline``: the input pipeline
    for images (see :func:`predict_scores`).

    The ``p_`` columns are the calibrated probabilities and the decisions follow the artifact's
    rule (:meth:`labelwise.decide.DecisionPolicy.apply`); ``decide_for`` replaces the rule by one that needs
    no validation data (see :func:`resolve_policy`). A model saved without a policy decides at 0.5 per
    label with no calibration, and a ``UserWarning`` says so. ``raw``: the ``p_`` columns hold the
    model's own (uncalibrated) probabilities instead, and the sidecar says so, e.g. to judge another
    decision file on new images (``labelwise evaluate --thresholds``); the decisions are unchanged.
    """
    from . import artifact

    model, schema, thresholds, pre = (artifact.load(model, policy=True) if isinstance(model, (str, os.PathLike))
                                      else model)
    if pre is None:
        raise InputError("the artifact has no preprocessing settings (image size, channels)")
    if thresholds is None:  # the tuple of artifact.load(path) without policy=True: the stored policy decides
        meta = artifact.metadata_of(model)
        thresholds = getattr(meta, "policy", None)
    policy = resolve_policy(thresholds, schema, decide_for)
    if policy.is_default:
        warnings.warn(policy.notes[0] if policy.notes else "no decision policy: 0.5 per label", stacklevel=2)
    spec = model_inputs(model)
    _check_pre(spec, pre)
    given = Path(source) if isinstance(source, (str, os.PathLike)) else None
    listed = [] if given is not None or isinstance(source, np.ndarray) else [str(p) for p in source]
    if spec.kind == "case":
        from ..data.sources import IMAGE_SUFFIXES
        from ..data.stacks import read_cases

        if isinstance(source, np.ndarray):
            raise InputError(f"the model is {spec.describe()}; give .npy stacks (a folder, files or a table), "
                             "not an array")
        looks_like_images = (given is not None and given.suffix.lower() in IMAGE_SUFFIXES) or any(
            Path(p).suffix.lower() in IMAGE_SUFFIXES for p in listed) or (
            given is not None and given.is_dir() and not any(given.glob("*.npy"))
            and any(p.suffix.lower() in IMAGE_SUFFIXES for p in given.iterdir() if p.is_file()))  # not case folders
        if looks_like_images:
            raise InputError(f"the model is {spec.describe()}: it predicts one row per case from .npy stacks "
                             f"(slices x H x W), but {source if given is not None else 'the inputs'} holds single "
                             "images; give a folder of .npy stacks or a table of case ids, or use a per-image model")
        cases = read_cases(source if given is not None else listed, images, id_column=column)
        result = predict_case_scores(
            model, cases, schema=schema, image_size=pre.image_size, channels=pre.channels,
            batch_size=8 if batch_size is None else batch_size,
            max_slices=max_slices if max_slices is not None else pre.max_slices,
            pixel_range=pre.pixel_range, skip_unreadable=skip_unreadable, verbose=verbose,
            slice_sampling=str(pre.extra.get("slice_sampling", "center")))
        ids = [cases.case_ids[i] for i in result.keep]
    else:
        stacks_given = (given is not None and given.suffix.lower() == ".npy") or any(
            p.lower().endswith(".npy") for p in listed) or (
            given is not None and given.is_dir() and any(given.glob("*.npy")) and not _has_image_files(given))
        if max_slices is not None or stacks_given:
            what = "--max-slices" if not stacks_given else f"{source if given is not None else 'the inputs'} (.npy stacks)"
            raise InputError(f"the model is {spec.describe()}: it predicts one row per image file, so {what} "
                             "does not fit; predict cases with a case model (labelwise.blocks.models.build_case_model)")
        ids, paths = read_inputs(source, images=images, column=column)
        if any(p.lower().endswith(".npy") for p in paths):
            raise InputError(f"the model is {spec.describe()}, but {source} lists .npy stacks; it predicts one row "
                             "per image file: predict cases with a case model (labelwise.blocks.models.build_case_model)")
        result = predict_scores(model, paths, schema=schema, image_size=pre.image_size, channels=pre.channels,
                                batch_size=64 if batch_size is None else batch_size,
                                skip_unreadable=skip_unreadable, verbose=verbose, pipeline=pipeline)
        ids = [ids[i] for i in result.keep]
    probs, decisions = policy.apply(result.scores)
    if raw:  # the model's own probabilities in the p_ columns (the sidecar says raw); decisions as always
        from ..decide.policy import DecisionPolicy

        probs = DecisionPolicy.identity(schema, note=None).probabilities(result.scores)
    if out is not None:
        write_predictions(out, ids, probs, decisions, schema, policy=policy, values="raw" if raw else None)
    frame = prediction_frame(ids, probs, decisions, schema)
    frame.attrs["kind"] = spec.kind
    frame.attrs["skipped"] = dict(result.skipped)  # found but not predicted: {path: reason}
    frame.attrs["promises"] = policy.promises  # a guarantee rule's promise, in words
    return frame


def _has_image_files(folder: Path) -> bool:
    from ..data.sources import IMAGE_SUFFIXES

    return _has_files(folder, IMAGE_SUFFIXES)


# ------------------------------------------------------------------ shared with labelwise serve
# ``labelwise predict`` and ``labelwise serve`` go through these three steps, so a served image
# gets the numbers and decisions predict writes for the same file.
_DECODERS: dict[tuple[tuple[int, int], int], Any] = {}


def image_inputs(images: Sequence[bytes], *, image_size: Sequence[int], channels: int) -> np.ndarray:
    """Encoded images (PNG/JPEG/BMP/GIF bytes) -> float32 model input ``(n, h, w, channels)``, 0-255.

    :func:`labelwise.data.pipeline.decode_image_bytes` -- the decode and resize the predict
    pipeline maps over every file -- mapped over the batch in one compiled call (one per
    (size, channels); a call per image would cost more than the decode). Undecodable bytes
    raise :class:`InputError` with TensorFlow's reason (check bytes with Pillow first for a
    friendlier message, as the server does).
    """
    size = (int(image_size[0]), int(image_size[1]))
    key = (size, int(channels))
    try:
        import tensorflow as tf
    except ImportError:  # no TensorFlow: the Python pipeline's decode (the same pixels; data.pypipeline)
        return _python_image_inputs(images, size, key[1])
    fn = _DECODERS.get(key)
    if fn is None:
        from ..data.pipeline import decode_image_bytes

        def decode_all(data):
            return tf.map_fn(lambda b: decode_image_bytes(b, image_size=size, channels=key[1]), data,
                             fn_output_signature=tf.TensorSpec([size[0], size[1], key[1]], tf.float32))

        fn = tf.function(decode_all, input_signature=[tf.TensorSpec([None], tf.string)])
        _DECODERS[key] = fn
    if len(images) == 0:
        return np.zeros((0, *size, key[1]), dtype=np.float32)
    try:
        return fn(tf.constant(list(images), dtype=tf.string)).numpy()
    except (tf.errors.OpError, ValueError) as e:
        msg = getattr(e, "message", str(e)).strip().splitlines()
        raise InputError(f"TensorFlow cannot decode the image ({msg[-1] if msg else type(e).__name__})") from None


def _python_image_inputs(images: Sequence[bytes], size: tuple[int, int], channels: int) -> np.ndarray:
    import io

    from ..data.pypipeline import decode_file, prepare

    out = np.zeros((len(images), *size, channels), dtype=np.float32)
    for i, data in enumerate(images):
        try:
            out[i] = prepare(decode_file(io.BytesIO(data), channels), size, channels)
        except InputError:
            raise
        except Exception as e:  # Pillow raises many types; its message says what is wrong
            raise InputError(f"cannot decode the image ({type(e).__name__}: {e})") from None
    return out


def outputs_to_scores(probs: np.ndarray, schema: LabelSchema) -> np.ndarray:
    """Model outputs ``(n, n_outputs)`` -> scores ``(n, n_labels)``: the derived ``none`` score
    ``prod(1 - p_independent)`` appended (:meth:`LabelSchema.complete_scores`)."""
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[1] != schema.n_outputs:
        # per image, without the batch size: the count of images says nothing about the mismatch
        raise InputError(f"the model outputs {_per_item(probs.shape)} per image, but its schema has "
                         f"{schema.n_outputs} outputs {list(schema.output_labels)}")
    return schema.complete_scores(probs)
