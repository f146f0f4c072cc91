"""Sharded datasets: a label table and its images packed into TFRecord files, read back with tf.data.

Many small image files are slow to list and open, on network file systems above all; a few
hundred large files stream well and split cleanly between training workers. A shard folder::

    out/index.json                      schema, labels, per-label counts, split, ids, shard list (written last)
    out/shard-00000-of-00024.tfrecord   <= shard_size examples each
    ...

Each example (``tf.train.Example``) holds ``image`` (the encoded file bytes as they are: PNG
or JPEG, never re-encoded), ``y`` (the 0/1 row over ``schema.labels``, int64), ``id`` and
``group`` (e.g. the patient id; empty when none). Each shard is written to a temporary name
and renamed when complete, and ``index.json`` goes last: a reader never sees a half-written
folder.

:func:`read_shards` yields ``(pixels, y)`` batches (``(pixels, y, id)`` with ``with_ids``),
pixels float32 in 0-255 as :mod:`labelwise.data.pipeline` yields them, decoded by the same code.
Under ``MultiWorkerMirroredStrategy`` the dataset carries auto-shard policy ``FILE``: each
worker opens only its share of the shard files, so decoding is split between workers (needs
at least as many shards as workers); ``num_workers``/``worker_index`` split explicitly.

This module imports TensorFlow when a function runs, not at import.
"""

from __future__ import annotations

import glob as _glob
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..io import atomic_path, write_json
from ..labels.schema import LabelSchema

__all__ = ["INDEX_NAME", "FORMAT", "write_shards", "read_shards", "read_shard_epochs", "load_index", "shard_files",
           "shard_ids", "column_map", "check_train_shards", "epoch_seed"]

