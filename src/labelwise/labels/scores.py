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

from ..errors import InputError, Note
from .schema import LabelSchema

__all__ = ["read_scores"]



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


def _check_finite(m: np.ndarray, bad_cell, by_column: bool = False) -> None:
    """Refuse a score that is not a finite number: ``bad_cell(row, column, more)`` words the first one, in
    row order (``more``: how many others), or column by column (``more``: how many others in its column)."""
    bad = np.argwhere(~np.isfinite(m.T if by_column else m))
    if bad.size:
        r, c = map(int, bad[0][::-1] if by_column else bad[0])
        more = int((bad[:, 0] == bad[0, 0]).sum()) - 1 if by_column else len(bad) - 1
        raise InputError(bad_cell(r, c, more))


def _read_npy(path: Path, ids, labels, outputs, from_logits, free):
    try:
        m = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - numpy raises several types for a bad file
        raise InputError(f"{path}: not a readable .npy array ({e})") from None
    use = next((want for want in (labels, outputs, free) if m.ndim == 2 and m.shape[1] == len(want)), None)
    if use is None:
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
    _check_finite(m, lambda r, c, more: f"{path}: row {r}, column {c}: score is {m[r, c]}; every score must be a "
                  "finite number" + (f" ({more} more)" if more else ""))
    if not from_logits:
        _check_range(path, m, use, lambda r: f"row {r} (0-based)")
    file_ids = np.asarray(ids if ids is not None else [str(i) for i in range(m.shape[0])], dtype=str)
    return file_ids, m


def _read_csv(path: Path, ids, labels, outputs, id_column, sep, from_logits, other_ids, free):
    import pandas as pd

    from ..errors import TableError
    from .csvread import ID_COLUMN_NAMES, _data_rows, read_csv

    try:
        df, lines = _data_rows(read_csv(path, sep=sep), path, first_line=2)
    except TableError as e:
        msg = str(e).replace("a header but no rows", "a header but no score rows")
        raise InputError(msg if "empty" not in msg else f"{msg}; expected a header with an id column and one "
                         "column per label") from None
    df = df.fillna("")
    cols = list(df.columns)
    prefixed = {c[2:]: c for c in cols if c.startswith("p_")}
    if prefixed and any(all(c in prefixed for c in want) for want in (labels, outputs, free)):
        # A `labelwise predict` file: p_<label> are the scores; the columns named like the labels hold
        # its 0/1 decisions and `labels` the decided names. Scoring the 0/1 columns would be silent garbage.
        decisions = [c for c in cols if c in labels or c == "labels"]
        df = df.drop(columns=decisions).rename(columns={v: k for k, v in prefixed.items()})
        cols = list(df.columns)
        warnings.warn(f"{path}: a labelwise predict file; its p_<label> columns are read as the scores "
                      "(the 0/1 decision columns named like the labels are not)", Note, stacklevel=3)
    use = next((want for want in (labels, outputs, free) if all(c in cols for c in want)), None)
    if use is None:
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
    if id_column is not None and id_column not in cols:
        # --id-column names the truth table's id column; a scores file may name its own differently.
        warnings.warn(f"{path}: no column {id_column!r}; its id column is found as usual", stacklevel=3)
        id_column = None
    if id_column is None:
        others = {c.lower().replace("_", " "): c for c in reversed([c for c in cols if c not in labels])}
        named = [others[n.lower().replace("_", " ")] for n in ID_COLUMN_NAMES if n.lower().replace("_", " ") in others]
        id_column = named[0] if named else next((c for c in cols if c not in labels), None)
    if len(df) == 0:
        raise InputError(f"{path}: no score rows below the header")
    ignored = [c for c in cols if c not in use and c != id_column and not (use is not labels and c in labels)]
    if ignored:
        # Typically a label that never occurs in the truth table, so the inferred schema lacks it.
        warnings.warn(f"{path}: column(s) {ignored} are not labels of the truth table's schema and are ignored "
                      "(declare them in a schema file with --schema to evaluate them)", stacklevel=3)

    cells = df[use].apply(lambda col: col.str.strip())
    values = cells.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    _check_finite(values, lambda r, c, more: f"{path}, line {lines[r]}, column {use[c]!r}: " + (
        "empty cell" if cells.iat[r, c] == "" else f"{cells.iat[r, c]!r} is not a finite number")
        + "; every score must be a number" + (f" ({more} more bad cell(s) in this column)" if more else ""),
        by_column=True)
    if not from_logits:
        # Before any reordering, so the line named is the file's own.
        _check_range(path, values, use, lambda r: f"line {lines[r]}")

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
        raise InputError(f"{path}, line {lines[empty[0]]}, column {id_column!r}: empty id")
    seen: dict[str, int] = {}
    repeated: list[int] = []
    for r, i in enumerate(file_ids):
        first = seen.setdefault(i, r)
        # a table's repeated identical rows are predicted twice: the same image, the same scores
        # (up to float noise between batches)
        if first != r and not np.allclose(values[r], values[first], rtol=1e-4, atol=1e-6):
            raise InputError(f"{path}, line {lines[r]}: id {i!r} appears twice (first on line {lines[first]}) with "
                             "other scores; give one score row per image")
        if first != r:
            repeated.append(r)
    if repeated:
        warnings.warn(f"{path}: {len(repeated)} repeated row(s) with the same id and scores as an earlier row are "
                      f"read once (e.g. {file_ids[repeated[0]]!r} on line {lines[repeated[0]]})", stacklevel=3)
        file_ids, values = _without(set(repeated), file_ids, values)
    if ids is None:
        return np.asarray(file_ids, dtype=str), values

    ids = [str(i) for i in ids]
    from .ids import match_ids

    if other_ids is not None:
        # the rows of the other splits are found by the same id rule as the selected rows
        other = [str(i) for i in other_ids if str(i) not in set(ids)]
        every = match_ids([*ids, *other], file_ids)
        theirs = {int(r) for r in every[len(ids):] if r >= 0}
        if theirs:
            file_ids, values = _without(theirs, file_ids, values)
            warnings.warn(f"{path}: {len(theirs)} score row(s) belong to truth rows outside the selected split and "
                          f"are left out; {len(file_ids)} row(s) kept", stacklevel=3)
    order = match_ids(ids, file_ids)
    missing = [i for i, r in zip(ids, order) if r < 0]
    extra = sorted(set(file_ids) - {file_ids[r] for r in order if r >= 0})
    if missing or extra:
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


def _without(rows: set[int], file_ids: list[str], values: np.ndarray) -> tuple[list[str], np.ndarray]:
    """``file_ids`` and ``values`` without the rows ``rows``."""
    keep = [r for r in range(len(file_ids)) if r not in rows]
    return [file_ids[r] for r in keep], values[keep]
