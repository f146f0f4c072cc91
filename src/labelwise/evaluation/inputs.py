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

__all__ = ["parse_named_paths", "read_truth", "select_split", "row_splits", "read_aligned_scores", "load_inputs",
           "load_scores", "as_probabilities", "load_strategies", "thresholds_per_strategy"]

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


def find_split_column(table: Any, column: str | None = None) -> str | None:
    """The truth table's split column: ``column`` when given (``InputError`` if absent), else the
    first extra column named like :data:`labelwise.labels.csvread.SPLIT_COLUMN_NAMES` (any case), else None."""
    cols = [str(c) for c in getattr(table, "extra", {}).columns] if hasattr(table, "extra") else []
    if column is not None:
        if column not in cols:
            raise InputError(f"{table.source}: no split column {column!r}; the columns besides the labels are {cols}")
        return column
    from ..labels.csvread import SPLIT_COLUMN_NAMES

    lower = {c.lower(): c for c in cols}
    return next((lower[c] for c in SPLIT_COLUMN_NAMES if c in lower), None)


def row_splits(table: Any, *, column: str | None = None, splits: PathLike | None = None):
    """``(names, where)``: each row's split name (normalised by
    :func:`labelwise.labels.split.split_name`) and where it came from (``"column 'split'"`` or
    ``"splits.csv"``), or ``(None, None)`` when the table has no split column and no ``splits``
    file is given. ``splits``: the file ``labelwise split --out`` writes, joined by id
    (:func:`labelwise.labels.split.splits_for`); it and ``column`` exclude each other."""
    from ..labels.split import split_name, splits_for

    if splits is not None:
        if column is not None:
            raise InputError(f"give either --splits {splits} or --split-column {column}, not both")
        return splits_for(list(map(str, table.ids)), splits, source=table.source), str(splits)
    col = find_split_column(table, column)
    if col is None:
        return None, None
    return table.extra[col].map(split_name).to_numpy(dtype=object), f"column {col!r}"


def select_split(table: Any, split: str, *, column: str | None = None, splits: PathLike | None = None) -> Any:
    """The rows of ``table`` in split ``split``, as a new table.

    Each row's split comes from the ``splits`` file (``labelwise split --out``, joined by id) or
    from the split column (``column``, or found by :func:`find_split_column`). Names match ignoring
    case and surrounding spaces, with the usual spellings read as one (``validation``/``valid``/
    ``dev`` = ``val``, ``training`` = ``train``, ``testing``/``holdout`` = ``test``; see
    :func:`labelwise.labels.split.split_name`). Raises ``InputError`` naming the file, the source
    and the values present (with their counts) when no row matches, and the columns when there
    is no split column.
    """
    names, where = row_splits(table, column=column, splits=splits)
    return table.subset(_in_split(table, split, names, where, splits is not None))


def _in_split(table: Any, split: str, names: Any, where: str | None, from_file: bool) -> np.ndarray:
    """The mask of ``table``'s rows whose split (``names``, from ``where``: :func:`row_splits`) is ``split``."""
    from ..labels.csvread import SPLIT_COLUMN_NAMES
    from ..labels.split import split_name

    if names is None:
        cols = [str(c) for c in table.extra.columns]
        raise InputError(f"{table.source}: --split {split}: the truth table has no split column (looked for "
                         f"{', '.join(SPLIT_COLUMN_NAMES)}); its other columns are {cols}. Name it with --split-column, "
                         "give the file labelwise split --out wrote with --splits FILE, or drop --split to use "
                         "every row")
    mask = names == split_name(split)
    if not mask.any():
        values, counts = np.unique(names.astype(str), return_counts=True)
        present = ", ".join(f"{str(v)!r} ({int(c)} rows)" for v, c in zip(values, counts))
        has = f"no row of {where} has split" if from_file else f"no row has {where[len('column '):]} ="
        raise InputError(f"{table.source}: {has} {split!r}; the values are {present}")
    return mask


def _split_hint(table: Any) -> str:
    """A hint for ids that do not match when the truth table has a split column and no split was chosen."""
    col = find_split_column(table)
    if col is None:
        return ""
    from ..labels.split import split_name

    values, counts = np.unique(table.extra[col].astype(str).to_numpy(), return_counts=True)
    sizes = ", ".join(f"{v} {c}" for v, c in zip(values, counts))
    example = next((v for v in values if split_name(v) == "test"), values[0])
    return (f" The truth table has a split column {col!r} ({sizes} rows): if the scores cover one split, "
            f"pass --split NAME (split='NAME' in Python), e.g. --split {example}")


