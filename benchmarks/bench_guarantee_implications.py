"""Does a guarantee on a parent label hold when an implication switches it on?

    python benchmarks/bench_guarantee_implications.py [--draws 200]

Two labels with ``b -> a`` (b is true only where a is). SYNTHETIC scores: ``a`` is scored
``0.35 a + N(0.3, 0.15)``; ``b`` is scored ``0.6 b + 0.15 (a and not b) + N(0.2, 0.1)``, plus 0.6 on a
random 4% of a's negatives (the model mistakes them for b), so the structure switches ``a`` on there.
Each draw fits ``specificity>=0.9@0.9`` on a validation set of ``--n-val`` images and measures ``a``'s
specificity on ``--n-test`` new ones, for:

* **own score** (the reference): a's threshold certified on a's own score (the schema without the
  implication), the decisions then made under the schema with it, as they are served;
* **final decisions**: labelwise's fit, certified on what is decided (the images b switches on count).

Prints how often the promise held (promised: at least 90% of draws) and the median measured value.
``--rule "precision>=0.7@0.9;fallback=point"`` measures a's precision instead (b, whose precision
cannot be certified on these scores, is then decided by its uncertified point estimate).
"""

from __future__ import annotations

import argparse

import numpy as np
from _smoke import add_smoke, parse

from labelwise.decide import fit_policy
from labelwise.decide.policy import DecisionPolicy
from labelwise.labels.schema import LabelSchema


def draw(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(y, p)`` over labels (a, b) as the module docstring says."""
    a = rng.random(n) < 0.4
    b = a & (rng.random(n) < 0.5)
    pa = np.clip(0.35 * a + rng.normal(0.3, 0.15, n), 0, 1)
    pb = np.clip(0.6 * b + 0.15 * (a & ~b) + rng.normal(0.2, 0.1, n) + 0.6 * (~a & (rng.random(n) < 0.04)), 0, 1)
    return np.stack([a, b], 1).astype(np.uint8), np.stack([pa, pb], 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--n-val", type=int, default=3000)
    ap.add_argument("--n-test", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rule", default="specificity>=0.9@0.9", help="a specificity or precision guarantee")
    add_smoke(ap, draws=5, n_test=3000)
    args = parse(ap, argv)
    rule = args.rule
    target = float(rule.split(">=")[1].split("@")[0])
    precision = rule.startswith("precision")
    with_implication = LabelSchema(independent=("a", "b"), implies={"b": ["a"]})
    without = LabelSchema(independent=("a", "b"))
    rng = np.random.default_rng(args.seed)
    measured: dict[str, list[float]] = {"own score": [], "final decisions": []}
    for _ in range(args.draws):
        y_val, p_val = draw(args.n_val, rng)
        y_test, p_test = draw(args.n_test, rng)
        own = fit_policy(y_val, p_val, without, rule=rule).thresholds
        policies = {"own score": DecisionPolicy(with_implication, rule, thresholds=own),
                    "final decisions": fit_policy(y_val, p_val, with_implication, rule=rule)}
        positive = y_test[:, 0].astype(bool)
        for name, policy in policies.items():
            decided = policy.apply(p_test)[1][:, 0].astype(bool)
            measured[name].append(float((positive & decided).sum() / max(decided.sum(), 1)) if precision
                                  else float((~positive & ~decided).sum() / (~positive).sum()))
    print(f"rule {rule} on parent a of b -> a; {args.draws} draws, {args.n_val} validation and {args.n_test} "
          "test images each")
    print(f"| a certified on | promise held | median {'precision' if precision else 'specificity'} of a |")
    print("|---|---:|---:|")
    for name, values in measured.items():
        v = np.asarray(values)
        print(f"| {name} | {np.mean(v >= target):.0%} | {np.median(v):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
