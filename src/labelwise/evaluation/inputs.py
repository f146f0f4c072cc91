"""An evaluation's inputs read from files: the truth table, one or several score files aligned
to it by id, and thresholds given per strategy.

This is what ``labelwise evaluate`` and ``labelwise thresholds`` do before computing, as a Python
API: ``table, {name: (path, scores)} = load_strategies("y_true.csv", ["a=pred_a.csv", "pred_b.csv"])``.
Notes about the files (columns ignored, rows reordered) are issued as Python warnings; the CLI
prints them as ``note:`` lines.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError

__all__ = ["parse_named_paths", "read_truth", "read_aligned_scores", "load_inputs", "load_strategies",
           "thresholds_per_strategy"]

PathLike = str | os.PathLike


def parse_named_paths(values: Sequence[str], option: str = "--scores") -> list[tuple[str, str]]:
    """``["a=x.csv", "y.csv"]`` -> ``[("a", "x.csv"), ("y", "y.csv")]``: ``NAME=PATH``, or a bare path
    named by its file stem (a value that is an existing file is always a bare path, even with ``=``).
    Raises ``InputError`` for an empty name or path and for a name given twice."""
    out: list[tuple[str, str]] = []
    for raw in values:
        value = str(raw)
        if "=" in value and not Path(value).is_file():
            name, path = (x.strip() for x in value.split("=", 1))
            if not name or not path:
                raise InputError(f"{option} {value!r}: write NAME=PATH (e.g. {option} sigmoid=pred_a.csv) or a bare path")
        else:
            name, path = Path(value).stem, value
        out.append((name, path))
    seen: dict[str, str] = {}
    for name, path in out:
        if name in seen:
            raise InputError(
                f"{option}: the strategy name {name!r} is given twice ({seen[name]} and {path}); name each one, "
                f"e.g. {option} a={seen[name]} {option} b={path}")
        seen[name] = path
    return out


def read_truth(path: PathLike, *, schema: Any = None, format: str = "auto", labels: Sequence[str] | str | None = None):
    """The truth table (any format :func:`labelwise.labels.tables.read_table` reads); ``labels``
    names the columns of a headerless list (a sequence, or one comma-separated string)."""
    from ..labels.tables import read_table

    kw = {}
    if labels:
        kw["labels"] = [x.strip() for x in labels.split(",") if x.strip()] if isinstance(labels, str) else list(labels)
    return read_table(path, schema=schema, format=format, **kw)


def read_aligned_scores(table: Any, path: PathLike, *, id_column: str | None = None, from_logits: bool = False,
                        strategy: str | None = None) -> np.ndarray:
    """Scores ``(n, n_labels)`` in the truth table's row order and label order (read by id; an
    ``.npy`` in the table's row order). With ``from_logits`` the head's activations are applied.
    ``strategy`` names the file in errors when several are compared."""
    from ..labels.scores import read_scores

    try:
        _, scores = read_scores(path, ids=table.ids, schema=table.schema, id_column=id_column,
                                from_logits=bool(from_logits))
    except InputError as e:
        if strategy is None:
            raise
        raise InputError(f"strategy {strategy!r}: {e}") from None
    if from_logits:
        from .evaluate import scores_from_logits

        schema = table.schema
        scores = schema.complete_scores(scores_from_logits(scores[:, : schema.n_outputs], schema))
    return scores


def load_inputs(truth: PathLike, scores: PathLike | Sequence[PathLike], *, schema: Any = None, format: str = "auto",
                labels: Any = None, id_column: str | None = None, from_logits: bool = False):
    """The truth table and ONE scores file aligned to it: ``(table, scores)``. Several score files
    raise ``InputError`` (thresholds are tuned for one strategy at a time)."""
    values = [str(scores)] if isinstance(scores, (str, os.PathLike)) else [str(v) for v in scores]
    if len(values) != 1:
        raise InputError(
            f"this command takes one --scores; got {len(values)} ({', '.join(values)}). Run it once per scores "
            "file, e.g. labelwise thresholds --truth val.csv --scores val_a.csv --out thresholds_a.json")
    (_, path), = parse_named_paths(values)
    table = read_truth(truth, schema=schema, format=format, labels=labels)
    return table, read_aligned_scores(table, path, id_column=id_column, from_logits=from_logits)


def load_strategies(truth: PathLike, scores: Sequence[str], *, schema: Any = None, format: str = "auto",
                    labels: Any = None, id_column: str | None = None, from_logits: bool = False):
    """The truth table and every scores file (``NAME=PATH`` or a bare path) aligned to it:
    ``(table, {name: (path, scores)})``, in the order given."""
    from .text import check_strategy_name

    named = parse_named_paths(list(scores))
    if len(named) > 1:
        for name, _ in named:
            check_strategy_name(name)
    table = read_truth(truth, schema=schema, format=format, labels=labels)
    return table, {name: (path, read_aligned_scores(table, path, id_column=id_column, from_logits=from_logits,
                                                    strategy=name if len(named) > 1 else None))
                   for name, path in named}


def thresholds_per_strategy(values: Sequence[str] | None, names: Sequence[str]) -> str | Mapping[str, str] | None:
    """``--thresholds`` values -> one path for every strategy, or ``{name: path}``, or None."""
    if not values:
        return None
    if len(values) == 1 and ("=" not in values[0] or Path(values[0]).is_file()):
        return values[0]
    hint = f"give one file for every strategy, or NAME=T.json for each of {list(names)}; got {list(values)}"
    if any("=" not in v or Path(v).is_file() for v in values):
        raise InputError(f"--thresholds: {hint}")
    named = dict(parse_named_paths(values, "--thresholds"))
    if set(named) != set(names):
        raise InputError(f"--thresholds: {hint}")
    if len(names) == 1:
        return named[names[0]]
    return named
