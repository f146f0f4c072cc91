"""Image files for a label table's ids (used by :func:`labelwise.labels.tables.read_table`).

An id names its file in the image folder (``folder/id``); an id without the file's extension
is matched to the one image file with that stem, said once. Missing files are an error naming
some of them and a near-miss file name, or, on request, their rows are dropped.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TableError

__all__ = ["attach_paths", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def attach_paths(table: Any, folder: Path, on_missing: str) -> Any:
    """Set ``table.paths = folder/id``, checking the files exist.

    An id without its file name extension (``tt0086425`` for ``tt0086425.jpg``) is matched to
    the one image file with that stem, said once in a warning; an id with several such files
    (``x.jpg`` and ``x.png``) stays missing and the error names the candidates.
    """
    if on_missing not in ("error", "drop"):
        raise TableError(f"on_missing must be 'error' or 'drop', not {on_missing!r}")
    if not folder.is_dir():
        raise TableError(f"image folder {folder} does not exist")
    base = os.path.abspath(folder)
    paths = np.asarray([os.path.join(base, str(i)) for i in table.ids], dtype=object)
    present = set(os.listdir(base))
    exists = np.fromiter((str(i) in present or os.path.exists(pth) for i, pth in zip(table.ids, paths)),
                         dtype=bool, count=len(paths))
    by_stem: dict[str, list[str]] = {}
    if not exists.all():
        for name in present:
            stem, ext = os.path.splitext(name)
            if ext.lower() in IMAGE_EXTENSIONS:
                by_stem.setdefault(stem, []).append(name)
        matched = []
        for i in np.flatnonzero(~exists):
            found = by_stem.get(str(table.ids[i]), [])
            if len(found) == 1:
                paths[i] = os.path.join(base, found[0])
                exists[i] = True
                matched.append(int(i))
        if matched:
            ex = table.ids[matched[0]]
            warnings.warn(f"{table.source}: {len(matched)} id(s) have no file extension; each was matched to the one "
                          f"image file with that name in {folder} (e.g. {ex!r} -> "
                          f"{os.path.basename(paths[matched[0]])!r})", stacklevel=3)
    missing = np.flatnonzero(~exists)
    if missing.size and on_missing == "error":
        show = ", ".join(table.row_name(int(i)) for i in missing[:3])
        near = _near_miss(str(table.ids[missing[0]]), present, by_stem)
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


def _near_miss(name: str, present: set[str], by_stem: dict[str, list[str]]) -> str:
    """A file name close to ``name``, said as ``"'x.jpg'"`` or ``"'x.jpg' and 'x.png'"`` (or "")."""
    import difflib

    stem = os.path.splitext(name)[0]
    cands = sorted(by_stem.get(name, [])) or sorted(by_stem.get(stem, []))
    if not cands:
        lower = name.lower()
        cands = [n for n in present if n.lower() == lower or os.path.splitext(n)[0].lower() == lower]
    if not cands and len(present) <= 50_000:
        cands = difflib.get_close_matches(name, list(present), n=1, cutoff=0.8)
    if not cands:
        return ""
    shown = " and ".join(repr(c) for c in sorted(cands)[:3])
    return shown + (" (several files with that name: give the extension in the id)" if len(cands) > 1 else "")
