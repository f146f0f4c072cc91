"""Cases (exams) of many images for case-level training: where each case's slices are, reading
them, checking them, and choosing which slices a batch gets.

The images of case ``ID`` are either

* ``IMAGES/ID.npy``: one array ``slices x H x W`` or ``slices x H x W x C`` (C = 1, 3 or 4); the
  id ``0`` also finds MRNet's ``0000.npy``, and an id may be a ``.npy`` path relative to IMAGES, or
* the folder ``IMAGES/ID/``: one image file per slice (PNG, JPEG, BMP, GIF), read in name
  order; names starting with ``.`` (``.DS_Store``) are ignored, any other file is an error.

Both existing for one id is ambiguous and refused. A 2-D ``.npy`` (``H x W``) is refused too,
not read as one slice: it may as well be a mistake (a stack saved flattened, a label map), and
``numpy.save(path, image[None])`` says "one slice" unambiguously.

:func:`check_cases` reads every case once before training (headers of image files; the whole of
float ``.npy`` stacks, for NaN/inf) so a bad case stops the run before the first epoch, with
an :class:`InputError` naming the case and file. :func:`select_slices` is the ``max_slices``
rule: a training case longer than ``max_slices`` gets a random subset each epoch, drawn from the
seed sequence ``(seed, epoch, case index)`` (so a resumed run draws what the uninterrupted one
drew); val/test/predict take ``max_slices`` evenly spaced slices.

This module imports numpy and Pillow only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import InputError
from .sources import link_problem

__all__ = ["CaseSet", "case_paths", "stack_paths", "load_case", "case_length", "check_cases", "select_slices",
           "even_slices", "CASE_IMAGE_SUFFIXES"]

CASE_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclass
class CaseSet:
    """Cases: ``ids[i]`` has its slices at ``paths[i]`` (a ``.npy`` file or a folder), targets
    ``y[i]`` (or ``y`` None), and ``lengths[i]`` slices (filled by :func:`check_cases`)."""

    ids: np.ndarray
    paths: list[Path]
    y: np.ndarray | None = None
    lengths: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.paths)


def case_paths(ids: Sequence[object], images: str | os.PathLike, *, table: str | os.PathLike | None = None,
               lines: Sequence[int] | None = None) -> list[Path]:
    """Every case id's stack in ``images`` (:func:`stack_paths`); raises :class:`InputError` naming the
    first missing (or doubly stored) case and its table row (``lines[i]``, the file line of ``ids[i]``;
    default: the data row)."""
    base = Path(images)
    if not base.is_dir():
        raise InputError(f"images folder {base} does not exist (set `images` to the folder holding "
                         "<case id>.npy stacks or one folder of slices per case)")
    ids = [str(i) for i in ids]
    return stack_paths(base, ids, "the table" if table is None else str(table),
                       range(1, len(ids) + 1) if lines is None else lines)


def stack_paths(base: Path, ids: Sequence[str], source: str, lines: Sequence[int], hint: str = "") -> list[Path]:
    """The one rule, for train and predict, for where case ``ids[i]`` (on line ``lines[i]`` of ``source``)
    is stored in the folder ``base``: ``<id>.npy`` (MRNet's ``0000.npy`` for ``"0"``), a ``.npy`` path
    relative to ``base`` (:func:`_stack_path`), or the folder ``<id>/`` of slice images. A file that is not
    ``.npy``, a case with both a stack and a folder, or a missing case raises :class:`InputError` naming
    ``source``, the line and the case (``hint`` ends the missing-case message)."""
    paths: list[Path] = []
    missing: list[tuple[int, str]] = []
    for r, cid in enumerate(ids):
        p, folder = _stack_path(base, cid), base / cid
        if p is not None and cid and folder.is_dir():
            raise InputError(f"{source}, row {lines[r]}: case {cid!r} has both {p} and the folder {folder}; "
                             "keep one of them")
        if p is None and cid and folder.is_dir():  # one image file per slice
            p = folder
        if p is not None and p.suffix.lower() != ".npy" and not p.is_dir():
            raise InputError(f"{source}, row {lines[r]}: {p} is not a .npy stack; a case is one "
                             "slices x H x W array saved with numpy.save")
        if p is None:
            missing.append((r, cid))
        paths.append(p)  # type: ignore[arg-type]
    if missing:
        r, cid = missing[0]
        looked = base / cid if cid.lower().endswith(".npy") else base / f"{cid}.npy"
        raise InputError(f"{source}, row {lines[r]}: no stack file for case {cid!r} (looked for {looked}) and no "
                         f"folder {base / cid}{os.sep}"
                         + (f"; {len(missing) - 1} more case(s) missing" if len(missing) > 1 else "") + hint)
    return paths


def _stack_file(folder: Path, case_id: str) -> Path | None:
    p = folder / f"{case_id}.npy"
    if p.exists():
        return p
    if case_id.isdigit():  # MRNet's CSVs may hold "0" for the file 0000.npy
        p = folder / f"{int(case_id):04d}.npy"
        if p.exists():
            return p
    return None


def _stack_path(base: Path, value: str) -> Path | None:
    """The file a table cell names: an existing path with a suffix (relative to ``base`` unless
    absolute), else ``<base>/<value>.npy`` (see :func:`_stack_file`); None when absent."""
    value = value.strip()
    if not value:
        return None
    direct = Path(value) if Path(value).is_absolute() else base / value
    if Path(value).suffix and direct.is_file():
        return direct
    return _stack_file(base, value)


def _slice_files(folder: Path, case_id: str) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    others = [p for p in files if not p.is_file() or p.suffix.lower() not in CASE_IMAGE_SUFFIXES]
    if others:
        names = ", ".join(p.name for p in others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise InputError(f"{folder}: the folder of case {case_id!r} holds {len(others)} file(s) that are not images "
                         f"({names}); a case folder holds only its slices ({', '.join(CASE_IMAGE_SUFFIXES)})")
    if not files:
        raise InputError(f"{folder}: case {case_id!r} has no slices (the folder is empty); remove the case from "
                         "the table or add its images")
    return files


def _read_image(path: Path, case_id: str) -> np.ndarray:
    """One slice image -> ``H x W`` (gray) or ``H x W x 3`` array in 0-255 (alpha dropped,
    16-bit scaled by 255/65535 as TensorFlow's decoder does)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                return (np.asarray(im, dtype=np.float64) * (255.0 / 65535.0)).astype(np.float32)
            if mode in ("1", "L", "LA"):
                return np.asarray(im.convert("L"))
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise InputError(f"{path}: slice of case {case_id!r} cannot be read as an image ({e})") from None


def _npy_problem(path: Path, error: Exception) -> str:
    """Say what is wrong with a file ``np.load`` refused, in words a user can act on."""
    if os.path.islink(path) and not os.path.exists(path):
        return link_problem(path)
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError:
        return str(error)
    if not head:
        return "the file is empty"
    if head != b"\x93NUMPY":
        return "not a NumPy .npy file (no NumPy header)"
    return str(error)


def _npy(path: Path, case_id: str, *, mmap: bool) -> np.ndarray:
    """Open one ``.npy`` stack (only its header when ``mmap``) and check its shape and dtype."""
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{path}: cannot read the stack of case {case_id!r} ({_npy_problem(path, e)}); write each "
                         "stack with numpy.save(path, array) as a slices x H x W (x C) array") from None
    if arr.ndim == 2:
        raise InputError(f"{path}: case {case_id!r} is a 2-D array {arr.shape}, not a stack; it is NOT read as one "
                         "slice. For a one-slice case save array[None] (shape (1, H, W)); otherwise save the stack "
                         "as slices x H x W (x C)")
    if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[-1] not in (1, 3, 4)):
        raise InputError(f"{path}: case {case_id!r} has shape {arr.shape}; a stack is slices x H x W, or "
                         "slices x H x W x C with C = 1, 3 or 4")
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{path}: case {case_id!r} holds {arr.dtype} values; a stack holds numbers")
    if arr.shape[0] == 0:
        raise InputError(f"{path}: case {case_id!r} has no slices (shape {arr.shape}); remove the case from the "
                         "table or fill its stack")
    return arr