INDEX_NAME = "index.json"
FORMAT = "labelwise-shards/1"
_SHARD_GLOB = "shard-*-of-*.tfrecord"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_shards(
    table: Any,
    images_dir: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    *,
    shard_size: int = 1000,
    group_column: str | None = None,
    skip_unreadable: bool = False,
    overwrite: bool = False,
    progress: bool | Callable[[str], None] = True,
    split: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Write ``table`` (a :class:`labelwise.labels.tables.LabelTable`) and its images as TFRecord shards.

    Image ``i`` is ``table.paths[i]`` when the table has paths, else ``images_dir / table.ids[i]``.
    Every file is checked first (Pillow reads headers and PNG checksums): unreadable files raise
    :class:`InputError` listing them, or with ``skip_unreadable`` are left out with a warning and
    listed in the index. ``group_column`` (a column of ``table.extra``) fills each example's
    ``group``. ``split`` (e.g. ``{"column": "split", "value": "train"}``) is only recorded in the
    index: select the rows before calling (``labelwise shard --split`` does). The index lists every
    example's id (``ids``), so training can refuse shards that hold its val/test images.
    Returns the index (also written to ``out_dir/index.json``).
    """
    from .pipeline import check_images  # the check training runs: a bad file never reaches a shard

    if int(shard_size) < 1:
        raise InputError(f"shard size must be at least 1, got {shard_size}")
    schema: LabelSchema = table.schema
    n = len(table)
    if n == 0:
        raise InputError(f"{getattr(table, 'source', 'the table')} has no rows; nothing to shard")
    if getattr(table, "paths", None) is not None:
        paths = [str(p) for p in table.paths]
    elif images_dir is not None:
        paths = [os.path.join(os.fspath(images_dir), str(i)) for i in table.ids]
    else:
        raise InputError("the table has no image paths; give the image folder (--images DIR)")
    groups = (np.asarray(table.groups(group_column)).astype(str) if group_column
              else np.full(n, "", dtype=object))
    y = np.asarray(table.y)
    if y.shape != (n, schema.n_labels):
        raise InputError(f"targets have shape {y.shape}, expected ({n}, {schema.n_labels}) over {list(schema.labels)}")

    out = Path(out_dir)
    existing = sorted(out.glob(_SHARD_GLOB)) + ([out / INDEX_NAME] if (out / INDEX_NAME).exists() else [])
    if existing and not overwrite:
        raise InputError(f"{out} already holds shards ({len(existing)} file(s)); choose another --out folder "
                         "or pass --overwrite to replace them")
    say = progress if callable(progress) else (_say if progress else (lambda m: None))

    bad = check_images(paths)
    keep = np.arange(n)
    if bad:
        listing = "\n".join(f"  {p}: {r}" for p, r in list(bad.items())[:10])
        more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
        if not skip_unreadable:
            raise InputError(f"{len(bad)} of {n} image file(s) cannot be read:\n{listing}{more}\n"
                             "Fix or remove them, or pass --skip-unreadable to leave them out.")
        warnings.warn(f"skipping {len(bad)} unreadable image file(s) of {n}:\n{listing}{more}", stacklevel=2)
        keep = np.array([i for i, p in enumerate(paths) if p not in bad], dtype=np.int64)
        if keep.size == 0:
            raise InputError("every image file is unreadable; nothing to shard")

    import tensorflow as tf

    for f in existing:  # overwrite: old shards would otherwise mix with the new ones
        f.unlink()
    out.mkdir(parents=True, exist_ok=True)
    total = len(keep)
    n_shards = -(-total // int(shard_size))
    shards = []
    done = 0
    for k in range(n_shards):
        rows = keep[k * shard_size:(k + 1) * shard_size]
        name = f"shard-{k:05d}-of-{n_shards:05d}.tfrecord"
        size = 0
        with atomic_path(out / name) as tmp:
            with tf.io.TFRecordWriter(str(tmp)) as writer:
                for i in rows:
                    with open(paths[i], "rb") as fh:
                        data = fh.read()
                    size += len(data)
                    writer.write(_example(tf, data, y[i], str(table.ids[i]), str(groups[i])))
        done += len(rows)
        shards.append({"file": name, "count": int(len(rows)), "image_bytes": int(size)})
        say(f"labelwise shard: {name} ({done}/{total} images)")
    counts = y[keep].sum(axis=0)
    index = {
        "format": FORMAT,
        "source": str(getattr(table, "source", "")),
        "schema": schema.to_dict(),
        "labels": list(schema.labels),
        "n_examples": int(total),
        "label_counts": {label: int(c) for label, c in zip(schema.labels, counts)},
        "group_column": group_column,
        "split": dict(split) if split else None,
        "shard_size": int(shard_size),
        "shards": shards,
        "skipped": bad,
        # every id, in record order: the val/test overlap check reads these instead of the records
        "ids": [str(table.ids[i]) for i in keep],
    }
    write_json(out / INDEX_NAME, index)
    return index


def _example(tf: Any, data: bytes, y_row: np.ndarray, id_: str, group: str) -> bytes:
    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
        "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in y_row])),
        "id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[id_.encode("utf-8")])),
        "group": tf.train.Feature(bytes_list=tf.train.BytesList(value=[group.encode("utf-8")])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def load_index(source: str | os.PathLike) -> tuple[dict[str, Any], Path]:
    """The index of a shard folder (or of the folder of ``index.json``, or of a glob's matches)
    and the folder it lives in. A clear :class:`InputError` when there is none or it is not ours."""
    s = os.fspath(source)
    if any(ch in s for ch in "*?["):
        matches = sorted(_glob.glob(s))
        if not matches:
            raise InputError(f"no files match {s!r}")
        folder = Path(matches[0]).parent
    else:
        p = Path(s)
        folder = p if p.is_dir() else p.parent
        if not p.exists():
            raise InputError(f"{p}: no such shard folder (write one with `labelwise shard`)")
    path = folder / INDEX_NAME
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{folder} has no {INDEX_NAME}: not a finished shard folder (write one with "
                         "`labelwise shard`; an interrupted run leaves no index)") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path} is not valid JSON ({e})") from None
    if index.get("format") != FORMAT:
        raise InputError(f"{path} is not a labelwise shard index (format {index.get('format')!r}, "
                         f"expected {FORMAT!r})")
    return index, folder


def shard_files(source: str | os.PathLike) -> list[str]:
    """The shard files of ``source`` in index order (a glob keeps only its matches)."""
    index, folder = load_index(source)
    files = [str(folder / s["file"]) for s in index["shards"]]
    s = os.fspath(source)
    if any(ch in s for ch in "*?["):
        chosen = {os.path.abspath(m) for m in _glob.glob(s)}
        files = [f for f in files if os.path.abspath(f) in chosen]
    missing = [f for f in files if not os.path.exists(f)]
    if missing:
        raise InputError(f"{len(missing)} shard file(s) listed in {folder / INDEX_NAME} are missing, "
                         f"e.g. {missing[0]}; copy the whole folder")
    return files


def read_shards(
    source: str | os.PathLike,
    *,
    image_size: Sequence[int] | int,
    channels: int,
    batch_size: int,
    y_columns: str = "all",
    with_ids: bool = False,
    shuffle: bool = False,
    seed: int = 0,
    shuffle_buffer: int = 1024,
    repeat: bool = False,
    drop_remainder: bool = False,
    num_workers: int | None = None,
    worker_index: int | None = None,
    schema: LabelSchema | None = None,
) -> Any:
    """A ``tf.data.Dataset`` of ``(pixels, y)`` (or ``(pixels, y, id)``) batches from shards.

    ``y_columns``: ``"all"`` (every column of ``schema.labels``) or ``"outputs"`` (the model-head
    columns, without the derived none label). ``schema``: the columns of ``y`` follow this
    schema's labels, taken by name from the shards' (see :func:`column_map`; an
    :class:`InputError` when the label sets differ); default the shards' own schema.
    Without ``shuffle`` the order is the table's.
    ``shuffle`` permutes the shard order and mixes examples in a ``shuffle_buffer`` (seeded).
    ``num_workers``/``worker_index``: take every n-th shard file by hand (e.g. one JAX process of
    several); otherwise the FILE auto-shard policy lets MultiWorkerMirroredStrategy do it.
    The index is at ``dataset.labelwise_index``.
    """
    import tensorflow as tf

    from .pipeline import _size, decode_image_bytes

    index, _ = load_index(source)
    files = shard_files(source)
    size = _size(image_size)
    n_labels = len(index["labels"])
    if y_columns not in ("all", "outputs"):
        raise InputError(f"y_columns must be 'all' or 'outputs', got {y_columns!r}")
    if schema is None:
        schema = LabelSchema.from_dict(index["schema"])
        columns = np.arange(n_labels)
    else:
        columns = column_map(index, schema, source)
    columns = columns[: schema.n_labels if y_columns == "all" else schema.n_outputs]
    if int(batch_size) < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")

    ds = tf.data.Dataset.from_tensor_slices(files)
    policy = tf.data.experimental.AutoShardPolicy.FILE
    if num_workers is not None:
        if worker_index is None or not 0 <= int(worker_index) < int(num_workers):
            raise InputError(f"worker_index must be 0..{int(num_workers) - 1}, got {worker_index!r}")
        if len(files) < int(num_workers):
            raise InputError(f"{len(files)} shard file(s) cannot be split over {num_workers} workers; "
                             "write smaller shards (--shard-size) so there is at least one per worker")
        ds = ds.shard(int(num_workers), int(worker_index))
        policy = tf.data.experimental.AutoShardPolicy.OFF
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    # One file at a time keeps the table order; several when shuffling spreads reads over files.
    cycle = min(4, len(files)) if shuffle else 1
    if shuffle:
        ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=cycle, num_parallel_calls=cycle, deterministic=True)
    else:
        ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=1)
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    spec = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "y": tf.io.FixedLenFeature([n_labels], tf.int64),
        "id": tf.io.FixedLenFeature([], tf.string),
    }

    def parse(record):
        ex = tf.io.parse_single_example(record, spec)
        img = decode_image_bytes(ex["image"], image_size=size, channels=channels)
        y = tf.cast(tf.gather(ex["y"], columns), tf.float32)
        return (img, y, ex["id"]) if with_ids else (img, y)

    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(int(batch_size), drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy
    ds = ds.with_options(options)
    ds.labelwise_index = index
    return ds


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of ``epoch``: a function of ``(seed, epoch)`` only, so a resumed run reads
    epoch ``e`` in the order the uninterrupted run did (``seed + epoch`` would also make seed 7
    epoch 1 read like seed 8 epoch 0)."""
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0] & 0x7FFFFFFF)


