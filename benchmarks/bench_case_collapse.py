"""The "stuck at 0.5" case model, reproduced on real MNIST digits, and labelwise's case training.

Task (multiple-instance learning): 1,130 cases of 8-32 real MNIST digits (28x28), three labels
with the knee-MRI exams' positive counts 913 / 215 / 423 of 1,130:

* ``has_7``    -- the case contains a 7,
* ``has_0``    -- the case contains a 0,
* ``has_8_9``  -- the case contains an 8 or a 9.

Each label vector is drawn first (exactly those counts, independently permuted), then the case
is built to have it: 8-32 digits from 1-6, plus 1-3 key digits (7; 0; 8 or 9) for each positive
label. (The issue's "two or more 0s" is a counting label; max pooling cannot count, so the
benchmark uses "contains a 0" -- a max-pooling model has no way to tell one 0 from two.)
Digits of train cases come from MNIST t10k images 0-7999, of val/test cases from 8000-9999:
held-out cases hold unseen digit images. Split 70/10/20 by case.

(a) The user's recipe: a per-slice CNN (labelwise's small_cnn standing in for VGG16), the
    features max-pooled over the BATCH axis (``keras.ops.max(x, axis=0)``) with one case per
    batch, a Dense sigmoid head, BCE weighted n/n_pos for positives and n/n_neg for negatives.
(b) ``labelwise train`` with ``unit = "case"``, pooling max / mean / attention.

Reported per label: test AUC with a 95% bootstrap CI, and the score spread (std, min-max);
for (a) also what ``labelwise.evaluation.evaluate``'s diagnostics say. Also the slices/s of case
training against the per-image model trained on the same slices, and the process RSS sampled
every 0.1 s over each case run (peak, and at 25/50/75/100% of training time).

    python benchmarks/bench_case_collapse.py            # full: 1,130 cases
    python benchmarks/bench_case_collapse.py --quick    # 300 cases, fewer epochs
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SHARED = Path(os.environ.get("LABELWISE_SHARED_DATA", ROOT.parent / "shared" / "data"))
if not SHARED.exists():
    SHARED = Path("/work/shared/data")

import numpy as np  # noqa: E402
from _smoke import add_smoke, parse  # noqa: E402

LABELS = ("has_7", "has_0", "has_8_9")
COUNTS = (913, 215, 423)  # of 1,130: the exams' positives
N_CASES = 1130


def make_cases(n_cases: int, seed: int = 0):
    """(stacks, y, pool) -- the cases described in the module docstring."""
    from labelwise.labels.tables import load_mnist_idx

    images = load_mnist_idx(SHARED / "mnist_idx" / "t10k-images-idx3-ubyte.gz")
    digits = load_mnist_idx(SHARED / "mnist_idx" / "t10k-labels-idx1-ubyte.gz")
    rng = np.random.default_rng(seed)
    y = np.zeros((n_cases, 3), dtype=np.uint8)
    for j, c in enumerate(COUNTS):
        y[rng.permutation(n_cases)[: round(c * n_cases / N_CASES)], j] = 1
    order = rng.permutation(n_cases)
    split = np.empty(n_cases, dtype=object)
    n_tr, n_va = int(0.7 * n_cases), int(0.1 * n_cases)
    split[order[:n_tr]], split[order[n_tr:n_tr + n_va]], split[order[n_tr + n_va:]] = "train", "val", "test"
    pools = {}
    for name, (lo, hi) in {"train": (0, 8000), "held": (8000, 10000)}.items():
        pools[name] = {d: np.flatnonzero(digits[lo:hi] == d) + lo for d in range(10)}
    stacks = []
    for i in range(n_cases):
        pool = pools["train" if split[i] == "train" else "held"]
        n = int(rng.integers(8, 33))
        keys = []
        for j, choices in enumerate(((7,), (0,), (8, 9))):
            if y[i, j]:
                keys += list(rng.choice(choices, size=int(rng.integers(1, 4))))
        keys = keys[:n]
        fill = list(rng.integers(1, 7, size=n - len(keys)))
        seq = np.array(keys + fill)
        rng.shuffle(seq)
        stacks.append(np.stack([images[rng.choice(pool[int(d)])] for d in seq]))
    return stacks, y, split


# ------------------------------------------------------------------ (a) the user's recipe
def users_recipe(stacks, y, split, *, epochs: int, seed: int = 0, cases_per_batch: int = 1):
    """Per-slice CNN, max over the batch axis, weights n/n_pos and n/n_neg; ``cases_per_batch``
    cases' slices concatenated into one batch (1: the recipe as written; 2: the same code fed
    two cases at once, where the batch-axis max pools both cases into one output that the loss
    compares with both cases' labels)."""
    import keras

    from labelwise.blocks.models import small_cnn

    keras.utils.set_random_seed(seed)
    tr = np.flatnonzero(split == "train")
    n = len(tr)
    n_pos = y[tr].sum(axis=0).astype("float32")
    w_pos, w_neg = n / n_pos, n / (n - n_pos)  # their formula

    def weighted_bce(y_true, p):
        p = keras.ops.clip(p, 1e-7, 1 - 1e-7)
        w = y_true * w_pos + (1 - y_true) * w_neg
        return keras.ops.mean(-w * (y_true * keras.ops.log(p) + (1 - y_true) * keras.ops.log(1 - p)))

    inp = keras.Input((28, 28, 1))
    feats = small_cnn((28, 28, 1))(keras.layers.Rescaling(1 / 255)(inp))
    pooled = keras.layers.Lambda(lambda f: keras.ops.max(f, axis=0, keepdims=True))(feats)  # over the BATCH axis
    out = keras.layers.Dense(3, activation="sigmoid")(pooled)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=weighted_bce)

    def gen():
        rng = np.random.default_rng(seed)
        for _ in range(epochs):
            order = rng.permutation(tr)
            for k in range(0, len(order) - cases_per_batch + 1, cases_per_batch):
                idx = order[k:k + cases_per_batch]
                yield (np.concatenate([stacks[i] for i in idx])[..., None].astype("float32"),
                       y[idx].astype("float32"))

    t0 = time.perf_counter()
    model.fit(gen(), epochs=epochs, steps_per_epoch=len(tr) // cases_per_batch, verbose=0)
    seconds = time.perf_counter() - t0
    te = np.flatnonzero(split == "test")
    scores = np.concatenate([model.predict_on_batch(stacks[i][..., None].astype("float32")) for i in te])
    slices = sum(len(stacks[i]) for i in tr) * epochs
    return y[te], scores, slices / seconds


# ------------------------------------------------------------------ (b) labelwise train
class RSS:
    """Samples the process's resident set size every 0.1 s (Linux /proc)."""

    def __init__(self):
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.is_set():
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * page / 2**20
            self.samples.append((time.perf_counter(), rss))
            time.sleep(0.1)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    def quartiles(self, t0: float, t1: float) -> list[float]:
        """Peak RSS (MiB) in each quarter of [t0, t1]."""
        out = []
        for q in range(4):
            a, b = t0 + (t1 - t0) * q / 4, t0 + (t1 - t0) * (q + 1) / 4
            vals = [r for t, r in self.samples if a <= t <= b]
            out.append(max(vals) if vals else float("nan"))
        return out


def write_case_table(root: Path, stacks, y, split) -> Path:
    (root / "stacks").mkdir(parents=True, exist_ok=True)
    lines = ["case,patient,split," + ",".join(LABELS)]
    for i, s in enumerate(stacks):
        np.save(root / "stacks" / f"case{i:04d}.npy", s)
        lines.append(f"case{i:04d},p{i:04d},{split[i]}," + ",".join(str(int(v)) for v in y[i]))
    (root / "cases.csv").write_text("\n".join(lines) + "\n")
    return root / "cases.csv"


def labelwise_case(root: Path, pooling: str, *, epochs: int, seed: int = 0):
    from labelwise.training import TrainConfig, train

    config = TrainConfig(unit="case", table=str(root / "cases.csv"), images=str(root / "stacks"),
                         split_column="split", pooling=pooling, max_slices=32, backbone="small_cnn", weights=None,
                         image_size=(28, 28), channels=1, epochs=epochs, batch_size=8, learning_rate=1e-3,
                         early_stopping_patience=None, bootstrap=0, plots=False, verbose=0, seed=seed,
                         out_dir=str(root / f"run-{pooling}"), overwrite=True)
    with RSS() as rss:
        t0 = time.perf_counter()
        result = train(config)
        t1 = time.perf_counter()
    log = json.loads((root / f"run-{pooling}" / "log.json").read_text())
    return result, log, rss.quartiles(t0, t1), max(r for _, r in rss.samples)


def image_model_speed(stacks, split, *, epochs: int = 2, seed: int = 0) -> float:
    """Slices/s of the per-image model (the same small_cnn and head, ``build_model``) trained with
    ``model.fit`` on the same training slices held in memory (the fastest feed there is), batch 32;
    the median epoch, validation included on 256 images as in the case runs."""
    import keras

    from labelwise import LabelSchema
    from labelwise.blocks.models import build_model
    from labelwise.blocks.losses import SchemaLoss

    keras.utils.set_random_seed(seed)
    tr = np.flatnonzero(split == "train")
    x = np.concatenate([stacks[i] for i in tr])[..., None].astype("float32")
    yy = np.random.default_rng(seed).integers(0, 2, size=(len(x), 3)).astype("float32")  # speed only
    schema = LabelSchema(independent=LABELS)
    model = build_model(schema, "small_cnn", input_shape=(28, 28, 1), weights=None)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=SchemaLoss(schema))
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.fit(x, yy, batch_size=32, epochs=1, verbose=0, validation_data=(x[:256], yy[:256]))
        times.append(time.perf_counter() - t0)
    return len(x) / float(np.median(times[1:] if len(times) > 1 else times))


