"""Write a small label table shaped like the ones datasets ship, and its images, to try labelwise on.

``python examples/data/make_untidy_table.py OUT [--none-first]`` writes ``OUT/images/im000.png`` ...
(60 grey 32x32 PNGs whose labels show as bright bands: ``a`` the top rows, ``b`` the left columns,
``c`` the lower right corner) and ``OUT/labels.csv``: the id without its extension, one 0/1 column per
label with the none label ``N/A`` in the middle (or first), a ``Tags`` column listing the same labels,
a ``Patient ID`` column (two images per patient), and three rows repeated as they are.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

LABELS = ["a", "N/A", "b", "c"]


def make_untidy_table(folder: str | Path, *, none_first: bool = False, n: int = 60, seed: int = 0) -> Path:
    """Write ``n`` images and ``labels.csv`` into ``folder`` (see the module docstring); returns the table."""
    import pandas as pd
    from PIL import Image

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        a, b, c = (rng.random(3) < 0.4).astype(int)
        img = rng.integers(0, 60, size=(32, 32))
        img[:12, :] += 150 * a
        img[:, :12] += 150 * b
        img[20:, 20:] += 150 * c
        name = f"im{i:03d}"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / "images" / f"{name}.png")
        tags = [t for t, v in zip("abc", (a, b, c)) if v] or ["N/A"]
        rows.append({"id": name, "a": a, "N/A": int(tags == ["N/A"]), "b": b, "c": c, "Tags": str(tags),
                     "Patient ID": f"p{i // 2}"})
    frame = pd.DataFrame(rows)
    frame = pd.concat([frame, frame.iloc[[3, 10, 25]]], ignore_index=True)  # repeated rows, as real tables have
    order = ["id", "N/A", "a", "b", "c"] if none_first else ["id", "a", "N/A", "b", "c"]
    frame[order + ["Tags", "Patient ID"]].to_csv(folder / "labels.csv", index=False)
    return folder / "labels.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="the folder to write images/ and labels.csv into")
    ap.add_argument("--none-first", action="store_true", help="put the none column first (default: in the middle)")
    args = ap.parse_args()
    table = make_untidy_table(args.out, none_first=args.none_first)
    print(f"wrote {table} and {Path(args.out) / 'images'}/")


if __name__ == "__main__":
    main()
