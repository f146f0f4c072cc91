"""The flags that say how to read a label table, the same in every command that reads one, and the
:class:`~labelwise.labels.spec.TableSpec` they make."""

from __future__ import annotations

import argparse
from typing import Any

FORMATS = ("auto", "nih", "labels", "onehot", "tree", "mnist")


def add_table_arguments(p: argparse.ArgumentParser, *, labels: bool = True) -> None:
    """Add --schema, --format, --id-column, --label-column, --sep, --labels, --table-spec, --repair-implications.

    ``labels=False`` leaves out ``--labels`` for a command where it means something else (explain:
    the labels to explain)."""
    g = p.add_argument_group("how to read the label table")
    g.add_argument("--schema", metavar="S.toml", help="label schema TOML (default: inferred from the table)")
    g.add_argument("--format", default="auto", choices=FORMATS,
                   help="table format (default auto: one-hot 0/1 columns, a label-list column, ChestX-ray14's "
                        "'Finding Labels', a folder tree or MNIST; what was read is said once)")
    g.add_argument("--id-column", metavar="C", help="column with the image ids (default: 'Image Index', image, id, "
                   "filename, ... before path-like columns)")
    g.add_argument("--label-column", metavar="C",
                   help="column holding the label names joined by --sep (or list literals ['a', 'b']); implies "
                        "--format labels")
    g.add_argument("--sep", default="|", help="separator of the names in --label-column (default '|')")
    if labels:
        g.add_argument("--labels", metavar="A,B,...",
                       help="label names of a headerless 0/1 list (e.g. the CheXNet split lists), comma separated; "
                            "with --schema, the schema labels the file holds (the others are unknown)")
    g.add_argument("--table-spec", metavar="SPEC.json",
                   help="read the table as this spec says (the table_spec.json a train run writes: format, id and "
                        "label columns, schema); the flags above override it")
    g.add_argument("--repair-implications", action="store_true",
                   help="add a missing parent label where a child is given without it (the schema's "
                        "[labels.implies]) instead of refusing the row; the number added is reported")


def table_spec_from_args(args: argparse.Namespace, path: Any):
    """The :class:`~labelwise.labels.spec.TableSpec` of the table at ``path`` from the flags of
    :func:`add_table_arguments` (flags a parser lacks keep their defaults)."""
    from ..labels.spec import TableSpec

    given = {"format": getattr(args, "format", "auto") or "auto", "id_column": getattr(args, "id_column", None),
             "label_column": getattr(args, "label_column", None), "sep": getattr(args, "sep", "|") or "|",
             "labels": getattr(args, "labels", None) or None, "schema": getattr(args, "schema", None),
             "repair_implications": bool(getattr(args, "repair_implications", False))}
    if getattr(args, "table_spec", None):
        base = TableSpec.load(args.table_spec)
        defaults = TableSpec(path)
        return base.replace(path=str(path), **{k: v for k, v in given.items() if v != getattr(defaults, k)})
    return TableSpec(path, **given)


def read_args_table(args: argparse.Namespace, path: Any, **options: Any):
    """The table at ``path`` read by :func:`labelwise.labels.tables.read_table` as the flags say
    (:func:`table_spec_from_args`); ``options``: ``images``, ``on_missing``."""
    from ..labels.tables import read_table

    return read_table(table_spec_from_args(args, path), **options)
