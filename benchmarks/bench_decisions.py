"""Benchmark: calibration and decision rules (labelwise.decide).

1. Speed of calibrate (Platt per label) + thresholds (per-label F1 tuning) + decide (calibrate, then
   the instance-F1 rule) on 22,433 x 14 (the real label matrix of the CheXNet test split of NIH
   ChestX-ray14 when /work/shared/data is there, else synthetic with its prevalences) and on
   1,000,000 x 14 (synthetic), each against a reference measured in the same run:
   scikit-learn's ``LogisticRegression`` per label (calibrate), scikit-learn's
   ``precision_recall_curve`` per label with the best F1 picked (thresholds), and a straightforward
   per-row loop of the expected-F1 computation (decide; timed on a subset of rows and scaled
   linearly, the table says so).
2. instance-F1 decisions on 100,000 x 25 against the same per-row loop (subset, scaled).
3. Synthetic rules x metrics table: 20 independent labels + a none label, y ~ Bernoulli(p) with
   known p; "calibrated" scores are p itself, "miscalibrated" scores are sigmoid(0.5 logit(p) + 2)
   (inflated, as a weighted loss makes them). Every rule is tuned on a validation half and scored
   on a test half, without and with Platt calibration fitted on the validation half; ECE before/after.

:func:`decision_table` is the reusable part: give it ``(y_val, s_val, y_test, s_test, schema)`` of a
trained model and it returns (and :func:`print_decision_table` prints) the same rules x metrics table.

4. ``--trained``: the same table for trained models (how the defaults of ``calibration`` and
   ``decide_for`` were chosen): the demo task (MNIST digits, 2 independent labels + a 10-digit group)
   and a 20-label task of real pixels (2x2 grids holding 2-4 MNIST digits: "digit d present" x 10,
   "digit d in the top row" x 10), each trained with the default loss (SchemaLoss, BCE) and with
   ``binary = "weighted"``, ``loss_weights = "balanced"``. Calibrations none / platt / temperature,
   fitted on validation, scored on test. ``--trained --quick``: fewer images and epochs.

Run: ``python benchmarks/bench_decisions.py [--quick] [--trained]``. Ours: best of 3 (1 on 1M rows);
reference: 1 run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SHARED = Path(os.environ.get("LABELWISE_SHARED_DATA", ROOT.parent / "shared" / "data"))
TEST_LIST = SHARED / "nih_chestxray14_chexnet_split" / "test_list.txt"

from labelwise.decide import (  # noqa: E402
    apply_rule,
    fit_calibration,
    fit_policy,
    fit_rule,
    instance_f1_decisions,
)
from labelwise.decide.rules import decision_metrics  # noqa: E402
from labelwise.metrics import brier_score, expected_calibration_error  # noqa: E402
from labelwise.labels.schema import LabelSchema  # noqa: E402
from _smoke import add_smoke, parse  # noqa: E402

TABLE_RULES = ("f1", "hamming", "subset", "micro-f1", "macro-f1", "instance-f1", "top-k")


def best_of(fn, repeats: int = 3):
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def nih_labels() -> np.ndarray | None:
    if not TEST_LIST.is_file():
        return None
    rows = [[int(x) for x in line.split()[1:]] for line in TEST_LIST.read_text().splitlines() if line.strip()]
    return np.array(rows, dtype=np.uint8)


def synthetic(n: int, L: int, seed: int, prevalence: np.ndarray | None = None):
    """y ~ Bernoulli(p) with p = sigmoid(logit(prevalence) + 1.5 N(0,1)); scores inflated like a weighted loss."""
    rng = np.random.default_rng(seed)
    prev = prevalence if prevalence is not None else np.geomspace(0.01, 0.3, L)
    z = np.log(prev / (1 - prev))[None, :] + 1.5 * rng.standard_normal((n, L))
    p = 1 / (1 + np.exp(-z))
    y = (rng.random((n, L)) < p).astype(np.uint8)
    s = 1 / (1 + np.exp(-(0.5 * z + 2.0)))
    return y, p, s


# ------------------------------------------------------------------ references
def ref_calibrate(y, s):
    from sklearn.linear_model import LogisticRegression

    z = np.log(np.clip(s, 1e-12, 1 - 1e-12) / np.clip(1 - s, 1e-12, None))
    return [LogisticRegression(C=1e8, tol=1e-8, max_iter=1000).fit(z[:, [j]], y[:, j]) for j in range(s.shape[1])]


def ref_thresholds(y, s):
    from sklearn.metrics import precision_recall_curve

    out = []
    for j in range(s.shape[1]):
        pr, rc, th = precision_recall_curve(y[:, j], s[:, j])
        f1 = np.where(pr + rc > 0, 2 * pr * rc / np.maximum(pr + rc, 1e-300), 0)[:-1]
        out.append(th[int(np.argmax(f1))])
    return np.array(out)


def _poisson_binomial(q):
    d = np.array([1.0])
    for x in q:
        d = np.convolve(d, [1 - x, x])
    return d


def ref_instance_f1_row(p):
    """Straightforward expected F1 of every top-k for one row (O(L^3)); returns the best set."""
    order = np.argsort(-p, kind="stable")
    q = p[order]
    L = len(q)
    best_k, best_e = 0, np.prod(1 - q)
    for k in range(1, L + 1):
        a, b = _poisson_binomial(q[:k]), _poisson_binomial(q[k:])
        av, bv = np.arange(k + 1)[:, None], np.arange(L - k + 1)[None, :]
        e = float((a[:, None] * b[None, :] * 2 * av / (k + av + bv)).sum())
        if e > best_e + 1e-15:
            best_k, best_e = k, e
    out = np.zeros(L, dtype=np.uint8)
    out[order[:best_k]] = 1
    return out


def ref_decide(P, rows):
    return np.array([ref_instance_f1_row(P[i]) for i in range(rows)])


# ------------------------------------------------------------------ speed
def speed(n: int, L: int, y: np.ndarray, s: np.ndarray, ref_rows: int, repeats: int) -> list[list[str]]:
    schema = LabelSchema(tuple(f"L{j}" for j in range(L)))
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_cal, cal = best_of(lambda: fit_calibration(y, s, method="platt", schema=schema), repeats)
        t_cal_ref, ref = best_of(lambda: ref_calibrate(y, s), 1)
        a = np.array([cal.independent[f"L{j}"]["a"] for j in range(L)])
        a_ref = np.array([m.coef_[0, 0] for m in ref])
        rows.append([f"{n:,} x {L}", "calibrate (platt)", t_cal, t_cal_ref, f"max |a - a_sklearn| {np.abs(a - a_ref).max():.1e}"])
        P = cal.apply(s)
        t_th, th = best_of(lambda: fit_rule(y, P, schema, "f1"), repeats)
        t_th_ref, th_ref = best_of(lambda: ref_thresholds(y, P), 1)
        rows.append([f"{n:,} x {L}", "thresholds (f1)", t_th, t_th_ref,
                     f"max |t - t_sklearn| {np.nanmax(np.abs(th.values - th_ref)):.1e}"])
        t_dec, D = best_of(lambda: apply_rule(cal.apply(s), schema, "instance-f1"), repeats)
        t0 = time.perf_counter()
        D_ref = ref_decide(cal.apply(s[:ref_rows]), ref_rows)
        t_dec_ref = (time.perf_counter() - t0) * n / ref_rows
        rows.append([f"{n:,} x {L}", "decide (calibrate + instance-f1)", t_dec, t_dec_ref,
                     f"ref on {ref_rows:,} rows, scaled; same decisions: {bool((D[:ref_rows] == D_ref).all())}"])
    return rows


def print_speed(rows):
    print(f"{'data':<16}{'step':<34}{'labelwise s':>12}{'reference s':>13}{'ratio':>8}  check")
    for data, step, ours, ref, note in rows:
        print(f"{data:<16}{step:<34}{ours:>12.3f}{ref:>13.3f}{ref / ours:>7.1f}x  {note}")


# ------------------------------------------------------------------ rules x metrics
def decision_table(y_val, s_val, y_test, s_test, schema, *, calibrations=("none", "platt"),
                   rules=TABLE_RULES, from_logits=False):
    """Rules x metrics on test data, each rule tuned on validation data, for each calibration method.

    Returns a list of dicts ``{"calibration", "rule", "ece_before", "ece_after", hamming_loss, ...}``
    (metrics of :func:`labelwise.decide.rules.decision_metrics`; ECE classwise, 15 bins, over the
    head outputs, on test data). ``top-k`` uses K = the validation mean of independent labels per image.
    """
    y_val, y_test = np.asarray(y_val), np.asarray(y_test)
    n_ind = len(schema.independent)
    k = max(1, int(round(float(y_val[:, :n_ind].sum(1).mean())))) if n_ind else 1
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = fit_policy(y_val, s_val, schema, rule="hamming", from_logits=from_logits).probabilities(s_test)
        cols = slice(0, schema.n_outputs)
        ece_before = expected_calibration_error(y_test[:, cols], raw[:, cols])
        for cal_name in calibrations:
            cal = None if cal_name == "none" else fit_calibration(y_val, s_val, method=cal_name, schema=schema,
                                                                  from_logits=from_logits)
            for r in rules:
                if r == "top-k" and not n_ind:
                    continue  # top-k ranks independent labels; a schema without any has none to rank
                rule = f"top-k={min(k, n_ind)}" if r == "top-k" else r
                pol = fit_policy(y_val, s_val, schema, rule=rule, calibration=cal, from_logits=from_logits)
                P = pol.probabilities(s_test)
                D = pol.decide(s_test)
                out.append({"calibration": cal_name, "rule": rule, "ece_before": float(ece_before),
                            "ece_after": float(expected_calibration_error(y_test[:, cols], P[:, cols])),
                            "brier_after": float(brier_score(y_test[:, cols], P[:, cols])),
                            **decision_metrics(y_test, D, schema)})
    return out


def print_decision_table(rows, title=""):
    if title:
        print(title)
    print(f"{'calibration':<12}{'rule':<13}{'ECE':>7}{'Hamming':>9}{'subset':>8}{'micro-F1':>9}{'macro-F1':>9}"
          f"{'inst-F1':>9}{'labels/img':>11}{'true/img':>9}")
    for r in rows:
        print(f"{r['calibration']:<12}{r['rule']:<13}{r['ece_after']:>7.3f}{r['hamming_loss']:>9.3f}"
              f"{r['subset_accuracy']:>8.3f}{r['micro_f1']:>9.3f}{r['macro_f1']:>9.3f}{r['instance_f1']:>9.3f}"
              f"{r['labels_per_image_predicted']:>11.2f}{r['labels_per_image_true']:>9.2f}")
    if rows:
        print(f"(ECE classwise, 15 bins, on test; before any calibration: {rows[0]['ece_before']:.3f})")


def synthetic_table(n: int, seed: int = 0):
    L = 20
    schema = LabelSchema(tuple(f"tag{j}" for j in range(L)), {}, "none")
    y, p, s = synthetic(n, L, seed)
    y = schema.complete(y)
    half = n // 2
    for name, scores in (("calibrated scores (p itself)", p), ("miscalibrated scores (inflated)", s)):
        rows = decision_table(y[:half], scores[:half], y[half:], scores[half:], schema)
        print_decision_table(rows, f"\n{name}: {n:,} images ({half:,} validation, {n - half:,} test), "
                                   f"{L} independent labels + none")


# ------------------------------------------------------------------ trained models
def mnist_digits():
    from labelwise.training.demo import load_digit_images

    x, digits, _ = load_digit_images()
    return x, digits


def grid_task(x, digits, n: int, seed: int):
    """n images 56x56 (2x2 cells of 28x28), 2-4 digits each in random cells, from ``x``/``digits``.

    Labels: ``has_d`` (digit d anywhere) and ``top_d`` (digit d in the top row), 20 independent."""
    rng = np.random.default_rng(seed)
    img = np.zeros((n, 56, 56), dtype=np.uint8)
    y = np.zeros((n, 20), dtype=np.uint8)
    for i in range(n):
        k = rng.integers(2, 5)
        cells = rng.permutation(4)[:k]
        for c in cells:
            j = rng.integers(len(x))
            r, col = divmod(int(c), 2)
            img[i, 28 * r:28 * r + 28, 28 * col:28 * col + 28] = x[j]
            d = int(digits[j])
            y[i, d] = 1
            if r == 0:
                y[i, 10 + d] = 1
    return img, y


GRID_SCHEMA = LabelSchema(tuple(f"has_{d}" for d in range(10)) + tuple(f"top_{d}" for d in range(10)))


def train_scores(name, schema, parts, *, image_size, epochs, batch_size, weighted, out):
    """Train small_cnn on ``parts`` {"train"/"val"/"test": (x, y)}; returns (y_val, s_val, y_test, s_test, seconds)."""
    from labelwise.training import Part, TrainConfig, TrainData, train
    from labelwise.training.predict import predict_scores

    data = TrainData(schema, *(Part(x, y, np.array([f"{k}{i}" for i in range(len(y))]))
                               for k, (x, y) in parts.items()))
    kw = dict(binary="weighted", loss_weights="balanced") if weighted else {}
    config = TrainConfig(schema=schema, backbone="small_cnn", image_size=image_size, channels=1, epochs=epochs,
                         bn_momentum=0.9, batch_size=batch_size, learning_rate=2e-3, lr_schedule="cosine",
                         early_stopping_patience=None, seed=0, out_dir=str(out), verbose=0, overwrite=True,
                         plots=False, bootstrap=0, calibration="none", decide_for="hamming", **kw)
    t = time.perf_counter()
    result = train(config, data)
    seconds = time.perf_counter() - t
    scores = {k: predict_scores(result.model, parts[k][0], schema=schema, image_size=image_size, channels=1).scores
              for k in ("val", "test")}
    return parts["val"][1], scores["val"], parts["test"][1], scores["test"], seconds


def trained_tables(quick: bool, only: str | None = None, smoke: bool = False) -> None:
    import tempfile

    from labelwise.training.demo import DEMO_SCHEMA, digit_targets

    x, digits = mnist_digits()
    n = len(x)
    order = np.random.default_rng(0).permutation(n)
    a, b = int(0.6 * n), int(0.75 * n)  # digits split before composing: no test digit is seen in training
    pools = {"train": order[:a], "val": order[a:b], "test": order[b:]}
    sizes = ({"train": 200, "val": 100, "test": 100} if smoke else {"train": 3000, "val": 1000, "test": 2000} if quick
             else {"train": 6000, "val": 1000, "test": 3000})
    sizes_demo = {k: min(v, len(pools[k])) for k, v in sizes.items()}
    y_demo = digit_targets(digits)
    demo = {k: (x[pools[k][:sizes_demo[k]]], y_demo[pools[k][:sizes_demo[k]]]) for k in pools}
    grid = {k: grid_task(x[pools[k]], digits[pools[k]], sizes[k], seed) for seed, k in enumerate(pools)}
    epochs = 1 if smoke else 2 if quick else 3
    tasks = [("demo (MNIST: 2 independent + 10-digit group)", DEMO_SCHEMA, demo, (28, 28)),
             ("grid of 2-4 MNIST digits (20 independent labels)", GRID_SCHEMA, grid, (32, 32))]
    if only:
        tasks = [t for t in tasks if t[0].startswith(only)]
    with tempfile.TemporaryDirectory() as tmp:
        for title, schema, parts, size in tasks:
            for weighted in (False, True):
                loss = "binary = weighted, loss_weights = balanced" if weighted else "default loss (SchemaLoss, BCE)"
                yv, sv, yt, st, sec = train_scores(title, schema, parts, image_size=size, epochs=epochs,
                                                   batch_size=64, weighted=weighted, out=Path(tmp) / "run")
                rows = decision_table(yv, sv, yt, st, schema, calibrations=("none", "platt", "temperature"))
                print_decision_table(rows, f"\n{title}; {loss}; {epochs} epochs ({sec:.0f} s); "
                                           f"{len(yv)} validation, {len(yt)} test images")
                sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (200,000 instead of 1,000,000 rows)")
    ap.add_argument("--only", choices=("demo", "grid"), help="with --trained: only this task")
    ap.add_argument("--trained", action="store_true",
                    help="only the rules x metrics tables of trained models (demo task + a 20-label MNIST grid task)")
    add_smoke(ap, quick=True)
    args = parse(ap)
    if args.trained:
        trained_tables(args.quick, args.only, smoke=args.smoke)
        return
    big = 5_000 if args.smoke else 200_000 if args.quick else 1_000_000
    print(f"numpy {np.__version__}; {os.cpu_count()} CPU(s)\n")
    y_nih = nih_labels()
    prev = y_nih.mean(0).clip(1e-3) if y_nih is not None else np.geomspace(0.002, 0.12, 14)
    y, p, s = synthetic(2_000 if args.smoke else 22_433, 14, 1, prev)
    if y_nih is not None and not args.smoke:
        y = y_nih  # real labels; the synthetic scores then carry no signal, which speed does not care about
        print(f"22,433 x 14: real labels from {TEST_LIST}")
    rows = speed(len(y), 14, y, s, ref_rows=200 if args.smoke else 2000, repeats=3)
    yb, _, sb = synthetic(big, 14, 2, prev)
    rows += speed(big, 14, yb, sb, ref_rows=200 if args.smoke else 2000, repeats=1)
    P25 = np.random.default_rng(3).random((2_000 if args.smoke else 100_000, 25)) ** 2
    t, (D, _) = best_of(lambda: instance_f1_decisions(P25), 3)
    t0 = time.perf_counter()
    n_ref = 100 if args.smoke else 1000
    D_ref = ref_decide(P25, n_ref)
    t_ref = (time.perf_counter() - t0) * len(P25) / n_ref
    rows.append([f"{len(P25):,} x 25", "instance-f1 decisions", t, t_ref,
                 f"ref on {n_ref:,} rows, scaled; same decisions: {bool((D[:n_ref] == D_ref).all())}"])
    print_speed(rows)
    synthetic_table(2_000 if args.smoke else 20_000)


if __name__ == "__main__":
    main()
