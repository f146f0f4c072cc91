"""``labelwise demo [--out DIR] [--epochs N]``: the whole job on bundled digits, no download.

Trains a small CNN on MNIST test digits with the schema: exclusive group "digit" ("0".."9")
plus independent "greater_than_5" and "even"; tunes thresholds on validation, evaluates the
test split, writes DIR/model.keras, DIR/predictions.csv, DIR/report/report.html and
DIR/sample_images/ (then try: labelwise predict DIR/model.keras DIR/sample_images/).
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("demo", help="train, tune, evaluate and save a digits model end to end (about a minute)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="labelwise-demo", help="output folder (default labelwise-demo)")
    p.add_argument("--epochs", type=int, default=None,
                   help="default 3 on MNIST, 5 on the smaller scikit-learn digits fallback")
    p.add_argument("--n-train", type=int, default=6000)
    p.add_argument("--n-val", type=int, default=1000)
    p.add_argument("--n-test", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=None,
                   help="default 64 on MNIST, 16 on the scikit-learn digits fallback")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo run in --out")
    p.add_argument("--no-plots", action="store_true", help="leave the PNG plots out of the report")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.demo import run_demo

    run_demo(args.out, epochs=args.epochs, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test,
             batch_size=args.batch_size, seed=args.seed, verbose=0 if args.quiet else 1, resume=args.resume,
             plots=not args.no_plots)
    return 0