def read_aligned_scores(table: Any, path: PathLike, *, id_column: str | None = None, from_logits: bool = False,
                        strategy: str | None = None, full: Any = None, raw: bool = False) -> np.ndarray:
    """Scores ``(n, n_labels)`` in the truth table's row order and label order (read by id; an
    ``.npy`` in the table's row order). With ``from_logits`` the head's activations are applied.
    ``strategy`` names the file in errors when several are compared. ``full``: the whole truth
    table when ``table`` is one split of it (:func:`select_split`); the file may then hold scores
    for the whole table (a CSV's rows of other splits are left out with a note; an ``.npy`` with one
    row per row of ``full`` is cut to the split's rows)."""
    from ..labels.scores import read_scores

    # an .npy over the whole table is read whole, then cut (``id_column`` and ``other_ids`` concern CSVs only)
    whole = full is not None and Path(path).suffix.lower() == ".npy" and _npy_rows(path) == len(full) != len(table)
    try:
        _, scores = read_scores(path, ids=(full if whole else table).ids, schema=table.schema, id_column=id_column,
                                from_logits=bool(from_logits), other_ids=None if full is None else full.ids)
        if whole:
            scores = scores[np.isin(np.asarray(full.ids, dtype=str), np.asarray(table.ids, dtype=str))]
            warnings.warn(f"{path}: one row per row of the whole truth table ({len(full)}); using the {len(table)} "
                          "rows of the selected split", stacklevel=2)
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
    return scores if raw else as_probabilities(scores, table.schema, from_logits)


def as_probabilities(scores: np.ndarray, schema: Any, from_logits: bool) -> np.ndarray:
    """``scores`` unchanged, or with ``from_logits`` the head's activations (sigmoid per independent
    label, softmax per exclusive group) of its first ``schema.n_outputs`` columns, completed with
    the none score (:meth:`~labelwise.labels.schema.LabelSchema.complete_scores`)."""
    if not from_logits:
        return scores
    from .evaluate import scores_from_logits

    return schema.complete_scores(scores_from_logits(scores[:, : schema.n_outputs], schema))


def _npy_rows(path: PathLike) -> int | None:
    try:
        return int(np.load(path, mmap_mode="r", allow_pickle=False).shape[0])
    except Exception:  # noqa: BLE001 - read_scores reports an unreadable file itself
        return None


def _fit_said(n: int, source: Any, names: Any, where: str | None, allow_test_rows: bool) -> str:
    """``"fitting on 2 rows of split 'val' (column 'split') of t.csv"`` for ``n`` rows whose splits
    are ``names`` (from ``where``, :func:`row_splits`); raises ``InputError`` when any row is marked
    test and ``allow_test_rows`` is false."""
    if names is None:
        return (f"fitting on all {n} rows of {source} (no split column and no --splits: every row is taken as "
                "validation data)")
    values, counts = np.unique(names.astype(str), return_counts=True)
    parts = ", ".join(f"{int(c)} of split {str(v)!r}" for v, c in zip(values, counts))
    n_test = int((names == "test").sum())
    if n_test and not allow_test_rows:
        raise InputError(f"{source}: {n_test} of the {n} rows to fit on are marked test ({where}); a fit on test "
                         "rows makes the test metrics optimistic. Fit on the validation rows (--split val), or pass "
                         "--allow-test-rows to fit on them anyway")
    what = f"of split {str(values[0])!r} ({where})" if len(values) == 1 else f"({parts}; {where})"
    return f"fitting on {n} rows {what} of {source}" + (" -- test rows allowed" if n_test else "")


