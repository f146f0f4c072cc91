"""How label tables read single cells and repeated rows (used by :mod:`labelwise.labels.tables`).

* A label cell written as a JSON or Python list literal (``['Comedy', 'Drama']``) is a list of
  labels, said once; a cell that starts like a list but is not one is an error naming its row.
* Label names holding brackets or quotes get one warning (a list split by the wrong separator).
* A repeated id with identical labels is one image listed twice: merged, with a counted warning;
  with different labels it is an error naming both lines.
"""

from __future__ import annotations

import ast
import json
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import TableError

__all__ = ["list_literals", "warn_odd_names", "merge_duplicates", "LIST_SEP"]


LIST_SEP = "\x1f"  # joins the items of a list literal: a character no label name holds


def list_literals(uniques: list[str], codes: np.ndarray, p: Path, label_col: str, names: Any,
                   sep: str) -> tuple[list[str], str]:
    """Read label cells written as JSON or Python list literals (``["Comedy", "Drama"]``,
    ``['Comedy', 'Drama']``) as lists of labels, said once in a warning.

    Returns the cells re-joined by an internal separator and that separator (``sep`` unchanged
    when no cell is a list). A cell that starts with ``[`` but is not a list of strings is an
    error naming its row. Plain cells beside list cells are split by ``sep`` as before.
    """
    looks = [u.strip().startswith("[") for u in uniques]
    if not any(looks):
        return uniques, sep
    out = []
    for k, (u, is_list) in enumerate(zip(uniques, looks)):
        items = u.split(sep)
        if is_list:
            try:
                items = json.loads(u)
            except ValueError:
                try:
                    items = ast.literal_eval(u.strip())
                except (ValueError, SyntaxError, MemoryError, RecursionError):
                    items = None
            if not isinstance(items, (list, tuple)) or not all(isinstance(x, str) for x in items):
                r = int(np.argmax(codes == k))
                raise TableError(f"{p}, row {names[r]}: label cell {u!r} in {label_col!r} starts like a list but "
                                 f"is not a list of quoted names; write it as ['a', 'b'] or [\"a\", \"b\"], or as "
                                 f"names joined by one separator (a|b)")
        out.append(LIST_SEP.join(x.strip() for x in items))
    example = uniques[looks.index(True)]
    warnings.warn(f"{p}: column {label_col!r} holds list literals such as {example!r}; each is read as a list "
                  f"of labels ({sum(looks)} distinct list cell(s))", stacklevel=5)
    return out, LIST_SEP


def warn_odd_names(found: Sequence[str], p: Path, label_col: str) -> None:
    """Warn once about label names holding brackets or quotes: usually a list cell split by the
    wrong separator (``['Comedy'``)."""
    odd = [x for x in found if any(c in x for c in "[]'\"")]
    if odd:
        warnings.warn(f"{p}: {len(odd)} label name(s) in {label_col!r} hold brackets or quotes, e.g. "
                      f"{', '.join(repr(x) for x in odd[:3])}; if the cells are lists, write them as ['a', 'b'] "
                      f"(read as lists) or choose the separator (--sep) that joins the names", stacklevel=5)


def merge_duplicates(ids: np.ndarray, y: np.ndarray, extra: pd.DataFrame, lines: np.ndarray, p: Path,
                      labels: Sequence[str], known: np.ndarray | None = None):
    """Rows whose id repeats: identical labels (and the same known cells) are one image listed
    twice, so they are merged into the first row (the other columns of the first row are kept)
    with one warning that counts them; different labels are an error naming both lines and both
    label sets. Returns ``(ids, y, extra, lines, known)`` (``known`` None when not given)."""
    dup = pd.Series(ids).duplicated(keep=False).to_numpy()
    if not dup.any():
        return ids, y, extra, lines, known
    first_of = pd.Series(np.arange(len(ids))).groupby(pd.Series(ids)).transform("first").to_numpy()
    later = np.flatnonzero(np.arange(len(ids)) != first_of)
    same = y[later] == y[first_of[later]]
    if known is not None:
        same &= known[later] == known[first_of[later]]
    differ = later[~same.all(axis=1)]
    if differ.size:
        i, j = int(first_of[differ[0]]), int(differ[0])

        def names(r: int) -> str:
            return "|".join(lbl for lbl, v in zip(labels, y[r]) if v) or "no label"

        n_bad = int(pd.Series(ids[differ]).nunique())
        raise TableError(
            f"{p}: duplicate id {ids[i]!r} with different labels: line {lines[i]} says {names(i)!r}, line "
            f"{lines[j]} says {names(j)!r}; each image must appear once (merge its labels into one row)"
            + (f" ({n_bad - 1} more id(s) like this)" if n_bad > 1 else ""))
    keep = np.setdiff1d(np.arange(len(ids)), later)
    example = ids[later[0]]
    at = ", ".join(str(lines[r]) for r in np.flatnonzero(ids == example))
    warnings.warn(f"{p}: {later.size} duplicate row(s) of {pd.Series(ids[later]).nunique()} id(s) have the same "
                  f"labels as an earlier row and were merged into it (e.g. {example!r} at lines {at}); "
                  f"{len(keep)} rows remain", stacklevel=4)
    return (ids[keep], y[keep], extra.iloc[keep].reset_index(drop=True), lines[keep],
            None if known is None else known[keep])
