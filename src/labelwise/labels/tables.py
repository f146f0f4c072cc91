"""Label tables: read the ways people store multi-label annotations into one form.

:func:`read_table` returns a :class:`LabelTable`: unique ids, a validated uint8 target
matrix whose columns are ``schema.labels``, and the other columns (e.g. ``Patient ID``).

Formats (``format=``, ``"auto"`` picks by extension and columns):

``"nih"``
    ChestX-ray14's ``Data_Entry_2017.csv``: ``Image Index`` + ``Finding Labels`` joined by ``|``.
``"labels"``
    Any CSV with an id column and one column of labels joined by ``sep`` (``label_column=``,
    ``id_column=``, ``sep=``). ``"nih"`` is this format with ChestX-ray14's column names.
``"onehot"``
    A CSV with an id column and one 0/1 column per label; or a headerless whitespace-separated
    list ``name v1 v2 ...`` (the CheXNet split lists), whose label names come from the schema
    or ``labels=``. When the schema has a ``none`` label and the file has no column for it,
    the column is derived (an all-zero row is the none label). With neither a schema nor
    ``labels=``, the label columns are those whose cells are 0/1 but for at most 5% (or one, in a
    tiny table; ``1``/``1.0``/``True`` in any case are 1); a stray value in one of them is an error
    naming its row, never a silent demotion to information. Patient, split (split, subset,
    partition, fold, set) and label-list columns, ages and text columns stay information
    (``table.extra``). Beside a label-list column (labels, label, tags), format auto compares
    the two readings by label name: agreeing, the one-hot columns are read (said once);
    disagreeing, the table is refused naming ``--format onehot`` and ``--label-column``.

Columns are always addressed by name (a none label may be first, last or in the middle); a
repeated column name is refused; spaces around names and cells are dropped. Format ``auto`` says
once what it read as ids, labels, groups, splits and other columns.
``"tree"``
    A folder per label combination: ``root/Effusion+Mass/img.png``, ``root/No Finding/x.png``.
    The labels of a folder name are joined by ``+`` (:data:`TREE_SEPARATOR`; ``tree_sep=``).
    Ids are file names, which must be unique across folders.
``"mnist"``
    IDX files (gzip or raw): the labels file (``*labels-idx1-ubyte*``) plus, when present
    beside it, the images file; see :func:`read_mnist_idx`.

Errors name the file and the row: ``row <id> at line <n>``, where ``n`` is the 1-based line
number in the file (the header is line 1). This module imports neither Keras nor TensorFlow.
"""

from __future__ import annotations

import gzip
import os
import struct
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import Note, SchemaError, SchemaViolation, TableError
from .schema import LabelSchema, load_schema
from .structure import settle_table
from .cells import list_literals, merge_duplicates, warn_odd_names
from .csvread import (_check_binary, _data_rows, _ids, _looks_headerless, _looks_like_label,
                      _pick_column, _present, _read_bytes, _read_csv, _RowNames, is_split_column, read_csv,
                      ID_COLUMN_NAMES as _ID_COLUMN_NAMES)
from .ids import IMAGE_EXTENSIONS
from .paths import attach_paths
from .spec import LabelTable, TableSpec
from .stats import DEFAULT_GROUP_COLUMNS

__all__ = [
    "LabelTable", "TableSpec", "read_table", "read_mnist_idx", "load_mnist_idx", "MNIST_SCHEMA", "TREE_SEPARATOR",
    "IMAGE_EXTENSIONS", "FORMATS",
]

FORMATS = ("auto", "nih", "labels", "onehot", "tree", "mnist")
TREE_SEPARATOR = "+"
NIH_ID, NIH_LABELS = "Image Index", "Finding Labels"
# The NIH header writes "OriginalImage[Width,Height]" unquoted, so it splits into two columns.
_NIH_RENAME = {
    "OriginalImage[Width": "OriginalImage Width", "Height]": "OriginalImage Height",
    "OriginalImagePixelSpacing[x": "OriginalImagePixelSpacing x", "y]": "OriginalImagePixelSpacing y",
}
_LABEL_COLUMN_NAMES = ("labels", "label", "tags", NIH_LABELS)  # compared ignoring case, best first
#: ChestX-ray14's label for "no finding": with format "nih" and no schema it is the none label.
NIH_NONE = "No Finding"

