"""Benchmark: the MNIST demo's `even` and `greater_than_5` as free sigmoids vs derived from the digit group.

The same small CNN, data split and seed train twice on MNIST test digits (6,000 train, 3,000
test): once with the old demo schema (``greater_than_5`` and ``even`` independent sigmoids beside
the digit softmax) and once with the new one (both derived: ``any_of`` digits, so their scores
are sums of digit probabilities and their decisions follow the decided digit). Decisions are
``labelwise.decide.thresholds.decide`` at the default 0.5. Printed per run: the share of test
images whose decisions contradict each other (the decided digit vs ``even`` / ``> 5``), the same
for naive 0.5 thresholds on every score column (what the structure would let through without
``decide``), subset accuracy (all 12 labels right), digit accuracy, and the time.

    python benchmarks/bench_structures.py [--epochs 3] [--seeds 0] [--n-train 6000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _mnist_small import fit_predict, load_digits

from labelwise.decide.thresholds import decide  # noqa: E402
from labelwise.training.demo import DEMO_SCHEMA, INDEPENDENT_SCHEMA, digit_targets  # noqa: E402
from _smoke import add_smoke, parse  # noqa: E402


def contradictions(decisions: np.ndarray, schema) -> float:
    """Share of rows whose decided digit disagrees with the decided even / greater_than_5."""
    L = schema.labels
    digit = np.argmax(decisions[:, [L.index(str(d)) for d in range(10)]], axis=1)
    one_digit = decisions[:, [L.index(str(d)) for d in range(10)]].sum(axis=1) == 1
    even = decisions[:, L.index("even")] == 1
    gt5 = decisions[:, L.index("greater_than_5")] == 1
    bad = ~one_digit | (even != (digit % 2 == 0)) | (gt5 != (digit > 5))
    return float(bad.mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--n-train", type=int, default=6000)
    ap.add_argument("--n-test", type=int, default=3000)
    add_smoke(ap, epochs=1, n_train=256, n_test=128)
    args = parse(ap)
    x, digits = load_digits()
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        order = np.random.default_rng(seed).permutation(len(x))
        tr, te = order[: args.n_train], order[args.n_train : args.n_train + args.n_test]
        for name, schema in (("independent sigmoids (before)", INDEPENDENT_SCHEMA), ("derived (after)", DEMO_SCHEMA)):
            y = digit_targets(digits, schema)
            t0 = time.perf_counter()
            scores = fit_predict(schema, x[tr], y[tr], x[te], epochs=args.epochs, seed=seed)
            seconds = time.perf_counter() - t0
            d = decide(scores, schema)
            naive = (schema.complete_scores(scores) >= 0.5).astype(np.uint8)
            truth = y[te]
            rows.append((seed, name, contradictions(d, schema), contradictions(naive, schema),
                         float((d == truth).all(axis=1).mean()),
                         float((np.argmax(scores[:, [schema.labels.index(str(k)) for k in range(10)]], axis=1)
                                == digits[te]).mean()), seconds))
            print(f"  seed {seed}: {name} done in {seconds:.0f} s", flush=True)
    print(f"\nMNIST t10k, {args.n_train} train / {args.n_test} test images, small_cnn, {args.epochs} epochs, "
          "decisions at 0.5")
    print(f"{'seed':>4}  {'schema':<30} {'contradicting':>13} {'naive 0.5':>9} {'subset acc':>10} "
          f"{'digit acc':>9} {'time':>6}")
    for seed, name, c, cn, acc, dacc, sec in rows:
        print(f"{seed:>4}  {name:<30} {100 * c:>12.2f}% {100 * cn:>8.2f}% {acc:>10.4f} {dacc:>9.4f} {sec:>5.0f}s")
    before = [r for r in rows if "before" in r[1]]
    after = [r for r in rows if "after" in r[1]]
    print(f"\ncontradicting decisions: before {100 * np.mean([r[2] for r in before]):.2f}% -> after "
          f"{100 * np.mean([r[2] for r in after]):.2f}%; subset accuracy {np.mean([r[4] for r in before]):.4f} -> "
          f"{np.mean([r[4] for r in after]):.4f} (ratio {np.mean([r[4] for r in after]) / np.mean([r[4] for r in before]):.3f})")


if __name__ == "__main__":
    main()
