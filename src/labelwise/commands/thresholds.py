"""``labelwise thresholds``: choose how to decide, on a validation set.

    labelwise thresholds --truth val.csv --scores val_scores.csv --method f1 --out thresholds.json
    labelwise thresholds --truth val.csv --scores val_scores.csv --calibration calibration.json \\
        --optimize instance-f1 --min-labels 1 --out decision.json
    labelwise thresholds --truth val.csv --scores val_scores.csv --calibration platt --compare

A per-label rule (f1, youden, fbeta=2, sensitivity=0.9, ...) without calibration or bounds prints each
label's threshold and writes a plain thresholds file (as before). Any other rule, a calibration
(a calibration.json, or a method name fitted here) or ``--min-labels``/``--max-labels`` writes a
self-contained ``decision.json``. ``--compare`` (or ``--optimize all``) prints every set-level rule
against Hamming loss, subset accuracy, micro/macro/instance F1 and labels per image (``--json`` too).
Both files are read by ``labelwise evaluate --thresholds``.
"""

from __future__ import annotations

import argparse
import math
import warnings
from pathlib import Path
from typing import Any

from .evaluate import add_common, caught, fitted_on, load, save_or_say

HELP = ("choose decisions on a validation set: per-label thresholds (f1, youden, fbeta=2, ...) or a set-level "
        "rule (hamming, subset, micro-f1, macro-f1, instance-f1, top-k=K), optionally after calibration")


