"""labelwise train end to end on a tiny image table: outputs, exact val AUC, kill -9 + resume.

The data: 256 real MNIST test digits written as 28x28 PNGs with a label table (split column),
trained at 16x16 with small_cnn for 3 epochs -- seconds per run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import MNIST_IDX, ROOT, require

pytest.importorskip("tensorflow")

from labelwise import LabelSchema  # noqa: E402
from labelwise.commands.cli import main  # noqa: E402

SCHEMA = LabelSchema(independent=("greater_than_5", "even"), exclusive={"digit": tuple("0123456789")},
                     none="small_odd")
N = {"train": 160, "val": 48, "test": 48}


def _rows(d: int) -> str:
    labels = [str(d)] + (["greater_than_5"] if d > 5 else []) + (["even"] if d % 2 == 0 else [])
    if d in (1, 3, 5):
        labels.append("small_odd")
    return "|".join(labels)


def make_digit_table(folder: Path, n: dict | None = None, plots: bool = False) -> Path:
    """Write PNGs + labels.csv (id, labels, split) + schema.toml + train.toml; return the config path."""
    from labelwise.labels.tables import read_mnist_idx

    mnist = read_mnist_idx(require(MNIST_IDX) / "t10k-images-idx3-ubyte.gz", MNIST_IDX / "t10k-labels-idx1-ubyte.gz")
    digits = mnist.extra["digit"].to_numpy()
    images = folder / "images"
    images.mkdir(parents=True)
    rows = []
    i = 0
    for split, count in (n or N).items():
        for _ in range(count):
            name = f"digit_{i:04d}.png"
            Image.fromarray(mnist.images[i]).save(images / name)
            rows.append({"id": name, "labels": _rows(int(digits[i])), "split": split})
            i += 1
    pd.DataFrame(rows).to_csv(folder / "labels.csv", index=False)
    SCHEMA.save(folder / "schema.toml")
    config = folder / "train.toml"
    config.write_text(textwrap.dedent("""
        schema = "schema.toml"
        table = "labels.csv"
        images = "images"
        split_column = "split"
        backbone = "small_cnn"
        image_size = [16, 16]
        channels = 1
        bn_momentum = 0.9
        loss = "schema"
        binary = "weighted"
        loss_weights = "balanced"
        epochs = 3
        batch_size = 32
        learning_rate = 0.003
        lr_schedule = "cosine"
        early_stopping_patience = 5
        seed = 7
        verbose = 0
        bootstrap = 0
        out_dir = "run"
    """) + f"plots = {'true' if plots else 'false'}\n")
    return config


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_train")
    config = make_digit_table(folder, plots=True)
    assert main(["train", str(config)]) == 0
    return folder, config


@pytest.mark.slow
def test_train_writes_every_output(tiny):
    folder, _ = tiny
    run = folder / "run"
    for name in ("model.keras", "log.csv", "log.json", "config.json", "test_predictions.csv",
                 "report/report.html", "report/metrics.json", "checkpoints/latest.json"):
        assert (run / name).exists(), name
    assert list((run / "report").glob("*.png"))
    log = pd.read_csv(run / "log.csv")
    assert log["epoch"].tolist() == [1, 2, 3]
    assert {"loss", "val_loss", "val_macro_auc", "learning_rate"} <= set(log.columns)
    assert np.isfinite(log["loss"]).all() and log["loss"].iloc[-1] < log["loss"].iloc[0]
    records = json.loads((run / "log.json").read_text())
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert set(records[0]["val_auc"]) == set(SCHEMA.labels)
    # only the last checkpoint is kept, and no temporary file is left behind
    ck = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "epoch-003.weights.h5" in ck and "epoch-001.weights.h5" not in ck
    assert not [p for p in run.rglob("*") if ".tmp" in p.name]
    # every decision obeys the schema (one digit; small_odd exactly when no independent label)
    preds = pd.read_csv(run / "test_predictions.csv", dtype={"id": str})
    SCHEMA.validate(preds[list(SCHEMA.labels)].to_numpy())
    assert len(preds) == N["test"]


def test_val_auc_in_log_is_exact(tiny):
    """The logged val macro AUC equals scikit-learn's on the best model's val predictions."""
    from sklearn.metrics import roc_auc_score

    from labelwise.training import artifact
    from labelwise.data.pipeline import make_dataset
    from labelwise.labels.tables import read_table

    folder, _ = tiny
    model, schema, _, pre = artifact.load(folder / "run" / "model.keras")
    table = read_table(folder / "labels.csv", schema=schema, images=folder / "images")
    val = (table.extra["split"] == "val").to_numpy()
    probs = model.predict(make_dataset(table.paths[val], image_size=pre.image_size, channels=pre.channels,
                                       batch_size=32), verbose=0)
    scores = schema.complete_scores(probs)
    y = table.y[val]
    ref = np.mean([roc_auc_score(y[:, j], scores[:, j]) for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)])
    log = pd.read_csv(folder / "run" / "log.csv")
    best = log.loc[log["val_macro_auc"].idxmax()]
    assert best["val_macro_auc"] == pytest.approx(ref, abs=1e-6)


def test_existing_run_needs_resume_or_overwrite(tiny, capsys):
    _, config = tiny
    assert main(["train", str(config), "--epochs", "1"]) == 2
    assert "--resume" in capsys.readouterr().err


def test_bad_config_is_explained(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('epochz = 3\n')
    assert main(["train", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "epochz" in err and "epochs" in err


_KILLABLE = """
import sys, time
import labelwise.training.loop as T
from labelwise.commands.cli import main

