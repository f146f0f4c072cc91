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


def main() -> None:
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
