"""labelwise train --tensorboard DIR: the event files, read back, hold the run's log per epoch."""

from __future__ import annotations

import json

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from labelwise.commands.cli import main  # noqa: E402
from labelwise.errors import InputError  # noqa: E402
from labelwise.training import TrainConfig  # noqa: E402
from labelwise.training.tensorboard import EventLog  # noqa: E402
from test_train import make_digit_table  # noqa: E402


def read_events(folder):
    """{tag: {step: value}} from every event file under ``folder`` (TensorFlow's own reader)."""
    out: dict = {}
    for path in sorted(folder.rglob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for v in event.summary.value:
                assert v.metadata.plugin_data.plugin_name == "scalars"
                out.setdefault(v.tag, {})[event.step] = float(tf.make_ndarray(v.tensor))
    return out


@pytest.mark.slow
def test_train_writes_loss_lr_and_every_labels_auc_per_epoch(tmp_path):
    config = make_digit_table(tmp_path, n={"train": 96, "val": 64, "test": 16})
    tb = tmp_path / "board"
    assert main(["train", str(config), "--tensorboard", str(tb), "--epochs", "2"]) == 0
    events = read_events(tb)
    log = json.loads((tmp_path / "run" / "log.json").read_text())
    assert [r["epoch"] for r in log] == [1, 2]
    for key in ("loss", "val_loss", "learning_rate", "val_macro_auc"):
        assert events[key] == pytest.approx({r["epoch"]: r[key] for r in log}, rel=1e-6), key
    labels = [l for l, a in log[0]["val_auc"].items() if np.isfinite(a)]
    assert len(labels) >= 10
    for label in labels:
        assert events[f"val_auc/{label}"] == pytest.approx({r["epoch"]: r["val_auc"][label] for r in log}, rel=1e-6)


def test_config_key_is_a_path_relative_to_the_config_file(tmp_path):
    (tmp_path / "c.toml").write_text('tensorboard = "tb"\nout_dir = "run"\n')
    assert TrainConfig.from_toml(tmp_path / "c.toml").tensorboard == str(tmp_path / "tb")
    assert TrainConfig(tensorboard="none").tensorboard is None
    with pytest.raises(InputError, match="tensorboard must be a path"):
        TrainConfig(tensorboard=3)


def test_event_log_skips_nan_and_refuses_a_file(tmp_path):
    log = EventLog(tmp_path / "tb")
    log.write({"epoch": 1, "loss": 0.5, "val_macro_auc": float("nan"), "val_auc": {"a": 0.75, "b": float("nan")}})
    log.close()
    assert read_events(tmp_path / "tb") == {"loss": {1: 0.5}, "val_auc/a": {1: 0.75}}
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        EventLog(tmp_path / "f")
