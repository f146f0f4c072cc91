"""Grad-CAM: all asked labels of an image in one backward pass vs. one pass per label.

``grad_cam(model, x, labels)`` repeats each image once per asked label (at the feature map, so
the backbone runs once per image) and differentiates the sum of each row's own label logit
once; the reference is the loop a user
would write, ``[grad_cam(model, x, labels=[l]) for l in labels]`` (same maps, checked here:
"max diff"). Seconds are the best of ``--repeats`` after a warm-up, on the running Keras
backend (KERAS_BACKEND=jax for JAX). The machine is shared: read the ratios.

Usage: python benchmarks/bench_explain.py [--images 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from _smoke import add_smoke, parse  # noqa: E402


def _best(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    add_smoke(parser, images=2, repeats=1)
    args = parse(parser)

    import keras

    from labelwise import LabelSchema
    from labelwise.explain import grad_cam
    from labelwise.blocks.models import build_model

    print(f"backend {keras.backend.backend()}, {args.images} images, best of {args.repeats}")
    print(f"{'model':<22}{'labels':>7}{'one pass s':>12}{'loop s':>10}{'loop/one':>10}{'max diff':>10}")
    models = (("small_cnn", 64, 1), ("mobilenetv2", 96, 3), ("densenet121", 64, 3))
    for backbone, size, channels in models[:1] if args.smoke else models:
        for k in (1, 4, 14) if backbone != "densenet121" else (4, 14):
            schema = LabelSchema([f"l{i}" for i in range(k)])
            model = build_model(schema, backbone, input_shape=(size, size, channels), weights=None)
            x = np.random.default_rng(0).uniform(0, 255, (args.images, size, size, channels)).astype("float32")
            labels = list(schema.output_labels)
            one = _best(lambda: grad_cam(model, x, labels, batch_size=args.images), args.repeats)
            loop = _best(lambda: [grad_cam(model, x, [l], batch_size=args.images) for l in labels], args.repeats)
            diff = np.abs(grad_cam(model, x, labels, batch_size=args.images)
                          - np.concatenate([grad_cam(model, x, [l], batch_size=args.images) for l in labels], 1)).max()
            print(f"{backbone + f' {size}px':<22}{k:>7}{one:>12.3f}{loop:>10.3f}{loop / one:>10.2f}{diff:>10.1e}",
                  flush=True)
            keras.backend.clear_session()


if __name__ == "__main__":
    main()