def read_shard_epochs(
    source: str | os.PathLike,
    *,
    epochs: tuple[int, int],
    steps_per_epoch: int,
    seed: int = 0,
    **kwargs: Any,
) -> Any:
    """Epochs ``epochs[0] .. epochs[1]-1`` of training batches from shards, ``steps_per_epoch`` each.

    Epoch ``e`` is its own :func:`read_shards` stream, shuffled with :func:`epoch_seed`
    ``(seed, e)`` and repeated (every batch full, as with ``repeat=True``) up to
    ``steps_per_epoch`` batches; the epochs are concatenated, which opens each one only when the
    previous one ends. So what epoch ``e`` reads does not depend on the epoch a run started at:
    a run resumed after epoch ``k`` reads what the uninterrupted run read. ``kwargs`` go to
    :func:`read_shards` (``image_size``, ``channels``, ``batch_size``, ``schema``, ...).
    """
    first, stop = int(epochs[0]), int(epochs[1])
    if stop <= first:
        raise InputError(f"no epochs to read: epochs=({first}, {stop})")
    out = index = None
    for e in range(first, stop):
        ds = read_shards(source, shuffle=True, seed=epoch_seed(seed, e), repeat=True, **kwargs)
        index = ds.labelwise_index
        ds = ds.take(int(steps_per_epoch))
        out = ds if out is None else out.concatenate(ds)
    out.labelwise_index = index
    return out


