"""The data of a training run: the table read with its schema and split into train / val / test
(:func:`load_data`), or in-memory arrays (:class:`TrainData`), and the test split's file check.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, TableError
from ..labels.schema import LabelSchema, load_schema
from .config import TrainConfig

__all__ = ['Part', 'TrainData', 'load_data']


@dataclass
class Part:
    """One split: ``x`` (image paths, or an image array (n, h, w[, c])), ``y`` (n, n_labels) 0/1
    over ``schema.labels``, and ``ids`` (names used in outputs). With unknown cells in the table,
    ``y`` holds the training targets of :meth:`LabelTable.targets` (int8; -1 = unknown and
    ignored; in train the cells of a positive/negative policy are filled, in val and test every
    unknown cell stays -1): the losses mask -1, validation AUC, threshold tuning and the test
    evaluation use each label's known rows."""

    x: Any
    y: np.ndarray
    ids: np.ndarray
    #: the rows' group (patient) ids when the table has a group column: the report resamples them
    groups: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class TrainData:
    """The splits of a run and their schema; ``test`` may be None."""

    schema: LabelSchema
    train: Part
    val: Part
    test: Part | None = None


# ------------------------------------------------------------------ data
def load_data(config: TrainConfig) -> TrainData:
    """Read ``config.table`` with its schema and split it into train / val / test."""
    if not config.table:
        raise InputError("no table given: set `table` in the config (or --table) to a CSV of image ids and labels")
    from ..errors import TableError
    from ..labels.paths import attach_paths
    from ..labels.tables import read_table

    # Read once; the image files are then checked against the ids (again only when some are dropped).
    table = read_table(config.table_spec(load_schema(config.schema)))
    every = table.ids
    if config.images is not None:
        try:
            table = attach_paths(table, Path(config.images), "error")
        except TableError as e:
            if "not found in" not in str(e):
                raise
            if not config.skip_unreadable:
                raise TableError(f"{e}; or pass --skip-unreadable (skip_unreadable = true) to leave those rows out "
                                 "with a warning") from None
            table = attach_paths(table, Path(config.images), "drop")
            kept = set(map(str, table.ids))
            gone = [str(i) for i in every if str(i) not in kept]
            shown = "\n".join(f"  {i}" for i in gone[:10]) + (f"\n  ... and {len(gone) - 10} more"
                                                               if len(gone) > 10 else "")
            warnings.warn(f"skip_unreadable: leaving out {len(gone)} of {len(every)} row(s) of {config.table} whose "
                          f"image file is missing from {config.images}:\n{shown}", stacklevel=2)
    x = table.paths if table.paths is not None else table.images
    if x is None:
        raise InputError(f"{config.table}: no image paths; set `images` to the folder holding the images")
    return _train_data(config, table, np.asarray(x, dtype=str) if table.paths is not None else np.asarray(x),
                      empty="is empty; training needs a train and a val split")


def _train_data(config: Any, table: Any, x: np.ndarray, *, empty: str) -> TrainData:
    """``table`` split by :func:`split_masks` into :class:`TrainData`, ``x[i]`` being row ``i``'s input
    (image path, image or case). An empty train or val split raises ``"{table}: the {k} split {empty}"``;
    the fit rows (:func:`_check_fit_rows`) and ``min_labels``/``max_labels`` are checked before any training."""
    masks = split_masks(config, table)
    for k in ("train", "val"):
        if not masks[k].any():
            raise InputError(f"{config.table}: the {k} split {empty}")
    _check_fit_rows(config, table, masks)
    check_label_bounds(config, table.schema)

    # Unknown cells travel as -1 in y so model.fit masks them; in train the positive/negative policy
    # fills its cells, while val and test keep every unknown cell -1 (they are judged on known truth only).
    y_train = table.y if table.known.all() else table.targets().astype(np.int8)
    y_eval = table.y if table.known.all() else np.where(table.known, table.y, -1).astype(np.int8)
    groups = _groups(table, config)

    def part(mask: np.ndarray, y_all: np.ndarray = y_eval) -> Part:
        return Part(x[mask], y_all[mask], np.asarray(table.ids)[mask], None if groups is None else groups[mask])

    return TrainData(table.schema, part(masks["train"], y_train), part(masks["val"]),
                     part(masks["test"]) if masks["test"].any() else None)


