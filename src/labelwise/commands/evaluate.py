"""``labelwise evaluate``: truth table + scores file -> metrics, thresholds, report.

    labelwise evaluate --truth y_true.csv --scores y_pred.csv --tune f1 --out report/

prints the per-label table (AUC/AP with bootstrap CIs, threshold, precision, recall,
specificity, F1), the averages, the classification report and the model-health diagnostics;
``--json`` prints one JSON document instead; ``--out DIR`` writes ``report.html``, PNG plots,
``metrics.json`` and ``thresholds.json``. Only numpy/pandas load at start; matplotlib loads
when plots are written; Keras and TensorFlow never load.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

HELP = "evaluate scores against a truth table: per-label metrics with CIs, thresholds, report, diagnostics"


def add_common(p: argparse.ArgumentParser) -> None:
    """Arguments shared by ``evaluate`` and ``thresholds``."""
    p.add_argument("--truth", required=True, metavar="TABLE",
                   help="truth label table (id + 0/1 columns, NIH Data_Entry CSV, CheXNet list, ...)")
    p.add_argument("--scores", required=True, metavar="SCORES",
                   help="scores: CSV (id column + one column per label) or .npy in the truth table's row order")
    p.add_argument("--schema", metavar="S.toml", help="label schema (default: inferred from the truth table)")
    p.add_argument("--format", default="auto", help="truth table format: auto, nih, labels, onehot, tree, mnist")
    p.add_argument("--labels", metavar="A,B,...",
                   help="label names for a headerless truth list (e.g. the CheXNet split lists), comma separated")
    p.add_argument("--id-column", metavar="C", help="id column of the scores CSV (default: the first non-label column)")
    p.add_argument("--from-logits", action="store_true",
                   help="the scores are head logits: apply sigmoid (independent) / softmax (exclusive groups)")


def add_parser(subparsers: Any) -> None:
    """Register ``labelwise evaluate``."""
    p = subparsers.add_parser("evaluate", help=HELP, description=HELP)
    add_common(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--thresholds", metavar="T.json", help="thresholds tuned on a validation set (labelwise thresholds)")
    g.add_argument("--tune", metavar="RULE",
                   help="tune thresholds on THIS data (optimistic): f1, youden, fbeta=2, sensitivity=0.9, "
                        "specificity=0.95, precision=0.8")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="bootstrap resamples for the confidence intervals (0: none; default 1000)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level (default 0.95)")
    p.add_argument("--group-column", metavar="C",
                   help="resample groups (e.g. 'Patient ID') instead of images in the bootstrap")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--out", metavar="DIR", help="write report.html, PNG plots, metrics.json, thresholds.json here")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the text table")
    p.add_argument("--no-plots", action="store_true", help="with --out: skip the PNG plots and the HTML report")
    p.set_defaults(func=run)


def load_inputs(args: argparse.Namespace):
    """Read the truth table and the scores aligned to it: ``(table, scores)``."""
    from ..scores import read_scores
    from ..tables import read_table

    kw = {}
    if getattr(args, "labels", None):
        kw["labels"] = [x.strip() for x in args.labels.split(",") if x.strip()]
    table = read_table(args.truth, schema=args.schema, format=args.format, **kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, scores = read_scores(args.scores, ids=table.ids, schema=table.schema, id_column=args.id_column)
    for w in caught:
        print(f"note: {w.message}", file=sys.stderr)
    if args.from_logits:
        from ..evaluate import scores_from_logits

        scores = table.schema.complete_scores(scores_from_logits(scores[:, : table.schema.n_outputs], table.schema))
    return table, scores


def run(args: argparse.Namespace) -> int:
    """Evaluate and print; returns 0 (1 when the diagnostics found a collapsed model)."""

    from ..evaluate import evaluate
    from ..io import json_text

    table, scores = load_inputs(args)
    groups = table.groups(args.group_column) if args.group_column else None
    if args.bootstrap > 0 and not args.json:
        unit = f"groups of {args.group_column!r}" if groups is not None else "images"
        print(f"labelwise evaluate: {len(table)} images, {table.schema.n_labels} labels; "
              f"bootstrapping {args.bootstrap} resamples of {unit} ...", file=sys.stderr, flush=True)
    progress = _progress if (args.bootstrap > 0 and not args.json and sys.stderr.isatty()) else None
    result = evaluate(
        table.y, scores, schema=table.schema, thresholds=args.thresholds, tune=args.tune,
        bootstrap=args.bootstrap, level=args.level, seed=args.seed, groups=groups, progress=progress,
        summary={"truth": str(args.truth), "scores": str(args.scores), "format": table.format or args.format},
    )
    result.notes.extend(str(n) for n in (*table.schema.notes, *table.notes))
    written = {}
    if args.out:
        if not args.json:
            print(f"labelwise evaluate: writing {args.out} ...", file=sys.stderr, flush=True)
        written = result.save(args.out, plots=not args.no_plots, html=not args.no_plots)
    if args.json:
        doc = result.to_dict()
        if written:
            doc["files"] = {k: str(v) for k, v in written.items()}
        print(json_text(doc))
    else:
        print(result.format_table(), end="")
        if written:
            print(f"\nWrote {', '.join(sorted(written))} to {args.out}")
    return 0


def _progress(done: int, total: int) -> None:
    print(f"\r  bootstrap {done}/{total}", end="\n" if done >= total else "", file=sys.stderr, flush=True)
