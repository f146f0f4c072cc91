"""How long reading a label table takes, against pandas.read_csv of the same file (the floor).

    python benchmarks/bench_read_table.py [--rows N]

Tables: ChestX-ray14's Data_Entry_2017.csv (112,120 rows, format nih) from the shared data when
present, and a generated one-hot table (N rows, 15 labels with "No Finding" first, True/False and
1.0 cells, a list column that agrees, a patient and a split column). Prints seconds (best of 3)
and the ratio to pandas.read_csv (dtype=str) on the same file.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _smoke import add_smoke, parse  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SHARED = Path(os.environ.get("LABELWISE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def onehot_table(path: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    labels = [f"finding_{k}" for k in range(14)]
    y = rng.random((n, 14)) < 0.08
    with open(path, "w") as f:
        f.write("id,No Finding," + ",".join(labels) + ",labels,Patient ID,split\n")
        for i in range(n):
            on = [lab for lab, v in zip(labels, y[i]) if v]
            cells = [("True" if v else "False") if k % 3 == 0 else ("1.0" if v else "0.0") for k, v in enumerate(y[i])]
            f.write(f"x{i}.png,{int(not on)}," + ",".join(cells) + f",{'|'.join(on) or 'No Finding'},p{i // 3},"
                    f"{('train', 'val', 'test')[i % 3]}\n")


def main() -> None:
    import pandas as pd

    from labelwise.labels.tables import read_table

    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--no-nih", action="store_true", help="leave out the ChestX-ray14 table")
    add_smoke(ap, rows=500, no_nih=True)
    args = parse(ap)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        gen = Path(d) / "onehot.csv"
        onehot_table(gen, args.rows)
        tables = [("generated one-hot + list", gen)]
        nih = SHARED / "nih_chestxray14_metadata" / "Data_Entry_2017.csv"
        if nih.exists() and not args.no_nih:
            tables.insert(0, ("ChestX-ray14 Data_Entry (nih)", nih))
        for name, path in tables:
            floor = best(lambda: pd.read_csv(path, dtype=str))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ours = best(lambda: read_table(path))
            rows.append((name, floor, ours))
    print(f"{'table':32} {'pandas.read_csv':>16} {'read_table':>11} {'ratio':>6}")
    for name, floor, ours in rows:
        print(f"{name:32} {floor:15.3f}s {ours:10.3f}s {ours / floor:6.1f}")


if __name__ == "__main__":
    main()