#: MNIST as a mixed task: the digit is an exclusive group; "greater_than_5" and "even" are independent.
MNIST_SCHEMA = LabelSchema(
    independent=("greater_than_5", "even"),
    exclusive={"digit": tuple(str(d) for d in range(10))},
)


# ====================================================================== entry point
def read_table(
    source: TableSpec | str | os.PathLike,
    *,
    schema: LabelSchema | dict | str | os.PathLike | None = None,
    format: str = "auto",
    images: str | os.PathLike | None = None,
    labels: Sequence[str] | None = None,
    id_column: str | None = None,
    label_column: str | None = None,
    sep: str = "|",
    tree_sep: str = TREE_SEPARATOR,
    on_missing: str = "error",
    repair_implications: bool = False,
) -> LabelTable:
    """Read a label table (see the module docstring for the formats) and validate it against its schema.

    ``source`` is a :class:`TableSpec` (the one description every command builds from its flags),
    or a path with the spec's fields as keywords (then ignored for a spec).
    With no schema, one is inferred (:meth:`LabelSchema.infer`, which proposes a ``none`` label
    such as ChestX-ray14's "No Finding"); its notes are in ``table.schema.notes``.
    ``images=DIR`` sets ``table.paths = DIR/id`` and checks that the files exist:
    ``on_missing="error"`` (default) raises naming the missing files, ``"drop"`` drops those rows
    (``table.notes`` says how many). With a schema that declares ``[labels.unknown]`` values,
    one-hot cells holding them are unknown (``table.known`` is False there; ``table.targets()``
    gives the training targets); a row with a child but not its parent is refused naming the row,
    or, with ``repair_implications=True``, gets the parent added (counted in ``table.notes``).
    Columns are addressed by name: their order in the file never matters.
    """
    spec = source if isinstance(source, TableSpec) else TableSpec(
        source, format=format, id_column=id_column, label_column=label_column, sep=sep, labels=labels,
        schema=schema, repair_implications=repair_implications)
    format, id_column, label_column, sep = spec.format, spec.id_column, spec.label_column, spec.sep
    labels, repair_implications = spec.labels, spec.repair_implications
    schema = load_schema(spec.schema)
    p = Path(spec.path)
    if format not in FORMATS:
        raise TableError(f"unknown table format {format!r}; choose one of {list(FORMATS)}")
    if not p.exists():
        raise TableError(f"{p}: no such file or folder")
    auto = format == "auto"
    if auto:
        format = _detect_format(p, label_column)
    if format == "tree":
        table = _read_tree(p, schema, tree_sep, repair=repair_implications)
    elif format == "mnist":
        table = _read_mnist_path(p, schema)
    elif p.is_dir():
        raise TableError(f"{p} is a folder; format {format!r} reads a file (a folder is read with format='tree')")
    elif format == "onehot" and _looks_headerless(p):
        table = _read_headerless_onehot(p, schema, labels, repair=repair_implications)
    else:
        frame = _read_csv(p)
        if auto and format in ("labels", "onehot") and label_column is None:
            table = _onehot_or_list(frame, p, schema, labels, id_column, sep, repair_implications)
        elif format == "onehot":
            table = _onehot_from_frame(frame, p, schema, labels, id_column, repair=repair_implications)
        else:
            if format == "nih":
                id_column = id_column or NIH_ID
                label_column = label_column or NIH_LABELS
            table = _labels_from_frame(frame, p, schema, id_column, label_column, sep,
                                       none_hint=NIH_NONE if format == "nih" else None, repair=repair_implications)
            if format == "nih":
                table.format = "nih"
                table.extra = table.extra.rename(columns=_NIH_RENAME)
    if auto and table.format in ("onehot", "labels", "nih") and len(table.extra.columns):
        warnings.warn(_reading(table), Note, stacklevel=2)
    if images is not None:
        table = attach_paths(table, Path(images), on_missing)
    return table