def add_parser(subparsers: Any) -> None:
    """Register ``labelwise thresholds``."""
    p = subparsers.add_parser("thresholds", help=HELP, description=HELP)
    add_common(p, fit=True)
    p.add_argument("--optimize", "--method", dest="method", default="f1", metavar="RULE",
                   help="f1 (default), fbeta=2, youden, sensitivity=0.9, specificity=0.95, precision=0.8, hamming, "
                        "subset, micro-f1, macro-f1, instance-f1, top-k=3, or all (= --compare); --method is an alias. "
                        "With a guarantee: sensitivity>=0.95@0.9, specificity>=0.9@0.9, precision>=0.8@0.9, "
                        "fnr<=0.1, fnr<=0.1@0.9 (docs/guarantees.md)")
    p.add_argument("--fallback", choices=("none", "point"), default=None,
                   help="with a guarantee rule (sensitivity>=0.95@0.9, ...): labels with too few validation data "
                        "to certify are refused (none, the default) or decided by the uncertified point estimate")
    p.add_argument("--calibration", metavar="FILE|METHOD",
                   help="a calibration.json (labelwise calibrate), or a method fitted here: platt, temperature, "
                        "isotonic, none")
    p.add_argument("--min-labels", type=int, metavar="N", help="decide at least N labels per image (the none label, e.g. 'No Finding', counts as one; with it, "
                        "N above 1 is refused)")
    p.add_argument("--max-labels", type=int, metavar="K", help="decide at most K labels per image (K >= 1)")
    p.add_argument("--compare", action="store_true",
                   help="print every set-level rule x metrics on this data instead of writing a file")
    p.add_argument("--json", action="store_true", help="with --compare: print the table as JSON")
    p.add_argument("--out", metavar="FILE.json", help="write the thresholds / decision file here (JSON)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Tune, print, write."""
    from ..decide.calibration import CALIBRATION_METHODS
    from ..errors import InputError
    from ..io import check_out_file

    check_out_file(args.out)
    from ..decide.guarantees import is_guarantee

    if args.fallback is not None:
        if not is_guarantee(args.method):
            raise InputError("--fallback goes with a guarantee rule such as 'sensitivity>=0.95@0.9'")
        if args.fallback != "none":
            args.method = f"{args.method};fallback={args.fallback}"
    compare = args.compare or str(args.method).strip().lower() == "all"
    if compare:
        if args.out:
            raise InputError("--compare prints the table only; choose a rule with --optimize RULE to write --out")
        return _run_compare(args)
    if args.json:
        raise InputError("--json goes with --compare (or --optimize all)")
    plain = args.calibration is None and args.min_labels is None and args.max_labels is None
    if plain:
        try:
            from ..evaluation import parse_tune

            kw = parse_tune(args.method)
        except InputError:
            kw = None
        if kw is not None:
            return _run_plain(args, kw)
    if args.calibration is not None and args.calibration not in CALIBRATION_METHODS \
            and not Path(args.calibration).exists():
        raise InputError(f"--calibration {args.calibration}: no such file, and not a method "
                         f"({', '.join(CALIBRATION_METHODS)})")
    return _run_policy(args)


def _inputs(args):
    """(table, raw scores, known, calibration or None) -- raw: logits kept as such with --from-logits;
    a calibration method name is fitted here, each label on its known rows."""
    import numpy as np

    from ..decide.calibration import CALIBRATION_METHODS, Calibration
    from ..decide.scorefile import reconcile
    from ..evaluation.known import fit_calibration_known

    cal = args.calibration
    method = cal if cal in CALIBRATION_METHODS and not Path(cal).exists() else None
    table, got = load(args, fit=True, check=method or True)
    (path, raw), = got.values()
    raw = raw[:, :table.schema.n_outputs]
    known = np.asarray(table.known, dtype=bool)
    if cal is not None and method is None:
        from dataclasses import replace

        from ..evaluation.inputs import follow_file_labels

        y, known, raw, schema = follow_file_labels(table.y, known, raw, table.schema, cal)
        table = replace(table, y=y, known=known, schema=schema) if schema is not table.schema else table
        cal = Calibration.load(cal)
        # scores that this very calibration produced are not calibrated again (said once); another one refuses
        from ..decide.policy import DecisionPolicy

        probe, said = reconcile(path, DecisionPolicy(table.schema, "hamming", calibration=cal),
                                args.calibration, from_logits=bool(args.from_logits))
        for n in said:
            print(f"note: {n}")
        cal = probe.calibration
    elif cal is not None:
        cal = fit_calibration_known(np.where(known, table.y, 0), raw, known, table.schema, method=cal,
                                    from_logits=bool(args.from_logits))
    return table, raw, known, cal


def _run_compare(args) -> int:
    from ..decide.policy import compare_rules
    from ..errors import InputError

    table, raw, known, cal = _inputs(args)
    full = known.all(axis=1)
    if not full.any():
        raise InputError(f"{args.truth}: no row has every label known; the rules are compared on whole rows")
    with caught() as notes:
        result = compare_rules(table.y[full], raw[full], table.schema, calibration=cal,
                               from_logits=bool(args.from_logits), min_labels=args.min_labels,
                               max_labels=args.max_labels)
        if not full.all():
            warnings.warn(f"the rules are compared on the {int(full.sum())} of {len(table)} rows with every label "
                          "known")
    if args.json:
        print(result.to_json())
        return 0
    print(f"rules compared on {fitted_on(args, ' (validation data)')}")
    print(result.format_text())
    for w in notes:
        print(f"note: {w.message}")
    return 0


def _run_policy(args) -> int:
    import numpy as np

    from ..decide.rules import decision_metrics
    from ..evaluation.known import fit_policy_known
    from ..evaluation.text import _table

    table, raw, known, cal = _inputs(args)
    schema = table.schema
    y = np.where(known, table.y, 0)
    with caught() as notes:
        pol = fit_policy_known(y, raw, known, schema, rule=args.method, calibration=cal, min_labels=args.min_labels,
                               max_labels=args.max_labels, from_logits=bool(args.from_logits))
        D = pol.decide(raw, from_logits=bool(args.from_logits))
    full = known.all(axis=1)
    print(f"{len(table)} images; {pol.describe()}; tuned on {fitted_on(args)}")
    if pol.thresholds is not None:
        rows = []
        for label, v, how in zip(pol.thresholds.labels, pol.thresholds.values, pol.thresholds.label_methods):
            j = schema.index(label)
            rows.append([label, str(int(y[known[:, j], j].sum())), f"{v:.3f}" if math.isfinite(v) else how])
        print("\n".join(_table(["label", "pos", "threshold"], rows, right=[1, 2])))
    for line in (pol.thresholds.params.get("promises", []) if pol.thresholds is not None else []):
        print(f"promise: {line}")
    if full.any():
        m = decision_metrics(y[full], D[full], schema)
        print(f"on this data{'' if full.all() else f' ({int(full.sum())} rows with every label known)'}: "
              f"Hamming {m['hamming_loss']:.3f}, subset accuracy {m['subset_accuracy']:.3f}, "
              f"micro-F1 {m['micro_f1']:.3f}, instance-F1 {m['instance_f1']:.3f}; labels per image "
              f"{m['labels_per_image_predicted']:.2f} decided vs {m['labels_per_image_true']:.2f} true")
    return save_or_say(pol, args.out, [*pol.notes, *(w.message for w in notes)], "decision.json")


def _run_plain(args: argparse.Namespace, kw: dict) -> int:
    """A per-label rule alone: today's thresholds table and plain thresholds file."""
    from ..decide.thresholds import tune_thresholds
    from ..evaluation.text import _table

    from ..evaluation.inputs import as_probabilities

    table, got = load(args, fit=True)
    (_, raw), = got.values()
    schema = table.schema
    scores = as_probabilities(raw, schema, bool(args.from_logits))
    with caught() as notes:
        if table.known.all():
            th = tune_thresholds(table.y, scores, labels=list(schema.labels), schema=schema, **kw)
        else:  # unknown truth cells: each label tuned on its known rows
            from ..evaluation.known import tune_known

            th = tune_known(table.y, scores, table.known, list(schema.labels), schema, kw)
    metric = _metric_name(kw)
    values = dict(zip(map(str, th.labels), th.values))
    reached = dict(zip(map(str, th.labels), _as_list(th.metric_at_threshold, len(th.labels))))
    rows = []
    for j, label in enumerate(schema.labels):
        how = "derived" if label == schema.none else "argmax" if schema.group_of(label) is not None else None
        tuned = [how, ""] if how else [_f(values.get(label, math.nan)), _f(reached.get(label, math.nan))]
        rows.append([label, str(int(table.y[:, j].sum())), *tuned])
    print(f"{len(table)} images; thresholds by {args.method} on {fitted_on(args)}")
    print("\n".join(_table(["label", "pos", "threshold", metric], rows, right=[1, 2, 3])))
    if schema.exclusive or schema.none:
        print("(exclusive groups are decided by argmax; the none label is derived from the others)")
    return save_or_say(th, args.out, [w.message for w in notes], "thresholds.json")


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
