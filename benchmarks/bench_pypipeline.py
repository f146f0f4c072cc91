"""Images/s of the Python input pipeline vs tf.data on the same files, in the same run.

The 24 real NIH ChestX-ray14 PNGs (1024x1024, 8-bit gray and one RGBA) from the shared data,
repeated to ``--images`` files, decoded and resized to 224x224x3 by each pipeline
(``labelwise.data.pipeline.make_dataset`` and ``labelwise.data.pypipeline.make_dataset``, no
file check, no model): the time to pull every batch. The ratio is Python / tf.data. Each
pipeline runs ``--repeats`` times; the best run counts (the machine is shared).

    PYTHONPATH=src python benchmarks/bench_pypipeline.py [--images 192] [--batch 32] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from _smoke import add_smoke, parse  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SHARED = Path(os.environ.get("LABELWISE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _rate(make, files, batch, repeats):
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        ds = make(files, image_size=(224, 224), channels=3, batch_size=batch, check=False)
        n = sum(len(b) for b in ds.as_numpy_iterator())
        best = max(best, n / (time.perf_counter() - t0))
        getattr(ds, "close", lambda: None)()
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=192)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=None, help="Python pipeline threads (default: CPU count)")
    add_smoke(p, images=8, batch=4, repeats=1)
    args = parse(p, argv)
    folder = SHARED / "nih_chestxray14_images_tiny" / "images"
    files = sorted(str(f) for f in folder.glob("*.png"))
    if not files:
        print(f"no NIH PNGs in {folder}; set LABELWISE_SHARED_DATA", file=sys.stderr)
        return 2
    files = (files * (args.images // len(files) + 1))[: args.images]
    from functools import partial

    from labelwise.data import pipeline, pypipeline

    tf_rate = _rate(pipeline.make_dataset, files, args.batch, args.repeats)
    py_rate = _rate(partial(pypipeline.make_dataset, workers=args.workers), files, args.batch, args.repeats)
    print(f"{len(files)} NIH PNGs (1024x1024) -> 224x224x3, batch {args.batch}, {os.cpu_count()} CPU(s), "
          f"best of {args.repeats}")
    print("| pipeline | images/s | vs tf.data |")
    print("|---|---:|---:|")
    print(f"| tf.data | {tf_rate:.1f} | 1.00 |")
    print(f"| python (PyDataset, {args.workers or os.cpu_count()} threads) | {py_rate:.1f} | {py_rate / tf_rate:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
