"""Image files for a label table's ids (used by :func:`labelwise.labels.tables.read_table`).

An id names its file by the one rule of :func:`labelwise.labels.ids.resolve_files` (an id without
the file's extension is matched to the one image file with that stem, said once). Missing files
are an error naming some of them and a near-miss file name, or, on request, their rows are dropped.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TableError
from .ids import IMAGE_EXTENSIONS, folder_listing, resolve_files

__all__ = ["attach_paths", "IMAGE_EXTENSIONS"]


def attach_paths(table: Any, folder: Path, on_missing: str) -> Any:
    """Set ``table.paths`` to each id's file in ``folder`` (:func:`~labelwise.labels.ids.resolve_files`),
    checking the files exist; ``on_missing`` is ``"error"`` or ``"drop"`` (those rows).

    An id without its file name extension (``tt0086425`` for ``tt0086425.jpg``) is matched to
    the one image file with that stem, said once in a warning; an id with several such files
    (``x.jpg`` and ``x.png``) stays missing and the error names the candidates.
    """
    if on_missing not in ("error", "drop"):
        raise TableError(f"on_missing must be 'error' or 'drop', not {on_missing!r}")
    if not folder.is_dir():
        raise TableError(f"image folder {folder} does not exist")
    paths, exists, n_stem = resolve_files(table.ids, os.path.abspath(folder))
    if n_stem:
        first = next(r for r in np.flatnonzero(exists)
                     if os.path.basename(paths[r]) != os.path.basename(str(table.ids[r]).strip()))
        warnings.warn(f"{table.source}: {n_stem} id(s) have no file extension; each was matched to the one "
                      f"image file with that name in {folder} (e.g. {table.ids[first]!r} -> "
                      f"{os.path.basename(paths[first])!r})", stacklevel=3)
    missing = np.flatnonzero(~exists)
    if missing.size and on_missing == "error":
        show = ", ".join(table.row_name(int(i)) for i in missing[:3])
        near = _near_miss(paths[missing[0]])
        hint = f"; the folder has {near} for {str(table.ids[missing[0]])!r}" if near else ""
        if missing.size * 2 > len(table):
            # Dropping most of the table is never the fix: the folder or the id column is wrong.
            # (Worded without "not found in": train offers --skip-unreadable only for that wording.)
            raise TableError(f"{table.source}: {missing.size} of {len(table)} images have no file in {folder} "
                             f"(e.g. {show}){hint}; check that the image folder is the right one and that "
                             f"{table.id_column!r} holds the image file names")
        raise TableError(f"{table.source}: {missing.size} of {len(table)} images not found in {folder} "
                         f"(e.g. {show}){hint}; fix the folder, or drop those rows (on_missing='drop')")
    table.paths = paths
    if missing.size:
        table = table.subset(exists)
        table.notes = table.notes + (f"{missing.size} row(s) dropped: image not found in {folder}",)
    return table


def _near_miss(path: str) -> str:
    """A file name in ``path``'s folder close to its name, said as ``"'x.jpg'"`` or
    ``"'x.jpg' and 'x.png'"`` (or "")."""
    import difflib

    folder, name = os.path.split(path)
    present, by_stem = folder_listing(folder)
    cands = sorted(by_stem.get(name, [])) or sorted(by_stem.get(os.path.splitext(name)[0], []))
    if not cands:
        lower = name.lower()
        cands = [n for n in present if n.lower() == lower or os.path.splitext(n)[0].lower() == lower]
    if not cands and len(present) <= 50_000:
        cands = difflib.get_close_matches(name, list(present), n=1, cutoff=0.8)
    if not cands:
        return ""
    shown = " and ".join(repr(c) for c in sorted(cands)[:3])
    return shown + (" (several files with that name: give the extension in the id)" if len(cands) > 1 else "")
