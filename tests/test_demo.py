"""labelwise demo: the bundled digits task end to end (tiny size here), decisions obey the schema."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import MNIST_IDX, require

pytest.importorskip("tensorflow")

from labelwise.commands.cli import main  # noqa: E402
from labelwise.training.demo import DEMO_SCHEMA, digit_targets, load_digit_images  # noqa: E402


def test_demo_schema_and_targets():
    assert DEMO_SCHEMA.labels == (*map(str, range(10)), "greater_than_5", "even")
    assert DEMO_SCHEMA.derived["even"] == ("0", "2", "4", "6", "8")
    y = digit_targets(np.array([0, 5, 6, 7]))
    assert DEMO_SCHEMA.decode(y) == [["0", "even"], ["5"], ["6", "greater_than_5", "even"], ["7", "greater_than_5"]]


def test_fallback_to_scikit_learn_digits(monkeypatch):
    import labelwise.training.demo as demo

    monkeypatch.setattr(demo, "find_mnist", lambda: None)
    x, d, source = load_digit_images()
    assert x.shape == (1797, 28, 28) and x.dtype == np.uint8 and x.max() > 200
    assert sorted(set(d.tolist())) == list(range(10)) and "load_digits" in source


@pytest.mark.slow
def test_demo_end_to_end_tiny(tmp_path, capsys):
    require(MNIST_IDX)
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--epochs", "3", "--n-train", "800", "--n-val", "150", "--n-test", "200",
            "--batch-size", "32",
            "--no-plots", "--quiet"]
    assert main(args) == 0
    for name in ("model.keras", "predictions.csv", "report/report.html", "report/metrics.json", "log.csv"):
        assert (out / name).exists(), name
    # every scores file says what its numbers are, and no sidecar is left without its file
    assert json.loads((out / "predictions.csv.json").read_text())["file"] == "predictions.csv"
    assert all((out / side.name[: -len(".json")]).exists() for side in out.glob("*.csv.json"))
    samples = sorted((out / "sample_images").glob("*.png"))
    assert len(samples) == 12
    preds = pd.read_csv(out / "predictions.csv", dtype={"id": str})
    assert len(preds) == 200
    decisions = preds[list(DEMO_SCHEMA.labels)].to_numpy()
    DEMO_SCHEMA.validate(decisions)  # exactly one digit per image, 0/1 everywhere
    assert (decisions[:, :10].sum(axis=1) == 1).all()
    # it learned something real: most digits right after 3 tiny epochs (chance is 0.1; 0.77 seen)
    truth = pd.Series(preds["id"].str.slice(-5).astype(int))
    x, digits, _ = load_digit_images()
    assert (decisions[:, :10].argmax(axis=1) == digits[truth.to_numpy()]).mean() > 0.5
    # the user's next step works on the sample images
    assert main(["predict", str(out / "model.keras"), str(out / "sample_images"),
                 "--out", str(tmp_path / "mine.csv"), "--quiet"]) == 0
    mine = pd.read_csv(tmp_path / "mine.csv")
    assert len(mine) == 12
    DEMO_SCHEMA.validate(mine[list(DEMO_SCHEMA.labels)].to_numpy())
    # running it again into the same folder starts over instead of failing
    assert main(args[:3] + ["--epochs", "1", "--n-train", "100", "--n-val", "50", "--n-test", "50",
                            "--no-plots", "--quiet"]) == 0
    assert len(pd.read_csv(out / "log.csv")) == 1


@pytest.mark.slow
def test_fallback_demo_end_to_end_learns_the_digits(tmp_path, monkeypatch, capsys):
    """A fresh clone (no shared MNIST) trains on scikit-learn's digits; at MNIST's batch/epochs
    that was 51 steps and a model calling most digits "8" (digit accuracy ~0.2)."""
    import labelwise.training.demo as demo

    monkeypatch.setattr(demo, "find_mnist", lambda: None)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "load_digits" in printed and "5 epochs of batch 16" in printed
    preds = pd.read_csv(out / "predictions.csv", dtype={"id": str})
    assert len(preds) == 540 and preds["id"].str.startswith("sklearn_digits_").all()
    decisions = preds[list(DEMO_SCHEMA.labels)].to_numpy()
    DEMO_SCHEMA.validate(decisions)
    x, digits, _ = load_digit_images()
    truth = digits[preds["id"].str.slice(-5).astype(int).to_numpy()]
    predicted = decisions[:, :10].argmax(axis=1)
    accuracy = (predicted == truth).mean()
    assert accuracy > 0.9, accuracy  # chance is 0.1; 0.987 measured
    assert np.bincount(predicted, minlength=10).max() < 0.2 * len(predicted)  # no collapse onto one digit
    assert len(sorted((out / "sample_images").glob("sklearn_digits_*.png"))) == 12
