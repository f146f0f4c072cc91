"""labelwise train: bad config values, bad/missing image files in any split, and --resume
with other settings are refused up front with one clear line naming the key or file."""

from __future__ import annotations

import argparse
import warnings

import pandas as pd
import pytest
from PIL import Image

pytest.importorskip("tensorflow")

from labelwise.commands.cli import main  # noqa: E402
from test_train import make_digit_table  # noqa: E402

SMALL = {"train": 64, "val": 32, "test": 32}


@pytest.fixture()
def small(tmp_path):
    config = make_digit_table(tmp_path, n=SMALL)
    return tmp_path, config


@pytest.mark.parametrize("line, key", [
    ('epochs = "three"', "epochs"), ("epochs = [1]", "epochs"), ('image_size = "big"', "image_size"),
    ('learning_rate = "fast"', "learning_rate"), ("learning_rate = -1.0", "learning_rate"),
    ('seed = "x"', "seed"), ('early_stopping_patience = "x"', "early_stopping_patience"),
    ("dropout = 2.0", "dropout"), ("batch_size = 1.5", "batch_size"), ("channels = 2", "channels"),
    ("schema = 3", "schema"), ('cache = "no"', "cache"), ('plots = "no"', "plots"),
    ('table = ["a.csv", "b.csv"]', "table"),
])
def test_wrong_typed_config_values_name_the_key(tmp_path, capsys, line, key):
    cfg = tmp_path / "t.toml"
    cfg.write_text(f'table = "x.csv"\n{line}\n' if not line.startswith("table") else line + "\n")
    assert main(["train", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(cfg) in err and f"{key} must be" in err, err


def test_explicit_none_flag_overrides_the_file(tmp_path):
    from labelwise.commands import train as cmd

    cfg = tmp_path / "a.toml"
    cfg.write_text('table = "x.csv"\nearly_stopping_patience = 3\nbn_momentum = 0.9\nunfreeze_top = 5\n'
                   'fine_tune_lr = 0.1\n')
    parser = argparse.ArgumentParser()
    cmd.add_parser(parser.add_subparsers())
    given = cmd.config_from_args(parser.parse_args(["train", str(cfg)]))
    assert (given.early_stopping_patience, given.bn_momentum, given.unfreeze_top, given.fine_tune_lr) == (3, 0.9, 5, 0.1)
    off = cmd.config_from_args(parser.parse_args(["train", str(cfg), "--early-stopping-patience", "none",
                                                  "--bn-momentum", "none", "--unfreeze-top", "None",
                                                  "--fine-tune-lr", "none"]))
    assert (off.early_stopping_patience, off.bn_momentum, off.unfreeze_top, off.fine_tune_lr) == (None,) * 4


def test_zero_split_fraction_message_is_not_contradictory(small, capsys):
    folder, config = small
    assert main(["train", str(config), "--split-column", "none", "--split-fractions", "0.8", "0.2", "0"]) == 2
    err = capsys.readouterr().err
    assert "split_fractions" in err and "more than 0" in err and "at least two positive" not in err


@pytest.mark.slow
def test_bad_test_image_is_found_before_training(small, capsys):
    folder, config = small
    labels = pd.read_csv(folder / "labels.csv")
    bad = labels.loc[labels["split"] == "test", "id"].iloc[3]
    Image.open(folder / "images" / bad).save(folder / "images" / bad, format="TIFF")  # TIFF named .png
    assert main(["train", str(config), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert bad in err and "TIFF" in err and "--skip-unreadable" in err and "Traceback" not in err
    assert not (folder / "run" / "log.csv").exists()  # nothing was trained first
    with pytest.warns(UserWarning, match=bad):
        assert main(["train", str(config), "--epochs", "1", "--skip-unreadable", "--overwrite"]) == 0
    preds = pd.read_csv(folder / "run" / "test_predictions.csv")
    assert len(preds) == SMALL["test"] - 1 and bad not in set(preds["id"])


@pytest.mark.slow
def test_missing_train_image_is_skipped_only_with_the_flag(small, capsys):
    folder, config = small
    labels = pd.read_csv(folder / "labels.csv")
    gone = labels.loc[labels["split"] == "train", "id"].iloc[5]
    (folder / "images" / gone).unlink()
    assert main(["train", str(config), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert gone in err and "--skip-unreadable" in err
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["train", str(config), "--epochs", "1", "--skip-unreadable"]) == 0
    assert any(gone in str(w.message) and "missing" in str(w.message) for w in caught)


@pytest.mark.slow
def test_resume_with_other_settings_is_refused_but_more_epochs_are_fine(small, capsys):
    folder, config = small
    assert main(["train", str(config), "--epochs", "1", "--verbose", "1"]) == 0
    out = capsys.readouterr().out
    # progress: the file check, each epoch's validation pass, the final test prediction
    assert "checked 64 image file(s)" in out and "checked 32 image file(s)" in out
    assert "validation: 32 images" in out and "fitting the decisions on 32 validation images" in out
    assert main(["train", str(config), "--epochs", "2", "--resume", "--seed", "99", "--batch-size", "8"]) == 2
    err = capsys.readouterr().err
    assert "seed: 7 -> 99" in err and "batch_size: 32 -> 8" in err and "epochs" not in err.split("\n")[1]
    assert main(["train", str(config), "--epochs", "2", "--resume"]) == 0
    assert pd.read_csv(folder / "run" / "log.csv")["epoch"].tolist() == [1, 2]
