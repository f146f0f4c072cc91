"""Shared helpers of the structure benchmarks: MNIST t10k digits and a small CNN with a SchemaHead."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
MNIST = Path(os.environ.get("LABELWISE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "mnist_idx"


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 MNIST test digits: uint8 images (n, 28, 28, 1) and digits (n,)."""
    from labelwise.labels.tables import load_mnist_idx

    if not (MNIST / "t10k-images-idx3-ubyte.gz").exists():
        sys.exit(f"MNIST not found in {MNIST}; set LABELWISE_SHARED_DATA to the shared data folder")
    x = load_mnist_idx(MNIST / "t10k-images-idx3-ubyte.gz")[..., None]
    return x, load_mnist_idx(MNIST / "t10k-labels-idx1-ubyte.gz").astype(np.int64)


def fit_predict(schema, x_train, y_train, x_test, *, epochs: int, seed: int, batch_size: int = 64):
    """Train ``small_cnn`` + SchemaHead with SchemaLoss on ``y_train`` (-1 = unknown); return test scores."""
    import keras

    from labelwise.blocks.losses import SchemaLoss
    from labelwise.blocks.models import build_model

    keras.utils.set_random_seed(seed)
    model = build_model(schema, "small_cnn", input_shape=(28, 28, 1), weights=None)
    steps = epochs * int(np.ceil(len(x_train) / batch_size))
    lr = keras.optimizers.schedules.CosineDecay(2e-3, steps)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=SchemaLoss(schema))
    model.fit(x_train.astype("float32"), y_train.astype("float32"), epochs=epochs, batch_size=batch_size, verbose=0)
    return model.predict(x_test.astype("float32"), batch_size=256, verbose=0)
