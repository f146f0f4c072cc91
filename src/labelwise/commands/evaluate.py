"""``labelwise evaluate``: truth table + scores file -> metrics, thresholds, report.

    labelwise evaluate --truth y_true.csv --scores y_pred.csv --tune f1 --out report/

prints the per-label table (AUC/AP with bootstrap CIs, threshold, precision, recall,
specificity, F1), the averages, the classification report and the model-health diagnostics;
``--json`` prints one JSON document instead; ``--out DIR`` writes ``report.html``, PNG plots,
``metrics.json`` and ``thresholds.json``. Only numpy/pandas load at start; matplotlib loads
when plots are written; Keras and TensorFlow never load.

    labelwise evaluate --truth y_true.csv --scores sigmoid=pred_a.csv --scores powerset=pred_b.csv

compares strategies side by side (``labelwise.evaluation.compare``): each strategy's table, then a
summary per strategy, the paired-bootstrap difference to the first one (macro and per label)
and the per-label AUCs; ``--out DIR`` writes each strategy's outputs to ``DIR/<name>/`` plus
``DIR/comparison.json`` and ``DIR/report.html``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

from .tableargs import add_table_arguments, table_spec_from_args

HELP = "evaluate scores against a truth table: per-label metrics with CIs, thresholds, report, diagnostics"


def add_common(p: argparse.ArgumentParser, *, compare: bool = False, fit: bool = False) -> None:
    """Arguments shared by ``evaluate``, ``calibrate`` and ``thresholds``. ``--scores`` collects a list
    either way; ``compare`` (evaluate) documents it as repeatable; ``fit`` (calibrate, thresholds:
    one ``--scores``) adds ``--allow-test-rows``."""
    p.add_argument("--truth", required=True, metavar="TABLE",
                   help="truth label table (id + 0/1 columns, NIH Data_Entry CSV, CheXNet list, ...)")
    scores_help = "scores: CSV (id column + one column per label) or .npy in the truth table's row order"
    if compare:
        scores_help += ("; repeat as NAME=PATH to compare strategies side by side (a bare path is named by its "
                        "file stem; the first is the reference)")
    p.add_argument("--scores", required=True, metavar="[NAME=]SCORES" if compare else "SCORES", action="append",
                   help=scores_help)
    add_table_arguments(p)  # --id-column names the truth's id column, and the scores' when they have it
    p.add_argument("--from-logits", action="store_true",
                   help="the scores are head logits: apply sigmoid (independent) / softmax (exclusive groups)")
    p.add_argument("--split", metavar="NAME",
                   help="use only the truth rows of this split (e.g. test, val) of the table's split column; the "
                        "scores may cover that split alone or the whole table")
    p.add_argument("--split-column", metavar="C",
                   help="the truth table's split column for --split (default: a column named split, subset, "
                        "partition, fold or set)")
    p.add_argument("--splits", metavar="FILE",
                   help="the split file labelwise split --out wrote (id,group,split), joined to the truth by id: "
                        "--split NAME then picks its rows (instead of a split column)")
    if fit:
        p.add_argument("--allow-test-rows", action="store_true",
                       help="fit even on rows whose split is test (refused by default: it makes test metrics "
                            "optimistic)")


def add_parser(subparsers: Any) -> None:
    """Register ``labelwise evaluate``."""
    p = subparsers.add_parser("evaluate", help=HELP, description=HELP)
    add_common(p, compare=True)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--thresholds", metavar="[NAME=]T.json", action="append",
                   help="thresholds or decision.json tuned on a validation set (labelwise thresholds; a decision "
                        "file's calibration is applied first, then its rule); with several --scores, one "
                        "file applies to every strategy, or give NAME=T.json once per strategy")
    g.add_argument("--tune", metavar="RULE",
                   help="tune thresholds on THIS data (optimistic): f1, youden, fbeta=2, sensitivity=0.9, "
                        "specificity=0.95, precision=0.8")
    p.add_argument("--bootstrap", type=non_negative_int, default=1000, metavar="N",
                   help="bootstrap resamples for the confidence intervals (0: none; default 1000)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level (default 0.95)")
    p.add_argument("--min-class-count", "--min-positives", type=positive_int, default=10, metavar="N",
                   help="no confidence interval (and no significance mark when comparing) for a label with fewer "
                        "than N positives or N negatives in the evaluated data; the macro intervals average the "
                        "other labels (default 10)")
    p.add_argument("--group-column", metavar="C",
                   help="resample groups of this column instead of images in the bootstrap (default: the table's "
                        "'Patient ID'-like column when it has one)")
    p.add_argument("--no-groups", action="store_true",
                   help="resample images in the bootstrap even when the table has a patient column")
    p.add_argument("--average-over", choices=("free", "all"), default="free",
                   help="labels the averages cover: free (default: independent labels and group members; derived "
                        "and none labels in their own rows) or all")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--out", metavar="DIR", help="write report.html, PNG plots, metrics.json, thresholds.json here "
                   "(several --scores: DIR/<name>/ per strategy plus DIR/comparison.json and DIR/report.html)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the text table")
    p.add_argument("--score-source", metavar="LOSS",
                   help="the training loss the scores come from (bce, weighted, focal, asymmetric): the report warns "
                        "when scores from a reweighting loss are used without calibration")
    p.add_argument("--no-plots", action="store_true", help="with --out: skip the PNG plots and the HTML report")
    p.set_defaults(func=run)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (a negative count would silently mean "none")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give 0 (no intervals) or a number of resamples")
    return value


def _read(loader: Any, args: argparse.Namespace, **extra: Any):
    """``loader(truth spec, --scores, ...)`` from :mod:`labelwise.evaluation.inputs` with the flags of
    :func:`add_common`, the files' notes printed."""
    with _notes():
        return loader(table_spec_from_args(args, args.truth), args.scores, id_column=args.id_column,
                      from_logits=args.from_logits, split=args.split, split_column=args.split_column,
                      splits=args.splits, **extra)


