"""An evaluation's inputs read from files: the truth table, one or several score files aligned
to it by id, and thresholds given per strategy.

This is what ``labelwise evaluate`` and ``labelwise thresholds`` do before computing, as a Python
API: ``table, {name: (path, scores)} = load_strategies("y_true.csv", ["a=pred_a.csv", "pred_b.csv"])``.
``split="test"`` evaluates only the rows of one split of a truth table that has a split column
(:func:`select_split`); the scores file may then cover that split alone or the whole table.
Notes about the files (columns ignored, rows reordered) are issued as Python warnings; the CLI
prints them as ``note:`` lines.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError

__all__ = ["parse_named_paths", "read_truth", "select_split", "read_aligned_scores", "load_inputs",
           "load_strategies", "thresholds_per_strategy"]

PathLike = str | os.PathLike


def parse_named_paths(values: Sequence[str], option: str = "--scores") -> list[tuple[str, str]]:
    """``["a=x.csv", "y.csv"]`` -> ``[("a", "x.csv"), ("y", "y.csv")]``: ``NAME=PATH``, or a bare path
    named by its file stem (a value that is an existing file is always a bare path, even with ``=``).
    Raises ``InputError`` for an empty name or path and for a name given twice."""
    out: list[tuple[str, str]] = []
    for raw in values:
        value = str(raw)
        if "=" in value and not Path(value).is_file():
            name, path = (x.strip() for x in value.split("=", 1))
            if not name or not path:
                raise InputError(f"{option} {value!r}: write NAME=PATH (e.g. {option} sigmoid=pred_a.csv) or a bare path")
        else:
            name, path = Path(value).stem, value
        out.append((name, path))
    seen: dict[str, str] = {}
    for name, path in out:
        if name in seen:
            raise InputError(
                f"{option}: the strategy name {name!r} is given twice ({seen[name]} and {path}); name each one, "
                f"e.g. {option} a={seen[name]} {option} b={path}")
        seen[name] = path
    return out


def read_truth(path: PathLike, *, schema: Any = None, format: str = "auto", labels: Sequence[str] | str | None = None):
    """The truth table (any format :func:`labelwise.labels.tables.read_table` reads): ``path`` is a
    :class:`~labelwise.labels.spec.TableSpec` (the other arguments then unused) or a file; ``labels``
    names the columns of a headerless list (a sequence, or one comma-separated string)."""
    from ..labels.tables import TableSpec, read_table

    return read_table(path if isinstance(path, TableSpec) else TableSpec(path, schema=schema, format=format,
                                                                         labels=labels or None))


# Spellings of the usual split names, read as one (as a training split column is read).
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "dev": "val", "test": "test", "testing": "test"}
# Column names taken as the split column when none is named (compared case-insensitively).
SPLIT_COLUMNS = ("split", "subset", "partition", "fold")


def _split_key(value: Any) -> str:
    text = str(value).strip().lower()
    return SPLIT_ALIASES.get(text, text)


def find_split_column(table: Any, column: str | None = None) -> str | None:
    """The truth table's split column: ``column`` when given (``InputError`` if absent), else the
    first extra column named like :data:`SPLIT_COLUMNS` (any case), else None."""
    cols = [str(c) for c in getattr(table, "extra", {}).columns] if hasattr(table, "extra") else []
    if column is not None:
        if column not in cols:
            raise InputError(f"{table.source}: no split column {column!r}; the columns besides the labels are {cols}")
        return column
    lower = {c.lower(): c for c in cols}
    return next((lower[c] for c in SPLIT_COLUMNS if c in lower), None)


def select_split(table: Any, split: str, *, column: str | None = None) -> Any:
    """The rows of ``table`` whose split column holds ``split``, as a new table.

    The column is ``column``, or found by :func:`find_split_column`. Values match ignoring case and
    surrounding spaces, with the usual spellings read as one (``validation``/``valid``/``dev`` =
    ``val``, ``training`` = ``train``, ``testing`` = ``test``). Raises ``InputError`` naming the
    file, the column and the values present (with their counts) when no row matches, and the
    columns when there is no split column.
    """
    col = find_split_column(table, column)
    if col is None:
        cols = [str(c) for c in table.extra.columns]
        raise InputError(f"{table.source}: --split {split}: the truth table has no split column (looked for "
                         f"{', '.join(SPLIT_COLUMNS)}); its other columns are {cols}. Name it with --split-column, "
                         "or drop --split to evaluate every row")
    keys = table.extra[col].map(_split_key).to_numpy(dtype=object)
    mask = keys == _split_key(split)
    if not mask.any():
        values, counts = np.unique(table.extra[col].astype(str).to_numpy(), return_counts=True)
        present = ", ".join(f"{v!r} ({c} rows)" for v, c in zip(values, counts))
        raise InputError(f"{table.source}: no row has {col!r} = {split!r}; the values are {present}")
    return table.subset(mask)


def _split_hint(table: Any) -> str:
    """A hint for ids that do not match when the truth table has a split column and no split was chosen."""
    col = find_split_column(table)
    if col is None:
        return ""
    values, counts = np.unique(table.extra[col].astype(str).to_numpy(), return_counts=True)
    sizes = ", ".join(f"{v} {c}" for v, c in zip(values, counts))
    example = next((v for v in values if _split_key(v) == "test"), values[0])
    return (f" The truth table has a split column {col!r} ({sizes} rows): if the scores cover one split, "
            f"pass --split NAME (split='NAME' in Python), e.g. --split {example}")


def read_aligned_scores(table: Any, path: PathLike, *, id_column: str | None = None, from_logits: bool = False,
                        strategy: str | None = None, full: Any = None) -> np.ndarray:
    """Scores ``(n, n_labels)`` in the truth table's row order and label order (read by id; an
    ``.npy`` in the table's row order). With ``from_logits`` the head's activations are applied.
    ``strategy`` names the file in errors when several are compared. ``full``: the whole truth
    table when ``table`` is one split of it (:func:`select_split`); the file may then hold scores
    for the whole table (a CSV's rows of other splits are left out with a note; an ``.npy`` with one
    row per row of ``full`` is cut to the split's rows)."""
    from ..labels.scores import read_scores

    try:
        if full is not None and Path(path).suffix.lower() == ".npy" and _npy_rows(path) == len(full) != len(table):
            _, scores = read_scores(path, ids=full.ids, schema=table.schema, from_logits=bool(from_logits))
            scores = scores[np.isin(np.asarray(full.ids, dtype=str), np.asarray(table.ids, dtype=str))]
            warnings.warn(f"{path}: one row per row of the whole truth table ({len(full)}); using the {len(table)} "
                          "rows of the selected split", stacklevel=2)
        else:
            other = None if full is None else full.ids
            _, scores = read_scores(path, ids=table.ids, schema=table.schema, id_column=id_column,
                                    from_logits=bool(from_logits), other_ids=other)
    except InputError as e:
        msg = str(e)
        if "do not match the truth table" in msg:
            msg += _split_hint(table) if full is None else (
                f" Only the {len(table)} rows of the selected split are evaluated: are these the scores of "
                "another split?")
        if strategy is not None:
            msg = f"strategy {strategy!r}: {msg}"
        if msg == str(e):
            raise
        raise InputError(msg) from None
    if from_logits:
        from .evaluate import scores_from_logits

        schema = table.schema
        scores = schema.complete_scores(scores_from_logits(scores[:, : schema.n_outputs], schema))
    return scores


def _npy_rows(path: PathLike) -> int | None:
    try:
        return int(np.load(path, mmap_mode="r", allow_pickle=False).shape[0])
    except Exception:  # noqa: BLE001 - read_scores reports an unreadable file itself
        return None


def _read_selected(truth, *, schema, format, labels, split, split_column):
    """``(table, full)``: the truth table, or one split of it and the whole table (``full`` None
    without ``split``). The selection is said once as a note."""
    table = read_truth(truth, schema=schema, format=format, labels=labels)
    if split is None:
        if split_column is not None:
            raise InputError(f"--split-column {split_column}: also give --split NAME (e.g. --split test) to say "
                             "which rows to evaluate")
        return table, None
    part = select_split(table, split, column=split_column)
    warnings.warn(f"{truth}: evaluating the {len(part)} row(s) of split {split!r} "
                  f"(column {find_split_column(table, split_column)!r}) out of {len(table)}", stacklevel=3)
    return part, table


def load_inputs(truth: PathLike, scores: PathLike | Sequence[PathLike], *, schema: Any = None, format: str = "auto",
                labels: Any = None, id_column: str | None = None, from_logits: bool = False,
                split: str | None = None, split_column: str | None = None):
    """The truth table and ONE scores file aligned to it: ``(table, scores)``. Several score files
    raise ``InputError`` (thresholds are tuned for one strategy at a time). ``split``: only the
    rows of that split (:func:`select_split`; ``split_column`` names the column)."""
    values = [str(scores)] if isinstance(scores, (str, os.PathLike)) else [str(v) for v in scores]
    if len(values) != 1:
        raise InputError(
            f"this command takes one --scores; got {len(values)} ({', '.join(values)}). Run it once per scores "
            "file, e.g. labelwise thresholds --truth val.csv --scores val_a.csv --out thresholds_a.json")
    (_, path), = parse_named_paths(values)
    table, full = _read_selected(truth, schema=schema, format=format, labels=labels, split=split,
                                 split_column=split_column)
    return table, read_aligned_scores(table, path, id_column=id_column, from_logits=from_logits, full=full)


def load_strategies(truth: PathLike, scores: Sequence[str], *, schema: Any = None, format: str = "auto",
                    labels: Any = None, id_column: str | None = None, from_logits: bool = False,
                    split: str | None = None, split_column: str | None = None):
    """The truth table and every scores file (``NAME=PATH`` or a bare path) aligned to it:
    ``(table, {name: (path, scores)})``, in the order given; ``split`` as in :func:`load_inputs`."""
    from .text import check_strategy_name

    named = parse_named_paths(list(scores))
    if len(named) > 1:
        for name, _ in named:
            check_strategy_name(name)
    table, full = _read_selected(truth, schema=schema, format=format, labels=labels, split=split,
                                 split_column=split_column)
    return table, {name: (path, read_aligned_scores(table, path, id_column=id_column, from_logits=from_logits,
                                                    strategy=name if len(named) > 1 else None, full=full))
                   for name, path in named}


def thresholds_per_strategy(values: Sequence[str] | None, names: Sequence[str]) -> str | Mapping[str, str] | None:
    """``--thresholds`` values -> one path for every strategy, or ``{name: path}``, or None."""
    if not values:
        return None
    if len(values) == 1 and ("=" not in values[0] or Path(values[0]).is_file()):
        return values[0]
    hint = f"give one file for every strategy, or NAME=T.json for each of {list(names)}; got {list(values)}"
    if any("=" not in v or Path(v).is_file() for v in values):
        raise InputError(f"--thresholds: {hint}")
    named = dict(parse_named_paths(values, "--thresholds"))
    if set(named) != set(names):
        raise InputError(f"--thresholds: {hint}")
    if len(names) == 1:
        return named[names[0]]
    return named
