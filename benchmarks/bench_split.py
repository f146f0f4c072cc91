"""Benchmark: grouped multi-label stratified split vs a plain random split by patient.

On the real ChestX-ray14 table (112,120 images, 30,805 patients, 14 findings + No Finding),
both split 70/10/20 by patient with the same seed. Printed per label: the largest deviation
(pp) of the share of the label's positives in a split from the split's fraction, for both
methods, and their ratio; then the split size errors, the patient overlap and the run time
(reading the table included). A third reference, scikit-learn's StratifiedGroupKFold (10 folds
-> 7/1/2, stratified on the label combination), is shown for the first seed when scikit-learn
is installed.

    python benchmarks/bench_split.py [--table Data_Entry_2017.csv] [--seeds 0,1,2,3,4]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from labelwise import LabelSchema  # noqa: E402
from labelwise.labels.split import grouped_stratified_split, random_group_split, split_report  # noqa: E402
from labelwise.labels.tables import read_table  # noqa: E402
from _smoke import add_smoke, parse  # noqa: E402

SHARED = Path(os.environ.get("LABELWISE_SHARED_DATA", ROOT.parent / "shared" / "data"))
FINDINGS = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
            "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"]
F = (0.7, 0.1, 0.2)


def sklearn_split(y, groups, seed):
    from sklearn.model_selection import StratifiedGroupKFold

    combo = np.unique(y, axis=0, return_inverse=True)[1].ravel()
    folds = np.empty(len(y), dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, (_, test) in enumerate(StratifiedGroupKFold(10, shuffle=True, random_state=seed)
                                      .split(np.zeros(len(y)), combo, groups)):
            folds[test] = i
    return np.where(folds < 7, 0, np.where(folds < 8, 1, 2))


def integer_floor(total: int, f=F) -> float:
    """Smallest possible largest deviation (pp) for a label with ``total`` positives: counts are
    integers, so e.g. Hernia's 227 cannot be cut exactly 70/10/20 (ignores the patient grouping)."""
    import itertools

    best = np.inf
    for counts in itertools.product(*[(int(np.floor(total * x)), int(np.ceil(total * x))) for x in f[:-1]]):
        last = total - sum(counts)
        shares = np.array([*counts, last]) / total
        best = min(best, float(np.abs(shares - np.array(f)).max() * 100))
    return best


def run_one(path, seed, with_sklearn):
    schema = LabelSchema(FINDINGS, none="No Finding")
    out = {}
    t0 = time.perf_counter()
    table = read_table(path, schema=schema)
    groups = table.groups("Patient ID")
    t_read = time.perf_counter() - t0
    methods = {"ours": lambda: grouped_stratified_split(table.y, groups, F, seed=seed),
               "random": lambda: random_group_split(groups, F, seed=seed)}
    if with_sklearn:
        methods["sklearn"] = lambda: sklearn_split(table.y, groups, seed)
    for name, fn in methods.items():
        t = time.perf_counter()
        assign = fn()
        elapsed = time.perf_counter() - t
        out[name] = (split_report(table.y, groups, assign, F, table.labels, names=["train", "val", "test"]),
                     elapsed + t_read)
    return table, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default=str(SHARED / "nih_chestxray14_metadata" / "Data_Entry_2017.csv"))
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--no-sklearn", action="store_true")
    add_smoke(ap, seeds="0", no_sklearn=True)
    args = parse(ap)
    seeds = [int(s) for s in args.seeds.split(",")]
    with_sk = not args.no_sklearn and importlib.util.find_spec("sklearn") is not None
    # scikit-learn's StratifiedGroupKFold takes ~45 s on this table: run it for the first seed only.
    runs = {s: run_one(args.table, s, with_sk and s == seeds[0])[1] for s in seeds}
    table = read_table(args.table, schema=LabelSchema(FINDINGS, none="No Finding"))
    names = list(runs[seeds[0]])
    s0 = runs[seeds[0]]
    pos = table.y.sum(axis=0)
    print(f"ChestX-ray14 {len(table):,} images, {len(np.unique(table.groups('Patient ID'))):,} patients; "
          f"fractions {F}; seed {seeds[0]}")
    print("largest deviation of a label's positive share from its split fraction (pp); lower is better;")
    print("floor = the least any split can reach with integer counts\n")
    hdr = f"{'label':<19}{'positives':>10}{'floor':>8}" + "".join(f"{n:>10}" for n in names) + "".join(
        f"{n + '/ours':>14}" for n in names[1:])
    print(hdr)
    for j, label in enumerate(table.labels):
        devs = [s0[n][0]["labels"][label]["max_deviation_pp"] for n in names]
        ratios = "".join(f"{d / max(devs[0], 1e-9):>13.0f}x" for d in devs[1:])
        print(f"{label:<19}{pos[j]:>10,}{integer_floor(int(pos[j])):>8.3f}" + "".join(f"{d:>10.3f}" for d in devs)
              + ratios)
    worst = [max(v["max_deviation_pp"] for v in s0[n][0]["labels"].values()) for n in names]
    print(f"{'worst label':<37}" + "".join(f"{d:>10.3f}" for d in worst)
          + "".join(f"{d / max(worst[0], 1e-9):>13.0f}x" for d in worst[1:]))
    print()
    print(f"{'split size error (pp)':<37}" + "".join(f"{n:>10}" for n in names))
    for sp in ("train", "val", "test"):
        print(f"  {sp:<35}" + "".join(f"{s0[n][0]['splits'][sp]['size_error_pp']:>+10.3f}" for n in names))
    print(f"{'patients in >1 split':<37}" + "".join(f"{s0[n][0]['group_overlap']:>10}" for n in names))
    print(f"{'time incl. reading (s)':<37}" + "".join(f"{s0[n][1]:>10.2f}" for n in names))
    if len(seeds) > 1:
        print(f"\nover seeds {seeds}: worst-label deviation (pp) and Hernia deviation, mean [max]")
        for n in names:
            if not all(n in runs[s] for s in seeds):
                continue
            w = [max(v["max_deviation_pp"] for v in runs[s][n][0]["labels"].values()) for s in seeds]
            h = [runs[s][n][0]["labels"]["Hernia"]["max_deviation_pp"] for s in seeds]
            t = [runs[s][n][1] for s in seeds]
            print(f"  {n:<8} worst {np.mean(w):6.3f} [{max(w):6.3f}]   Hernia {np.mean(h):6.3f} [{max(h):6.3f}]   "
                  f"time {np.mean(t):5.2f} s [{max(t):5.2f}]")


if __name__ == "__main__":
    main()