def load_fit(args: argparse.Namespace):
    """``(table, raw scores, said)`` for a fit (:func:`labelwise.evaluation.inputs.load_fit_inputs`),
    the files' notes printed; ``said`` (how many rows of which split) is printed too."""
    from ..evaluation.inputs import load_fit_inputs

    table, raw, said = _read(load_fit_inputs, args, allow_test_rows=args.allow_test_rows)
    print(said, file=sys.stderr if getattr(args, "json", False) else sys.stdout)
    return table, raw, said


class _notes(warnings.catch_warnings):
    """Print the warnings raised while reading the inputs as ``note:`` lines on stderr."""

    def __init__(self):
        super().__init__(record=True)

    def __enter__(self):
        self._caught = super().__enter__()
        warnings.simplefilter("always")
        return self._caught

    def __exit__(self, *exc):
        super().__exit__(*exc)
        for w in self._caught:
            print(f"note: {w.message}", file=sys.stderr)
        return False


def run(args: argparse.Namespace) -> int:
    """Evaluate and print; returns 0 (a collapsed model is reported in the output, not by the exit status).
    Several ``--scores``: compare them (:func:`run_compare`)."""

    from ..evaluation import evaluate
    from ..evaluation.inputs import follow_file_labels, load_strategies, thresholds_per_strategy
    from ..io import check_out_dir

    check_out_dir(args.out)
    table, strategies = _read(load_strategies, args)
    if len(strategies) > 1:
        return run_compare(args, table, strategies)
    (path, scores), = strategies.values()
    thresholds = thresholds_per_strategy(args.thresholds, list(strategies))
    thresholds, said = _reconcile(args, thresholds, strategies, table)
    groups, gcol = _groups(args, table)
    if args.bootstrap > 0 and not args.json:
        unit = f"groups of {gcol!r}" if groups is not None else "images"
        print(f"labelwise evaluate: {len(table)} images, {table.schema.n_labels} labels; "
              f"bootstrapping {args.bootstrap} resamples of {unit} ...", file=sys.stderr, flush=True)
    progress = _progress if (args.bootstrap > 0 and not args.json and sys.stderr.isatty()) else None
    y, known, scores, schema = follow_file_labels(table.y, table.known, scores, table.schema,
                                                  thresholds if isinstance(thresholds, str) else None)
    result = evaluate(
        y, scores, schema=schema, thresholds=thresholds, tune=args.tune,
        bootstrap=args.bootstrap, level=args.level, seed=args.seed, groups=groups, progress=progress,
        min_class_count=args.min_class_count,
        summary={"truth": str(args.truth), "scores": str(path), "format": table.format or args.format,
                 **({"split": args.split} if args.split else {})},
        score_source=getattr(args, "score_source", None),
        known=known, average_over=getattr(args, "average_over", "free"),
    )
    result.notes.extend(str(n) for n in (*said, *table.schema.notes, *table.notes))
    if groups is not None and args.bootstrap > 0:
        result.notes.append(_groups_note(args, gcol, groups))
        result.bootstrap["group_column"] = gcol
    return _save_and_print(args, result, lambda written: ', '.join(sorted(written)))


