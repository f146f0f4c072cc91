"""Reading label CSVs cell by cell: headerless and ragged files, data rows with their line
numbers, the id and label columns, and 0/1 cells checked with the row named. The low level under
:func:`labelwise.labels.tables.read_table`; numpy + pandas only."""

from __future__ import annotations

import csv
import io
import re
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import Note, TableError
from .stats import DEFAULT_GROUP_COLUMNS

#: Id column names, compared ignoring case, best first: a file-name column is the id before a path column.
ID_COLUMN_NAMES = ("Image Index", "image", "image_id", "image_name", "id", "filename", "file_name", "file", "name",
                   "path", "image_path", "filepath", "file_path")
#: Columns that say which split a row belongs to: never labels, whatever their cells (any case).
SPLIT_COLUMN_NAMES = ("split", "subset", "partition", "fold", "set")


def binary_value(cell: Any) -> int | None:
    """A label cell as 0 or 1: ``0``/``1`` in any numeric spelling (``1.0``, ``1.00``) or
    ``True``/``False`` in any case (pandas and spreadsheets write both); None for anything else."""
    if isinstance(cell, (bool, np.bool_)):
        return int(cell)
    text = str(cell).strip().lower()
    if text in ("true", "false"):
        return int(text == "true")
    try:
        v = float(text)
    except ValueError:
        return None
    return int(v) if v in (0.0, 1.0) else None


def _binary_codes(raw: np.ndarray) -> np.ndarray:
    """:func:`binary_value` of every cell of an object array (-1 where a cell is not binary),
    computed once per distinct value; an empty cell is not binary."""
    codes, uniq = pd.factorize(pd.Series(raw.ravel(), dtype=object).astype(str))
    table = np.asarray([-1 if (b := binary_value(u)) is None else b for u in uniq] + [-1], dtype=np.int8)
    return table[codes].reshape(raw.shape)


def is_split_column(name: Any) -> bool:
    """Is ``name`` one of :data:`SPLIT_COLUMN_NAMES` (any case)?"""
    return str(name).strip().lower() in SPLIT_COLUMN_NAMES


def _read_bytes(p: Path, n: int = -1) -> bytes:
    """The file's first ``n`` bytes (all with -1); a file that cannot be read is a TableError naming it."""
    try:
        with open(p, "rb") as f:
            return f.read(n)
    except OSError as e:
        raise TableError(f"{p}: cannot read ({e.strerror or e})") from None


def _looks_headerless(p: Path) -> bool:
    """A whitespace-separated list with no header: ``name 0 1 0 ...`` on the first line."""
    first = _read_bytes(p, 1 << 16).split(b"\n", 1)[0].decode("utf-8", errors="replace").strip()
    if not first or "," in first:
        return False
    parts = first.split()
    return len(parts) >= 2 and all(x in ("0", "1") for x in parts[1:])


# ====================================================================== CSV helpers
def read_csv(path: str | Path, *, sep: str = ",", header: bool = True, empty: str | None = None) -> pd.DataFrame:
    """The one way labelwise reads a CSV: every cell a stripped string (an empty cell NaN, or
    ``empty`` when given; never pandas' "NA"/"nan" guessing), blank lines kept as all-empty rows
    so :func:`_data_rows` gives true line numbers, a repeated column name refused, and every
    failure a :class:`TableError` naming the file. ``header=False``: columns are 0, 1, ...;
    ``sep="whitespace"`` reads a whitespace-separated list."""
    p = Path(path)
    if not p.exists():
        raise TableError(f"{p} does not exist")
    frame = _read_csv(p, sep=sep, header=header)
    return frame if empty is None else frame.fillna(empty)


