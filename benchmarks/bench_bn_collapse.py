"""BatchNorm collapse of a small from-scratch run, with and without re-estimated statistics.

Task: tiled MNIST digits. Each 96x64 image holds a 2x2 grid of 48x32 cells; each cell holds a
28x28 MNIST digit (t10k; train digits and validation digits disjoint) at a random offset with
probability 0.6, else nothing. Ten independent labels "digit d present". Model: labelwise's
``train`` with ``mobilenetv3small`` from scratch (no pretrained weights), grayscale input, the
default optimiser settings (Adam 1e-3, constant rate, batch 32).

Compared on the same data and seed:

* ``keras default``  -- ``bn_recalibrate_images = 0``: BatchNorm's moving statistics as Keras
  leaves them (MobileNetV3's BN momentum is 0.999, so a run of a few thousand steps still
  carries its initial statistics and lags the weights);
* ``re-estimated``   -- labelwise's default: after every epoch the moving statistics of every
  trainable BatchNormalization layer are re-estimated over ``bn_recalibrate_images`` training
  images (exact mean / variance over them, :mod:`labelwise.training.batchnorm`);
* ``bn_momentum=0.9`` -- the old hand fix, without re-estimation.

Printed per variant: the best epoch's validation macro ROC AUC, the share of labels whose
validation scores are constant (std < 1e-4, inference mode), the mean per-label score std, the
training time per epoch and the re-estimation's time per epoch (and its ratio to the epoch).

    python benchmarks/bench_bn_collapse.py            # 10 epochs x 50 steps (about 10 min on 2 cores)
    python benchmarks/bench_bn_collapse.py --smoke    # seconds: the pipeline runs, no claim
"""

from __future__ import annotations

import argparse
import warnings
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _mnist_small import load_digits  # noqa: E402  (also puts src/ on the path)

H, W = 96, 64
CELL_H, CELL_W = 48, 32


def tiled_digits(digits_x: np.ndarray, digits_y: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (n, 96, 64, 1) uint8 of 2x2 cells and their 0/1 targets (n, 10): digit d present."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, H, W, 1), np.uint8)
    y = np.zeros((n, 10), np.int8)
    for i in range(n):
        for r in range(2):
            for c in range(2):
                if rng.random() >= 0.6:
                    continue
                k = rng.integers(len(digits_x))
                oy, ox = rng.integers(0, CELL_H - 28 + 1), rng.integers(0, CELL_W - 28 + 1)
                y0, x0 = r * CELL_H + oy, c * CELL_W + ox
                x[i, y0:y0 + 28, x0:x0 + 28] = np.maximum(x[i, y0:y0 + 28, x0:x0 + 28], digits_x[k])
                y[i, digits_y[k]] = 1
    return x, y


def build_data(n_train: int, n_val: int, seed: int = 0):
    """The benchmark's :class:`TrainData`: train tiles from digits 0-7999, val tiles from 8000-9999."""
    from labelwise.labels.schema import LabelSchema
    from labelwise.training.data import Part, TrainData

    dx, dy = load_digits()
    xt, yt = tiled_digits(dx[:8000], dy[:8000], n_train, seed)
    xv, yv = tiled_digits(dx[8000:], dy[8000:], n_val, seed + 1)
    schema = LabelSchema(independent=tuple(f"digit_{d}" for d in range(10)))
    return TrainData(schema, Part(xt, yt, np.array([f"t{i}" for i in range(n_train)])),
                     Part(xv, yv, np.array([f"v{i}" for i in range(n_val)])), None)


def run(data, *, epochs: int, batch_size: int, seed: int, **keys) -> dict:
    """Train one variant; its validation figures from the restored best epoch, in inference mode."""
    from labelwise.metrics import roc_auc_score
    from labelwise.training import TrainConfig, train

    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(schema=data.schema, backbone="mobilenetv3small", weights=None, image_size=(H, W),
                             channels=1, epochs=epochs, batch_size=batch_size, seed=seed, out_dir=out, verbose=0,
                             bootstrap=0, plots=False, early_stopping_patience=None, **keys)
        t0 = time.perf_counter()
        with warnings.catch_warnings():  # the decision policy's notes on a weak model: not this benchmark's point
            warnings.simplefilter("ignore")
            result = train(config, data)
        seconds = time.perf_counter() - t0
        scores = result.model.predict(data.val.x.astype("float32"), batch_size=128, verbose=0)
    std = scores.std(axis=0)
    log = result.history
    return {"val_macro_auc": float(roc_auc_score(data.val.y, scores, average="macro")),
            "best_epoch": result.best_epoch,
            "epoch_aucs": [round(r["val_macro_auc"], 3) for r in log],
            "epoch_losses": [round(r["loss"], 4) for r in log],
            "constant_share": float((std < 1e-4).mean()), "mean_std": float(std.mean()),
            "epoch_s": float(np.mean([r["seconds"] for r in log])),
            "bn_s": float(np.mean([r.get("bn_seconds", 0.0) for r in log])), "total_s": seconds}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, seconds: checks the script runs")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--steps", type=int, default=50, help="training steps per epoch (train images / batch)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--val", type=int, default=1000, help="validation images")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", default="default,fixed,momentum")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    if args.smoke:
        args.epochs, args.steps, args.val, args.batch_size = 2, 3, 64, 16
    data = build_data(args.steps * args.batch_size, args.val, seed=args.seed)
    from labelwise.training import TrainConfig

    has_key = "bn_recalibrate_images" in TrainConfig.__dataclass_fields__
    variants = {"default": ("keras default (no re-estimation)", {"bn_recalibrate_images": 0} if has_key else {}),
                "fixed": ("re-estimated (labelwise default)", {}),
                "momentum": ("bn_momentum=0.9, no re-estimation",
                             {"bn_momentum": 0.9, **({"bn_recalibrate_images": 0} if has_key else {})})}
    chosen = [v for v in args.variants.split(",") if v in variants and (has_key or v != "fixed")]
    print(f"tiled MNIST {H}x{W}, 10 labels; mobilenetv3small from scratch; {args.epochs} epochs x {args.steps} steps "
          f"of batch {args.batch_size} ({args.epochs * args.steps} steps); {args.val} val images; seed {args.seed}",
          flush=True)
    results = {}
    for key in chosen:
        name, keys = variants[key]
        results[key] = r = run(data, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, **keys)
        print(f"  {name}: val AUC per epoch {r['epoch_aucs']}; training loss {r['epoch_losses'][0]} -> "
              f"{r['epoch_losses'][-1]}", flush=True)
    print(f"\n| variant | val macro AUC | constant labels (std<1e-4) | mean score std | s/epoch | "
          f"re-estimation s/epoch (ratio) |")
    print("|---|---|---|---|---|---|")
    for key, r in results.items():
        ratio = r["bn_s"] / r["epoch_s"] if r["epoch_s"] else float("nan")
        print(f"| {variants[key][0]} | {r['val_macro_auc']:.3f} | {r['constant_share']:.0%} | {r['mean_std']:.2g} | "
              f"{r['epoch_s']:.1f} | {r['bn_s']:.2f} ({ratio:.1%}) |")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