def _groups(args: argparse.Namespace, table: Any):
    """``(groups, column)`` the bootstrap resamples: --group-column, else the table's patient column
    (found by name), unless --no-groups; ``(None, None)`` for images."""
    from ..errors import InputError
    from ..evaluation.evaluate import default_groups

    column = getattr(args, "group_column", None)
    if getattr(args, "no_groups", False):
        if column:
            raise InputError(f"--no-groups and --group-column {column!r} contradict each other; give one")
        return None, None
    return default_groups(table, column)


def _groups_note(args: argparse.Namespace, column: str, groups: Any) -> str:
    n = len(set(map(str, groups)))
    how = "--group-column" if getattr(args, "group_column", None) else "found in the table; --no-groups resamples images"
    return (f"the confidence intervals resample the {n} groups of column {column!r} ({how}): images of one "
            "patient are not independent")


def _reconcile(args: argparse.Namespace, thresholds: Any, strategies: dict, table) -> tuple[Any, list[str]]:
    """The scores files' sidecars against the decision files: a calibration is never applied twice
    (:func:`labelwise.evaluation.decisions.reconcile_files`); the notes printed once."""
    from ..evaluation.decisions import reconcile_files

    thresholds, said = reconcile_files(thresholds, {name: p for name, (p, _) in strategies.items()}, table.schema,
                                       from_logits=bool(args.from_logits))
    for n in said:
        print(f"note: {n}", file=sys.stderr)
    return thresholds, said


def _save_and_print(args: argparse.Namespace, result: Any, describe: Any) -> int:
    """Write ``--out`` (if given), then print the JSON document or the text table; ``describe(written)``
    says in the closing line what was written."""
    from ..io import json_text

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
            print(f"\nWrote {describe(written)} to {args.out}")
    return 0


def run_compare(args: argparse.Namespace, table, strategies: dict) -> int:
    """Several ``--scores``: evaluate each, compare them to the first (paired bootstrap), print, write."""
    from ..evaluation import compare
    from ..evaluation.inputs import follow_file_labels, thresholds_per_strategy

    names = list(strategies)
    thresholds = thresholds_per_strategy(args.thresholds, names)
    thresholds, said = _reconcile(args, thresholds, strategies, table)
    groups, gcol = _groups(args, table)
    if args.bootstrap > 0 and not args.json:
        unit = f"groups of {gcol!r}" if groups is not None else "images"
        print(f"labelwise evaluate: {len(table)} images, {table.schema.n_labels} labels, {len(names)} strategies "
              f"({', '.join(names)}); bootstrapping {args.bootstrap} resamples of {unit}, the same for each ...",
              file=sys.stderr, flush=True)
    progress = _progress if (args.bootstrap > 0 and not args.json and sys.stderr.isatty()) else None
    y, known, schema, by_name = table.y, table.known, table.schema, {}
    for name, (_, scores) in strategies.items():
        y, known, by_name[name], schema = follow_file_labels(table.y, table.known, scores, table.schema,
                                                             thresholds if isinstance(thresholds, str) else None)
    result = compare(
        y, by_name, schema=schema,
        thresholds=thresholds, tune=args.tune, bootstrap=args.bootstrap, level=args.level, seed=args.seed,
        groups=groups, progress=progress, min_class_count=args.min_class_count, known=known,
        summary={"truth": str(args.truth), "format": table.format or args.format,
                 **({"split": args.split} if args.split else {})},
    )
    result.summary["scores"] = {name: str(path) for name, (path, _) in strategies.items()}
    notes = [str(n) for n in (*said, *table.schema.notes, *table.notes)]
    if groups is not None and args.bootstrap > 0:
        notes.append(_groups_note(args, gcol, groups))
    for name, (path, _) in strategies.items():
        result.results[name].summary["scores"] = str(path)
        result.results[name].notes.extend(notes)
    return _save_and_print(args, result, lambda written: (
        ", ".join(sorted(k for k in written if "/" not in k)) + " and " + ", ".join(n + "/" for n in names)))


def _progress(done: int, total: int) -> None:
    print(f"\r  bootstrap {done}/{total}", end="\n" if done >= total else "", file=sys.stderr, flush=True)


def save_or_say(obj: Any, out: str | None, notes: Any, example: str) -> int:
    """Print the notes, then save ``obj`` (it has ``.save(path)``) to ``out`` and say so, or say how
    to keep it; returns the exit status 0."""
    for note in notes:
        print(f"note: {note}")
    if out:
        obj.save(out)
        print(f"Wrote {out}")
    else:
        print(f"(not saved: pass --out {example})")
    return 0
