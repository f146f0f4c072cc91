"""``labelwise split TABLE``: a leak-free (patient-grouped), label-stratified train/val/test split.

``--check --split-column C`` instead verifies an existing split: exit status 1 when a group
(patient) appears in more than one split.
"""

from __future__ import annotations

import argparse
import sys

from ..io import json_text
from .tableargs import add_table_arguments, read_args_table


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "split",
        help="leak-free split grouped by patient, stratified over every label (or --check an existing one)",
        description="Assign whole groups (patients) to splits so that each label's positives are spread "
                    "like the requested fractions. Writes id,group,split as CSV and prints the per-label "
                    "deviation table. With --check, report groups that appear in several splits (exit 1).",
    )
    p.add_argument("table", help="label table (see labelwise inspect); with --check any CSV")
    add_table_arguments(p)
    p.add_argument("--group-column", default=None,
                   help="column whose rows must stay together (default: 'Patient ID' when present)")
    p.add_argument("--no-groups", action="store_true",
                   help="treat every row as its own group (only for data without patients, e.g. MNIST)")
    p.add_argument("--fractions", default="0.7,0.1,0.2", help="split fractions (default 0.7,0.1,0.2)")
    p.add_argument("--names", default=None, help="split names (default train,val,test for three fractions)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed, a non-negative integer (default 0)")
    p.add_argument("--out", help="write the assignment CSV (id,group,split) here")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--check", action="store_true", help="check an existing split for group leakage instead")
    p.add_argument("--split-column", default="split", help="with --check: the column holding the split name")
    p.set_defaults(func=run)