def _check_finite(arr: np.ndarray, path: Path, case_id: str) -> None:
    if arr.dtype.kind != "f":
        return
    for s in range(arr.shape[0]):  # slice by slice: a memory-mapped stack is never read whole
        if not np.isfinite(arr[s]).all():
            bad = "NaN" if np.isnan(arr[s]).any() else "inf"
            raise InputError(f"{path}: case {case_id!r} has {bad} values in slice {s} (of {arr.shape[0]}); "
                             "replace them (e.g. numpy.nan_to_num) or remove the case")


def load_case(path: str | os.PathLike, case_id: object, *, indices: Sequence[int] | None = None) -> np.ndarray:
    """The slices of one case, ``slices x H x W`` or ``slices x H x W x C``; only the slices
    ``indices`` (in that order) when given. Raises :class:`InputError` naming the case and file
    for every problem listed in the module docstring, and for NaN/inf values."""
    path, cid = Path(path), str(case_id)
    if path.is_dir():
        files = _slice_files(path, cid)
        chosen = files if indices is None else [files[int(i)] for i in indices]
        arrays = [_read_image(f, cid) for f in chosen]
        first = arrays[0].shape
        for f, a in zip(chosen, arrays):
            if a.shape != first:
                raise InputError(f"{path}: the slices of case {cid!r} differ in shape: {chosen[0].name} is {first}, "
                                 f"{f.name} is {a.shape}; resize them to one size (and one colour mode)")
        return np.stack(arrays)
    arr = _npy(path, cid, mmap=indices is not None)
    if indices is not None:
        arr = np.asarray(arr[np.asarray(indices, dtype=np.int64)])
    _check_finite(arr, path, cid)
    return arr


