"""Read a model's scores from a file and line them up with the truth table.

Two formats:

* CSV (``.csv``, ``.tsv``): an id column plus one column per label; a ``labelwise predict`` file
  (``p_<label>`` scores beside 0/1 ``<label>`` decisions) is read by its ``p_`` columns. Rows are matched to the
  truth ids by id (any order; an id given as a path matches by its file name). Columns are
  the schema's labels, or only its head outputs (the derived ``none`` score is then
  computed as ``prod(1 - p_i)``, see :meth:`LabelSchema.complete_scores`).
* NPY (``.npy``): an (n, n_labels) or (n, n_outputs) float array whose rows are already in
  the truth table's order.

Every problem raises :class:`~labelwise.errors.InputError` naming the file, the row (as the
line number in the file) and the column.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError
from .schema import LabelSchema

__all__ = ["read_scores"]

_ID_NAMES = ("id", "image", "image index", "image_index", "image_id", "filename", "file", "path", "name")


def read_scores(
    path: str | Path,
    *,
    ids: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    schema: LabelSchema | None = None,
    id_column: str | None = None,
    from_logits: bool = False,
    other_ids: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(ids, scores)``: scores (n, len(labels)) float64 in the order of ``ids``.

    ``labels`` are the expected columns (default ``schema.labels``). With a ``schema``, a file
    holding only ``schema.output_labels`` is accepted and completed with the derived none
    score. ``ids`` (the truth table's ids) fixes the row order; every id must have exactly one
    score row and the file must not hold ids the truth lacks. Without ``ids`` the file's order
    is kept. ``id_column`` names the CSV id column (default: the first column that is not a
    label). CSV columns that are neither the id nor a label are ignored with a ``UserWarning``,
    and so is a CSV without an id column (its rows are matched to ``ids`` by position). Scores
    must lie in [0, 1] unless ``from_logits`` (head logits, converted by the caller); the error
    names the first cell outside and says whether the file looks like logits, percentages or a
    few bad cells. ``other_ids`` (with ``ids``): ids of the same truth table outside the rows
    evaluated (e.g. its other splits); CSV score rows for them are left out with one
    ``UserWarning`` that counts them, instead of being refused as unknown ids.
    """
    path = Path(path)
    if labels is None:
        if schema is None:
            raise InputError("read_scores needs labels= or schema= to know which columns to read")
        labels = schema.labels
    labels = [str(x) for x in labels]
    outputs = list(schema.output_labels) if schema is not None else labels
    # Scores over the free labels only (external scores): derived labels and the none label are
    # computed from them, as the head computes them.
    free = list(schema.free_labels) if schema is not None and schema.derived else outputs
    if not path.exists():
        raise InputError(f"scores file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        file_ids, matrix = _read_npy(path, ids, labels, outputs, from_logits, free)
    elif suffix in (".csv", ".tsv", ".txt"):
        file_ids, matrix = _read_csv(path, ids, labels, outputs, id_column, sep="\t" if suffix == ".tsv" else ",",
                                     from_logits=from_logits, other_ids=other_ids, free=free)
    else:
        raise InputError(f"{path}: unknown scores format {suffix!r}; give a .csv (id + one column per label) or a .npy array")
    if matrix.shape[1] != len(labels):
        if schema is None:  # pragma: no cover - outputs == labels without a schema
            raise InputError(f"{path}: expected {len(labels)} score columns, got {matrix.shape[1]}")
        if matrix.shape[1] == len(free) and len(free) < len(outputs):
            if from_logits:
                raise InputError(f"{path}: the file holds no column for the derived label(s) {list(schema.derived)}; "
                                 "they are computed from probabilities, not logits (give probabilities, or a "
                                 "column per derived label)")
            warnings.warn(f"{path}: no column for the derived label(s) {list(schema.derived)}; their scores are "
                          "computed from their sources' (as the model's head does)", stacklevel=2)
        matrix = schema.complete_scores(matrix)
    return file_ids, matrix


def _check_range(path: Path, m: np.ndarray, columns: Sequence[str], where) -> None:
    """Refuse scores outside [0, 1], naming the first bad cell as ``where(row, column)`` says."""
    from ..metrics._validation import out_of_range_advice

    out = (m < 0) | (m > 1)
    if out.any():
        r, c = map(int, np.argwhere(out)[0])
        raise InputError(f"{path}, {where(r)}, column {columns[c]!r}: score {m[r, c].item():.6g} is outside [0, 1]; "
                         + out_of_range_advice(m, cli=True))


def _read_npy(path: Path, ids, labels, outputs, from_logits=False, free=None):
    free = outputs if free is None else free
    try:
        m = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - numpy raises several types for a bad file
        raise InputError(f"{path}: not a readable .npy array ({e})") from None
    if m.ndim != 2 or m.shape[1] not in (len(labels), len(outputs), len(free)):
        want = f"(n, {len(labels)})" + (f" or (n, {len(outputs)}) over the head outputs" if len(outputs) != len(labels) else "")
        raise InputError(f"{path}: scores array has shape {m.shape}; expected {want}, columns {labels}")
    if ids is not None and m.shape[0] != len(ids):
        raise InputError(
            f"{path}: {m.shape[0]} score rows but the truth table has {len(ids)} rows; a .npy file must hold "
            "one row per truth row, in the same order (use a CSV with an id column to match by id)"
        )
    if not np.issubdtype(m.dtype, np.number) or np.issubdtype(m.dtype, np.complexfloating):
        raise InputError(f"{path}: scores must be numbers, got dtype {m.dtype}")
    m = m.astype(np.float64)
    bad = np.argwhere(~np.isfinite(m))
    if bad.size:
        r, c = bad[0]
        raise InputError(f"{path}: row {r}, column {c}: score is {m[r, c]}; every score must be a finite number"
                         + (f" ({len(bad) - 1} more)" if len(bad) > 1 else ""))
    if not from_logits:
        _check_range(path, m, labels if m.shape[1] == len(labels) else outputs if m.shape[1] == len(outputs)
                     else free, lambda r: f"row {r} (0-based)")
    file_ids = np.asarray(ids if ids is not None else [str(i) for i in range(m.shape[0])], dtype=str)
    return file_ids, m


def _read_csv(path: Path, ids, labels, outputs, id_column, sep, from_logits=False, other_ids=None, free=None):
    free = outputs if free is None else free
    import pandas as pd

    try:
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: the file is empty; expected a header with an id column and one column per label") from None
    except Exception as e:  # noqa: BLE001 - parser errors carry the line number
        raise InputError(f"{path}: cannot parse as CSV ({e})") from None
    df.columns = [str(c).strip() for c in df.columns]
    df = df.loc[:, [c for c in df.columns if c and not c.startswith("Unnamed:")]]  # trailing comma
    cols = list(df.columns)
    if len(set(cols)) != len(cols):
        dup = sorted({c for c in cols if cols.count(c) > 1})
        raise InputError(f"{path}: column(s) {dup} appear twice in the header")
    prefixed = {c[2:]: c for c in cols if c.startswith("p_")}
    if prefixed and (all(c in prefixed for c in labels) or all(c in prefixed for c in outputs)
                     or all(c in prefixed for c in free)):
        # A `labelwise predict` file: p_<label> are the scores; the columns named like the labels hold
        # its 0/1 decisions and `labels` the decided names. Scoring the 0/1 columns would be silent garbage.
        decisions = [c for c in cols if c in labels or c == "labels"]
        df = df.drop(columns=decisions).rename(columns={v: k for k, v in prefixed.items()})
        cols = list(df.columns)
        warnings.warn(f"{path}: a labelwise predict file; its p_<label> columns are read as the scores "
                      "(the 0/1 decision columns named like the labels are not)", stacklevel=3)
    if all(c in cols for c in labels):
        use = labels
    elif all(c in cols for c in outputs):
        use = outputs
    elif all(c in cols for c in free):
        use = free
    else:
        missing = [c for c in free if c not in cols]
        import difflib

        hints = []
        lower = {c.lower(): c for c in cols}
        for m in missing[:5]:
            close = difflib.get_close_matches(m.lower(), list(lower), n=1, cutoff=0.75)
            if close:
                hints.append(f"{m!r} (found {lower[close[0]]!r})")
        raise InputError(
            f"{path}: missing score column(s) {missing}; the file has {cols}. Expected one column per label "
            f"{labels}" + (f"; did you mean: {', '.join(hints)}?" if hints else "")
        )
    if id_column is not None:
        if id_column not in cols:
            raise InputError(f"{path}: id column {id_column!r} not found; the columns are {cols}")
    else:
        others = [c for c in cols if c not in labels]
        named = [c for c in others if c.lower() in _ID_NAMES]
        id_column = named[0] if named else (others[0] if others else None)
    if len(df) == 0:
        raise InputError(f"{path}: no score rows below the header")
    ignored = [c for c in cols if c not in use and c != id_column and not (use is not labels and c in labels)]
    if ignored:
        # Typically a label that never occurs in the truth table, so the inferred schema lacks it.
        warnings.warn(f"{path}: column(s) {ignored} are not labels of the truth table's schema and are ignored "
                      "(declare them in a schema file with --schema to evaluate them)", stacklevel=3)

    values = np.empty((len(df), len(use)), dtype=np.float64)
    for j, col in enumerate(use):
        raw = df[col].str.strip()
        num = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(num))
        if bad.size:
            r = int(bad[0])
            cell = raw.iloc[r]
            what = "empty cell" if cell == "" else f"{cell!r} is not a finite number"
            raise InputError(
                f"{path}, line {r + 2}, column {col!r}: {what}; every score must be a number"
                + (f" ({bad.size - 1} more bad cell(s) in this column)" if bad.size > 1 else "")
            )
        values[:, j] = num
    if not from_logits:
        # Before any reordering, so the line named is the file's own.
        _check_range(path, values, use, lambda r: f"line {r + 2}")

    if id_column is None:
        if ids is not None and len(df) != len(ids):
            raise InputError(
                f"{path}: no id column and {len(df)} score rows for {len(ids)} truth rows; add an id column "
                "(e.g. 'id' or 'Image Index') so rows can be matched"
            )
        if ids is not None:
            # A shuffled file would then score the wrong images, and only chance-level AUCs would hint at it.
            warnings.warn(f"{path}: no id column, so score rows are matched to the truth rows by position "
                          "(line 2 = first truth row); add an id column (e.g. 'id') to match by id",
                          stacklevel=3)
        file_ids = np.asarray(ids if ids is not None else [str(i) for i in range(len(df))], dtype=str)
        return file_ids, values

    file_ids = [str(x) for x in df[id_column].str.strip()]
    empty = [r for r, i in enumerate(file_ids) if i == ""]
    if empty:
        raise InputError(f"{path}, line {empty[0] + 2}, column {id_column!r}: empty id")
    seen: dict[str, int] = {}
    for r, i in enumerate(file_ids):
        if i in seen:
            raise InputError(f"{path}, line {r + 2}: id {i!r} appears twice (first on line {seen[i] + 2}); "
                             "give one score row per image")
        seen[i] = r
    if ids is None:
        return np.asarray(file_ids, dtype=str), values

    ids = [str(i) for i in ids]
    if other_ids is not None:
        file_ids, values, seen = _drop_other_rows(path, ids, other_ids, file_ids, values)
    order = _match(ids, file_ids, seen)
    if order is None:
        # Ids given as paths on one side and names on the other: match on the file name.
        base_truth = [_base(i) for i in ids]
        base_file = {}
        for r, i in enumerate(file_ids):
            base_file.setdefault(_base(i), r)
        if len(base_file) == len(file_ids) and len(set(base_truth)) == len(ids):
            order = _match(base_truth, file_ids, base_file)
    if order is None:
        missing = [i for i in ids if i not in seen]
        extra = sorted(set(file_ids) - set(ids))
        parts = []
        if missing:
            parts.append(f"{len(missing)} truth id(s) have no score row (e.g. {missing[:3]})")
        if extra:
            parts.append(f"{len(extra)} score row(s) have ids not in the truth table (e.g. {extra[:3]})")
        raise InputError(
            f"{path}: ids in column {id_column!r} do not match the truth table: " + "; ".join(parts)
            + ". Score exactly the images of the truth table (or pass --scores with the matching file)."
        )
    return np.asarray(ids, dtype=str), values[order]


def _drop_other_rows(path: Path, ids: list[str], other_ids, file_ids: list[str], values: np.ndarray):
    """Leave out the score rows of truth rows outside the selection (another split), said once."""
    other = {str(i) for i in other_ids} - set(ids)
    keep = [r for r, i in enumerate(file_ids) if i not in other]
    if len(keep) < len(file_ids):
        warnings.warn(f"{path}: {len(file_ids) - len(keep)} score row(s) belong to truth rows outside the selected "
                      f"split and are left out; {len(keep)} row(s) kept", stacklevel=4)
        file_ids = [file_ids[r] for r in keep]
        values = values[keep]
    return file_ids, values, {i: r for r, i in enumerate(file_ids)}


def _match(ids: list[str], file_ids: list[str], index: dict[str, int]) -> np.ndarray | None:
    if len(ids) != len(file_ids):
        return None
    try:
        return np.fromiter((index[i] for i in ids), dtype=np.int64, count=len(ids))
    except KeyError:
        return None


def _base(x: str) -> str:
    return x.replace("\\", "/").rsplit("/", 1)[-1]