def _check_fit_rows(config: TrainConfig, table: Any, masks: dict[str, np.ndarray]) -> None:
    """A fit never uses rows marked test: the calibration and the decision rule are fitted on val,
    so an image id in both val and test (one image in two splits) is refused before training,
    unless ``allow_test_rows``."""
    if config.allow_test_rows or not masks["test"].any():
        return
    ids = np.asarray(table.ids).astype(str)
    both = set(ids[masks["val"]]) & set(ids[masks["test"]])
    if both:
        raise InputError(f"{config.table}: {len(both)} id(s) are in both the val and the test split (e.g. "
                         f"{sorted(both)[0]!r}); the decisions fitted on val would be fitted on test images. Give "
                         "each image one split (labelwise split), or set allow_test_rows = true")


def check_label_bounds(config: Any, schema: LabelSchema) -> None:
    """Refuse ``min_labels``/``max_labels`` that contradict the schema (e.g. min_labels 2 with a
    none label) before training, not after it (:func:`labelwise.decide.rules.check_bounds`)."""
    from ..decide.rules import check_bounds

    lo, hi = getattr(config, "min_labels", None), getattr(config, "max_labels", None)
    if lo is not None or hi is not None:
        check_bounds(schema, lo, hi)


def _groups(table: Any, config: Any) -> np.ndarray | None:
    """The rows' group ids (``group_column``, else a "Patient ID"-like column), or None."""
    from ..evaluation.evaluate import default_groups

    try:
        return default_groups(table, getattr(config, "group_column", None))[0]
    except (InputError, TableError):
        return None


def split_masks(config: TrainConfig, table: Any) -> dict[str, np.ndarray]:
    """Boolean masks ``{"train", "val", "test"}`` over ``table``'s rows: from ``config.splits`` (the
    file ``labelwise split --out`` writes, joined by id: :func:`labelwise.labels.split.splits_for`;
    file rows for ids the table no longer has, e.g. rows left out by skip_unreadable, are ignored), or
    ``config.split_column`` (values train/val/test: :func:`labelwise.labels.split.column_splits`), else
    :func:`labelwise.labels.split.split_table` with ``config.split_fractions`` and ``config.group_column``
    (rows of one group share a split). Split names are read by :func:`labelwise.labels.split.split_name`."""
    from ..labels.split import column_splits, read_splits_file, split_table, splits_for

    if config.splits and config.split_column:
        raise InputError(f"give either splits ({config.splits}) or split_column ({config.split_column!r}), not both")
    if config.splits:
        names = splits_for([str(i) for i in table.ids], config.splits, source=config.table)
        bad = sorted(set(names) - {"train", "val", "test"})
        if bad:
            rows = read_splits_file(config.splits)
            line = int(rows["line"][rows["split"].isin(bad)].iloc[0])
            raise InputError(f"{config.splits}, line {line}: split value(s) {bad[:5]}; use train, val or test")
    elif config.split_column:
        names = column_splits(table, config.split_column, config.table)
    else:
        if min(config.split_fractions) <= 0:
            raise InputError(f"split_fractions {list(config.split_fractions)}: each of train, val and test must be "
                             "more than 0 (e.g. --split-fractions 0.7 0.1 0.2); to train without a test part, "
                             "use a split column (split_column) with only train and val values")
        # one row each, aligned to the table's rows, named train / val / test
        names = split_table(table, config.group_column, config.split_fractions, seed=config.seed)["split"].to_numpy()
    return {k: names == k for k in ("train", "val", "test")}


def _check_test_images(config: TrainConfig, data: TrainData) -> TrainData:
    """Check the test split's image files before training (a bad one found only in
    :func:`_finish` lost the whole run's artifact); with ``skip_unreadable`` the unreadable
    rows are left out of ``data.test``, so the test prediction needs no second check."""
    from ..data.choose import pipeline_module
    from ..data.sources import ImageSource

    if data.test is None:
        return data
    src = ImageSource.create(data.test.x, skip_unreadable=config.skip_unreadable, channels=config.channels,
                             verbose=config.verbose, failures=pipeline_module(config.pipeline).decode_failures)
    if not src.skipped:
        return data
    keep = src.keep
    test = Part(np.asarray(data.test.x)[keep], data.test.y[keep], np.asarray(data.test.ids)[keep],
                None if data.test.groups is None else np.asarray(data.test.groups)[keep])
    return dataclasses.replace(data, test=test)
