"""`labelwise train` guards: a disk full while
checkpointing, a resume on changed data or rates, two runs in one out dir, a split file joined by
id, ids without their files, a zero learning rate."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("tensorflow")

from labelwise.commands.cli import main  # noqa: E402
from labelwise.errors import InputError  # noqa: E402
from labelwise.training import TrainConfig  # noqa: E402
from labelwise.training.data import load_data  # noqa: E402
from labelwise.training.guards import LOCK_NAME  # noqa: E402
from test_train import make_digit_table  # noqa: E402

SMALL = {"train": 64, "val": 32, "test": 32}


@pytest.fixture()
def small(tmp_path):
    return tmp_path, make_digit_table(tmp_path, n=SMALL)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.slow
def test_disk_full_while_checkpointing_is_one_error_and_resume_continues(small, capsys, monkeypatch):
    import keras

    folder, config = small
    real = keras.Model.save_weights
    calls = []

    def full_disk(self, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:  # epoch 2's checkpoint: half a file, then the disk is full
            with open(path, "wb") as f:
                f.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save_weights", full_disk)
    # checkpoints are built in memory where Keras allows it; its file writer is what fails here
    monkeypatch.setattr("labelwise.training.state._weights_bytes", lambda model: None)
    assert main(["train", str(config), "--epochs", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "disk full while saving the checkpoint of epoch 2" in err
    assert "last complete checkpoint (epoch 1) is intact" in err and "--resume" in err
    ckdir = folder / "run" / "checkpoints"
    assert json.loads((ckdir / "latest.json").read_text())["epoch"] == 1
    assert (ckdir / "epoch-001.weights.h5").exists() and not (ckdir / "epoch-002.weights.h5").exists()
    assert not [p.name for p in ckdir.iterdir() if "tmp" in p.name]
    assert not (folder / "run" / LOCK_NAME).exists()  # the lock goes with the failed run
    monkeypatch.setattr(keras.Model, "save_weights", real)  # space freed
    assert main(["train", str(config), "--epochs", "3", "--resume"]) == 0
    assert pd.read_csv(folder / "run" / "log.csv")["epoch"].tolist() == [1, 2, 3]
    assert (folder / "run" / "model.keras").exists()
    # the report says how the model was trained
    page = (folder / "run" / "report" / "report.html").read_text()
    assert '<h2 id="training">Training</h2>' in page and "small_cnn" in page
    assert "<th>epochs run / asked</th><td>3 / 3</td>" in page and "<th>resumed from epoch</th><td>1</td>" in page
    for split, n in SMALL.items():
        assert f"<tr><td>{split}</td><td>{n}</td></tr>" in page
    assert 'id="plot-learning_curves"' in page and page.count("data:image/png;base64,") >= 2


def test_learning_curves_png_and_training_section(tmp_path):
    from PIL import Image

    from labelwise import LabelSchema
    from labelwise.evaluation import evaluate

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(40, 2)).astype(np.uint8)
    scores = np.clip(y * 0.6 + rng.random((40, 2)) * 0.5, 0, 1)
    result = evaluate(y, scores, schema=LabelSchema(independent=("a", "b")), bootstrap=0)
    log = [{"epoch": e, "loss": 1.0 / e, "val_loss": 1.2 / e, "val_macro_auc": 0.6 + 0.1 * e} for e in (1, 2, 3)]
    result.training = {"settings": {"backbone": "small_cnn", "learning rate": 0.003}, "best_epoch": 3,
                       "data": {"train": 64, "val": 32, "test": 40}, "log": log}
    result.save(tmp_path / "with")
    png = Image.open(tmp_path / "with" / "learning_curves.png")
    assert png.size == (800, 300)
    page = (tmp_path / "with" / "report.html").read_text()
    assert "<th>learning rate</th><td>0.003</td>" in page and "<tr><td>train</td><td>64</td></tr>" in page
    assert page.count('id="plot-learning_curves"') == 1
    result.training = None  # an evaluate run: no Training section, and its old curves are not left behind
    result.save(tmp_path / "with")
    assert "Training</h2>" not in (tmp_path / "with" / "report.html").read_text()
    assert not (tmp_path / "with" / "learning_curves.png").exists()


@pytest.mark.slow
def test_resume_refuses_changed_data_or_rates_and_one_run_per_out_dir(small, capsys):
    folder, config = small
    run = folder / "run"
    run.mkdir()
    # a lock left by a run whose process is gone: taken over with a note
    (run / LOCK_NAME).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(),
                                             "started": "2026-01-01T00:00:00"}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # --cache on a file table and output into a non-terminal
        assert main(["train", str(config), "--epochs", "1", "--cache", "--verbose", "1"]) == 0
    assert [w for w in caught if "taking over the lock of a run that is gone" in str(w.message)]
    out = capsys.readouterr().out
    assert "\x1b[" not in out and "validation: 32 images" in out
    assert not (run / LOCK_NAME).exists()

    # a live run holds the lock: a second one refuses, naming it
    (run / LOCK_NAME).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(),
                                             "started": "2026-01-01T00:00:00"}))
    assert main(["train", str(config), "--epochs", "2", "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"in use by another labelwise train (pid {os.getppid()}" in err and "another --out-dir" in err
    (run / LOCK_NAME).unlink()

    # a changed learning rate is refused, config.json keeps the rate the epochs ran with
    assert main(["train", str(config), "--epochs", "2", "--resume", "--learning-rate", "0.05"]) == 2
    assert "learning_rate: 0.003 -> 0.05" in capsys.readouterr().err
    assert json.loads((run / "config.json").read_text())["learning_rate"] == 0.003

    # the labels of train rows shuffled: refused, naming what changed
    table = pd.read_csv(folder / "labels.csv")
    train_rows = np.flatnonzero(table["split"].to_numpy() == "train")
    labels = table.loc[train_rows, "labels"].to_numpy()
    table.loc[train_rows, "labels"] = np.roll(labels, 1)
    assert not (table.loc[train_rows, "labels"].to_numpy() == labels).all()
    table.to_csv(folder / "labels.csv", index=False)
    assert main(["train", str(config), "--epochs", "2", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "the data differ from the run's checkpoint" in err and "labels of rows in the train split" in err
    assert pd.read_csv(run / "log.csv")["epoch"].tolist() == [1]


def test_learning_rate_zero_is_said(small):
    _, config = small
    with pytest.warns(UserWarning, match="learning_rate = 0: the weights will not change"):
        TrainConfig.from_toml(config, learning_rate=0.0)
    with pytest.warns(UserWarning, match="fine_tune_lr = 0"):
        TrainConfig(table="x.csv", freeze_epochs=1, epochs=3, fine_tune_lr=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TrainConfig.from_toml(config)  # the usual rate: no word


def test_train_takes_the_split_file_joined_by_id(small, capsys):
    folder, config = small
    table = pd.read_csv(folder / "labels.csv")
    table.drop(columns=["split"]).to_csv(folder / "nosplit.csv", index=False)
    assert main(["split", str(folder / "nosplit.csv"), "--no-groups", "--out", str(folder / "splits.csv")]) == 0
    splits = pd.read_csv(folder / "splits.csv")
    assert list(splits.columns[:1]) == ["id"] and "split" in splits.columns
    cfg = TrainConfig(schema=str(folder / "schema.toml"), table=str(folder / "nosplit.csv"),
                      images=str(folder / "images"), splits=str(folder / "splits.csv"))
    data = load_data(cfg)
    want = dict(zip(splits["id"], splits["split"]))
    for name in ("train", "val", "test"):
        part = getattr(data, name)
        assert len(part) == int((splits["split"] == name).sum())
        assert {want[i] for i in part.ids} == {name}
    # the config file key, relative to the file, in one step
    text = config.read_text().replace('split_column = "split"', 'splits = "splits.csv"').replace(
        'table = "labels.csv"', 'table = "nosplit.csv"')
    (folder / "s.toml").write_text(text)
    assert len(load_data(TrainConfig.from_toml(folder / "s.toml")).train) == len(data.train)
    # a table row missing from the split file names it
    splits.iloc[1:].to_csv(folder / "short.csv", index=False)
    with pytest.raises(InputError, match=r"1 of 128 row\(s\) have no split in .*short.csv .*labelwise split"):
        load_data(TrainConfig(schema=str(folder / "schema.toml"), table=str(folder / "nosplit.csv"),
                              images=str(folder / "images"), splits=str(folder / "short.csv")))


def test_train_never_offers_to_skip_most_rows(small, capsys):
    folder, config = small
    table = pd.read_csv(folder / "labels.csv")
    table["id"] = table["id"].str.replace(".png", ".jpg")  # the user's ids name other files
    table.to_csv(folder / "labels.csv", index=False)
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert "128 of 128 images have no file in" in err and "'digit_0000.png'" in err
    assert "skip-unreadable" not in err and "drop" not in err