def _reading(t: LabelTable) -> str:
    """What format detection read, said once: ids, labels, groups, splits and the other columns."""
    extra = [str(c) for c in t.extra.columns]
    kinds = {"groups": [c for c in extra if c in DEFAULT_GROUP_COLUMNS],
             "splits": [c for c in extra if is_split_column(c)]}
    kinds["other columns"] = [c for c in extra if c not in kinds["groups"] + kinds["splits"]]
    shown = ", ".join(t.labels[:8]) + (f", ... ({len(t.labels)})" if len(t.labels) > 8 else "")
    return (f"{t.source}: read as {t.format}: ids {t.id_column!r}; labels {shown}"
            + "".join(f"; {k} {', '.join(map(repr, v))}" for k, v in kinds.items() if v)
            + " (choose otherwise with --format, --id-column, --label-column)")


def _detect_format(p: Path, label_column: str | None) -> str:
    if p.is_dir():
        if any(p.glob("*labels-idx1-ubyte*")):
            return "mnist"
        return "tree"
    name = p.name.lower()
    if "idx1-ubyte" in name or "idx3-ubyte" in name:
        return "mnist"
    if label_column:
        return "labels"
    if _looks_headerless(p):
        return "onehot"
    header = _read_csv(p, nrows=0).columns
    if NIH_LABELS in header and (NIH_ID in header or not any(c in header for c in _ID_COLUMN_NAMES)):
        # With 'Finding Labels' but no 'Image Index', format nih names the missing id column;
        # a generic reader would take the first column (often 'Patient ID') as the id.
        return "nih"
    return "onehot"


def _onehot_or_list(frame: pd.DataFrame, p: Path, schema: LabelSchema | None, labels: Sequence[str] | None,
                    id_column: str | None, sep: str, repair: bool) -> LabelTable:
    """Format auto on a CSV: one-hot columns, a label-list column, or both.

    With both, the two readings are compared by label name row by row (the none label aside): when
    they agree the one-hot columns are read, said once; when they differ, or the list is unreadable
    while one-hot columns exist, the table is refused naming both and the flags that choose.
    """
    list_col = next(iter(_present(frame.columns, _LABEL_COLUMN_NAMES)), None)
    try:
        onehot = _onehot_from_frame(frame, p, schema, labels, id_column, repair=repair)
    except (TableError, SchemaError):
        if list_col is None:
            raise
        onehot = None
    if list_col is None:
        return onehot
    if onehot is None:
        return _labels_from_frame(frame, p, schema, id_column, list_col, sep, repair=repair)
    try:
        with warnings.catch_warnings():  # the list is only compared here: its notes are not this reading's
            warnings.simplefilter("ignore")
            as_list = _labels_from_frame(frame, p, schema, id_column, list_col, sep, repair=repair)
    except (TableError, SchemaError):
        as_list = None
    differ = np.arange(len(onehot))
    if as_list is not None and np.array_equal(onehot.ids.astype(str), as_list.ids.astype(str)):
        # By name: every label either reading has (its own none aside), 0 where a reading lacks it.
        names = sorted(({*onehot.labels} - {onehot.schema.none}) | ({*as_list.labels} - {as_list.schema.none}))
        a, b = (pd.DataFrame(t.y, columns=list(t.labels)).reindex(columns=names, fill_value=0)
                for t in (onehot, as_list))
        differ = np.flatnonzero((a.to_numpy() != b.to_numpy()).any(axis=1))
    if not differ.size:
        warnings.warn(f"{p}: the one-hot columns {list(onehot.labels)} are read as the labels; the list column "
                      f"{list_col!r} agrees with them on every row and is kept as information", Note, stacklevel=4)
        return onehot
    r = int(differ[0])
    said = (f"e.g. {onehot.ids[r]!r}: one-hot {_names(onehot, r)}, {list_col!r} {_names(as_list, r)}; "
            f"{differ.size} of {len(onehot)} rows differ" if as_list is not None
            else f"{list_col!r} is not a readable label list")
    raise TableError(f"{p}: both one-hot label columns {list(onehot.labels)} and a label-list column {list_col!r} "
                     f"are present and they disagree ({said}); say which holds the labels: --format onehot "
                     f"(format='onehot'; {list_col!r} is then information) or --label-column {list_col} "
                     f"(label_column='{list_col}')")


def _names(t: LabelTable, r: int) -> list[str]:
    """The labels true in row ``r``, the none label left out (it says the same as no label)."""
    return [lbl for lbl, v in zip(t.labels, t.y[r]) if v and lbl != t.schema.none]