marker = sys.argv[2]
original = T._epoch_callback

def slow_callback(**kwargs):
    # Same callback, slowed down from epoch 2 on, so the test can kill the run mid-epoch.
    base = original(**kwargs)

    class Slow(type(base)):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_index = epoch
            super().on_epoch_begin(epoch, logs)

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch_index >= 1:
                with open(marker, "a") as f:
                    f.write(f"{self.epoch_index} {batch}\\n")
                time.sleep(0.4)

    return Slow()

T._epoch_callback = slow_callback
sys.exit(main(["train", sys.argv[1], "--out-dir", sys.argv[3]]))
"""


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_equals_uninterrupted_run(tiny, tmp_path):
    """kill -9 during epoch 2, --resume: final weights and log equal the uninterrupted run.

    Tolerance: exact equality (CPU; both runs use the same TF thread pool size). The resumed
    run reloads the epoch-1 weights and optimizer state bit for bit; epoch order, augmentation
    and dropout seeds depend only on (seed, epoch).
    """
    import keras

    folder, config = tiny
    out = tmp_path / "killed"
    marker = tmp_path / "marker.txt"
    script = tmp_path / "killable.py"
    script.write_text(_KILLABLE)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, str(script), str(config), str(marker), str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if marker.exists() and len(marker.read_text().splitlines()) >= 2:
                break
            if proc.poll() is not None:
                pytest.fail(f"training exited early:\n{proc.stdout.read().decode()[-3000:]}")
            time.sleep(0.05)
        else:
            pytest.fail("epoch 2 never started")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    pointer = json.loads((out / "checkpoints" / "latest.json").read_text())
    assert pointer["epoch"] == 1  # killed inside epoch 2: the last checkpoint is epoch 1's
    assert not (out / "model.keras").exists()

    assert main(["train", str(config), "--out-dir", str(out), "--resume", "--no-plots"]) == 0

    reference = keras.saving.load_model(folder / "run" / "model.keras")
    resumed = keras.saving.load_model(out / "model.keras")
    for a, b in zip(reference.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    log_ref = pd.read_csv(folder / "run" / "log.csv").drop(columns="seconds")
    log_res = pd.read_csv(out / "log.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(log_ref, log_res)
    np.testing.assert_array_equal(pd.read_csv(folder / "run" / "test_predictions.csv").iloc[:, 2:].to_numpy(),
                                  pd.read_csv(out / "test_predictions.csv").iloc[:, 2:].to_numpy())


@pytest.mark.slow
def test_freeze_schedule_and_plateau_resume_at_phase_boundary(tmp_path):
    """Two phases (frozen backbone, then unfrozen at a lower LR) with reduce-on-plateau: a run
    stopped after the frozen phase and resumed equals one run straight through."""
    import keras

    from labelwise.training import TrainConfig, train

    config = make_digit_table(tmp_path, {"train": 160, "val": 48})  # no test split: no report needed
    base = dict(epochs=3, freeze_epochs=1, lr_schedule="plateau", plateau_patience=1, verbose=0)
    full = train(TrainConfig.from_toml(config, out_dir=str(tmp_path / "full"), **base))
    assert [r["phase"] for r in full.history] == [0, 1, 1]
    assert full.history[1]["learning_rate"] == pytest.approx(0.0003)  # fine_tune_lr = lr / 10
    part = train(TrainConfig.from_toml(config, out_dir=str(tmp_path / "part"), **{**base, "epochs": 1,
                                                                                    "freeze_epochs": 1}))
    assert len(part.history) == 1
    (tmp_path / "part" / "model.keras").unlink()
    resumed = train(TrainConfig.from_toml(config, out_dir=str(tmp_path / "part"), resume=True, **base))
    assert resumed.resumed_from == 1
    for a, b in zip(full.model.get_weights(), resumed.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [r["loss"] for r in full.history] == [r["loss"] for r in resumed.history]
    assert isinstance(resumed.model, keras.Model)
    # the unfreeze phase trains the convolutions but leaves BatchNormalization frozen
    backbone = full.model.get_layer("backbone")
    bns = [l for l in backbone.layers if isinstance(l, keras.layers.BatchNormalization)]
    convs = [l for l in backbone.layers if isinstance(l, keras.layers.Conv2D)]
    assert bns and not any(l.trainable for l in bns)
    assert convs and all(l.trainable for l in convs)


@pytest.mark.slow
def test_early_stopping_on_val_macro_auc(tmp_path):
    """With a zero learning rate (and frozen BatchNorm statistics) nothing improves: patience 1
    stops after epoch 2 of 6, and the
    best (first) epoch's weights are the ones kept."""
    from labelwise.training import TrainConfig, train

    config = make_digit_table(tmp_path, {"train": 64, "val": 48})
    result = train(TrainConfig.from_toml(config, out_dir=str(tmp_path / "run"), epochs=6, learning_rate=0.0,
                                         lr_schedule="constant", early_stopping_patience=1, bn_momentum=1.0))
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert result.best_epoch == 1
    assert result.history[0]["val_macro_auc"] == result.history[1]["val_macro_auc"]
