"""``labelwise predict MODEL IMAGES_OR_TABLE --out predictions.csv``: scores and decisions per image,
or per case for a case model (stacks of slices, e.g. knee MRI exams).

The CSV has ``id``, ``labels`` (decided labels joined by '|'), ``p_<label>`` probabilities
(calibrated by the model's decision policy; the derived none probability included) and one 0/1
decision column per label; decisions follow the rule stored in the model (``decide_for`` at
training) and always obey its schema. ``--decide-for RULE`` applies another rule that needs no
validation data: hamming (p >= 0.5), subset, instance-f1 (the set of best expected F1 per image),
top-k=K.

A case model (built by labelwise.blocks.models.build_case_model) reads one .npy stack (slices x H x W)
or one folder of slice images per case, as labelwise train does: a folder of them (id = file stem or
folder name), or a table of case ids with the stacks in --images DIR (default: the table's folder).
Each case gets train's checks (shape, NaN/inf, slices of one size). Each batch is padded to its
longest case with a mask.

Every input found is predicted or named: an unreadable one (a broken or looping symbolic link
included) stops the run (exit 2) listing them, unless --skip-unreadable, which leaves them out,
counts them and lists them with their reasons in OUT's .skipped.csv (predictions.skipped.csv).
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("predict", help="score images with a model.keras; write a CSV of probabilities and decisions",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model.keras written by labelwise train / demo")
    p.add_argument("inputs", nargs="+", help="one image, several images, a glob pattern ('photos/*.jpg'), a folder of "
                   "images, or a table (CSV) with an image path column; for a case model a folder of .npy stacks, "
                   "or a table of case ids")
    p.add_argument("--out", default="predictions.csv", help="output CSV (default predictions.csv)")
    p.add_argument("--images", default=None, metavar="DIR",
                   help="folder the table's image paths or case stacks are in (default: the table's folder)")
    p.add_argument("--column", "--id-column", dest="column", default=None,
                   help="the table's image path column (default: the id column train reads: "
                        "'Image Index'/image/id/filename/path/...); "
                        "for cases the case id column (default: case_id/case/exam/id/...)")
    p.add_argument("--batch-size", type=int, default=None, help="images (default 64) or cases (default 8) per batch")
    p.add_argument("--max-slices", type=int, default=None, metavar="N",
                   help="case models: cut longer stacks to their N central slices (default: the model's setting, else all)")
    p.add_argument("--skip-unreadable", action="store_true",
                   help="leave out unreadable images or stacks (broken links included) instead of stopping; they are "
                   "listed in a warning and in OUT's .skipped.csv (e.g. predictions.skipped.csv)")
    p.add_argument("--decide-for", default=None, metavar="RULE",
                   help="decide by RULE instead of the model's rule: hamming, subset, instance-f1 or top-k=K "
                   "(rules tuned on validation data are set at training: decide_for)")
    p.add_argument("--raw", action="store_true",
                   help="write the model's own, uncalibrated probabilities in the p_ columns (the sidecar says raw), "
                        "e.g. to evaluate another decision file on them; the decisions stay the model's (default off)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--pipeline", choices=("auto", "tf", "python"), default="auto",
                   help="input pipeline: auto (tf.data when TensorFlow is installed, else Python), tf or python")
    p.set_defaults(func=run)


def check_out(out: str) -> None:
    """Refuse an ``--out`` that cannot be written before the model is loaded and every image
    predicted: a folder, a path under a file, or under a folder we may not write in."""
    import os
    from pathlib import Path

    from ..errors import InputError

    path = Path(out)
    if path.is_dir():
        raise InputError(f"--out {out}: this is a folder; give a file path, e.g. --out {path / 'predictions.csv'}")
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"--out {out}: the file exists and is not writable; choose another --out")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise InputError(f"--out {out}: {parent} is a file, not a folder; choose another --out")
    if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"--out {out}: no permission to write in {parent}; choose another --out")


def skipped_list(out: str, skipped: dict) -> "str | None":
    """Write ``{path: reason}`` of the inputs left out beside ``out`` (``predictions.csv`` ->
    ``predictions.skipped.csv``: columns ``input``, ``reason``) and return its path; with nothing
    skipped, remove such a list left by an earlier run of the same ``--out`` and return None."""
    import contextlib
    from pathlib import Path

    import pandas as pd

    from ..io import atomic_path

    path = Path(out).with_suffix(".skipped.csv")
    if not skipped:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return None
    with atomic_path(path) as tmp:
        pd.DataFrame({"input": list(skipped), "reason": list(skipped.values())}).to_csv(tmp, index=False)
    return str(path)



def run(args: argparse.Namespace) -> int:
    from ..training.predict import predict
    from .noise import interactive

    check_out(args.out)  # before loading the model: a bad path should cost nothing
    if args.decide_for is not None:  # a refused rule should cost nothing either
        from ..decide.policy import rule_without_validation

        rule_without_validation(args.decide_for)  # before the model loads

    # One argument stays a path (folder, table, image or pattern); several are a list of them.
    inputs = args.inputs[0] if len(args.inputs) == 1 else args.inputs
    frame = predict(args.model, inputs, out=args.out, images=args.images, column=args.column,
                    batch_size=args.batch_size, skip_unreadable=args.skip_unreadable, max_slices=args.max_slices,
                    verbose=0 if args.quiet else 1 if interactive() else 2, pipeline=args.pipeline,
                    decide_for=args.decide_for, raw=args.raw)
    print(f"labelwise predict: {len(frame)} {frame.attrs.get('kind', 'image')}(s) -> {args.out}")
    for line in frame.attrs.get("promises") or []:
        print(f"labelwise predict: promise: {line}")
    listed = skipped_list(args.out, frame.attrs.get("skipped") or {})
    if listed is not None:
        n = len(frame.attrs["skipped"])
        print(f"labelwise predict: skipped {n} unreadable input(s) of {n + len(frame)} (--skip-unreadable); "
              f"each with its reason in {listed}")
    if not args.quiet:
        print(frame[["id", "labels"]].head(10).to_string(index=False))
    return 0