def _labels_from_frame(frame: pd.DataFrame, p: Path, schema: LabelSchema | None, id_column: str | None,
                       label_column: str | None, sep: str, none_hint: str | None = None,
                       repair: bool = False) -> LabelTable:
    """A table with one column of ``sep``-joined label names.

    With no schema, ``none_hint`` (ChestX-ray14's "No Finding" for format nih) is taken as the
    none label when present, so a row that gives it beside a finding is named as an error.
    """
    frame, lines = _data_rows(frame, p, first_line=2)
    label_col = _pick_column(frame, p, label_column, _LABEL_COLUMN_NAMES, "labels")
    id_col = _pick_column(frame, p, id_column, [c for c in _ID_COLUMN_NAMES if c != label_col], "id",
                          default_first=frame.columns[0] != label_col)
    ids = _ids(frame, id_col, p, lines)
    names = _RowNames(ids, lines)
    cells = frame[label_col]
    # A cell of separators only ("|", " | ") holds no label either.
    no_label = cells.astype(str).str.replace(sep, "", regex=False).str.strip() == ""
    empty = np.flatnonzero(cells.isna().to_numpy() | no_label.to_numpy(dtype=bool, na_value=True))
    if empty.size:
        none_name = schema.none if schema is not None else none_hint
        hint = f" (write {none_name!r} for a row with no finding)" if none_name else ""
        raise SchemaViolation(f"{p}, row {names[int(empty[0])]}: empty label cell in {label_col!r}; every row "
                              f"needs at least one label{hint}"
                              + (f" ({empty.size - 1} more row(s) like this)" if empty.size > 1 else ""))
    # Encode each distinct label string once (ChestX-ray14 has ~800 combinations for 112k rows).
    codes, uniques = pd.factorize(cells.astype(str), sort=False)
    uniques = [str(u) for u in uniques]
    uniques, sep = list_literals(uniques, codes, p, label_col, names, sep)
    if schema is None:
        found = _label_names(uniques, sep)
        warn_odd_names(found, p, label_col)
        if none_hint in found and len(found) > 1:
            schema = LabelSchema(
                independent=tuple(x for x in found if x != none_hint), none=none_hint,
                notes=(f"{none_hint!r} is this format's implied 'none' label (true exactly when no other label "
                       f"is), so it may not be given beside another label; declare none = {none_hint!r} in a "
                       f"schema file to make this explicit",),
            )
    # A format that names its none label (nih: "No Finding") has none when that label is absent;
    # guessing another label (a lone 'Effusion' row) would be wrong.
    y, schema = _encode_lists(uniques, codes, sep, schema, names, str(p), propose_none=none_hint is None)
    return _finish(p, ids, lines, y, np.ones(y.shape, dtype=bool), schema,
                   frame.drop(columns=[id_col, label_col]).reset_index(drop=True), id_col, "labels", repair)


def _label_names(uniques: Sequence[str], sep: str) -> list[str]:
    """The distinct label names of ``sep``-joined strings, sorted."""
    return sorted({x.strip() for u in uniques for x in u.split(sep) if x.strip()})


def _encode_lists(uniques: Sequence[str], codes: np.ndarray, sep: str, schema: LabelSchema | None, row_names: Any,
                  source: str, propose_none: bool = True) -> tuple[np.ndarray, LabelSchema]:
    """``(y, schema)`` for rows whose labels are ``uniques[codes]`` (names joined by ``sep``), each
    distinct string encoded once. With no schema, one is inferred from the names found
    (:meth:`LabelSchema.infer`); a string the schema refuses is named by its first row
    (``row_names``), the other rows like it counted."""
    if schema is None:
        found = _label_names(uniques, sep)
        y = LabelSchema(independent=tuple(found)).encode(uniques, sep=sep, validate=False)[codes]
        schema = LabelSchema.infer(y, found, propose_none=propose_none)
        return y[:, [found.index(lbl) for lbl in schema.labels]], schema
    try:
        return schema.encode(uniques, sep=sep, validate=False)[codes], schema
    except SchemaViolation:  # encode row by row, so the error names the file's first bad row
        schema.encode([uniques[c] for c in codes], sep=sep, row_names=row_names, source=source, validate=False)
        raise  # pragma: no cover - the line above raises


