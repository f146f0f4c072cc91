"""What a label table is: :class:`TableSpec` says how to read one (the same fields in every command,
``train``'s config and the ``table_spec.json`` a run writes), :class:`LabelTable` is what was read.
:func:`labelwise.labels.tables.read_table` turns the one into the other. numpy + pandas only."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, TableError
from .schema import LabelSchema

__all__ = ["TableSpec", "LabelTable"]


@dataclass(frozen=True)
class TableSpec:
    """How to read one label table. Every field but ``path`` may be left at its default (detected).

    ``format``: auto, nih, labels, onehot, tree, mnist. ``id_column``: the column of image ids.
    ``label_column``: the column of label names joined by ``sep`` (format labels). ``labels``: the
    label names of a headerless 0/1 list, or the columns of the schema the file holds.
    ``schema``: a schema (path, dict or :class:`LabelSchema`; None: inferred).
    ``repair_implications``: add a missing parent label instead of refusing the row.
    """

    path: str
    format: str = "auto"
    id_column: str | None = None
    label_column: str | None = None
    sep: str = "|"
    labels: tuple[str, ...] | None = None
    schema: Any = None
    repair_implications: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", str(self.path))
        if isinstance(self.labels, str):
            object.__setattr__(self, "labels", tuple(x.strip() for x in self.labels.split(",") if x.strip()) or None)
        elif self.labels is not None:
            object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))

    def __str__(self) -> str:
        return self.path

    def __fspath__(self) -> str:
        return self.path

    def replace(self, **changes: Any) -> "TableSpec":
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON values (a :class:`LabelSchema` as its dict, labels as a list)."""
        d = dataclasses.asdict(self)
        schema = self.schema.to_dict() if isinstance(self.schema, LabelSchema) else d["schema"]
        return {**d, "labels": None if self.labels is None else list(self.labels),
                "schema": str(schema) if isinstance(schema, os.PathLike) else schema}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TableSpec":
        """The inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(data) - names)
        if bad:
            raise InputError(f"table spec: unknown key(s) {bad}; the keys are {sorted(names)}")
        return cls(**data)

    def save(self, path: str | os.PathLike) -> None:
        """Write the spec as JSON (atomically), for a later command to reuse (``--table-spec``)."""
        from ..io import write_json

        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TableSpec":
        """Read a spec written by :meth:`save`."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as e:
            raise InputError(f"{path}: not a readable table spec ({e})") from None


@dataclass
class LabelTable:
    """One label table: ``ids[i]`` has targets ``y[i]`` (columns ``schema.labels``) and ``extra.iloc[i]``.

    ``lines[i]`` is the 1-based line of row ``i`` in ``source`` (None for folders and IDX files);
    ``paths`` holds image paths when known; ``images`` holds pixel arrays for in-memory
    datasets (MNIST).
    """

    ids: np.ndarray
    y: np.ndarray
    schema: LabelSchema
    extra: pd.DataFrame
    source: str
    paths: np.ndarray | None = None
    images: np.ndarray | None = None
    lines: np.ndarray | None = None
    id_column: str = "id"
    format: str = ""
    notes: tuple[str, ...] = field(default=())
    known: np.ndarray | None = None

    def __post_init__(self) -> None:
        # Every cell is known unless the schema's [labels.unknown] values said otherwise.
        if self.known is None:
            self.known = np.ones(np.shape(self.y), dtype=bool)

    def __len__(self) -> int:
        return len(self.ids)

    def targets(self) -> np.ndarray:
        """Training targets (float32, columns ``schema.labels``): ``y`` with each unknown cell set by
        its label's policy -- 1, 0, or -1 (ignore), which every labelwise loss masks, so
        ``model.fit(x, table.targets())`` works (:func:`labelwise.labels.structure.apply_policy`)."""
        from .structure import apply_policy

        return apply_policy(self.y, self.known, self.schema)

    @property
    def labels(self) -> tuple[str, ...]:
        """Column names of ``y`` (``schema.labels``)."""
        return self.schema.labels

    def row_name(self, i: int) -> str:
        """How errors name row ``i``: ``"<id> at line <n>"`` (or just the id)."""
        from .csvread import _RowNames

        return _RowNames(self.ids, self.lines)[i]

    def groups(self, column: str) -> np.ndarray:
        """The values of ``extra[column]`` (e.g. patient ids), as an array aligned to rows.

        Raises :class:`TableError` naming the available columns when ``column`` is absent, and
        naming the row when a value is empty.
        """
        if column not in self.extra.columns:
            raise TableError(
                f"{self.source}: no column {column!r} to group rows by; the columns are "
                f"{[self.id_column, *self.extra.columns]}"
            )
        values = self.extra[column]
        missing = np.flatnonzero(values.isna().to_numpy())
        if missing.size:
            raise TableError(
                f"{self.source}, row {self.row_name(int(missing[0]))}: empty {column!r}; every row needs a group"
                + (f" ({missing.size - 1} more row(s) like this)" if missing.size > 1 else "")
            )
        return values.to_numpy()

    def subset(self, index: Any) -> "LabelTable":
        """Rows selected by a boolean mask or integer indices, as a new table."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise TableError(f"boolean mask of shape {idx.shape} does not match {len(self)} rows")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64)
        rows = {k: None if (v := getattr(self, k)) is None else v[idx]
                for k in ("ids", "y", "paths", "images", "lines", "known")}
        return dataclasses.replace(self, extra=self.extra.iloc[idx].reset_index(drop=True), **rows)

    def to_frame(self) -> pd.DataFrame:
        """A DataFrame: the id column, one 0/1 column per label, then the extra columns."""
        frame = pd.DataFrame(self.y, columns=list(self.schema.labels))
        frame.insert(0, self.id_column, self.ids)
        for col in self.extra.columns:
            if col not in frame.columns:
                frame[col] = self.extra[col].to_numpy()
        return frame


