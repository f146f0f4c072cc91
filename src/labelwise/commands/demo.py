"""labelwise demo [--out DIR]: the whole job end to end on bundled digits, no download.

A multi-label task built from handwritten digits: an exclusive group "digit" ("0".."9") plus
"greater_than_5" and "even", derived from the digit (so no decision says "3" and "even").
A small CNN trains with the schema's loss; on the validation split the probabilities are
calibrated (Platt; one temperature for the digit group) and the instance-f1 decision rule is
fitted; the test split is evaluated with bootstrap confidence intervals. DIR then holds
model.keras (schema, calibration, decision rule and preprocessing inside), predictions.csv,
report/ (report.html, metrics.json, thresholds.json, PNG plots), log.csv and sample_images/.
Next: labelwise predict DIR/model.keras DIR/sample_images/ --out my_predictions.csv

Data: the 10,000 MNIST test digits when $LABELWISE_SHARED_DATA/mnist_idx holds MNIST's IDX
files, else scikit-learn's bundled 8x8 digits upscaled to 28x28 (1,797 images; the split sizes
shrink to fit). About a minute on 2 CPU cores.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("demo", help="train, calibrate, decide, evaluate and save a digits model end to end "
                                           "(about a minute, no download)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="labelwise-demo", help="output folder (default labelwise-demo)")
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs (default 3 on MNIST, 5 on the smaller scikit-learn digits)")
    p.add_argument("--n-train", type=int, default=6000, help="training images (default 6000; fewer if fewer exist)")
    p.add_argument("--n-val", type=int, default=1000,
                   help="validation images for calibration and the decision rule (default 1000)")
    p.add_argument("--n-test", type=int, default=3000, help="test images for the report (default 3000)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="batch size (default 64 on MNIST, 16 on the scikit-learn digits)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the split and the training (default 0)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo run in --out")
    p.add_argument("--no-plots", action="store_true", help="leave the PNG plots out of the report")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.demo import run_demo

    run_demo(args.out, epochs=args.epochs, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test,
             batch_size=args.batch_size, seed=args.seed, verbose=0 if args.quiet else 1, resume=args.resume,
             plots=not args.no_plots)
    return 0