def column_map(index: Mapping[str, Any], schema: LabelSchema, source: Any = "the shards") -> np.ndarray:
    """For each of ``schema.labels``, its column in the shards' ``y`` (over ``index["labels"]``).

    Shards written with another column order (e.g. a schema inferred from the table, where the
    run declares one) are remapped by label name. Another label set cannot be: an
    :class:`InputError` names both lists and how to write matching shards.
    """
    theirs = [str(x) for x in index["labels"]]
    ours = [str(x) for x in schema.labels]
    if sorted(theirs) != sorted(ours):
        missing = [x for x in ours if x not in theirs]
        extra = [x for x in theirs if x not in ours]
        detail = "; ".join(p for p in (f"missing from the shards: {missing}" if missing else "",
                                       f"not in the run's schema: {extra}" if extra else "") if p)
        raise InputError(
            f"{_folder_of(source)}/{INDEX_NAME}: the shards hold labels {theirs}, but this run's schema has "
            f"labels {ours} ({detail}). Write the shards with the run's schema: `labelwise shard TABLE "
            "--images DIR --out DIR --schema <the run's schema.toml> --split-column <split column> --split train "
            "--overwrite`")
    return np.array([theirs.index(x) for x in ours], dtype=np.int64)


def _folder_of(source: Any) -> str:
    s = os.fspath(source) if isinstance(source, (str, os.PathLike)) else str(source)
    if any(ch in s for ch in "*?["):
        return str(Path(s).parent)
    return str(Path(s) if Path(s).is_dir() else Path(s).parent)


def shard_ids(source: str | os.PathLike) -> list[str]:
    """The example ids of ``source`` in record order (a glob: only its files' ids).

    From the index's ``ids`` list; shards written before the index had one are read for their
    ``id`` feature alone (no image is decoded).
    """
    index, folder = load_index(source)
    files = shard_files(source)
    if index.get("ids") is not None:
        ids = [str(i) for i in index["ids"]]
        chosen = {os.path.abspath(f) for f in files}
        out, start = [], 0
        for s in index["shards"]:
            if os.path.abspath(str(folder / s["file"])) in chosen:
                out += ids[start:start + int(s["count"])]
            start += int(s["count"])
        return out
    import tensorflow as tf

    spec = {"id": tf.io.FixedLenFeature([], tf.string)}
    ds = tf.data.TFRecordDataset(files).map(lambda r: tf.io.parse_single_example(r, spec)["id"]).batch(4096)
    return [i.decode("utf-8") for batch in ds.as_numpy_iterator() for i in batch]


def check_train_shards(
    source: str | os.PathLike,
    schema: LabelSchema,
    *,
    holdout: Mapping[str, Sequence[Any] | None] | None = None,
    num_workers: int = 1,
) -> dict[str, Any]:
    """Check that shards can train a run with ``schema``, before anything is built; returns the index.

    * the label set matches (:func:`column_map`; the columns are remapped when only the order differs);
    * no shard id is in a ``holdout`` split (e.g. ``{"val": val_ids, "test": test_ids}``): shards of
      the whole table would train on the images the run validates and tests on;
    * at least ``num_workers`` shard files, so that each multi-worker process reads its own files
      (TensorFlow's FILE auto-sharding otherwise fails inside ``fit`` with a raw traceback).
    """
    index, folder = load_index(source)
    column_map(index, schema, source)
    files = shard_files(source)
    if int(num_workers) > len(files):
        n = int(index["n_examples"])
        size = max(1, n // int(num_workers))
        raise InputError(
            f"{folder}: {len(files)} shard file(s) cannot be split over {num_workers} workers; each worker "
            f"reads its own files. Write at least {num_workers} shards, e.g. `labelwise shard ... "
            f"--shard-size {size} --overwrite` ({n} images)")
    if holdout:
        ids = set(shard_ids(source))
        for name, part in holdout.items():
            if part is None:
                continue
            both = sorted(ids.intersection(str(i) for i in part))
            if both:
                raise InputError(
                    f"{folder}: {len(both)} of the shards' {len(ids)} images are in this run's {name} split "
                    f"(e.g. {both[:3]}); training on them would leak {name} images into training. Shard the "
                    "training split only: `labelwise shard TABLE --images DIR --out DIR --schema <schema> "
                    "--split-column <split column> --split train --overwrite`")
    return index