def _seed(text: str) -> int:
    """argparse type for --seed: numpy refuses a negative seed with a traceback from deep inside."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return value


def _group_column(args, columns) -> str | None:
    from ..errors import InputError, TableError
    from ..labels.stats import DEFAULT_GROUP_COLUMNS

    if args.no_groups and args.group_column:
        raise InputError(f"--no-groups and --group-column {args.group_column!r} contradict each other: give "
                         "--group-column to keep each group's rows together, or --no-groups if rows are independent")
    if args.no_groups:
        return None
    if args.group_column:
        return args.group_column
    found = next((c for c in DEFAULT_GROUP_COLUMNS if c in columns), None)
    if found is None:
        raise TableError(f"{args.table}: no patient column found among {list(columns)}; name the column whose rows "
                         "must stay together with --group-column, or pass --no-groups if rows are independent")
    return found


def run(args) -> int:
    if args.check:
        return _run_check(args)
    from ..errors import InputError
    from ..io import atomic_path, check_out_file

    check_out_file(args.out, example="splits.csv")  # before reading and splitting: a bad path costs nothing
    from ..labels.split import parse_fractions, split_report, split_table

    f = parse_fractions(args.fractions)
    if args.names:
        names = [x.strip() for x in args.names.split(",")]
    elif f.size == 3:
        names = ["train", "val", "test"]
    elif f.size == 2:
        names = ["train", "test"]
    else:
        names = [f"split{i}" for i in range(f.size)]
    if len(names) != f.size:
        raise InputError(f"--names gives {len(names)} names for {f.size} fractions")
    table = read_args_table(args, args.table)
    gcol = _group_column(args, table.extra.columns)
    frame = split_table(table, gcol if gcol is not None else False, f, seed=args.seed, names=names)
    report = split_report(table.y, frame["group"].to_numpy(), frame["split"].to_numpy(), f, table.labels, names=names)
    report["group_column"] = gcol
    report["seed"] = args.seed
    if args.out:
        with atomic_path(args.out) as tmp:
            frame.to_csv(tmp, index=False)
        report["out"] = str(args.out)
    if args.json:
        print(json_text(report))
    else:
        sys.stdout.write(render_report(report))
        if args.out:
            print(f"assignment written to {args.out} (columns id, group, split)")
    return 0


def _check_group_column(args, frame) -> str:
    """The group column --check uses when none is named.

    A patient column (Patient ID, ...) is what leakage is about, so it comes first; ``group`` (what
    ``labelwise split --out`` writes) is used when there is none. When both are present and group
    the rows differently, guessing could hide a leak, so the user must choose.
    """
    import pandas as pd

    from ..errors import TableError
    from ..labels.stats import DEFAULT_GROUP_COLUMNS

    patient = next((c for c in DEFAULT_GROUP_COLUMNS if c in frame.columns), None)
    if "group" not in frame.columns:
        return _group_column(args, frame.columns)
    if patient is None:
        return "group"
    same = (pd.factorize(frame[patient].astype(str).str.strip())[0]
            == pd.factorize(frame["group"].astype(str).str.strip())[0]).all()
    if not same:
        raise TableError(f"{args.table}: both {patient!r} and 'group' could be the group column, and they group the "
                         f"rows differently; name the one to check with --group-column (e.g. --group-column "
                         f"{patient!r})")
    return patient


def render_report(report: dict) -> str:
    """The per-split and per-label deviation tables of :func:`labelwise.labels.split.split_report`."""
    names = list(report["fractions"])
    out = []
    g = report.get("group_column")
    out.append(f"{report['rows']:,} rows, {report['groups']:,} groups"
               + (f" ({g!r})" if g else " (every row its own group)")
               + f", seed {report.get('seed', 0)}; groups in more than one split: {report['group_overlap']}")
    out.append("")
    out.append(f"{'split':<8} {'target':>7} {'rows':>9} {'share':>7} {'error pp':>9} {'groups':>8}")
    for n in names:
        s = report["splits"][n]
        out.append(f"{n:<8} {100 * report['fractions'][n]:>6.1f}% {s['rows']:>9,} {100 * s['share']:>6.2f}% "
                   f"{s['size_error_pp']:>+9.3f} {s['groups']:>8,}")
    out.append("")
    width = max(len(x) for x in list(report["labels"]) + ["label"])
    head = f"{'label':<{width}} {'positives':>9}  " + "  ".join(f"{n + ' %':>9}" for n in names) + "  max dev pp  floor pp"
    out.append("share of each label's positives per split (target = the split fraction; floor = the least "
               "deviation integer counts allow):")
    out.append(head)
    for label, d in report["labels"].items():
        cells = "  ".join(f"{100 * d['share'][n]:>9.2f}" if d["share"][n] is not None else f"{'-':>9}" for n in names)
        dev = "-" if d["max_deviation_pp"] is None else f"{d['max_deviation_pp']:.3f}"
        out.append(f"{label:<{width}} {d['positives']:>9,}  {cells}  {dev:>10}  {d['floor_pp']:>8.3f}")
    w = report["worst"]
    if w["label"] is not None:
        out.append(f"\nlargest deviation: {w['label']} {w['max_deviation_pp']:.3f} pp")
    return "\n".join(out) + "\n"


def _run_check(args) -> int:
    from ..errors import TableError
    from ..labels.split import check_split, split_name
    from ..labels.csvread import _data_rows, _read_csv
    from pathlib import Path

    frame, lines = _data_rows(_read_csv(Path(args.table)), Path(args.table), first_line=2)
    if args.split_column not in frame.columns:
        raise TableError(f"{args.table}: no split column {args.split_column!r}; the columns are {list(frame.columns)} "
                         "(name it with --split-column)")
    if args.no_groups:
        raise TableError("--check needs a group column (--group-column); --no-groups has nothing to check")
    gcol = args.group_column or _check_group_column(args, frame)
    # "val" and "Validation" are one split (as train and evaluate read them); empty cells (NaN: cells
    # arrive stripped) stay empty so check_split names them
    frame[args.split_column] = frame[args.split_column].map(split_name, na_action="ignore")
    frame.attrs.update(source=args.table, lines=lines)
    result = check_split(frame, args.split_column, gcol)
    if args.json:
        print(json_text(result))
    else:
        sizes = ", ".join(f"{k} {v:,}" for k, v in result["splits"].items())
        print(f"{args.table}: {result['n_groups']:,} groups ({gcol!r}) in splits: {sizes}")
        if not result["leak"]:
            print("no leakage: every group is in exactly one split")
        for o in result["overlaps"]:
            a, b = o["splits"]
            print(f"LEAK: {o['groups']:,} group(s) ({o['rows']:,} rows) are in both {a!r} and {b!r}, e.g. "
                  + ", ".join(map(str, o["examples"])))
    return 1 if result["leak"] else 0
