"""``labelwise calibrate``: fit a calibration (scores -> probabilities) on a validation set.

    labelwise calibrate --truth val.csv --scores val_scores.csv --method platt --out calibration.json

prints, per label, the fitted parameters and the ECE (classwise, 15 bins) and Brier score before and
after, on the validation data, and writes the JSON that ``labelwise thresholds --calibration`` reads.
"""

from __future__ import annotations

import argparse
from typing import Any

from .evaluate import add_common, save_or_say

HELP = "fit a calibration (platt, temperature, isotonic) of the scores on a validation set"


def add_parser(subparsers: Any) -> None:
    """Register ``labelwise calibrate``."""
    p = subparsers.add_parser("calibrate", help=HELP, description=HELP)
    add_common(p)
    p.add_argument("--method", default="platt", metavar="METHOD",
                   help="platt (default; a*logit+b per label), temperature (one T per label / per exclusive "
                        "group), isotonic (labels with >= 50 positives and negatives; Platt for the others), none")
    p.add_argument("--out", metavar="calibration.json", help="write the calibration here (JSON)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Fit, print the before/after table, write the file."""
    import numpy as np

    from ..decide.calibration import fit_calibration
    from ..evaluation.text import _table
    from ..io import check_out_file
    from ..metrics import brier_score, expected_calibration_error

    check_out_file(args.out)
    table, raw = load_raw(args)
    schema = table.schema
    cal = fit_calibration(table.y, raw, method=args.method, schema=schema, from_logits=bool(args.from_logits))
    before = cal.schema.complete_scores(_probs(raw[:, :schema.n_outputs], schema, args.from_logits))
    after = cal.apply(raw[:, :schema.n_outputs])
    after = schema.complete_scores(after)
    y = table.y
    e0 = expected_calibration_error(y, before, average=None, labels=list(schema.labels))
    e1 = expected_calibration_error(y, after, average=None, labels=list(schema.labels))
    b0 = brier_score(y, before, average=None)
    b1 = brier_score(y, after, average=None)
    rows = []
    for j, label in enumerate(schema.labels):
        if label in cal.independent:
            spec = cal.independent[label]
        elif label == schema.none:
            spec = {"kind": "derived"}
        else:
            spec = cal.groups.get(schema.group_of(label), {"kind": "identity"})
        rows.append([label, str(int(y[:, j].sum())), _describe(spec), f"{e0[j]:.3f}", f"{e1[j]:.3f}",
                     f"{b0[j]:.4f}", f"{b1[j]:.4f}"])
    print(f"{len(table)} images; calibration {args.method} fitted on {args.truth}")
    print("\n".join(_table(["label", "pos", "fit", "ECE before", "ECE after", "Brier before", "Brier after"],
                           rows, right=[1, 3, 4, 5, 6])))
    print(f"classwise ECE (15 equal-width bins) {np.mean(e0):.4f} -> {np.mean(e1):.4f}; "
          f"macro Brier {np.mean(b0):.4f} -> {np.mean(b1):.4f} (on the data it was fitted on)")
    if schema.none:
        print(f"({schema.none!r} is derived: prod(1 - p) of the calibrated independent labels)")
    return save_or_say(cal, args.out, cal.notes, "calibration.json")


def load_raw(args):
    """The truth table and ONE scores file in its row order, as written: probabilities, or logits
    kept as logits with --from-logits (calibration fits on the logits themselves)."""
    from ..errors import InputError
    from ..evaluation.inputs import parse_named_paths, read_truth
    from ..labels.scores import read_scores
    from .evaluate import _notes

    values = list(args.scores)
    if len(values) != 1:
        raise InputError(f"this command takes one --scores; got {len(values)} ({', '.join(values)})")
    (_, path), = parse_named_paths(values)
    with _notes():
        table = read_truth(args.truth, schema=args.schema, format=args.format, labels=args.labels)
        _, scores = read_scores(path, ids=table.ids, schema=table.schema, id_column=args.id_column,
                                from_logits=bool(args.from_logits))
    return table, scores


def _probs(raw, schema, from_logits):
    if not from_logits:
        return raw
    from ..evaluation import scores_from_logits

    return scores_from_logits(raw, schema)


def _describe(spec: dict) -> str:
    kind = spec.get("kind")
    if kind == "platt":
        return f"platt a={spec['a']:.3g} b={spec['b']:.3g}"
    if kind == "temperature":
        return f"T={spec['T']:.3g}"
    if kind == "isotonic":
        return f"isotonic ({len(spec['x'])} knots)"
    if kind == "prior":
        p = spec["p"]
        return f"prior p={p:.3g}" if not isinstance(p, list) else "prior (member frequencies)"
    return str(kind)
