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


def write_csv(path, ids, header, rows, fmt="{:.9g}") -> None:
    """A CSV with an ``id`` column and one column per name in ``header``; cells ``fmt.format(v)``."""
    with open(path, "w") as f:
        f.write(",".join(["id", *header]) + "\n")
        for i, row in zip(ids, rows):
            f.write(",".join([i, *(fmt.format(v) for v in row)]) + "\n")