def describe(y_true, scores, name: str) -> list[str]:
    from labelwise.evaluation import evaluate

    res = evaluate(y_true, scores, labels=list(LABELS), bootstrap=1000, seed=0)
    rows = []
    for j, r in enumerate(res.rows):
        s = scores[:, j]
        rows.append(f"| {name} | {r.label} | {r.auc:.3f} [{r.auc_low:.3f}, {r.auc_high:.3f}] | {s.std():.4f} | "
                    f"{s.min():.3f}-{s.max():.3f} |")
    lo, hi = res.averages_ci.get("auc_macro", (np.nan, np.nan))
    rows.append(f"| {name} | **macro** | **{res.averages['auc_macro']:.3f}** [{lo:.3f}, {hi:.3f}] | | |")
    return rows, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="300 cases, fewer epochs")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--cases", type=int, default=None, help="number of cases (default 1,130; --quick 300)")
    ap.add_argument("--poolings", nargs="+", default=["max", "mean", "attention"])
    add_smoke(ap, quick=True, cases=40, epochs=1, poolings=["max"])
    args = parse(ap)
    n_cases = args.cases or (300 if args.quick else N_CASES)
    import keras

    print(f"Keras {keras.__version__} on {keras.backend.backend()}", flush=True)
    epochs = args.epochs or (3 if args.quick else 6)
    stacks, y, split = make_cases(n_cases)
    lengths = np.array([len(s) for s in stacks])
    print(f"{n_cases} cases ({(split == 'train').sum()} train / {(split == 'val').sum()} val / "
          f"{(split == 'test').sum()} test), {lengths.sum()} slices ({lengths.min()}-{lengths.max()} per case); "
          f"positives {dict(zip(LABELS, y.sum(axis=0).tolist()))}; {epochs} epochs", flush=True)
    table = ["| model | label | test AUC [95% CI] | score std | score range |", "|---|---|---|---|---|"]
    speed = {}
    t = time.perf_counter()
    yt, sc, speed["(a) user's recipe, 1 case/batch"] = users_recipe(stacks, y, split, epochs=epochs)
    rows, res_a = describe(yt, sc, "(a) user's recipe")
    table += rows
    yt, sc, speed["(a2) user's recipe fed 2 cases/batch"] = users_recipe(stacks, y, split, epochs=epochs,
                                                                        cases_per_batch=2)
    rows, res_a2 = describe(yt, sc, "(a2) same code, 2 cases/batch")
    table += rows
    print(f"(a) done in {time.perf_counter() - t:.0f} s", flush=True)
    mem = []
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        write_case_table(root, stacks, y, split)
        for pooling in args.poolings:
            t = time.perf_counter()
            result, log, quart, peak = labelwise_case(root, pooling, epochs=epochs)
            test = result.evaluation
            rows, _ = describe(test.y_true, test.y_score, f"(b) labelwise, {pooling}")
            table += rows
            n_slices = int(lengths[split == "train"].sum())
            speed[f"(b) labelwise case, {pooling}, 8 cases/batch"] = n_slices / float(
                np.median([r["seconds"] for r in log]))
            mem.append(f"| {pooling} | {peak:.0f} | " + " | ".join(f"{q:.0f}" for q in quart) + " |")
            print(f"(b) {pooling} done in {time.perf_counter() - t:.0f} s", flush=True)
    speed["per-image model, same slices, 32 images/batch"] = image_model_speed(stacks, split, epochs=3)
    print("\n" + "\n".join(table))
    for name, res in (("(a)", res_a), ("(a2)", res_a2)):
        print(f"\nDiagnostics of {name} (labelwise.evaluation.evaluate):")
        for f in res.findings:
            print(f"  [{f.severity}] {f.label or 'all labels'}: {f.message}")
        if not res.findings:
            print("  (no findings)")
    ref = speed["per-image model, same slices, 32 images/batch"]
    print("\n| training | slices/s (median epoch, incl. validation) | vs per-image |\n|---|---|---|")
    for k, v in speed.items():
        print(f"| {k} | {v:.0f} | {v / ref:.2f}x |")
    print("\n| case run, pooling | peak RSS MiB | peak in 1st quarter of the run | 2nd | 3rd | 4th |\n|---|---|---|---|---|---|")
    print("\n".join(mem))


if __name__ == "__main__":
    main()