def _read_csv(p: Path, nrows: int | None = None, *, sep: str = ",", header: bool = True) -> pd.DataFrame:
    """pandas.read_csv (see :func:`read_csv`) with every failure turned into a TableError naming the file."""
    if p.is_dir():
        raise TableError(f"{p} is a folder, not a table file")
    head = _read_bytes(p, 4096)
    if head[:2] == b"\x1f\x8b" or b"\x00" in head:
        raise TableError(f"{p}: this is a binary file (gzip, an image, or UTF-16 text), not a UTF-8 CSV table")
    ragged = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            frame = _pandas_csv(p, nrows, sep, header)
        # index_col=False keeps pandas from turning the first column into an index when the data rows
        # have one more field than the header; it then drops the extra field with this warning.
        ragged = any(issubclass(w.category, pd.errors.ParserWarning) for w in caught)
    except pd.errors.EmptyDataError:
        raise TableError(f"{p}: the file is empty" + ("; expected a header line and one row per image" if header
                                                      else "")) from None
    except UnicodeDecodeError as e:
        raise TableError(f"{p}: not UTF-8 text (byte {e.start}); save the table as UTF-8 CSV") from None
    except ValueError as e:  # pandas' ParserError among them
        if "fields in line" not in str(e):
            raise TableError(f"{p}: not a readable CSV table ({_short(e)})") from None
        if not header or sep == "whitespace":  # no header to measure the rows by
            raise TableError(f"{p}: rows have different numbers of values ({_short(e)})") from None
        ragged = True
    if ragged:
        frame = _read_ragged_csv(p, nrows, sep)
    if header:
        written = _header(p, sep, say=nrows is None)
        # ChestX-ray14's header ends with a comma, which makes an empty, unnamed last column.
        drop = [c for c, h in zip(frame.columns, written + [""] * len(frame.columns))
                if not h and frame[c].isna().all()]
        frame = frame.drop(columns=drop)
        names = [h for h in written if h]
        if len(names) == len(frame.columns):
            frame.columns = names  # the header as written, before pandas renames a repeated 'a' to 'a.1'
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise TableError(f"{p}: column {name!r} appears more than once in the header; every column needs "
                                 f"its own name (rename or remove the repeated {name!r})")
            seen.add(name)
    # Stray spaces around cells ('1 ') are layout, not content; an all-space cell is empty. Leading ones
    # are gone (skipinitialspace); look for trailing ones (before a separator, a line end or the end,
    # inside quotes or not) only when the text has any, and never for a header-only read (nrows=0).
    ends = rb"\r?\n|$" if sep == "whitespace" else re.escape(sep.encode()) + rb"|\r?\n|$"
    trailing = len(frame) and re.search(rb'[ \t]"?(' + ends + rb")", _read_bytes(p)) is not None
    for c in (frame.columns if trailing else []):
        col = frame[c]
        stripped = col.str.strip()
        if not stripped.equals(col):
            frame[c] = stripped.mask(stripped == "")
    return frame


def _header(p: Path, sep: str, say: bool = True) -> list[str]:
    """The first line's column names as written, stripped (a spreadsheet's byte-order mark dropped);
    a trailing-space name is said once."""
    try:
        with open(p, encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f, delimiter=" " if sep == "whitespace" else sep, skipinitialspace=True), [])
    except (UnicodeDecodeError, csv.Error):
        return []
    spaced = [h for h in header if h != h.strip() and h.strip()]
    if spaced and say:
        warnings.warn(f"{p}: spaces around column name(s) {spaced[:3]} were removed", stacklevel=4)
    return [h.strip() for h in header]


def _pandas_csv(source: Any, nrows: int | None, sep: str, header: bool) -> pd.DataFrame:
    # utf-8-sig: a spreadsheet's byte-order mark must not become part of the first column name.
    return pd.read_csv(source, nrows=nrows, sep=r"\s+" if sep == "whitespace" else sep, header=0 if header else None,
                       dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig", skip_blank_lines=False,
                       skipinitialspace=True, index_col=False)


def _read_ragged_csv(p: Path, nrows: int | None, sep: str) -> pd.DataFrame:
    """Read a CSV some of whose rows have more fields than the header.

    Extra fields that are empty (rows ending in commas) are dropped; a non-empty one is an error
    naming the line, since it usually means an unquoted comma inside a value, which shifts every
    later field of the row into the wrong column.
    """
    try:
        with open(p, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=sep, skipinitialspace=True)
            header = next(reader, [])
            width = len(header)
            kept, bad = [header], []
            for row in reader:
                if len(row) > width:
                    extra = [x for x in row[width:] if x.strip()]
                    if extra:
                        bad.append((reader.line_num, len(row), extra[0]))
                    row = row[:width]
                kept.append(row)
    except UnicodeDecodeError as e:
        raise TableError(f"{p}: not UTF-8 text (byte {e.start}); save the table as UTF-8 CSV") from None
    except csv.Error as e:
        raise TableError(f"{p}: not a readable CSV table ({e})") from None
    if bad:
        line, n, value = bad[0]
        raise TableError(
            f"{p}, line {line}: {n} fields but the header has {width} (extra value {value!r}); quote a value "
            f"that contains a comma, or remove the extra field"
            + (f" ({len(bad) - 1} more line(s) like this)" if len(bad) > 1 else "")
        )
    buf = io.StringIO()
    csv.writer(buf, delimiter=sep, lineterminator="\n").writerows(kept)
    buf.seek(0)
    return _pandas_csv(buf, nrows, sep, header=True)


def _short(e: Exception) -> str:
    return str(e).strip().splitlines()[-1][:300]