def _finish(p: Path, ids: np.ndarray, lines: np.ndarray, y: np.ndarray, known: np.ndarray, schema: LabelSchema,
            extra: pd.DataFrame, id_col: str, format: str, repair: bool, row_names: Any = None,
            paths: np.ndarray | None = None) -> LabelTable:
    """The table of a file's (or folder's) rows: labels settled by the schema (:func:`settle_table`;
    rows named by ``row_names``, else by id and line), repeated ids merged (:func:`merge_duplicates`)."""
    row_names = _RowNames(ids, lines) if row_names is None else row_names
    y, known, notes = settle_table(y, known, schema, row_names=row_names, source=str(p), repair=repair)
    ids, y, extra, lines, known = merge_duplicates(ids, y, extra, lines, p, schema.labels, known)
    return LabelTable(ids=ids, y=np.ascontiguousarray(y, dtype=np.uint8), schema=schema, extra=extra, paths=paths,
                      source=str(p), lines=lines, id_column=id_col, format=format, notes=notes, known=known)


# ====================================================================== one-hot
def _onehot_from_frame(frame: pd.DataFrame, p: Path, schema: LabelSchema | None, labels: Sequence[str] | None,
                       id_column: str | None, repair: bool = False, first_line: int = 2) -> LabelTable:
    frame, lines = _data_rows(frame, p, first_line=first_line)
    cols = list(frame.columns)
    id_col = _pick_column(frame, p, id_column, _ID_COLUMN_NAMES, "id", default_first=True)
    ids = _ids(frame, id_col, p, lines)
    if labels is not None:
        if schema is not None:
            _check_subset(p, labels, schema)
        wanted = list(labels)
    elif schema is not None:
        # Derived labels and none may be left out: they are computed.
        wanted = [x for x in schema.labels if x in schema.free_labels or x in cols]
    else:
        # Label columns are the (mostly) 0/1 ones; the rest is extra information. "Mostly": a label
        # column with one stray value must be reported, not silently read as information.
        # Groups, splits and label lists are never labels, whatever their cells hold.
        wanted = [c for c in cols if c != id_col and c not in DEFAULT_GROUP_COLUMNS and not is_split_column(c)
                  and not _present([c], _LABEL_COLUMN_NAMES) and _looks_like_label(frame[c])]
        if not wanted and NIH_ID in cols:
            raise TableError(f"{p}: no labels column {NIH_LABELS!r} and no 0/1 label columns found; the columns "
                             f"are {cols} (a ChestX-ray14 table has {NIH_ID!r} and {NIH_LABELS!r})")
        if not wanted:
            raise TableError(f"{p}: no 0/1 label columns found; the columns are {cols} (for a column of "
                             f"label names use format='labels' with label_column=)")
    missing = [c for c in wanted if c not in cols]
    if missing:
        raise TableError(f"{p}: label column(s) {missing} not found; the columns are {cols}")
    values = frame[wanted]
    hint = None
    if schema is None and labels is None:
        hint = "fix the cell; if {col!r} is not a label, give a schema (--schema, schema=) that lists the labels"
    y, known = _check_binary(values, p, ids, lines, wanted, hint=hint,
                             unknown=schema.unknown_values if schema is not None else ())
    if schema is None:
        schema = LabelSchema.infer(y, wanted) if labels is None else LabelSchema(independent=tuple(wanted))
    y, known = _place(y, known, wanted, schema)
    return _finish(p, ids, lines, y, known, schema, frame.drop(columns=[id_col, *wanted]).reset_index(drop=True),
                   id_col, "onehot", repair)


def _place(y: np.ndarray, known: np.ndarray, given: Sequence[str], schema: LabelSchema):
    """(n, n_labels) matrix and known mask in ``schema.labels`` order from the columns of ``y`` named
    ``given`` (matched by name, never by position); absent (computed) columns unknown."""
    cols = [schema.labels.index(x) for x in given]
    full, k = np.zeros((len(y), schema.n_labels), dtype=np.uint8), np.zeros((len(y), schema.n_labels), dtype=bool)
    full[:, cols], k[:, cols] = y, known
    return full, k


