"""What does turning JPEGs upright by their EXIF orientation cost the pipeline?

Decodes the same JPEG files (photos of ``--size`` px, half of them with an EXIF Orientation tag)
to 224x224 through ``labelwise.data.pipeline.make_dataset`` (which reads the orientation from the
header and applies it), and through the same ``make_dataset`` with the orientation step replaced
by a constant 1, in one run, alternating, best of ``--repeats``.
PNG files pay nothing (the orientation is only read for JPEG bytes). The machine is shared: read
the ratio.

Usage: python benchmarks/bench_exif.py [--n-files 256] [--size 640] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from _smoke import add_smoke, parse  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-files", type=int, default=256)
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--repeats", type=int, default=3)
    add_smoke(ap, n_files=4, size=64, repeats=1)
    args = parse(ap)

    import tensorflow as tf
    from PIL import Image

    from labelwise.data import pipeline

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i in range(args.n_files):
            img = Image.fromarray(rng.integers(0, 256, size=(args.size * 3 // 4, args.size, 3), dtype=np.uint8))
            exif = Image.Exif()
            if i % 2:
                exif[0x0112] = 6
            p = os.path.join(d, f"{i}.jpg")
            img.save(p, quality=90, exif=exif.tobytes())
            paths.append(p)

        real = pipeline.orientation_of

        def upright():
            pipeline.orientation_of = real
            ds = pipeline.make_dataset(paths, image_size=(224, 224), channels=3, batch_size=32, check=False)
            return sum(int(b.shape[0]) for b in ds)

        def plain():
            # the same pipeline with the orientation step folded away (every image read as stored)
            pipeline.orientation_of = lambda data: tf.constant(1, tf.int32)
            ds = pipeline.make_dataset(paths, image_size=(224, 224), channels=3, batch_size=32, check=False)
            return sum(int(b.shape[0]) for b in ds)

        best = {"without orientation": np.inf, "with EXIF orientation (labelwise)": np.inf}
        for _ in range(args.repeats):
            for name, fn in (("without orientation", plain), ("with EXIF orientation (labelwise)", upright)):
                t0 = time.perf_counter()
                n = fn()
                best[name] = min(best[name], time.perf_counter() - t0)
                assert n == args.n_files
    ref = best["without orientation"]
    print(f"{args.n_files} JPEGs {args.size}x{args.size * 3 // 4} -> 224x224, half with Orientation = 6, "
          f"best of {args.repeats}")
    print("| decode | images/s | time vs without |")
    print("|---|---:|---:|")
    for name, t in best.items():
        print(f"| {name} | {args.n_files / t:,.0f} | {t / ref:.2f}x |")


if __name__ == "__main__":
    main()