def _data_rows(frame: pd.DataFrame, p: Path, first_line: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Drop blank lines; return the frame and each row's 1-based line number in the file."""
    lines = np.arange(len(frame), dtype=np.int64) + first_line
    blank = frame.isna().all(axis=1).to_numpy()
    if blank.any():
        frame, lines = frame.loc[~blank].reset_index(drop=True), lines[~blank]
    if not len(frame):
        raise TableError(f"{p}: the table has a header but no rows")
    return frame, lines


def _present(cols: Sequence[Any], candidates: Sequence[str]) -> list[Any]:
    """The columns named like ``candidates`` (compared ignoring case), in the candidates' order, as
    spelled in ``cols``."""
    lower = {str(c).lower(): c for c in reversed(list(cols))}
    return list(dict.fromkeys(lower[c.lower()] for c in candidates if c.lower() in lower))


def _pick_column(frame: pd.DataFrame, p: Path, given: str | None, candidates: Sequence[str], what: str,
                 default_first: bool = False) -> str:
    """The column named ``given``, else the first of ``candidates`` present (compared ignoring case;
    when several are present the choice is said once), else the first column (``default_first``)."""
    cols = list(frame.columns)
    if given is not None:
        if given not in cols:
            raise TableError(f"{p}: no {what} column {given!r}; the columns are {cols}")
        return given
    present = _present(cols, candidates)
    if len(present) > 1:
        warnings.warn(f"{p}: {present[0]!r} is read as the {what} column (also present: "
                      f"{', '.join(repr(c) for c in present[1:])}, kept as information; name another with "
                      f"--{'label' if what == 'labels' else 'id'}-column)", Note, stacklevel=4)
    if present:
        return present[0]
    why = ""
    if default_first:
        if cols[0] not in DEFAULT_GROUP_COLUMNS:
            return cols[0]
        # A patient has several images, so its column repeats values: it would be reported as
        # "duplicate id", which sends the user looking in the wrong place.
        why = f"; the first column {cols[0]!r} groups rows (one patient, several images), so it is not the id"
    raise TableError(f"{p}: cannot tell which column holds the {what}; the columns are {cols}{why} "
                     f"(name it with {'label_column' if what == 'labels' else 'id_column'}=, "
                     f"--{'label' if what == 'labels' else 'id'}-column on the command line)")


def _ids(frame: pd.DataFrame, id_col: str, p: Path, lines: np.ndarray) -> np.ndarray:
    """The stripped ids; duplicates are kept here and judged by :func:`_merge_duplicates` once
    the labels are known."""
    col = frame[id_col]
    empty = np.flatnonzero(col.isna().to_numpy())
    if empty.size:
        raise TableError(f"{p}, row at line {lines[empty[0]]}: empty {id_col!r}; every row needs an id")
    return np.asarray(col.astype(str).str.strip().to_numpy(), dtype=object)


class _RowNames:
    """Lazy ``"<id> at line <n>"`` names for schema error messages (built only for a bad row)."""

    def __init__(self, ids: np.ndarray, lines: np.ndarray | None):
        self.ids, self.lines = ids, lines

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> str:
        if self.lines is None:
            return str(self.ids[i])
        return f"{self.ids[i]} at line {int(self.lines[i])}"


# ====================================================================== label-list CSV


def _looks_like_label(column: pd.Series) -> bool:
    """Is this column of a one-hot CSV a label column?

    Yes when at least 95% of its non-empty cells are 0/1, or, in a table too small for one bad
    cell to stay under 5%, when all but one are and that one is a number (a typo such as 2;
    a small numeric information column with one such value is then reported too, and the
    message says how to name the labels instead).
    Patient ids, ages and text columns stay information. The caller then checks every cell.
    """
    v = column.dropna()  # cells arrive stripped, an empty one as NaN (read_csv)
    if v.empty:
        return False
    is01 = _binary_codes(v.to_numpy(dtype=object)) >= 0
    if is01.mean() >= 0.95:
        return True
    stray = v[~is01]
    return len(stray) == 1 and len(v) >= 2 and bool(pd.to_numeric(stray, errors="coerce").notna().all())


def _check_binary(values: pd.DataFrame, p: Path, ids: np.ndarray, lines: np.ndarray, names: list[str],
                  hint: str | None = None, unknown: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray]:
    """``(y, known)`` of 0/1 label cells; a cell holding one of ``unknown`` (an empty cell is
    ``""``) is unknown (y 0, known False); any other value is an error naming the row."""
    raw = values.to_numpy(dtype=object)
    codes = _binary_codes(raw)
    ok = codes >= 0
    is_unknown = np.zeros(raw.shape, dtype=bool)
    if len(unknown):
        text = np.char.strip(np.where(pd.isna(raw), "", raw).astype(str))  # an empty cell is ""
        is_unknown = ~ok & np.isin(text, list(unknown))
        ok |= is_unknown
    if not ok.all():
        r, c = (int(v[0]) for v in np.nonzero(~ok))
        val = raw[r, c]
        what = "an empty cell" if pd.isna(val) else f"{val!r}"
        raise TableError(f"{p}, row {ids[r]} at line {lines[r]}: label {names[c]!r} has {what}; one-hot "
                         f"label columns hold 0 or 1" + (f" ({int((~ok).sum()) - 1} more bad cell(s))"
                                                         if (~ok).sum() > 1 else "")
                         + (f"; {hint.format(col=names[c])}" if hint else "")
                         + (f" or an unknown value {list(unknown)}" if len(unknown) else ""))
    return (codes == 1) & ~is_unknown, ~is_unknown
