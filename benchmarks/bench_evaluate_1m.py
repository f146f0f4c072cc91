"""Evaluation at scale: 1,000,000 images x 14 labels, default bootstrap, time and peak memory per stage.

Truth rows are drawn (with replacement) from the real CheXNet test list
(``nih_chestxray14_chexnet_split/test_list.txt``: 25,596 images x 14 findings), so the
prevalences and co-occurrences are ChestX-ray14's. Scores are synthetic: ``sigmoid(1.5*y - 1 + N(0, 1))``
per label (AUC about 0.85), float32 like a model's output. Both are written to a temp folder as
NPY, the truth also as a one-hot CSV (id + 14 columns) for the CLI.

Every stage runs in its own child process, which reports its wall time and its peak resident
memory (``VmHWM`` from ``/proc/self/status``, else ``ru_maxrss``; the CLI's through
``getrusage(RUSAGE_CHILDREN)`` in a small wrapper process); "load" (numpy + the arrays, nothing else)
is the memory baseline the other stages are compared with, and scikit-learn's per-label
``roc_auc_score`` + ``average_precision_score`` is the time reference.

    python benchmarks/bench_evaluate_1m.py                 # 1M rows, bootstrap 1000 (the CLI default)
    python benchmarks/bench_evaluate_1m.py --n 100000 --bootstrap 200 --stages point,bootstrap
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _smoke import add_smoke, parse  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LABELWISE_SHARED_DATA", ROOT.parent / "shared" / "data"))
TEST_LIST = SHARED / "nih_chestxray14_chexnet_split" / "test_list.txt"
FINDINGS = [
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
]
STAGES = ("load", "sklearn_point", "point", "point_by_label", "bootstrap", "evaluate_api", "cli")


def make_data(n: int, folder: Path, seed: int = 0) -> dict:
    rows = np.loadtxt(TEST_LIST, usecols=range(1, 15), dtype=np.uint8)
    rng = np.random.default_rng(seed)
    y = rows[rng.integers(0, len(rows), size=n)]
    logits = 1.5 * y - 1.0 + rng.standard_normal(y.shape, dtype=np.float32)
    s = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    np.save(folder / "truth.npy", y)
    np.save(folder / "scores.npy", s)
    ids = np.char.add(np.char.add("img", np.arange(n).astype("U7")), ".png")
    header = "id," + ",".join(FINDINGS)
    body = np.column_stack([ids, y.astype("U1")])
    np.savetxt(folder / "truth.csv", body, fmt="%s", delimiter=",", header=header, comments="")
    (folder / "schema.toml").write_text("[labels]\nindependent = [" + ", ".join(f'"{f}"' for f in FINDINGS) + "]\n")
    return {"n": n, "prevalence": dict(zip(FINDINGS, np.round(y.mean(axis=0), 4).tolist())),
            "source_prevalence": dict(zip(FINDINGS, np.round(rows.mean(axis=0), 4).tolist()))}


def run_stage(stage: str, folder: Path, bootstrap: int) -> dict:
    """Runs in the child: do one stage, return seconds and the process's peak RSS."""
    y = np.load(folder / "truth.npy")
    s = np.load(folder / "scores.npy")
    t0 = time.perf_counter()
    out: dict = {}
    if stage == "sklearn_point":
        from sklearn.metrics import average_precision_score, roc_auc_score

        auc = [roc_auc_score(y[:, j], s[:, j]) for j in range(y.shape[1])]
        ap = [average_precision_score(y[:, j], s[:, j]) for j in range(y.shape[1])]
        out["macro_auc"], out["macro_ap"] = float(np.mean(auc)), float(np.mean(ap))
    elif stage == "point":
        from labelwise.metrics import average_precision_score, roc_auc_score

        out["macro_auc"] = float(np.mean(roc_auc_score(y, s, average=None)))
        out["macro_ap"] = float(np.mean(average_precision_score(y, s, average=None)))
    elif stage == "point_by_label":
        # the same functions, one label (column) at a time: what chunking the labels would save
        from labelwise.metrics import average_precision_score, roc_auc_score

        auc = [float(roc_auc_score(y[:, [j]], s[:, [j]], average=None)[0]) for j in range(y.shape[1])]
        ap = [float(average_precision_score(y[:, [j]], s[:, [j]], average=None)[0]) for j in range(y.shape[1])]
        out["macro_auc"], out["macro_ap"] = float(np.mean(auc)), float(np.mean(ap))
    elif stage == "bootstrap":
        from labelwise.metrics import bootstrap_ci

        res = bootstrap_ci(y, s, n_resamples=bootstrap, keep_samples=False)
        out["macro_auc"] = float(np.mean(res["roc_auc"].point))
        out["auc_ci_width"] = float(np.mean(res["roc_auc"].high - res["roc_auc"].low))
    elif stage == "evaluate_api":
        from labelwise.evaluation import evaluate
        from labelwise.labels.schema import LabelSchema

        res = evaluate(y, s, schema=LabelSchema(independent=FINDINGS), bootstrap=bootstrap)
        out["ok"] = res is not None
    elif stage != "load":
        raise SystemExit(f"unknown stage {stage}")
    out["seconds"] = time.perf_counter() - t0
    out["max_rss_mb"] = peak_rss_mb()
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux: VmHWM, which starts afresh at exec (ru_maxrss
    keeps the parent's high-water mark from before the fork); elsewhere ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def run_cli(folder: Path, bootstrap: int) -> dict:
    """`labelwise evaluate` on the CSV truth + NPY scores, as a user would run it."""
    cmd = [sys.executable, "-m", "labelwise", "evaluate", "--truth", str(folder / "truth.csv"),
           "--scores", str(folder / "scores.npy"), "--schema", str(folder / "schema.toml"), "--format", "onehot",
           "--bootstrap", str(bootstrap), "--json"]
    code = ("import resource, subprocess, sys, time, json; t=time.perf_counter(); "
            "p=subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True); "
            "print(json.dumps({'seconds': time.perf_counter()-t, 'rc': p.returncode, 'err': p.stderr[-2000:], "
            "'max_rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024}))")
    p = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True, check=True)
    out = json.loads(p.stdout)
    if out["rc"] != 0:
        raise SystemExit(f"labelwise evaluate failed (exit {out['rc']}):\n{out['err']}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--child", nargs=2, metavar=("STAGE", "FOLDER"), help=argparse.SUPPRESS)
    add_smoke(ap, n=2000, bootstrap=20)
    args = parse(ap)
    if args.child:
        print(json.dumps(run_stage(args.child[0], Path(args.child[1]), args.bootstrap)))
        return
    stages = [s for s in args.stages.split(",") if s]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        info = make_data(args.n, folder)
        print(f"data: {args.n:,} x 14 (truth uint8 {args.n * 14 / 1e6:.0f} MB, scores float32 "
              f"{args.n * 14 * 4 / 1e6:.0f} MB, truth.csv {os.path.getsize(folder / 'truth.csv') / 1e6:.0f} MB), "
              f"written in {time.perf_counter() - t0:.1f} s; bootstrap {args.bootstrap} resamples")
        print("prevalence (sampled / CheXNet test list):",
              ", ".join(f"{k} {v:.3f}/{info['source_prevalence'][k]:.3f}" for k, v in info["prevalence"].items()))
        results = {}
        for stage in ["load", *[s for s in stages if s != "load"]]:
            if stage == "cli":
                results[stage] = run_cli(folder, args.bootstrap)
            else:
                p = subprocess.run([sys.executable, __file__, "--bootstrap", str(args.bootstrap), "--child", stage, tmp],
                                   capture_output=True, text=True, env=env)
                if p.returncode != 0:
                    raise SystemExit(f"stage {stage} failed:\n{p.stderr[-3000:]}")
                results[stage] = json.loads(p.stdout.strip().splitlines()[-1])
            r = results[stage]
            print(f"  {stage:<14} {r['seconds']:8.2f} s  peak RSS {r['max_rss_mb']:8.0f} MB", flush=True)
    base_mem = results["load"]["max_rss_mb"]
    ref_t = results.get("sklearn_point", {}).get("seconds")
    print()
    print("| stage | seconds | x sklearn point metrics | peak RSS MB | above 'load' MB |")
    print("|---|---:|---:|---:|---:|")
    for stage, r in results.items():
        ratio = f"{r['seconds'] / ref_t:.2f}" if ref_t and stage != "load" else "-"
        print(f"| {stage} | {r['seconds']:.2f} | {ratio} | {r['max_rss_mb']:.0f} | {r['max_rss_mb'] - base_mem:+.0f} |")
    if "point" in results and "sklearn_point" in results:
        d = abs(results["point"]["macro_auc"] - results["sklearn_point"]["macro_auc"])
        print(f"\nmacro AUC labelwise vs scikit-learn: |diff| = {d:.2e}")


if __name__ == "__main__":
    main()
