"""Shared fixtures: where the real data lives, and small helpers for the tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# CI clones the repo with shared/ beside it; developers have it at ../shared as well.
SHARED = Path(os.environ.get("LABELWISE_SHARED_DATA", ROOT.parent / "shared" / "data"))

NIH_TABLE = SHARED / "nih_chestxray14_metadata" / "Data_Entry_2017.csv"
CHEXNET_SPLIT = SHARED / "nih_chestxray14_chexnet_split"
NIH_IMAGES = SHARED / "nih_chestxray14_images_tiny"
MNIST_IDX = SHARED / "mnist_idx"

NIH_FINDINGS = [
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
]


def require(path: Path) -> Path:
    """Skip the test when a shared data file is absent (it is present in CI and on dev machines)."""
    if not path.exists():
        pytest.skip(f"shared data not found: {path}")
    return path


@pytest.fixture
def nih_schema():
    from labelwise import LabelSchema

    return LabelSchema(independent=NIH_FINDINGS, none="No Finding")


def run_cli(*argv) -> int:
    """``labelwise ARGV`` in this process (each argument as a string); the exit status."""
    from labelwise.commands.cli import main

    return main([str(a) for a in argv])


def noisy_scores(rng, y, high, low, sd):
    """Scores for 0/1 targets ``y``: ``high`` on positives and ``low`` on negatives, plus N(0, ``sd``),
    clipped to [0.01, 0.99] -- a model that ranks well but not perfectly."""
    import numpy as np

    return np.clip(np.where(y == 1, high, low) + rng.normal(0, sd, size=y.shape), 0.01, 0.99)


def inflated_draw(rng, n, k, z_shift, s_shift):
    """``(z, y, s)`` for ``k`` independent labels: logits ``z = 1.5 N(0, 1) + z_shift``, targets drawn with
    probability ``sigmoid(z)``, scores ``sigmoid(0.5 z + s_shift)`` -- ranked right, but inflated and
    flattened, as a reweighting loss's scores look (what calibration is for)."""
    import numpy as np

    z = rng.normal(size=(n, k)) * 1.5 + z_shift
    y = (rng.random((n, k)) < 1 / (1 + np.exp(-z))).astype(int)
    return z, y, 1 / (1 + np.exp(-(0.5 * z + s_shift)))


def write_csv(path, ids, header, rows, fmt="{:.9g}") -> None:
    """A CSV with an ``id`` column and one column per name in ``header``; cells ``fmt.format(v)``."""
    with open(path, "w") as f:
        f.write(",".join(["id", *header]) + "\n")
        for i, row in zip(ids, rows):
            f.write(",".join([i, *(fmt.format(v) for v in row)]) + "\n")
