"""Image stacks (MRI/CT exams) stored as ``.npy`` arrays, one array per case.

Two layouts are read:

* MRNet's: ``<root>/<split>/<plane>/0000.npy`` (an array of shape ``slices x H x W``), and
  one label CSV per label, ``<root>/<split>-<label>.csv`` with rows ``case id,0/1`` and no
  header (``train-abnormal.csv``, ``train-acl.csv``, ``train-meniscus.csv``). The per-label
  files are merged into one target matrix; they must list the same cases.
  :func:`read_mrnet`.
* A plain CSV with a header: a case id column and 0/1 label columns, the arrays in one folder
  as ``<id>.npy``. :func:`read_stack_table`.

For prediction, where there are no labels, :func:`read_cases` takes a folder of ``.npy``
stacks, one ``.npy`` file, a list of them, or a table naming the cases (either layout above).

Both give a :class:`StackSet` (case ids, file paths, targets, label names); arrays load on
demand (:meth:`StackSet.arrays` is a generator, memory-mapped if asked). Stacks have different
slice counts: :func:`pad_stack` pads a batch to one length and returns the mask that
:class:`labelwise.blocks.layers.MultiImagePooling` takes.

This module imports numpy and pandas only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..errors import InputError, TableError
from .cases import _stack_path, stack_paths

__all__ = ["StackSet", "read_mrnet", "read_stack_table", "read_cases", "pad_stack", "MRNET_LABELS", "MRNET_PLANES"]

MRNET_LABELS = ("abnormal", "acl", "meniscus")
MRNET_PLANES = ("axial", "coronal", "sagittal")


@dataclass
class StackSet:
    """Cases of a stack dataset: ``case_ids[i]`` is stored in ``paths[i]`` with targets ``targets[i]``
    (columns ``labels``)."""

    case_ids: list[str]
    paths: list[Path]
    targets: np.ndarray
    labels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.case_ids)

    def load(self, i: int, *, mmap: bool = False) -> np.ndarray:
        """The array of case ``i``, shape ``slices x H x W`` or ``slices x H x W x C``, read by
        :func:`labelwise.data.cases.load_case` -- the reader ``labelwise train`` uses -- with its
        checks (a ``.npy`` file or a folder of slice images; shape, dtype, no slice, NaN/inf).

        Raises :class:`InputError` naming the file and the case. ``mmap=True`` maps a ``.npy``
        file instead of reading it and checks only its header (shape, dtype): cheap, enough to
        know the slice count; a folder of slices is read whole either way.
        """
        from .cases import _npy, load_case

        path = Path(self.paths[i])
        if mmap and not path.is_dir():
            return _npy(path, str(self.case_ids[i]), mmap=True)
        return load_case(path, self.case_ids[i])

    def arrays(self, *, mmap: bool = False) -> Iterator[np.ndarray]:
        """Each case's array in order, loaded one at a time."""
        for i in range(len(self)):
            yield self.load(i, mmap=mmap)

    def batches(self, batch_size: int, *, max_len: int | None = None, long: str = "center"
                ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(padded stacks, mask, targets)`` per batch of ``batch_size`` cases (see :func:`pad_stack`)."""
        for start in range(0, len(self), batch_size):
            idx = range(start, min(start + batch_size, len(self)))
            arrays = [self.load(i) for i in idx]
            batch, mask = pad_stack(arrays, max_len, long=long, names=[self.case_ids[i] for i in idx])
            yield batch, mask, self.targets[start : start + len(arrays)]


def _paths(base: Path, ids: Sequence[str], source: str, lines: Sequence[int], hint: str = "") -> list[Path]:
    """:func:`labelwise.data.cases.stack_paths` in the folder ``base``, which must exist."""
    if not base.is_dir():
        raise InputError(f"stack folder {base} does not exist")
    return stack_paths(base, ids, source, lines, hint)


def _read_label_csv(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(case ids, 0/1 labels, file lines)`` of one MRNet label file (no header)."""
    from ..labels.csvread import _data_rows, read_csv

    if not Path(path).exists():
        raise TableError(f"label file {path} does not exist")
    df, lines = _data_rows(read_csv(path, header=False), path, first_line=1)
    if df.shape[1] != 2:
        raise TableError(f"{path}: expected 2 columns (case id, 0/1) without a header, got {df.shape[1]}")
    ids = list(df[0].fillna("").astype(str))
    vals = df[1].fillna("")
    bad = np.flatnonzero(~vals.isin(["0", "1"]).to_numpy())
    if bad.size:
        r = int(bad[0])
        raise TableError(f"{path}, row {lines[r]}: the label must be 0 or 1, got {vals.iloc[r]!r}"
                         + (" (the file has a header row; MRNet's label files have none)" if lines[r] == 1 else ""))
    _no_duplicates(ids, str(path), lines)
    return ids, vals.astype(int).to_numpy(), lines


def _no_duplicates(ids: Sequence[str], source: str, lines: Sequence[int]) -> None:
    """Raise naming the two lines (``ids[i]`` is on line ``lines[i]``) of the first repeated case id."""
    seen: dict[str, int] = {}
    for r, cid in enumerate(ids):
        if cid in seen:
            raise TableError(f"{source}: case {cid!r} appears twice (rows {lines[seen[cid]]} and {lines[r]})")
        seen[cid] = r


def _norm(cid: str) -> str:
    return str(int(cid)) if cid.isdigit() else cid


def read_mrnet(root: str | Path, split: str = "train", plane: str = "axial",
               labels: Sequence[str] = MRNET_LABELS) -> StackSet:
    """Read MRNet's layout (see the module docstring): cases from ``<split>-<labels[0]>.csv``,
    targets merged from every ``<split>-<label>.csv``, arrays from ``<root>/<split>/<plane>/``."""
    root = Path(root)
    if plane not in MRNET_PLANES:
        raise InputError(f"plane must be one of {list(MRNET_PLANES)}, got {plane!r}")
    if not labels:
        raise InputError("give at least one label")
    columns = []
    ids: list[str] | None = None
    first = lines = None
    for label in labels:
        path = root / f"{split}-{label}.csv"
        these, vals, at = _read_label_csv(path)
        if ids is None:
            ids, first, lines = these, path, at
            columns.append(vals)
            continue
        pos = {_norm(c): r for r, c in enumerate(these)}
        extra = set(pos) - {_norm(c) for c in ids}
        missing = [c for c in ids if _norm(c) not in pos]
        if missing or extra:
            cid = missing[0] if missing else sorted(extra)[0]
            where_ = path if missing else first
            raise TableError(f"{where_}: case {cid!r} is not listed (the label files {first.name} and {path.name} "
                             "must list the same cases)")
        columns.append(vals[[pos[_norm(c)] for c in ids]])
    assert ids is not None and lines is not None
    targets = np.stack(columns, axis=1).astype(np.uint8)
    paths = _paths(root / split / plane, ids, str(first), lines)
    return StackSet(list(ids), paths, targets, tuple(labels))


def read_stack_table(table: str | Path, stacks_dir: str | Path, *, id_column: str | None = None,
                     label_columns: Sequence[str] | None = None) -> StackSet:
    """A CSV with a header: ``id_column`` (default: the first column) and 0/1 ``label_columns``
    (default: all other columns); arrays are ``<stacks_dir>/<id>.npy`` (found as :func:`read_cases`
    finds a table's cases). Errors name the file's line (blank lines are skipped)."""
    from ..labels.csvread import _data_rows, read_csv

    table = Path(table)
    if not table.exists():
        raise TableError(f"label table {table} does not exist")
    df, lines = _data_rows(read_csv(table), table, first_line=2)
    id_column = id_column or df.columns[0]
    if id_column not in df.columns:
        raise TableError(f"{table}: no column {id_column!r}; the columns are {list(df.columns)}")
    label_columns = list(label_columns) if label_columns else [c for c in df.columns if c != id_column]
    for c in label_columns:
        if c not in df.columns:
            raise TableError(f"{table}: no label column {c!r}; the columns are {list(df.columns)}")
        bad = np.flatnonzero(~df[c].isin(["0", "1"]).to_numpy())  # cells arrive stripped (read_csv)
        if bad.size:
            r = int(bad[0])
            raise TableError(f"{table}, row {lines[r]}: column {c!r} must be 0 or 1, got {df[c].iloc[r]!r}")
    if not label_columns:
        raise TableError(f"{table}: no label columns besides the id column {id_column!r}")
    ids = list(df[id_column].fillna("").astype(str))
    _no_duplicates(ids, str(table), lines)
    targets = df[label_columns].astype(int).to_numpy().astype(np.uint8)
    return StackSet(ids, _paths(Path(stacks_dir), ids, str(table), lines), targets, tuple(label_columns))


_CASE_COLUMNS = ("case_id", "case", "exam", "exam_id", "id", "path", "file", "filename", "stack")


def read_cases(source: str | Path | Sequence[str | Path], stacks_dir: str | Path | None = None, *,
               id_column: str | None = None) -> StackSet:
    """The cases to predict on, without labels -> a :class:`StackSet` (targets of shape (n, 0)).

    ``source`` is one of:

    * a folder: every ``*.npy`` directly in it (the case id the file stem; MRNet:
      ``MRNet-v1.0/valid/sagittal``) and every subfolder of slice images (one case, the id the
      folder name), as ``labelwise train`` finds the cases of a table; sorted by id. Subfolders
      of ``.npy`` files are not searched: one folder holds one plane.
    * one ``.npy`` file (one case, id = stem), or a list of ``.npy`` paths (ids = the paths).
    * a table (CSV, or TSV by suffix): ``id_column`` (default: the first of case_id / case /
      exam / exam_id / id / path / file / filename / stack present, in any case, else the first
      column) names each case, either by id (the stack is ``<stacks_dir>/<id>.npy``; ``"0"`` also finds
      MRNet's ``0000.npy``) or by a ``.npy`` path relative to ``stacks_dir``. ``stacks_dir``
      defaults to the table's folder. A table without a header whose first cell names a stack
      (MRNet's ``valid-acl.csv``) is read as headerless, first column = case ids. Other columns
      (labels) are ignored; blank lines are skipped.

    Files are not opened here (:meth:`StackSet.load` does that); missing files, duplicate or
    empty ids raise an error naming the table and line.
    """
    if not isinstance(source, (str, Path)) and not hasattr(source, "__fspath__"):
        paths = [Path(p) for p in source]
        if not paths:
            raise InputError("no stacks given")
        for p in paths:
            if not p.is_file():
                raise InputError(f"stack file {p} does not exist")
        ids = [str(p) for p in source]
        return StackSet(ids, paths, np.zeros((len(ids), 0), dtype=np.uint8), ())
    source = Path(source)
    if source.is_dir():
        if stacks_dir is not None:
            raise InputError(f"{source} is a folder of stacks; the stacks folder option is for a table of case ids")
        found = _folder_cases(source)
        if not found:
            deeper = sorted({p.parent.relative_to(source).as_posix() for p in source.rglob("*.npy")})
            raise InputError(f"{source} holds no .npy stacks (one slices x H x W array per case) and no case folders "
                             "(one folder of slice images per case)"
                             + (f"; its subfolder(s) {', '.join(deeper[:5])} do: pass one of them, one plane per model"
                                if deeper else ""))
        ids = sorted(found)
        return StackSet(ids, [found[c] for c in ids], np.zeros((len(ids), 0), dtype=np.uint8), ())
    if not source.exists():
        raise InputError(f"{source} does not exist; give a folder of .npy stacks or a table of case ids")
    if source.suffix.lower() == ".npy":
        return StackSet([source.stem], [source], np.zeros((1, 0), dtype=np.uint8), ())
    from ..labels.csvread import _data_rows, _pick_column, read_csv

    base = Path(stacks_dir) if stacks_dir is not None else source.parent
    if not base.is_dir():
        raise InputError(f"stack folder {base} does not exist")
    sep = "\t" if source.suffix.lower() in (".tsv", ".tab") else ","
    df = read_csv(source, sep=sep)
    # no header (MRNet's label files: "0000,1"): the first line is a case
    headerless = id_column is None and _stack_path(base, str(df.columns[0])) is not None
    if headerless:
        df, id_column = read_csv(source, sep=sep, header=False).rename(columns=str), "0"
    df, lines = _data_rows(df, source, first_line=1 if headerless else 2)
    id_column = _pick_column(df, source, id_column, _CASE_COLUMNS, "case id", default_first=True)
    ids = list(df[id_column].fillna("").astype(str))
    empty = [r for r, cid in enumerate(ids) if not cid]
    if empty:
        raise TableError(f"{source}, row {lines[empty[0]]}: the case id (column {id_column!r}) is empty")
    paths = stack_paths(base, ids, str(source), lines,
                        hint="" if stacks_dir is not None else "; pass the stacks folder (--images DIR)")
    _no_duplicates(ids, str(source), lines)
    return StackSet(ids, paths, np.zeros((len(ids), 0), dtype=np.uint8), ())


def _folder_cases(folder: Path) -> dict[str, Path]:
    """``{case id: path}`` for the cases directly in ``folder``, found as a table finds them
    (:func:`labelwise.data.cases.case_paths`): ``ID.npy`` files -- symbolic links that lead
    nowhere included, so that reading them names them instead of leaving them out unsaid -- and
    ``ID/`` folders holding slice images. A folder holding ``.npy`` files instead (MRNet's
    ``valid/``, one subfolder per plane) is not a case. ``ID.npy`` beside ``ID/`` is refused."""
    from .cases import CASE_IMAGE_SUFFIXES
    from .sources import is_input_file

    found: dict[str, Path] = {}
    for p in folder.iterdir():
        if p.name.startswith("."):
            continue
        if p.suffix.lower() == ".npy" and is_input_file(p):
            found[p.stem] = p
    for p in folder.iterdir():
        if p.name.startswith(".") or not p.is_dir() or p.suffix.lower() == ".npy":
            continue
        if not any(q.suffix.lower() in CASE_IMAGE_SUFFIXES for q in p.iterdir() if not q.name.startswith(".")):
            continue
        if p.name in found:
            raise InputError(f"case {p.name!r} has both {found[p.name]} and the folder {p}; keep one of them")
        found[p.name] = p
    return found


def pad_stack(arrays: Sequence[np.ndarray], max_len: int | None = None, *, long: str = "center",
              channel_axis: bool = True, dtype: str = "float32", names: Sequence[object] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Pad stacks of different lengths into ``(batch, mask)``.

    ``batch`` has shape ``(n, max_len, H, W, C)`` (``C = 1`` added for ``slices x H x W``
    arrays when ``channel_axis``), zeros after each stack's last slice; ``mask[i, s]`` is 1 for
    real slices. ``max_len`` defaults to the longest stack; a longer stack is cut to its
    central ``max_len`` slices (``long="center"``) or refused (``long="error"``). All stacks
    must share ``H x W (x C)``; the error names the case (``names``) that does not.
    """
    if not len(arrays):
        raise InputError("pad_stack needs at least one stack")
    if long not in ("center", "error"):
        raise InputError(f"long must be 'center' or 'error', got {long!r}")
    names = list(names) if names is not None else list(range(len(arrays)))
    arrays = [np.asarray(a) for a in arrays]
    shape = arrays[0].shape[1:]
    for a, name in zip(arrays, names):
        if a.ndim not in (3, 4) or a.shape[0] == 0:
            raise InputError(f"stack {name!r}: expected slices x H x W (or x C) with at least one slice, "
                             f"got shape {a.shape}")
        if a.shape[1:] != shape:
            raise InputError(f"stack {name!r} has slices of shape {a.shape[1:]}, but stack {names[0]!r} has {shape}; "
                             "resize the stacks to one size first")
    n_max = max(a.shape[0] for a in arrays)
    max_len = n_max if max_len is None else int(max_len)
    if max_len < 1:
        raise InputError(f"max_len must be at least 1, got {max_len}")
    out_shape = shape + ((1,) if channel_axis and len(shape) == 2 else ())
    batch = np.zeros((len(arrays), max_len, *out_shape), dtype=dtype)
    mask = np.zeros((len(arrays), max_len), dtype=np.float32)
    for i, (a, name) in enumerate(zip(arrays, names)):
        s = a.shape[0]
        if s > max_len:
            if long == "error":
                raise InputError(f"stack {name!r} has {s} slices, more than max_len={max_len}")
            start = (s - max_len) // 2
            a, s = a[start : start + max_len], max_len
        batch[i, :s] = a.reshape(s, *out_shape)
        mask[i, :s] = 1.0
    return batch, mask
