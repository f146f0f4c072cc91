"""`labelwise train --train-shards` against the table it came from: the shards' labels are
remapped to the run's schema by name, val/test images in the shards are refused, and a run
resumed from a checkpoint reads the same per-epoch stream as the uninterrupted one.

Data: the 256-digit MNIST table of tests/test_train.py (160 train / 48 val / 48 test), small_cnn
at 16x16, one or two epochs per run -- seconds each.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytest.importorskip("tensorflow")

from labelwise.commands.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from test_train import make_digit_table

    folder = tmp_path_factory.mktemp("digits")
    config = make_digit_table(folder)
    table, images = folder / "labels.csv", folder / "images"
    # the schema inferred from the table: the same labels in another column order (digits first)
    assert main(["shard", str(table), "--images", str(images), "--out", str(folder / "inferred"),
                 "--split-column", "split", "--split", "train", "--shard-size", "40", "--quiet"]) == 0
    assert main(["shard", str(table), "--images", str(images), "--out", str(folder / "declared"),
                 "--schema", str(folder / "schema.toml"), "--split-column", "split", "--split", "train",
                 "--shard-size", "40", "--quiet"]) == 0
    assert main(["shard", str(table), "--images", str(images), "--out", str(folder / "all"),
                 "--shard-size", "40", "--quiet"]) == 0
    return folder, config


def _train(config, shards, out, *extra):
    return main(["train", str(config), "--train-shards", str(shards), "--out-dir", str(out),
                 "--lr-schedule", "constant", "--verbose", "0", *extra])


def test_shard_one_split_records_split_and_ids(digits):
    folder, _ = digits
    index = json.loads((folder / "declared" / "index.json").read_text())
    table = pd.read_csv(folder / "labels.csv")
    train_ids = table.loc[table["split"] == "train", "id"].tolist()
    assert index["n_examples"] == 160 and index["split"] == {"column": "split", "value": "train"}
    assert index["ids"] == train_ids and len(index["shards"]) == 4
    inferred = json.loads((folder / "inferred" / "index.json").read_text())
    assert inferred["labels"] != index["labels"] and sorted(inferred["labels"]) == sorted(index["labels"])


def test_whole_table_shards_are_refused(digits, capsys):
    folder, config = digits
    assert _train(config, folder / "all", folder / "run_all", "--epochs", "1") == 2
    err = capsys.readouterr().err
    assert "48 of the shards' 256 images are in this run's val split" in err and "--split train" in err
    assert not (folder / "run_all" / "checkpoints" / "latest.json").exists()


@pytest.mark.slow
def test_inferred_schema_shards_are_remapped_and_resume_repeats_the_run(digits):
    folder, config = digits
    # remap: shards in another column order train exactly as shards in the run's order
    assert _train(config, folder / "declared", folder / "A", "--epochs", "2") == 0
    assert _train(config, folder / "inferred", folder / "B", "--epochs", "1") == 0
    a = pd.read_csv(folder / "A" / "log.csv")
    b = pd.read_csv(folder / "B" / "log.csv")
    assert b["loss"][0] == pytest.approx(a["loss"][0], rel=1e-6)
    assert b["val_macro_auc"][0] == pytest.approx(a["val_macro_auc"][0], rel=1e-6)
    assert a["val_macro_auc"].iloc[-1] > 0.6  # misaligned columns gave 0.44 (below chance)
    # resume: B continues to epoch 2 and must equal the uninterrupted A
    assert _train(config, folder / "inferred", folder / "B", "--epochs", "2", "--resume") == 0
    b = pd.read_csv(folder / "B" / "log.csv")
    assert b["epoch"].tolist() == [1, 2]
    assert b["loss"].tolist() == pytest.approx(a["loss"].tolist(), rel=1e-6)
    assert b["val_macro_auc"].tolist() == pytest.approx(a["val_macro_auc"].tolist(), rel=1e-6)


@pytest.mark.slow
def test_training_from_shards_never_reads_the_loose_train_files(digits):
    # The shards hold the train images; the loose copies are only listed in the table (their
    # labels give the loss weights). A run that checked or decoded them would fail here.
    folder, config = digits
    table = pd.read_csv(folder / "labels.csv")
    name = table.loc[table["split"] == "train", "id"].iloc[0]
    path = folder / "images" / name
    original = path.read_bytes()
    try:
        path.write_bytes(b"not an image")
        assert _train(config, folder / "declared", folder / "loose_broken", "--epochs", "1") == 0
        assert (folder / "loose_broken" / "model.keras").exists()
    finally:
        path.write_bytes(original)
