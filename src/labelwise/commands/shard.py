"""``labelwise shard TABLE --images DIR --out DIR``: pack a label table and its images into TFRecord shards.

Shards (``shard-00000-of-000NN.tfrecord``, ``--shard-size`` images each, the image files' bytes
unchanged) plus ``index.json`` (schema, labels, counts, ids, shard list). Training reads them with
``train_shards = "DIR"`` in the config or ``--train-shards DIR`` (see ``labelwise.data.shards``): shard
the training split only, with the run's schema::

    labelwise shard labels.csv --images images --out shards/train --schema schema.toml \\
        --split-column split --split train

Training checks the shards' labels against its schema and refuses shards holding val/test
images. TensorFlow is imported only when the command runs.
"""

from __future__ import annotations

import argparse


from .tableargs import add_table_arguments, read_args_table


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("shard", help="pack a label table and its images into TFRecord shards",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", help="label table (NIH CSV, labels/onehot CSV, CheXNet list, ...)")
    p.add_argument("--images", required=True, help="folder holding the table's image files")
    p.add_argument("--out", required=True, help="output folder for the shards and index.json")
    p.add_argument("--shard-size", type=int, default=1000, help="images per shard (default 1000)")
    add_table_arguments(p)
    p.add_argument("--group-column", default=None,
                   help="column stored as each example's group (default: 'Patient ID' when present)")
    p.add_argument("--skip-unreadable", action="store_true", help="leave out unreadable images (listed) instead of stopping")
    p.add_argument("--on-missing", default="error", choices=["error", "drop"],
                   help="rows whose image file is missing: stop (default) or drop them")
    p.add_argument("--split-column", default=None,
                   help="column naming each row's split (train/val/test); with --split, shard only those rows")
    p.add_argument("--split", default=None,
                   help="the split to shard (train, val or test; e.g. train for --train-shards)")
    p.add_argument("--overwrite", action="store_true", help="replace shards already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.shards import INDEX_NAME, write_shards

    table = read_args_table(args, args.table, images=args.images, on_missing=args.on_missing)
    table, split = _select_split(table, args.table, args.split_column, args.split)
    group = args.group_column
    if group is None and "Patient ID" in table.extra.columns:
        group = "Patient ID"
    index = write_shards(table, args.images, args.out, shard_size=args.shard_size, group_column=group,
                         skip_unreadable=args.skip_unreadable, overwrite=args.overwrite, progress=not args.quiet,
                         split=split)
    size = sum(s["image_bytes"] for s in index["shards"]) / 1e6
    where = f" of the {split['value']} split" if split else ""
    print(f"labelwise shard: {index['n_examples']} images{where} ({size:.1f} MB) in {len(index['shards'])} shard(s); "
          f"index {args.out}/{INDEX_NAME}")
    return 0


def _select_split(table, source: str, column: str | None, value: str | None):
    """The rows of ``table`` in split ``value`` of ``column`` (names as ``labelwise train`` reads
    them: train/training, val/valid/validation/dev, test/testing), and the split for the index."""
    from ..errors import InputError
    from ..labels.split import column_splits, split_name

    if column is None and value is None:
        return table, None
    if column is None or value is None:
        raise InputError("--split-column and --split go together: e.g. --split-column split --split train")
    names = column_splits(table, column, source)
    want = split_name(value)
    if want not in ("train", "val", "test"):
        raise InputError(f"--split {value!r}: use train, val or test")
    rows = (names == want).nonzero()[0]
    if rows.size == 0:
        raise InputError(f"{source}: no row of column {column!r} is in the {want} split; nothing to shard")
    return table.subset(rows), {"column": column, "value": want}
