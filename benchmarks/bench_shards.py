"""Reading TFRecord shards vs reading loose image files, images per second.

The 24 real NIH ChestX-ray14 PNGs (1024 px, one RGBA) are resized to 256x256 (to keep the
temp folder small) and copied to ``--n`` files (default 1,008) with their labels; the same
images are then read two ways into (224x224x1 float32, y) batches of 64 through tf.data:

* loose: ``labelwise.data.pipeline.make_dataset(paths)`` -- one file open + read per image;
* shards: ``labelwise.data.shards.read_shards(folder)`` -- ``--shard-size`` images per TFRecord file.

Both decode with the same function, so the difference is file handling. Each is read
``--repeats`` times (file cache warm after the first); the best epoch counts. The file
system here is a local disk, where opening a small file is cheap; on network storage the
gap is larger.

    python benchmarks/bench_shards.py [--n 1008] [--shard-size 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from _smoke import add_smoke, parse  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LABELWISE_SHARED_DATA", ROOT.parent / "shared" / "data"))
NIH = SHARED / "nih_chestxray14_images_tiny"


def make_images(n: int, folder: Path) -> Path:
    """Write n resized copies of the 24 NIH PNGs and an NIH-style labels CSV; return the CSV path."""
    import pandas as pd
    from PIL import Image

    labels = pd.read_csv(NIH / "labels.csv")
    images = folder / "images"
    images.mkdir()
    small = {}
    for name in labels["Image Index"]:
        with Image.open(NIH / "images" / name) as im:
            small[name] = im.resize((256, 256), Image.BILINEAR)  # keeps the mode: 23 L, 1 RGBA
    rows = []
    for k in range(n):
        src = labels.iloc[k % len(labels)]
        name = f"{k:06d}_{src['Image Index']}"
        small[src["Image Index"]].save(images / name)
        rows.append({"Image Index": name, "Finding Labels": src["Finding Labels"], "Patient ID": src["Patient ID"]})
    table = folder / "labels.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    return table


def epoch_rate(make_ds, repeats: int) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(repeats):
        ds = make_ds()
        t0 = time.perf_counter()
        count = sum(int(x.shape[0]) for x, _ in ds)
        best = min(best, time.perf_counter() - t0)
    return count / best, count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1008)
    ap.add_argument("--shard-size", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--image-size", type=int, default=224)
    add_smoke(ap, n=40, shard_size=10, repeats=1, image_size=32)
    args = parse(ap)

    from labelwise.data import pipeline
    from labelwise.data.shards import read_shards, write_shards
    from labelwise.labels.tables import read_table

    size = (args.image_size, args.image_size)
    with tempfile.TemporaryDirectory(prefix="bench_shards_") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        csv = make_images(args.n, folder)
        table = read_table(csv, images=folder / "images")
        t_make = time.perf_counter() - t0
        t0 = time.perf_counter()
        index = write_shards(table, folder / "images", folder / "shards", shard_size=args.shard_size,
                             group_column="Patient ID", progress=False)
        t_write = time.perf_counter() - t0
        loose_mb = sum(p.stat().st_size for p in (folder / "images").iterdir()) / 1e6
        shard_mb = sum(p.stat().st_size for p in (folder / "shards").glob("*.tfrecord")) / 1e6
        print(f"{args.n} images 256x256 PNG ({loose_mb:.1f} MB loose, made in {t_make:.1f} s); "
              f"{len(index['shards'])} shards of <= {args.shard_size} ({shard_mb:.1f} MB, written in {t_write:.2f} s, "
              f"{args.n / t_write:.0f} images/s); reading to {size[0]}x{size[1]}x1 float32, batch 64, "
              f"best of {args.repeats}")
        paths = [str(p) for p in table.paths]
        y = table.y.astype("float32")

        def loose():
            return pipeline.make_dataset(paths, y, image_size=size, channels=1, batch_size=64)

        def shards():
            return read_shards(folder / "shards", image_size=size, channels=1, batch_size=64)

        rates = {}
        for name, fn in (("loose files (pipeline.make_dataset)", loose), ("TFRecord shards (read_shards)", shards)):
            rate, count = epoch_rate(fn, args.repeats)
            assert count == args.n, (name, count)
            rates[name] = rate
        ref = rates["loose files (pipeline.make_dataset)"]
        print()
        print("| reader | images/s | x loose files |")
        print("|---|---:|---:|")
        for name, rate in rates.items():
            print(f"| {name} | {rate:,.0f} | {rate / ref:.2f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
