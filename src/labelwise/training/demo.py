"""``labelwise demo``: a real multi-label image task on bundled data, end to end, no download.

Data: the 10,000 MNIST test digits (``mnist_idx`` in the shared data folder: env
``LABELWISE_SHARED_DATA``, else ``../shared/data`` beside the repository or the working
folder); where they are absent, scikit-learn's bundled 8x8 ``load_digits`` (1,797 images,
upscaled to 28x28). That fallback has a sixth of the training images, so it trains with
batch 16 for 5 epochs (about 340 steps; batch 64 for 3 epochs gave 51 steps, too few for the
BatchNorm statistics to settle, and a model that called most test digits "8").

Schema (:data:`DEMO_SCHEMA`), 12 labels::

    [labels]
    [labels.exclusive]
    digit = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    [labels.derived]
    greater_than_5 = { any_of = ["6", "7", "8", "9"] }
    even = { any_of = ["0", "2", "4", "6", "8"] }       # 0 counts as even

So each image has exactly one digit, and ``greater_than_5`` and ``even`` are computed from the
digit softmax (their scores are sums of digit probabilities; their decisions follow the decided
digit), so the demo can never say "3" and "even" for one image. As free
sigmoids (:data:`INDEPENDENT_SCHEMA`, kept for the comparison in
``benchmarks/bench_structures.py``) they contradict the digit on some test images. A small
CNN (``backbone="small_cnn"``) is trained with :class:`labelwise.blocks.losses.SchemaLoss`
(softmax + cross-entropy for the digit group, sigmoid + BCE for the others), the scores are
Platt-calibrated on the validation split and decided by the instance-F1 rule (the training
defaults), the test split is evaluated, and the output folder gets
``model.keras``, ``predictions.csv`` (test split), ``report/`` (HTML + JSON + PNGs),
``log.csv``/``log.json`` and ``sample_images/`` (a few test digits as PNG) for
``labelwise predict OUT/model.keras OUT/sample_images/``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..labels.schema import LabelSchema

__all__ = ["DEMO_SCHEMA", "INDEPENDENT_SCHEMA", "digit_targets", "load_digit_images", "find_mnist", "run_demo", "DemoResult"]

DIGITS = tuple(str(d) for d in range(10))
DEMO_SCHEMA = LabelSchema(exclusive={"digit": DIGITS}, derived={
    "greater_than_5": {"any_of": [d for d in DIGITS if int(d) > 5]},
    "even": {"any_of": [d for d in DIGITS if int(d) % 2 == 0]}})
#: The demo's schema before derived labels: ``greater_than_5`` and ``even`` as free sigmoids.
INDEPENDENT_SCHEMA = LabelSchema(independent=("greater_than_5", "even"), exclusive={"digit": DIGITS})


def digit_targets(digits: np.ndarray, schema: LabelSchema = DEMO_SCHEMA) -> np.ndarray:
    """(n, 12) 0/1 targets over ``schema.labels`` (default :data:`DEMO_SCHEMA`) for integer digits 0-9."""
    rows = []
    for d in np.asarray(digits, dtype=int):
        row = [str(d)]
        if d > 5:
            row.append("greater_than_5")
        if d % 2 == 0:
            row.append("even")
        rows.append(row)
    return schema.encode(rows)


def find_mnist() -> Path | None:
    """The ``mnist_idx`` folder with the t10k images and labels, or None."""
    here = Path(__file__).resolve()
    candidates = []
    if os.environ.get("LABELWISE_SHARED_DATA"):
        candidates.append(Path(os.environ["LABELWISE_SHARED_DATA"]) / "mnist_idx")
    candidates += [here.parents[3] / "shared" / "data" / "mnist_idx",  # src/labelwise -> repo -> ../shared
                   Path.cwd().parent / "shared" / "data" / "mnist_idx",
                   Path.cwd() / "shared" / "data" / "mnist_idx"]
    for c in candidates:
        if (c / "t10k-images-idx3-ubyte.gz").exists() and (c / "t10k-labels-idx1-ubyte.gz").exists():
            return c
    return None


def load_digit_images() -> tuple[np.ndarray, np.ndarray, str]:
    """(images uint8 (n, 28, 28), digits (n,), source description)."""
    folder = find_mnist()
    if folder is not None:
        from ..labels.tables import read_mnist_idx

        table = read_mnist_idx(folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz",
                               schema=DEMO_SCHEMA)
        return table.images, table.extra["digit"].to_numpy(), f"MNIST test digits ({folder})"
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    small = (bunch.images * (255.0 / 16.0)).astype(np.uint8)
    x = np.stack([np.asarray(Image.fromarray(im).resize((28, 28), Image.BILINEAR)) for im in small])
    return x, bunch.target.astype(np.int64), "scikit-learn load_digits (8x8, upscaled to 28x28)"


@dataclass
class DemoResult:
    """Where the demo wrote things and how it did on the test split."""

    out_dir: Path
    model_path: Path
    predictions: Path
    sample_images: Path
    report: Path | None
    train_result: Any
    source: str
    seconds: float


# Training defaults per data source: (epochs, batch_size). The scikit-learn fallback has
# ~1,100 training images; at MNIST's settings that is 51 steps and a useless model (subset
# accuracy 0.15); measured on 2 CPU cores (seed 0): batch 16 x 3 epochs 0.89 (13 s),
# x 4 epochs 0.94 (11 s), x 5 epochs 0.96 (12 s).
DEFAULTS = {"mnist": (3, 64), "sklearn": (5, 16)}


def run_demo(out: str | os.PathLike = "labelwise-demo", *, epochs: int | None = None, n_train: int = 6000,
             n_val: int = 1000, n_test: int = 3000, batch_size: int | None = None, seed: int = 0,
             n_samples: int = 12, verbose: int = 1, resume: bool = False, plots: bool = True,
             bootstrap: int = 1000) -> DemoResult:
    """Train, tune, evaluate and save the digits task into ``out`` (see the module docstring).

    ``epochs`` and ``batch_size`` default by data source (:data:`DEFAULTS`): 3 and 64 on MNIST,
    5 and 16 on the smaller scikit-learn digits. ``bootstrap``: resamples for the report's
    confidence intervals (0: none)."""
    from PIL import Image

    from ..io import atomic_path
    from ..decide.scorefile import move_scores
    from .predict import predict
    from .config import TrainConfig
    from .data import Part, TrainData
    from .loop import train

    t0 = time.perf_counter()
    out = Path(out)
    x, digits, source = load_digit_images()
    kind = "sklearn" if "load_digits" in source else "mnist"
    epochs = DEFAULTS[kind][0] if epochs is None else epochs
    batch_size = DEFAULTS[kind][1] if batch_size is None else batch_size
    for name, value, low in (("n_train", n_train, 1), ("n_val", n_val, 1), ("n_test", n_test, 1),
                             ("epochs", epochs, 1), ("batch_size", batch_size, 1)):
        if value < low:
            raise InputError(f"{name} must be at least {low}; got {value}")
    n = len(x)
    if n_train + n_val + n_test > n:
        scale = n / (n_train + n_val + n_test)
        n_train, n_val = int(n_train * scale), int(n_val * scale)
        n_test = n - n_train - n_val
    order = np.random.default_rng(seed).permutation(n)
    idx = {"train": order[:n_train], "val": order[n_train:n_train + n_val],
           "test": order[n_train + n_val:n_train + n_val + n_test]}
    y = digit_targets(digits)
    if verbose:
        print(f"labelwise demo: {source}; train {n_train}, val {n_val}, test {n_test} images; {epochs} epochs of "
              f"batch {batch_size}; labels {list(DEMO_SCHEMA.labels)}", flush=True)
    prefix = "sklearn_digits" if kind == "sklearn" else "mnist_t10k"
    parts = {k: Part(x[v], y[v], np.array([f"{prefix}_{i:05d}" for i in v])) for k, v in idx.items()}
    data = TrainData(DEMO_SCHEMA, parts["train"], parts["val"], parts["test"])

    samples = out / "sample_images"
    samples.mkdir(parents=True, exist_ok=True)
    for i in idx["test"][:n_samples]:
        with atomic_path(samples / f"{prefix}_{i:05d}.png") as tmp:
            Image.fromarray(x[i]).save(tmp, format="PNG")

    config = TrainConfig(schema=DEMO_SCHEMA, backbone="small_cnn", image_size=(28, 28), channels=1, epochs=epochs,
                         bn_momentum=0.9,
                         batch_size=batch_size, learning_rate=2e-3, lr_schedule="cosine", loss="schema", binary="bce",
                         early_stopping_patience=None, seed=seed, out_dir=str(out), verbose=verbose, resume=resume,
                         overwrite=not resume, plots=plots, bootstrap=bootstrap,
                         calibration="platt", decide_for="instance-f1")
    result = train(config, data)
    test_csv = out / "test_predictions.csv"
    predictions = out / "predictions.csv"
    if test_csv.exists():
        move_scores(test_csv, predictions)  # its sidecar (calibrated, under which policy) goes with it
        from ..labels.csvread import read_csv

        # the promise of the schema, on every test decision: exactly one digit each
        DEMO_SCHEMA.validate(read_csv(predictions)[list(DEMO_SCHEMA.labels)].astype(int).to_numpy(),
                             source=str(predictions))
    sample_csv = out / "sample_images_predictions.csv"
    frame = predict(result.artifact, samples, out=sample_csv, verbose=0)
    # the promise of the schema: every decision has exactly one digit
    DEMO_SCHEMA.validate(frame[list(DEMO_SCHEMA.labels)].to_numpy(), source=str(sample_csv))
    seconds = time.perf_counter() - t0
    if verbose:
        print(f"\nwrote {out}/: model.keras, predictions.csv, report/report.html, log.csv, sample_images/ "
              f"({seconds:.0f} s)\nnext: labelwise predict {out}/model.keras {samples}/ --out my_predictions.csv",
              flush=True)
    report = out / "report" / "report.html"
    return DemoResult(out, result.artifact, predictions, samples, report if report.exists() else None, result,
                      source, seconds)
