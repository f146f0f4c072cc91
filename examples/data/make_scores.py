"""Write a truth table and model-like scores to try labelwise calibrate / thresholds / evaluate on,
without training a model: the rows of examples/nih_sample.csv (2,006 NIH ChestX-ray14 rows, real
labels and patient ids), split by patient into validation and test, and for each label a score
that is higher, on average, for the images that have it (a noisy, overconfident model).

    python examples/data/make_scores.py [OUT_DIR]

OUT_DIR (default: the working folder) gets val.csv and test.csv (the NIH table's rows),
val_scores.csv and test_scores.csv (id + one score column per finding), and
test_scores_b.csv (a second, weaker "model" to compare with).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

FINDINGS = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
            "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"]


def scores_for(table: pd.DataFrame, strength: float, rng: np.random.Generator) -> pd.DataFrame:
    """Per label: sigmoid(strength * truth + noise - 2), an id column first."""
    truth = np.stack([table["Finding Labels"].str.split("|").apply(lambda ls, f=f: f in ls) for f in FINDINGS], 1)
    logits = strength * truth + rng.normal(0.0, 1.0, truth.shape) - 2.0
    out = pd.DataFrame(1.0 / (1.0 + np.exp(-logits)), columns=FINDINGS).round(6)
    out.insert(0, "Image Index", table["Image Index"].to_numpy())
    return out


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    table = pd.read_csv(Path(__file__).resolve().parents[1] / "nih_sample.csv")
    rng = np.random.default_rng(0)
    patients = table["Patient ID"].unique()
    val_patients = set(rng.choice(patients, size=len(patients) // 2, replace=False))
    is_val = table["Patient ID"].isin(val_patients)
    for name, rows in (("val", table[is_val]), ("test", table[~is_val])):
        rows.to_csv(out / f"{name}.csv", index=False)
        scores_for(rows.reset_index(drop=True), 2.5, rng).to_csv(out / f"{name}_scores.csv", index=False)
    scores_for(table[~is_val].reset_index(drop=True), 1.5, rng).to_csv(out / "test_scores_b.csv", index=False)
    print(f"wrote val.csv ({is_val.sum()} rows), test.csv ({(~is_val).sum()} rows) and their scores to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd())
