"""``labelwise thresholds``: tune per-label decision thresholds on a validation set.

    labelwise thresholds --truth val.csv --scores val_scores.csv --method f1 --out thresholds.json

prints each label's threshold and the metric it reaches there, and writes the JSON that
``labelwise evaluate --thresholds`` and ``labelwise predict`` read.
"""

from __future__ import annotations

import argparse
import math
import warnings
from typing import Any

from .evaluate import add_common

HELP = "tune per-label decision thresholds (f1, youden, fbeta=2, sensitivity=0.9, ...) on a validation set"


def add_parser(subparsers: Any) -> None:
    """Register ``labelwise thresholds``."""
    p = subparsers.add_parser("thresholds", help=HELP, description=HELP)
    add_common(p)
    p.add_argument("--method", default="f1", metavar="RULE",
                   help="f1 (default), youden, fbeta=2, sensitivity=0.9, specificity=0.95, precision=0.8")
    p.add_argument("--out", metavar="T.json", help="write the thresholds here (JSON)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Tune, print the table, write the file."""
    from ..evaluation import parse_tune
    from ..evaluation.text import _table
    from ..decide.thresholds import tune_thresholds
    from ..io import check_out_file
    from .evaluate import load_inputs

    check_out_file(args.out)
    kw = parse_tune(args.method)
    table, scores = load_inputs(args)
    schema = table.schema
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        th = tune_thresholds(table.y, scores, labels=list(schema.labels), schema=schema, **kw)
    metric = _metric_name(kw)
    values = dict(zip(map(str, th.labels), th.values))
    reached = dict(zip(map(str, th.labels), _as_list(th.metric_at_threshold, len(th.labels))))
    rows = []
    for j, label in enumerate(schema.labels):
        if label == schema.none:
            rows.append([label, str(int(table.y[:, j].sum())), "derived", ""])
            continue
        if schema.group_of(label) is not None:
            rows.append([label, str(int(table.y[:, j].sum())), "argmax", ""])
            continue
        v, m = values.get(label, math.nan), reached.get(label, math.nan)
        rows.append([label, str(int(table.y[:, j].sum())), _f(v), _f(m)])
    print(f"{len(table)} images; thresholds by {args.method} on {args.truth}")
    print("\n".join(_table(["label", "pos", "threshold", metric], rows, right=[1, 2, 3])))
    if schema.exclusive or schema.none:
        print("(exclusive groups are decided by argmax; the none label is derived from the others)")
    for w in caught:
        print(f"note: {w.message}")
    if args.out:
        th.save(args.out)
        print(f"Wrote {args.out}")
    else:
        print("(not saved: pass --out thresholds.json)")
    return 0


def _metric_name(kw: dict) -> str:
    m = kw["method"]
    if m == "fbeta":
        return f"F{kw['beta']:g}"
    if m == "youden":
        return "Youden J"
    if m in ("sensitivity", "specificity", "precision"):
        return f"{m} reached (target {kw['target']:g})"
    return "F1"


def _as_list(x: Any, n: int) -> list[float]:
    if x is None:
        return [math.nan] * n
    if isinstance(x, dict):
        return [float(v) for v in x.values()]
    return [float(v) for v in list(x)]


def _f(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}"