def load_scores(truth: PathLike, scores: PathLike | Sequence[PathLike], *, schema: Any = None, format: str = "auto",
                labels: Any = None, id_column: str | None = None, from_logits: bool = False, split: str | None = None,
                split_column: str | None = None, splits: PathLike | None = None, one: bool = False,
                fit: bool = False, allow_test_rows: bool = False):
    """``(table, {name: (path, scores)}, said)``: the truth table (:func:`read_truth` with ``schema``,
    ``format``, ``labels``) and every scores file (``NAME=PATH`` or a bare path) aligned to it by id
    (:func:`read_aligned_scores` with ``id_column``, ``from_logits``), in the order given.

    ``split``: only the rows of that split (:func:`select_split`; ``split_column`` names the column,
    or ``splits`` gives the file ``labelwise split --out`` wrote), said once as a note. ``one``:
    several score files raise ``InputError`` (thresholds are tuned for one strategy at a time).
    ``fit`` (implies ``one``): the scores as written (logits stay logits) and ``said``, one line saying
    how many rows of which split the fit uses; rows whose split is test (``test``, ``testing``,
    ``holdout``, ...) are refused unless ``allow_test_rows``, rows with no split information are used
    as given and the line says so. Without ``fit``, ``said`` is "".
    """
    from .text import check_strategy_name

    values = [str(scores)] if isinstance(scores, (str, os.PathLike)) else [str(v) for v in scores]
    if (one or fit) and len(values) != 1:
        raise InputError(
            f"this command takes one --scores; got {len(values)} ({', '.join(values)}). Run it once per scores "
            "file, e.g. labelwise thresholds --truth val.csv --scores val_a.csv --out thresholds_a.json")
    named = parse_named_paths(values)
    if len(named) > 1:
        for name, _ in named:
            check_strategy_name(name)
    full = None  # the whole truth table when ``table`` is one split of it
    table = read_truth(truth, schema=schema, format=format, labels=labels)
    if split is None and split_column is not None:
        raise InputError(f"--split-column {split_column}: also give --split NAME (e.g. --split test) to say "
                         "which rows to use")
    # a bad or foreign splits file is refused even without --split
    names, where = (row_splits(table, column=split_column, splits=splits)
                    if fit or split is not None or splits is not None else (None, None))
    if split is not None:
        mask = _in_split(table, split, names, where, splits is not None)
        full, table, names = table, table.subset(mask), names[mask]
        warnings.warn(f"{full.source}: using the {len(table)} row(s) of split {split!r} ({where}) out of {len(full)}",
                      stacklevel=2)
    said = _fit_said(len(table), table.source, names, where, allow_test_rows) if fit else ""
    return table, {name: (path, read_aligned_scores(table, path, id_column=id_column, from_logits=from_logits,
                                                    strategy=name if len(named) > 1 else None, full=full, raw=fit))
                   for name, path in named}, said


def load_strategies(truth: PathLike, scores: Sequence[str], **options: Any):
    """``(table, {name: (path, scores)})`` of :func:`load_scores`: the truth table and every scores
    file aligned to it."""
    return load_scores(truth, scores, **options)[:2]


def load_inputs(truth: PathLike, scores: PathLike | Sequence[PathLike], **options: Any):
    """The truth table and ONE scores file aligned to it: ``(table, scores)``; ``options`` as in
    :func:`load_scores`."""
    table, got, _ = load_scores(truth, scores, one=True, **options)
    (_, scores), = got.values()
    return table, scores


def thresholds_per_strategy(values: Sequence[str] | None, names: Sequence[str]) -> str | Mapping[str, str] | None:
    """``--thresholds`` values -> one path for every strategy, or ``{name: path}``, or None."""
    if not values:
        return None
    if len(values) == 1 and ("=" not in values[0] or Path(values[0]).is_file()):
        return values[0]
    hint = f"give one file for every strategy, or NAME=T.json for each of {list(names)}; got {list(values)}"
    bare = any("=" not in v or Path(v).is_file() for v in values)
    named = {} if bare else dict(parse_named_paths(values, "--thresholds"))
    if bare or set(named) != set(names):
        raise InputError(f"--thresholds: {hint}")
    if len(names) == 1:
        return named[names[0]]
    return named


def follow_file_labels(y: np.ndarray, known: np.ndarray, scores: np.ndarray, schema: Any, path: PathLike | None):
    """Columns matched by label name: when ``path`` is a ``decision.json`` or ``calibration.json``
    whose labels are ``schema``'s in another order (fitted on a truth ``id,a,b``, applied to a truth
    ``id,b,a``), ``(y, known, scores, its schema)`` with every column put in the file's order;
    otherwise the inputs unchanged. ``scores`` may be over the labels or the head outputs."""
    import json

    from ..labels.schema import load_schema

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8")) if path is not None else None
        other = load_schema(doc["schema"]) if isinstance(doc, dict) and isinstance(doc.get("schema"), dict) else None
    except (OSError, ValueError, TypeError, KeyError, InputError):
        return y, known, scores, schema  # the file's own reader words any problem
    if other is None or tuple(other.labels) == tuple(schema.labels) or sorted(other.labels) != sorted(schema.labels):
        return y, known, scores, schema
    perm = [schema.labels.index(x) for x in other.labels]
    names = list(schema.labels) if scores.shape[1] == schema.n_labels else list(schema.output_labels)
    want = list(other.labels) if scores.shape[1] == schema.n_labels else list(other.output_labels)
    if sorted(names) != sorted(want):
        return y, known, scores, schema
    s_perm = [names.index(x) for x in want]
    return y[:, perm], known[:, perm], scores[:, s_perm], other
