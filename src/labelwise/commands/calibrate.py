"""``labelwise calibrate``: fit a calibration (scores -> probabilities) on a validation set.

    labelwise calibrate --truth val.csv --scores val_scores.csv --method platt --out calibration.json

prints, per label, the fitted parameters and the ECE (classwise, 15 bins) and Brier score before and
after, on the validation data, and writes the JSON that ``labelwise thresholds --calibration`` reads.
"""

from __future__ import annotations

import argparse
from typing import Any

from .evaluate import add_common, fitted_on, load, save_or_say

HELP = "fit a calibration (platt, temperature, isotonic) of the scores on a validation set"


def add_parser(subparsers: Any) -> None:
    """Register ``labelwise calibrate``."""
    p = subparsers.add_parser("calibrate", help=HELP, description=HELP)
    add_common(p, fit=True)
    p.add_argument("--method", default="platt", metavar="METHOD",
                   help="platt (default; a*logit+b per label), temperature (one T per label / per exclusive "
                        "group), isotonic (labels with >= 50 positives and negatives; Platt for the others), none")
    p.add_argument("--out", metavar="calibration.json", help="write the calibration here (JSON)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Fit, print the before/after table, write the file."""
    import numpy as np

    from ..decide.policy import DecisionPolicy
    from ..evaluation.inputs import as_probabilities
    from ..evaluation.known import fit_calibration_known
    from ..evaluation.text import _table
    from ..io import check_out_file
    from ..metrics import brier_score, expected_calibration_error

    check_out_file(args.out)
    table, got = load(args, fit=True, check=args.method)
    (_, raw), = got.values()
    schema = table.schema
    raw = raw[:, :schema.n_outputs]
    known = table.known[:, :schema.n_labels]
    y = np.where(known, table.y, 0)
    cal = fit_calibration_known(y, raw, known, schema, method=args.method, from_logits=bool(args.from_logits))
    before = cal.schema.complete_scores(as_probabilities(raw, schema, bool(args.from_logits)))
    after = DecisionPolicy(schema, "hamming", calibration=cal).probabilities(raw)
    pairs = [(metric, p) for metric in (expected_calibration_error, brier_score) for p in (before, after)]
    e0, e1, b0, b1 = each = np.full((len(pairs), schema.n_labels), np.nan)  # rows of `each`, filled below
    for j in np.flatnonzero(known.any(axis=0)):  # each label on its known rows
        r = known[:, j]
        for k, (metric, p) in enumerate(pairs):
            each[k, j] = metric(y[r, j:j + 1], p[r, j:j + 1], average=None)[0]
    rows = []
    for j, label in enumerate(schema.labels):
        if label in cal.independent:
            spec = cal.independent[label]
        elif label == schema.none:
            spec = {"kind": "derived"}
        else:
            spec = cal.groups.get(schema.group_of(label), {"kind": "identity"})
        rows.append([label, str(int(y[known[:, j], j].sum())), _describe(spec), f"{e0[j]:.3f}", f"{e1[j]:.3f}",
                     f"{b0[j]:.4f}", f"{b1[j]:.4f}"])
    print(f"{len(table)} images; calibration {args.method} fitted on {fitted_on(args)}")
    print("\n".join(_table(["label", "pos", "fit", "ECE before", "ECE after", "Brier before", "Brier after"],
                           rows, right=[1, 3, 4, 5, 6])))
    print(f"classwise ECE (15 equal-width bins) {np.nanmean(e0):.4f} -> {np.nanmean(e1):.4f}; "
          f"macro Brier {np.nanmean(b0):.4f} -> {np.nanmean(b1):.4f} (on the data it was fitted on)")
    if schema.none:
        print(f"({schema.none!r} is derived: prod(1 - p) of the calibrated independent labels)")
    return save_or_say(cal, args.out, cal.notes, "calibration.json")


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
