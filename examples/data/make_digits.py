"""Write examples/data/digits/: scikit-learn's bundled 8x8 digits (1,797 images, from the UCI
"Optical Recognition of Handwritten Digits" data set) in MNIST's gzipped IDX format (8x8 pixels,
0-255; training resizes them to its image_size), so examples/train_mnist.toml runs from a fresh clone. The files are committed; run this
again only to rebuild them:  python examples/data/make_digits.py
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file: magic 0x00 0x00 0x08 ndim, big-endian uint32 sizes, then uint8 data."""
    head = bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    return head + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_pngs(out: Path) -> None:
    """DIR/images/digit_NNNN.png (28x28 gray) and DIR/labels.csv (id,labels)."""
    from PIL import Image

    bunch = load_digits()
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (im, d) in enumerate(zip(bunch.images, bunch.target)):
        name = f"digit_{i:04d}.png"
        pixels = (im * (255.0 / 16.0)).astype(np.uint8)
        Image.fromarray(pixels).resize((28, 28), Image.BILINEAR).save(images / name)
        labels = [str(d), "even" if d % 2 == 0 else "odd"] + (["greater_than_5"] if d > 5 else [])
        rows.append(f"{name},{'|'.join(labels)}")
    (out / "labels.csv").write_text("id,labels\n" + "\n".join(rows) + "\n", encoding="utf-8")
    print(f"wrote {len(rows)} images to {images} and their labels to {out / 'labels.csv'}")


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="write the bundled digits (IDX), or with --png a folder of PNGs "
                                                 "and a labels.csv")
    parser.add_argument("--png", metavar="DIR", help="write DIR/images/*.png and DIR/labels.csv instead")
    args = parser.parse_args()
    if args.png:
        write_pngs(Path(args.png))
        return
    out = Path(__file__).resolve().parent / "digits"
    out.mkdir(exist_ok=True)
    bunch = load_digits()
    small = (bunch.images * (255.0 / 16.0)).astype(np.uint8)       # 0-16 gray levels -> 0-255
    images = small
    for name, array in (("t10k-images-idx3-ubyte.gz", images), ("t10k-labels-idx1-ubyte.gz", bunch.target)):
        (out / name).write_bytes(gzip.compress(idx_bytes(array), mtime=0))
    print(f"wrote {len(images)} digits to {out}")


if __name__ == "__main__":
    main()
