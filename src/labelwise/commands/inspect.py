"""``labelwise inspect TABLE``: what is in a label table (prevalence, co-occurrence, groups, warnings)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .tableargs import add_table_arguments, read_args_table


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="summarise a label table: prevalence, co-occurrence, images per patient, warnings",
        description="Summarise a label table: positives per label, labels per image, the most frequent "
                    "label pairs, rows per patient, and warnings (rare labels, the none label).",
    )
    p.add_argument("table", help="label table: CSV, CheXNet-style list, image folder tree, or MNIST IDX file")
    add_table_arguments(p)
    p.add_argument("--group-column", default=None,
                   help="column that groups rows (default: 'Patient ID' when present)")
    p.add_argument("--json", action="store_true", help="print the full summary as JSON (includes the co-occurrence matrix)")
    p.add_argument("--plot", metavar="FILE", help="write a co-occurrence heatmap PNG to FILE")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..labels.stats import render_text, summarize

    table = read_args_table(args, args.table)
    summary = summarize(table, group_column=args.group_column)
    if args.plot:
        from ..evaluation.report.heatmap import cooccurrence_heatmap

        cooccurrence_heatmap(summary["cooccurrence"]["counts"], summary["labels"], args.plot,
                             title=f"Label co-occurrence in {Path(table.source).name} ({len(table):,} rows)")
    if args.json:
        from ..io import json_text

        print(json_text(summary))
    else:
        sys.stdout.write(render_text(summary))
        if args.plot:
            print(f"co-occurrence heatmap written to {args.plot}")
    return 0
