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
from contextlib import contextmanager
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


def load(args: argparse.Namespace, *, fit: bool = False, check: bool | str = False):
    """``(table, {name: (path, scores)})`` read as the flags of :func:`add_common` say
    (:func:`labelwise.evaluation.inputs.load_scores`), the files' notes printed. ``fit``: ONE
    ``--scores`` kept as written, test rows refused unless ``--allow-test-rows``, and the line saying
    which rows the fit uses printed. ``check``: the scores file's sidecar is checked (logits vs
    probabilities), and for a calibration method ``check`` names (not none), that the scores are not
    calibrated already (:func:`labelwise.decide.scorefile.check_fit_input`)."""
    from ..decide.scorefile import check_fit_input, reconcile
    from ..evaluation.inputs import load_scores

    with caught(sys.stderr):
        table, got, said = load_scores(
            table_spec_from_args(args, args.truth), args.scores, id_column=args.id_column,
            from_logits=args.from_logits, split=args.split, split_column=args.split_column, splits=args.splits,
            fit=fit, allow_test_rows=bool(getattr(args, "allow_test_rows", False)))
    if fit:
        print(said, file=sys.stderr if getattr(args, "json", False) else sys.stdout)
    if check:
        (path, _), = got.values()
        reconcile(path, None, from_logits=bool(args.from_logits))
        if check not in (True, "none"):
            check_fit_input(path, from_logits=bool(args.from_logits), what=f"a {check} calibration")
    return table, got


@contextmanager
def caught(file: Any = None):
    """Record the warnings raised inside (the list it yields); with ``file``, print them there as
    ``note:`` lines on the way out, also when an error leaves."""
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        try:
            yield got
        finally:
            for w in got if file is not None else []:
                print(f"note: {w.message}", file=file)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print; returns 0 (a collapsed model is reported in the output, not by the exit status).
    Several ``--scores``: compare them (each strategy evaluated, compared to the first by a paired bootstrap)."""
    from ..evaluation import compare, evaluate
    from ..evaluation.inputs import follow_file_labels, thresholds_per_strategy
    from ..io import check_out_dir

    check_out_dir(args.out)
    table, strategies = load(args)
    names = list(strategies)
    thresholds, said = _reconcile(args, thresholds_per_strategy(args.thresholds, names), strategies, table)
    groups, gcol = _groups(args, table)
    many = len(names) > 1
    if args.bootstrap > 0 and not args.json:
        unit = f"groups of {gcol!r}" if groups is not None else "images"
        print(f"labelwise evaluate: {len(table)} images, {table.schema.n_labels} labels"
              + (f", {len(names)} strategies ({', '.join(names)})" if many else "")
              + f"; bootstrapping {args.bootstrap} resamples of {unit}" + (", the same for each" if many else "")
              + " ...", file=sys.stderr, flush=True)
    progress = _progress if (args.bootstrap > 0 and not args.json and sys.stderr.isatty()) else None
    by_name = {}
    for name, (_, scores) in strategies.items():
        y, known, by_name[name], schema = follow_file_labels(table.y, table.known, scores, table.schema,
                                                             thresholds if isinstance(thresholds, str) else None)
    notes = [str(n) for n in (*said, *table.schema.notes, *table.notes)]
    if groups is not None and args.bootstrap > 0:
        notes.append(_groups_note(args, gcol, groups))
    split = {"split": args.split} if args.split else {}
    same = dict(schema=schema, thresholds=thresholds, tune=args.tune, bootstrap=args.bootstrap, level=args.level,
                seed=args.seed, groups=groups, progress=progress, min_class_count=args.min_class_count, known=known)
    if many:
        result = compare(y, by_name, summary={"truth": str(args.truth), "format": table.format or args.format,
                                              **split}, **same)
        result.summary["scores"] = {name: str(path) for name, (path, _) in strategies.items()}
        for name, (path, _) in strategies.items():
            result.results[name].summary["scores"] = str(path)
            result.results[name].notes.extend(notes)
        return _save_and_print(args, result, lambda written: (
            ", ".join(sorted(k for k in written if "/" not in k)) + " and " + ", ".join(n + "/" for n in names)))
    (path, _), = strategies.values()
    result = evaluate(
        y, by_name[names[0]], summary={"truth": str(args.truth), "scores": str(path),
                                       "format": table.format or args.format, **split},
        score_source=getattr(args, "score_source", None), average_over=getattr(args, "average_over", "free"), **same)
    result.notes.extend(notes)
    if groups is not None and args.bootstrap > 0:
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
    from ..evaluation.evaluate import groups_note

    how = "--group-column" if getattr(args, "group_column", None) else "found in the table; --no-groups resamples images"
    return groups_note(groups, f"column {column!r}, {how}")


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


def fitted_on(args: argparse.Namespace, otherwise: str = "") -> str:
    """``"val.csv (split val)"``: the truth table a fit or a table is on, and its split (else ``otherwise``)."""
    return f"{args.truth}" + (f" (split {args.split})" if args.split else otherwise)


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