def _read_headerless_onehot(p: Path, schema: LabelSchema | None, labels: Sequence[str] | None,
                            repair: bool = False) -> LabelTable:
    """A headerless list ``name v1 v2 ...``: its label names are ``labels``, else the schema's labels,
    outputs or free labels, whichever count the values match; then read as a one-hot table."""
    if labels is None and schema is None:
        raise TableError(f"{p}: a headerless list ('name 0 1 0 ...') has no label names; give a schema "
                         f"(--schema) or the label names (labels=, --labels a,b,c)")
    try:
        frame = read_csv(p, sep="whitespace", header=False)
    except TableError as e:
        if "different numbers" not in str(e):
            raise
        raise TableError(f"{e}; expected 'name v1 v2 ...' on every line") from None
    n_val = frame.shape[1] - 1
    if labels is not None:
        wanted = list(labels)
        if n_val != len(wanted):
            raise TableError(f"{p}: rows have {n_val} label values but {len(wanted)} label names were given")
    else:
        wanted = next((list(names) for names in (schema.labels, schema.output_labels, schema.free_labels)
                       if len(names) == n_val), None)
        if wanted is None:
            raise TableError(f"{p}: rows have {n_val} label values but the schema has {schema.n_outputs} "
                             f"labels {list(schema.output_labels)}")
    frame.columns = ["id", *wanted]
    return _onehot_from_frame(frame, p, schema, wanted, "id", repair=repair, first_line=1)


def _check_subset(p: Path, given: Sequence[str], schema: LabelSchema) -> None:
    """``labels=`` names columns of the schema: a name outside it is an error; schema labels left
    out (and not computed from others) are unknown in every row, said once."""
    outside = [x for x in given if x not in schema.labels]
    if outside:
        raise TableError(f"{p}: label(s) {outside} given with --labels (labels=) are not in the schema, whose labels "
                         f"are {list(schema.labels)}; fix the names or the schema")
    left = [x for x in schema.free_labels if x not in given]
    if left:
        warnings.warn(f"{p}: schema label(s) {left} are not among the given labels {list(given)}; they are unknown "
                      f"in every row (no training signal, no metric)", stacklevel=4)


# ====================================================================== image tree
def _read_tree(root: Path, schema: LabelSchema | None, tree_sep: str, repair: bool = False) -> LabelTable:
    if not root.is_dir():
        raise TableError(f"{root}: format 'tree' reads a folder with one sub-folder per label combination")
    folders, files, ids = [], [], []
    stray = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            for sub in sorted(os.scandir(entry.path), key=lambda e: e.name):
                if sub.is_file() and sub.name.lower().endswith(IMAGE_EXTENSIONS) and not sub.name.startswith("."):
                    folders.append(entry.name)
                    files.append(os.path.abspath(sub.path))
                    ids.append(sub.name)
        elif entry.name.lower().endswith(IMAGE_EXTENSIONS):
            stray.append(entry.name)
    if stray:
        raise TableError(f"{root}: image {stray[0]!r} is not inside a label folder; put each image in a folder "
                         f"named by its labels joined by {tree_sep!r} (e.g. 'Effusion{tree_sep}Mass/')"
                         + (f" ({len(stray) - 1} more)" if len(stray) > 1 else ""))
    if not ids:
        raise TableError(f"{root}: no images found (expected {root}/<labels>/<image> with extensions "
                         f"{list(IMAGE_EXTENSIONS)})")
    id_arr = np.asarray(ids, dtype=object)
    dup = pd.Series(id_arr).duplicated(keep=False).to_numpy()
    if dup.any():
        name = id_arr[np.flatnonzero(dup)[0]]
        where_ = [f"{folders[i]}/{name}" for i in np.flatnonzero(id_arr == name)]
        raise TableError(f"{root}: image name {name!r} appears in several folders ({', '.join(where_)}); "
                         f"an image has one label set, so keep it in one folder")
    codes, uniques = pd.factorize(pd.Series([f.replace(tree_sep, "|") for f in folders], dtype=object))
    names = [f"{folders[i]}/{ids[i]}" for i in range(len(ids))]
    y, schema = _encode_lists(list(uniques), codes, "|", schema, names, str(root))
    return _finish(root, id_arr, None, y, np.ones(y.shape, dtype=bool), schema, pd.DataFrame({"folder": folders}),
                   "id", "tree", repair, row_names=names, paths=np.asarray(files, dtype=object))


