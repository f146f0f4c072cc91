"""One rule for matching ids written by one command to the ids of a table read by another.

A table's id may be ``x1``, ``x1.png``, ``d/x1.png`` or ``/data/d/x1.png``; ``labelwise predict``
writes the ids it read (or paths relative to the folder it predicted). :func:`match_ids` pairs
each wanted id with at most one given id by the first key, in this order, that pairs it uniquely:

1. the id exactly;
2. the normalised relative path (``\\`` -> ``/``, a leading ``./`` dropped);
3. the file name (the last path part);
4. the file name without an image extension (``x1.png`` -> ``x1``).

A key that several given ids share (two folders holding ``x1.png``) pairs nothing by that key,
so an id is never paired by a guess; it stays unpaired and the caller names it. numpy only.
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np

__all__ = ["match_ids", "id_keys", "resolve_files", "folder_listing", "IMAGE_EXTENSIONS"]

# Files a folder-tree table lists as images; an id may also name its file without one of these or .npy/.dcm.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_IMAGE_EXTENSIONS = (*IMAGE_EXTENSIONS, ".npy", ".dcm")


def _path(x: str) -> str:
    x = str(x).strip().replace("\\", "/")
    while x.startswith("./"):
        x = x[2:]
    return x


def _name(x: str) -> str:
    return _path(x).rsplit("/", 1)[-1]


def _stem(x: str) -> str:
    name = _name(x)
    root, ext = os.path.splitext(name)
    return root if ext.lower() in _IMAGE_EXTENSIONS else name


def id_keys() -> tuple[Callable[[str], str], ...]:
    """The keys :func:`match_ids` tries, in order."""
    return (str, _path, _name, _stem)


def match_ids(wanted: Sequence[object], given: Sequence[object], *, one_to_one: bool = True) -> np.ndarray:
    """For each id in ``wanted``, the index of its id in ``given`` (or -1): ``out[i] = r`` when
    ``given[r]`` pairs with ``wanted[i]`` by the first key of :func:`id_keys` that is unique among
    the still-unpaired given ids. ``one_to_one``: each given id pairs with at most one wanted id
    and the key must be unique among the wanted ids too (aligning scores to a table); without it
    several wanted ids may look up one given id (a table with repeated ids reading a split file)."""
    want = [str(w).strip() for w in wanted]
    have = [str(g).strip() for g in given]
    out = np.full(len(want), -1, dtype=np.int64)
    free = np.ones(len(have), dtype=bool)
    for key in id_keys():
        todo = np.flatnonzero(out < 0)
        if not todo.size or not free.any():
            break
        index: dict[str, int] = {}
        shared: set[str] = set()
        for r in np.flatnonzero(free):
            k = key(have[r])
            if k in index:
                shared.add(k)
            index[k] = int(r)
        wanted_keys = [key(want[i]) for i in todo]
        counts: dict[str, int] = {}
        for k in wanted_keys:
            counts[k] = counts.get(k, 0) + 1
        for i, k in zip(todo, wanted_keys):
            if k in index and k not in shared and (counts[k] == 1 or not one_to_one):
                out[i] = index[k]
                if one_to_one:
                    free[index[k]] = False
    return out


def resolve_files(names: Sequence[object], base: "str | os.PathLike") -> tuple[np.ndarray, np.ndarray, int]:
    """``(paths, found, n_by_stem)``: each id's image file, one rule for ``train`` and ``predict`` --
    ``base/id`` (or the id itself when absolute); an id without its extension (``x1`` for
    ``x1.png``, also ``d/x1``) is the one image file with that stem in its folder. An id with no
    such file, or with several (``x1.jpg`` and ``x1.png``), keeps ``base/id`` and ``found`` False,
    so the caller's error names it. ``n_by_stem`` counts the ids found by their stem."""
    folders: dict[str, tuple[set[str], dict[str, list[str]]]] = {}
    paths = np.empty(len(names), dtype=object)
    found = np.zeros(len(names), dtype=bool)
    n_stem = 0
    for r, name in enumerate(names):
        text = str(name).strip()
        path = text if os.path.isabs(text) else os.path.join(str(base), text)
        folder, file = os.path.split(path)
        present, by_stem = folders.get(folder) or folders.setdefault(folder, folder_listing(folder))
        if file in present or os.path.exists(path):
            found[r] = True
        elif len(by_stem.get(file, ())) == 1:
            path, found[r] = os.path.join(folder, by_stem[file][0]), True
            n_stem += 1
        paths[r] = path
    return paths, found, n_stem


def folder_listing(folder: "str | os.PathLike") -> tuple[set[str], dict[str, list[str]]]:
    """``(names, by_stem)``: the entries of ``folder`` (none when it cannot be listed) and its image
    files by stem (``{"x1": ["x1.png"]}``)."""
    try:
        entries = os.listdir(folder or ".")
    except OSError:
        entries = []
    by_stem: dict[str, list[str]] = {}
    for entry in entries:
        root, ext = os.path.splitext(entry)
        if ext.lower() in _IMAGE_EXTENSIONS:
            by_stem.setdefault(root, []).append(entry)
    return set(entries), by_stem
