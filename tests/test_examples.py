"""Every file in examples/ works from a fresh clone, as its own comments say.

A clone is simulated by copying examples/ into a temporary folder that has no ../shared beside it.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import NIH_IMAGES, ROOT, require

EXAMPLES = ROOT / "examples"
# Each example and the test that runs it (the notebook: test_quickstart_notebook.py).
COVERED = {
    "chestxray14.toml": "test_inspect_sample_with_the_chestxray14_schema",
    "nih_sample.csv": "test_inspect_sample_with_the_chestxray14_schema",
    "train_mnist.toml": "test_train_mnist_example_runs_from_a_clone",
    "train_chestxray14.toml": "test_chestxray14_example_trains_with_its_smallest_settings",
    "quickstart.ipynb": "test_quickstart_notebook.py",
    "data/make_digits.py": "test_bundled_digits_are_scikit_learns",
    "data/make_scores.py": "test_docs_snippets.py (docs/guide/decisions.md, docs/guide/evaluation.md)",
    "data/make_untidy_table.py": "test_journey.py and test_docs_snippets.py (docs/real-data.md)",
    "data/digits/t10k-images-idx3-ubyte.gz": "test_bundled_digits_are_scikit_learns",
    "data/digits/t10k-labels-idx1-ubyte.gz": "test_bundled_digits_are_scikit_learns",
}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LABELWISE_SHARED_DATA"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def labelwise(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labelwise", *map(str, args)], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=900)


@pytest.fixture
def clone(tmp_path) -> Path:
    """A folder laid out like a fresh clone's examples/, with nothing beside it."""
    root = tmp_path / "clone"
    shutil.copytree(EXAMPLES, root / "examples", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return root


def test_every_example_file_is_run_by_a_test():
    files = {p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*")
             if p.is_file() and ".ipynb_checkpoints" not in p.parts and "__pycache__" not in p.parts}
    assert files == set(COVERED)


def test_no_example_points_at_the_developers_data_folder():
    for name in COVERED:
        path = EXAMPLES / name
        if path.suffix in (".toml", ".py", ".ipynb"):
            assert "shared/data" not in path.read_text(encoding="utf-8"), name


def test_bundled_digits_are_scikit_learns():
    from sklearn.datasets import load_digits

    from labelwise.labels.tables import read_mnist_idx

    folder = EXAMPLES / "data" / "digits"
    table = read_mnist_idx(folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz")
    bunch = load_digits()
    np.testing.assert_array_equal(table.images, (bunch.images * (255.0 / 16.0)).astype(np.uint8))
    np.testing.assert_array_equal(table.extra["digit"].to_numpy(), bunch.target)
    # the IDX header by hand: magic 0x00000803, then n, 8, 8 big-endian
    head = gzip.decompress((folder / "t10k-images-idx3-ubyte.gz").read_bytes())[:16]
    assert head == bytes([0, 0, 8, 3]) + len(bunch.images).to_bytes(4, "big") + (8).to_bytes(4, "big") * 2


def test_inspect_sample_with_the_chestxray14_schema(clone):
    done = labelwise("inspect", "examples/nih_sample.csv", "--schema", "examples/chestxray14.toml", "--json",
                     cwd=clone)
    assert done.returncode == 0, done.stderr
    import json

    summary = json.loads(done.stdout)
    # the reference: split the "Finding Labels" cells by hand
    cells = pd.read_csv(EXAMPLES / "nih_sample.csv")["Finding Labels"].str.split("|")
    expected = pd.Series([lab for row in cells for lab in row]).value_counts()
    assert summary["rows"] == len(cells)
    assert {label: summary["prevalence"][label]["count"] for label in expected.index} == expected.to_dict()


@pytest.mark.slow  # loads TensorFlow before reading the config's table
def test_chestxray14_example_from_a_clone_says_which_file_is_missing(clone):
    done = labelwise("train", "examples/train_chestxray14.toml", cwd=clone)
    assert done.returncode == 2
    assert "Data_Entry_2017.csv" in done.stderr and "Traceback" not in done.stderr
    header = (EXAMPLES / "train_chestxray14.toml").read_text().split("\n\n")[0]
    assert "https://nihcc.app.box.com/v/ChestXray-NIHCC" in header


@pytest.mark.slow
def test_train_mnist_example_runs_from_a_clone(clone):
    done = labelwise("train", "examples/train_mnist.toml", "--epochs", "1", "--bootstrap", "0", "--no-plots",
                     "--verbose", "0", cwd=clone)
    assert done.returncode == 0, done.stderr
    run = clone / "runs" / "mnist"   # out_dir = "../runs/mnist", relative to the file
    assert (run / "model.keras").is_file() and (run / "report" / "metrics.json").is_file()


@pytest.mark.slow
def test_chestxray14_example_trains_with_its_smallest_settings(clone):
    nih = require(NIH_IMAGES)
    done = labelwise("train", "examples/train_chestxray14.toml", "--table", nih / "labels.csv",
                     "--images", nih / "images", "--backbone", "small_cnn", "--weights", "none",
                     "--image-size", "32", "32", "--epochs", "1", "--freeze-epochs", "0", "--batch-size", "8",
                     "--loss-weights", "none",  # 24 images: most labels have no training positive
                     "--split-fractions", "0.5", "0.25", "0.25", "--bootstrap", "0", "--no-plots",
                     "--verbose", "0", "--out-dir", clone / "run", cwd=clone)
    # exit 0; a report with problems on 24 images is still a finished run
    assert done.returncode == 0, done.stderr
    assert (clone / "run" / "model.keras").is_file()