def case_length(path: str | os.PathLike, case_id: object) -> int:
    """The slice count of one case, checking what is cheap to check: the ``.npy`` header (and
    every value of a float stack, for NaN/inf), or each image file's header and size.

    The one check of a case's data: ``labelwise train`` runs it on every case before the first
    epoch (:func:`check_cases`) and ``labelwise predict`` on every case before the first batch, so
    predict scores exactly the cases train would accept."""
    path, cid = Path(path), str(case_id)
    if not path.is_dir():
        arr = _npy(path, cid, mmap=True)
        _check_finite(arr, path, cid)
        return int(arr.shape[0])
    from PIL import Image, UnidentifiedImageError

    files = _slice_files(path, cid)
    first = None
    for f in files:
        try:
            with Image.open(f) as im:
                key = (im.size, "gray" if im.mode in ("1", "L", "LA", "I;16", "I;16B", "I;16L", "I") else "colour")
        except (OSError, UnidentifiedImageError) as e:
            raise InputError(f"{f}: slice of case {cid!r} cannot be read as an image ({e})") from None
        if first is None:
            first = (f, key)
        elif key != first[1]:
            raise InputError(f"{path}: the slices of case {cid!r} differ in shape: {first[0].name} is "
                             f"{first[1][0][1]}x{first[1][0][0]} {first[1][1]}, {f.name} is {key[0][1]}x{key[0][0]} "
                             f"{key[1]}; resize them to one size (and one colour mode)")
    return len(files)


def check_cases(cases: CaseSet, *, progress: Callable[[int, int], None] | None = None) -> CaseSet:
    """Check every case (see :func:`case_length`) and fill ``cases.lengths``; the first problem
    raises :class:`InputError` naming the case. ``progress(done, total)`` after each case."""
    lengths = np.zeros(len(cases), dtype=np.int64)
    for i, (cid, p) in enumerate(zip(cases.ids, cases.paths)):
        lengths[i] = case_length(p, cid)
        if progress is not None:
            progress(i + 1, len(cases))
    cases.lengths = lengths
    return cases


def even_slices(n: int, k: int | None) -> np.ndarray:
    """``k`` evenly spaced slice indices of ``n``: ``floor((j + 1/2) n / k)`` for ``j < k`` (all
    ``n`` when ``k`` is None or ``n <= k``); centred, so ``k = 1`` takes the middle slice."""
    if k is None or n <= k:
        return np.arange(n)
    return np.floor((np.arange(k) + 0.5) * n / k).astype(np.int64)


def select_slices(n: int, max_slices: int | None, *, train: bool, seed: int = 0, epoch: int = 0,
                  index: int = 0) -> np.ndarray:
    """Which slices of an ``n``-slice case a batch gets (sorted indices).

    All of them when ``n <= max_slices``. Longer cases: in training a random ``max_slices``
    subset without replacement from ``numpy.random.default_rng([seed, epoch, index])``, in
    slice order; else :func:`even_slices`.
    """
    if max_slices is None or n <= max_slices:
        return np.arange(n)
    if not train:
        return even_slices(n, max_slices)
    rng = np.random.default_rng([int(seed), int(epoch), int(index)])
    return np.sort(rng.choice(n, size=int(max_slices), replace=False))
