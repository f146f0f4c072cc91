"""Backbones and losses of labelwise.blocks.models / labelwise.blocks.losses: what they cost.

Part 1, backbones: build time, parameters and inference throughput (images/s, compiled
``predict_on_batch`` after a warm-up) of ``build_model(schema, backbone, weights=None)`` at
one input size; ratio against densenet121 (CheXNet's backbone), measured in the same run.

Part 2, losses: milliseconds per call of each loss on a (batch, labels) batch of logits,
compiled (``tf.function`` on TensorFlow, ``jax.jit`` on JAX; the cost includes fetching the
result); ratio against ``keras.losses.BinaryCrossentropy``. The machine is shared: read the
ratios, not the absolute numbers.

Usage: python benchmarks/bench_backbones.py [--size 64] [--batch 32] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from _smoke import add_smoke, parse  # noqa: E402


def _timeit(fn, repeats: int) -> float:
    fn()  # warm-up (tracing/compilation)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _compiled(fn):
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(fn)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=False)
    return fn


def bench_backbones(size: int, batch: int, repeats: int, names: list[str]) -> None:
    import keras

    from labelwise import LabelSchema
    from labelwise.blocks.models import build_model

    schema = LabelSchema([f"l{i}" for i in range(14)], none="none")
    rows = []
    for name in names:
        shape = (28, 28, 1) if name == "small_cnn" else (size, size, 3)
        t = time.perf_counter()
        model = build_model(schema, name, input_shape=shape, weights=None)
        build_s = time.perf_counter() - t
        x = np.random.default_rng(0).uniform(0, 255, (batch, *shape)).astype("float32")
        secs = _timeit(lambda: model.predict_on_batch(x), repeats)
        rows.append((name, "x".join(map(str, shape)), model.count_params(), build_s, batch / secs))
        keras.backend.clear_session()
    ref = next((r[4] for r in rows if r[0] == "densenet121"), rows[0][4])
    print(f"\nBackbones ({keras.backend.backend()}, batch {batch}, weights=None, best of {repeats})")
    print(f"{'backbone':<18}{'input':>10}{'params':>12}{'build s':>9}{'images/s':>11}{'vs densenet121':>16}")
    for name, shape, params, build_s, ips in rows:
        print(f"{name:<18}{shape:>10}{params:>12,}{build_s:>9.2f}{ips:>11.1f}{ips / ref:>15.2f}x")


def bench_losses(batch: int, n_labels: int, repeats: int) -> None:
    import keras

    from labelwise import LabelSchema
    from labelwise.blocks import losses as L

    schema = LabelSchema([f"l{i}" for i in range(n_labels - 3)], {"view": ["PA", "AP", "LL"]})
    r = np.random.default_rng(0)
    y = np.concatenate([r.integers(0, 2, (batch, n_labels - 3)), np.eye(3)[r.integers(0, 3, batch)]], 1)
    y = keras.ops.convert_to_tensor(y.astype("float32"))
    z = keras.ops.convert_to_tensor(r.normal(0, 2, (batch, n_labels)).astype("float32"))
    pos, neg = L.balanced_weights(keras.ops.convert_to_numpy(y).astype(int), on_missing="clamp")
    losses = {
        "keras BinaryCrossentropy": keras.losses.BinaryCrossentropy(from_logits=True),
        "WeightedBinaryCrossentropy": L.WeightedBinaryCrossentropy(pos, neg, from_logits=True),
        "BinaryFocalLoss": L.BinaryFocalLoss(alpha=0.25, gamma=2.0, from_logits=True),
        "keras BinaryFocalCrossentropy": keras.losses.BinaryFocalCrossentropy(
            apply_class_balancing=True, alpha=0.25, gamma=2.0, from_logits=True),
        "AsymmetricLoss": L.AsymmetricLoss(from_logits=True),
        "SchemaLoss(weighted)": L.SchemaLoss(schema, "weighted", pos_weight=pos, neg_weight=neg, from_logits=True),
    }
    rows = []
    for name, loss in losses.items():
        fn = _compiled(lambda a, b, loss=loss: loss(a, b))
        calls = 200
        secs = _timeit(lambda: [keras.ops.convert_to_numpy(fn(y, z)) for _ in range(calls)], repeats) / calls
        rows.append((name, secs * 1e3))
    ref = rows[0][1]
    print(f"\nLosses ({keras.backend.backend()}, compiled, batch {batch} x {n_labels} labels, best of {repeats})")
    print(f"{'loss':<32}{'ms/call':>10}{'vs keras BCE':>14}")
    for name, ms in rows:
        print(f"{name:<32}{ms:>10.3f}{ms / ref:>13.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--backbones", default="small_cnn,mobilenetv3small,efficientnetv2b0,densenet121,resnet50,vgg16")
    add_smoke(ap, size=32, batch=4, repeats=1, backbones="small_cnn")
    args = parse(ap)
    bench_backbones(args.size, args.batch, args.repeats, args.backbones.split(","))
    bench_losses(256, 15, args.repeats)


if __name__ == "__main__":
    main()