# ====================================================================== MNIST (IDX)
def load_mnist_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzip or raw): images -> uint8 (n, 28, 28), labels -> uint8 (n,).

    The header is big-endian: magic ``0x0000 0x08 ndim`` (type 0x08 = uint8), then ``ndim``
    32-bit sizes, then the data.
    """
    p = Path(path)
    raw = _read_bytes(p)
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise TableError(f"{p}: a broken gzip file ({e})") from None
    if len(raw) < 8 or raw[0:2] != b"\x00\x00" or raw[2] != 0x08:
        raise TableError(f"{p}: not an IDX file of uint8 (the MNIST format); its first bytes are {raw[:4]!r}")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise TableError(f"{p}: the IDX header is cut short: it announces {ndim} dimension sizes (4 bytes each) but "
                         f"the file has {len(raw)} bytes; the file is truncated, download it again")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise TableError(f"{p}: the header says {dims} = {int(np.prod(dims))} values but the file has {data.size}")
    return data.reshape(dims)


def read_mnist_idx(images_path: str | os.PathLike | None, labels_path: str | os.PathLike,
                   *, schema: LabelSchema | None = None) -> LabelTable:
    """MNIST digits as a label table; ``table.images`` holds the uint8 (n, 28, 28) pixels (or None).

    Labels by name: ``"0"``..``"9"`` (the digit), ``"greater_than_5"`` (digit > 5), ``"even"``,
    ``"odd"``; the default schema is :data:`MNIST_SCHEMA`. Ids are ``"<labels file>#<index>"``.
    """
    schema = schema or MNIST_SCHEMA
    digits = load_mnist_idx(labels_path)
    if digits.ndim != 1:
        raise TableError(f"{labels_path}: expected a 1-D labels IDX file, got shape {digits.shape}")
    imgs = None
    if images_path is not None:
        imgs = load_mnist_idx(images_path)
        if imgs.ndim != 3 or len(imgs) != len(digits):
            raise TableError(f"{images_path}: {imgs.shape} images do not match the {len(digits)} labels in "
                             f"{labels_path}")
    not_digit = np.flatnonzero(digits > 9)
    if not_digit.size:
        r = int(not_digit[0])
        raise TableError(f"{labels_path}, row {r}: label value {int(digits[r])} is not a digit 0-9; an MNIST labels "
                         f"file holds digits" + (f" ({not_digit.size - 1} more row(s) like this)"
                                                 if not_digit.size > 1 else ""))
    derived = {str(d): digits == d for d in range(10)}
    derived.update(greater_than_5=digits > 5, even=digits % 2 == 0, odd=digits % 2 == 1)
    cols = []
    for label in schema.output_labels:
        if label not in derived:
            raise SchemaError(f"{labels_path}: MNIST has no label {label!r}; its labels are {sorted(derived)}")
        cols.append(derived[label])
    y = schema.complete(np.stack(cols, axis=1).astype(np.uint8))
    ids = np.asarray([f"{Path(labels_path).name}#{i}" for i in range(len(digits))], dtype=object)
    schema.validate(y, row_names=ids, source=str(labels_path))
    return LabelTable(ids=ids, y=y, schema=schema, extra=pd.DataFrame({"digit": digits.astype(np.int64)}),
                      source=str(labels_path), images=imgs, format="mnist")


def _read_mnist_path(p: Path, schema: LabelSchema | None) -> LabelTable:
    if p.is_dir():
        cands = sorted(p.glob("*labels-idx1-ubyte*"))
        if not cands:
            raise TableError(f"{p}: no '*labels-idx1-ubyte*' file in this folder")
        # Prefer a labels file whose images are present (MNIST's test set here).
        with_images = [c for c in cands if (c.parent / c.name.replace("labels-idx1", "images-idx3")).exists()]
        p = (with_images or cands)[0]
    if "images-idx3" in p.name:
        images, labels = p, p.parent / p.name.replace("images-idx3", "labels-idx1")
    else:
        images, labels = p.parent / p.name.replace("labels-idx1", "images-idx3"), p
    if not labels.exists():
        raise TableError(f"{labels}: no such labels file (needed beside {p})")
    return read_mnist_idx(images if images.exists() and images != labels else None, labels, schema=schema)

