"""Benchmark: labelwise.metrics bootstrap CIs and threshold tuning against scikit-learn.

Data: the real label matrix of the CheXNet test split of NIH ChestX-ray14 (22,433 x 14,
real prevalences, read from test_list.txt) with synthetic, seeded float32 scores
``clip(y * N(0.25, 0.1) + U(0, 0.75))``.

1. Per-label ROC AUC + AP with bootstrap CIs (1000 resamples): ``bootstrap_ci`` against
   scikit-learn's ``roc_auc_score`` / ``average_precision_score`` called per label per resample.
   The reference is timed on a subset of resamples and extrapolated linearly (the table says
   so); its resamples are recomputed by ``resample_metrics`` with the same drawn rows to give
   the max abs difference, and the point estimates are compared with scikit-learn too.
2. Per-label max-F1 threshold tuning: ``tune_thresholds`` (exact, every distinct score)
   against a sweep of 100 thresholds with scikit-learn's ``f1_score`` per label; the last
   column is min(F1 ours - F1 sweep), which must be >= 0.

Run: ``python benchmarks/bench_metrics.py [--quick]``. Ours: best of 3 runs; reference: 1 run.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
from _smoke import add_smoke, parse  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LABELWISE_SHARED_DATA", ROOT.parent / "shared" / "data"))
TEST_LIST = SHARED / "nih_chestxray14_chexnet_split" / "test_list.txt"


def load_labels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(y_true (n, 14) uint8, patient id per row) from a CheXNet split list."""
    names, rows = [], []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if parts:
                names.append(parts[0])
                rows.append([int(x) for x in parts[1:]])
    patients = np.array([n.split("_")[0] for n in names])
    return np.array(rows, dtype=np.uint8), patients


def best_of(fn, repeats: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="5,000 rows, 200 resamples (reference on 10)")
    ap.add_argument("--resamples", type=int, default=None)
    ap.add_argument("--ref-resamples", type=int, default=None, help="resamples the sklearn reference runs")
    add_smoke(ap, resamples=20, ref_resamples=2, quick=True)
    args = parse(ap)

    from sklearn import metrics as sk

    from labelwise.metrics import bootstrap_ci
    from labelwise.metrics.bootstrap import resample_metrics
    from labelwise.decide.thresholds import tune_thresholds

    Y, patients = load_labels(TEST_LIST)
    rng = np.random.default_rng(0)
    if args.quick:
        keep = np.sort(rng.choice(len(Y), 5000, replace=False))
        Y, patients = Y[keep], patients[keep]
    R = args.resamples or (200 if args.quick else 1000)
    R_ref = args.ref_resamples or (10 if args.quick else 50)
    n, L = Y.shape
    S = np.clip(Y * rng.normal(0.25, 0.1, (n, L)) + rng.uniform(0, 0.75, (n, L)), 0, 1).astype(np.float32)
    S = S.astype(np.float64)
    print(f"data: {n} x {L} labels from {TEST_LIST.name}; positives per label {Y.sum(axis=0).tolist()}")
    print(f"distinct scores per label: min {min(len(np.unique(S[:, j])) for j in range(L))}")
    rows = []

    # 1. bootstrap CIs ------------------------------------------------------------------
    t_ours, res = best_of(lambda: bootstrap_ci(Y, S, n_resamples=R, seed=0))
    ref_rng = np.random.default_rng(1)
    draws = [ref_rng.integers(0, n, n) for _ in range(R_ref)]
    ref_auc = np.empty((R_ref, L))
    ref_ap = np.empty((R_ref, L))
    t = time.perf_counter()
    for r, idx in enumerate(draws):
        for j in range(L):
            y, s = Y[idx, j], S[idx, j]
            ref_auc[r, j] = sk.roc_auc_score(y, s)
            ref_ap[r, j] = sk.average_precision_score(y, s)
    t_ref = (time.perf_counter() - t) * R / R_ref
    W = np.vstack([np.bincount(idx, minlength=n) for idx in draws])
    same = resample_metrics(Y, S, W)
    diff_resamples = max(np.abs(same["roc_auc"] - ref_auc).max(), np.abs(same["average_precision"] - ref_ap).max())
    diff_point = max(
        np.abs(res["roc_auc"].point - sk.roc_auc_score(Y, S, average=None)).max(),
        np.abs(res["average_precision"].point - sk.average_precision_score(Y, S, average=None)).max(),
    )
    rows.append((f"AUC+AP, {L} labels, {R} bootstrap resamples", f"{t_ref:.1f}*", t_ours,
                 f"{max(diff_point, diff_resamples):.1e}"))

    t_grp, _ = best_of(lambda: bootstrap_ci(Y, S, n_resamples=R, seed=0, groups=patients))
    rows.append((f"  same, resampling {len(np.unique(patients))} patients (groups=)", "-", t_grp, "-"))

    # 2. threshold tuning ---------------------------------------------------------------
    t_tune, T = best_of(lambda: tune_thresholds(Y, S, method="f1"))
    grid = np.linspace(0.0, 1.0, 100)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sweep = np.array([[sk.f1_score(Y[:, j], S[:, j] >= g) for g in grid] for j in range(L)]).max(axis=1)
    t_sweep = time.perf_counter() - t
    rows.append((f"max-F1 thresholds, {L} labels (ours exact vs 100-pt sweep)", f"{t_sweep:.2f}", t_tune,
                 f"min dF1 {np.min(T.metric_at_threshold - sweep):+.4f}"))

    # table -----------------------------------------------------------------------------
    w = max(len(r[0]) for r in rows)
    print(f"\n{'task':<{w}}  {'reference s':>11}  {'ours s':>8}  {'ratio':>7}  max diff")
    for task, ref, ours, diff in rows:
        ratio = f"{float(ref.rstrip('*')) / ours:.0f}x" if ref != "-" else "-"
        print(f"{task:<{w}}  {ref:>11}  {ours:>8.3f}  {ratio:>7}  {diff}")
    print(f"\n* scikit-learn measured on {R_ref} resamples and extrapolated linearly to {R}; "
          f"max diff covers the point estimates and those {R_ref} resamples recomputed by labelwise.")
    print("ours: best of 3 runs; reference: one run. Threshold 'max diff' is min over labels of "
          "(our F1 - best F1 of the sweep); >= 0 means never worse.")


if __name__ == "__main__":
    main()
