"""Does the tf.data pipeline keep the model fed? Decode + resize + augment throughput vs the
model's own training throughput, on this machine, in one run.

Part 1, chest X-rays at 224x224: the 24 real NIH PNGs (1024x1024, one RGBA) repeated to
``--n-files`` paths, decoded, shrunk to 224 (area), augmented (rotation/shift/brightness/
contrast) and batched by ``labelwise.data.pipeline.make_dataset`` (images/s, pipeline alone), vs
``densenet121`` (random init) training steps on in-memory batches of the same shape (images/s,
model alone), vs ``model.fit`` fed by the pipeline (images/s, together).

Part 2, the demo size: 28x28 MNIST digits from memory vs small_cnn, same three numbers.

"fed" = pipeline images/s / model images/s: above 1 the model never waits for data
(the pipeline runs ahead in tf.data's background threads; prefetch overlaps it with the steps).
The machine is shared; read the ratios.

Usage: python benchmarks/bench_pipeline.py [--n-files 96] [--batch 16] [--steps 6]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from _smoke import add_smoke, parse  # noqa: E402


def _pipeline_rate(ds, n_images: int) -> float:
    for _ in ds.take(1):  # warm-up: graph building, thread pools
        pass
    t = time.perf_counter()
    count = 0
    for x, _ in ds:
        count += int(x.shape[0])
    assert count == n_images, (count, n_images)
    return count / (time.perf_counter() - t)


def _model_rate(model, x, y, steps: int) -> float:
    model.train_on_batch(x, y)  # warm-up: tracing
    t = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * len(x) / (time.perf_counter() - t)


def _fit_rate(model, ds, steps: int, batch: int) -> float:
    model.fit(ds.take(1), verbose=0, shuffle=False)  # warm-up
    t = time.perf_counter()
    model.fit(ds.take(steps), verbose=0, shuffle=False)
    return steps * batch / (time.perf_counter() - t)


def _row(name, pipe, model, fed):
    print(f"{name:34s}{pipe:12.1f}{model:12.1f}{fed:12.1f}{pipe / model:10.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-files", type=int, default=96)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--backbone", default="densenet121")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--mnist-steps", type=int, default=40)
    add_smoke(ap, n_files=8, batch=4, steps=2, backbone="small_cnn", size=32, mnist_steps=2)
    args = parse(ap)

    import keras

    from labelwise import LabelSchema
    from labelwise.data.pipeline import Augment, make_dataset
    from labelwise.training import TrainConfig, build_and_compile

    here = os.path.dirname(os.path.abspath(__file__))
    shared = os.environ.get("LABELWISE_SHARED_DATA", os.path.join(here, "..", "..", "shared", "data"))
    folder = os.path.join(shared, "nih_chestxray14_images_tiny", "images")
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".png"))
    paths = [files[i % len(files)] for i in range(args.n_files)]
    nih = LabelSchema(independent=("Effusion", "Mass"), none="No Finding")
    y = np.zeros((len(paths), nih.n_outputs), np.float32)
    aug = Augment(rotate=5, shift=0.05, brightness=0.05, contrast=0.1)
    print(f"machine: {os.cpu_count()} CPU cores (shared); TF threads default")
    print(f"{'':34s}{'pipeline':>12s}{'model':>12s}{'fit(pipe)':>12s}{'fed x':>10s}")
    print(f"{'':34s}{'images/s':>12s}{'images/s':>12s}{'images/s':>12s}{'':>10s}")

    for channels in (1, 3):
        ds = make_dataset(paths, y, image_size=(args.size, args.size), channels=channels, batch_size=args.batch, augment=aug,
                          shuffle=True)
        pipe = _pipeline_rate(ds, len(paths))
        config = TrainConfig(backbone=args.backbone, weights=None, image_size=(args.size, args.size), channels=channels,
                             learning_rate=1e-4, loss="schema", verbose=0)
        keras.utils.set_random_seed(0)
        model = build_and_compile(config, nih)
        xb = np.random.default_rng(0).uniform(0, 255, (args.batch, args.size, args.size, channels)).astype(np.float32)
        rate = _model_rate(model, xb, y[: args.batch], args.steps)
        fed = _fit_rate(model, ds.repeat(), args.steps, args.batch)
        _row(f"NIH 1024px PNG -> {args.size}x{args.size}x{channels}, {args.backbone}", pipe, rate, fed)

    from labelwise.training.demo import DEMO_SCHEMA, digit_targets, load_digit_images

    x, d, _ = load_digit_images()
    yd = digit_targets(d)[:, : DEMO_SCHEMA.n_outputs].astype(np.float32)
    batch = 64
    ds = make_dataset(x, yd, image_size=(28, 28), channels=1, batch_size=batch, shuffle=True,
                      augment=Augment(rotate=5, shift=0.05))
    pipe = _pipeline_rate(ds, len(x))
    config = TrainConfig(backbone="small_cnn", image_size=(28, 28), channels=1, loss="schema", verbose=0)
    keras.utils.set_random_seed(0)
    model = build_and_compile(config, DEMO_SCHEMA)
    rate = _model_rate(model, x[:batch, ..., None].astype(np.float32), yd[:batch], args.mnist_steps)
    fed = _fit_rate(model, ds.repeat(), args.mnist_steps, batch)
    _row("MNIST 28x28 arrays (augmented), small_cnn", pipe, rate, fed)


if __name__ == "__main__":
    main()
