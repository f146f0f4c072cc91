"""``labelwise shard TABLE --images DIR --out DIR``: pack a label table and its images into TFRecord shards.

Shards (``shard-00000-of-000NN.tfrecord``, ``--shard-size`` images each, the image files' bytes
unchanged) plus ``index.json`` (schema, labels, counts, shard list). Training reads them with
``shards = "DIR"`` in the config (see ``labelwise.shards.read_shards``). TensorFlow is imported
only when the command runs.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("shard", help="pack a label table and its images into TFRecord shards",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", help="label table (NIH CSV, labels/onehot CSV, CheXNet list, ...)")
    p.add_argument("--images", required=True, help="folder holding the table's image files")
    p.add_argument("--out", required=True, help="output folder for the shards and index.json")
    p.add_argument("--shard-size", type=int, default=1000, help="images per shard (default 1000)")
    p.add_argument("--schema", help="schema TOML file (default: inferred from the table)")
    p.add_argument("--format", default="auto", choices=["auto", "nih", "labels", "onehot", "tree", "mnist"],
                   help="table format (default: detected)")
    p.add_argument("--group-column", default=None,
                   help="column stored as each example's group (default: 'Patient ID' when present)")
    p.add_argument("--skip-unreadable", action="store_true", help="leave out unreadable images (listed) instead of stopping")
    p.add_argument("--on-missing", default="error", choices=["error", "drop"],
                   help="rows whose image file is missing: stop (default) or drop them")
    p.add_argument("--overwrite", action="store_true", help="replace shards already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..shards import INDEX_NAME, write_shards
    from ..tables import read_table

    table = read_table(args.table, schema=args.schema, format=args.format, images=args.images,
                       on_missing=args.on_missing)
    group = args.group_column
    if group is None and "Patient ID" in table.extra.columns:
        group = "Patient ID"
    index = write_shards(table, args.images, args.out, shard_size=args.shard_size, group_column=group,
                         skip_unreadable=args.skip_unreadable, overwrite=args.overwrite, progress=not args.quiet)
    size = sum(s["image_bytes"] for s in index["shards"]) / 1e6
    print(f"labelwise shard: {index['n_examples']} images ({size:.1f} MB) in {len(index['shards'])} shard(s); "
          f"index {args.out}/{INDEX_NAME}")
    return 0
