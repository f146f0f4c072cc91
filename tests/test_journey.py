"""The whole journey as a user runs it, each command a subprocess, no file edited in between:
inspect -> split -> train -> predict (the table) -> calibrate -> thresholds -> evaluate ->
predict (the folder) -> explain -> serve, on a generated table shaped like real ones (one-hot
with the none column in the middle or first, ids without extensions, a list column beside the
one-hot columns that agrees with them, repeated identical rows, a patient column). Each output
must join the next by id, and the same rows must give the same numbers whichever file they
come from. docs/real-data.md is this journey, as a user reads it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "data"))
from make_untidy_table import LABELS, make_untidy_table  # noqa: E402  (what docs/real-data.md runs)


def make_data(folder: Path, none_at: str) -> None:
    """The example table (:mod:`make_untidy_table`: one-hot with ``N/A`` in the middle or first, ids
    without extensions, an agreeing ``Tags`` list column, repeated rows, a patient column) and the
    ``train.toml`` of docs/real-data.md."""
    make_untidy_table(folder, none_first=none_at == "first")
    (folder / "train.toml").write_text(
        'table = "labels.csv"\nimages = "images"\nsplits = "splits.csv"\nbackbone = "small_cnn"\n'
        'image_size = [32, 32]\nchannels = 1\nepochs = 5\nbatch_size = 16\nlearning_rate = 0.003\n'
        'bootstrap = 0\nplots = false\nverbose = 0\nseed = 0\nout_dir = "run"\n')


def lw(folder: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m labelwise ARGS`` in ``folder``; fails the test with its output when it fails."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-m", "labelwise", *args], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"labelwise {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def evaluate_json(folder: Path, scores: str, *extra: str) -> dict:
    out = lw(folder, "evaluate", "--truth", "labels.csv", "--scores", scores, "--splits", "splits.csv",
             "--split", "test", "--bootstrap", "0", "--json", *extra).stdout
    return json.loads(out)


def per_label(doc: dict, key: str = "auc") -> dict:
    return {r["label"]: r[key] for r in doc["per_label"]}


@pytest.mark.parametrize("none_at", ["middle", "first"])
def test_journey_from_a_raw_table_to_served_predictions(tmp_path, none_at):
    d = tmp_path
    make_data(d, none_at)
    table_ids = pd.read_csv(d / "labels.csv", dtype=str)["id"].tolist()
    unique_ids = list(dict.fromkeys(table_ids))

    out = lw(d, "inspect", "labels.csv").stdout
    assert "4 labels" in out and "'N/A'" in out

    lw(d, "split", "labels.csv", "--fractions", "0.6,0.2,0.2", "--out", "splits.csv")
    splits = pd.read_csv(d / "splits.csv", dtype=str)
    assert sorted(splits["id"]) == sorted(unique_ids)  # joins the table by id, one row per image
    val = set(splits.loc[splits["split"] == "val", "id"])
    test = set(splits.loc[splits["split"] == "test", "id"])

    lw(d, "train", "train.toml")
    trained = pd.read_csv(d / "run" / "test_predictions.csv", dtype=str)
    assert set(trained["id"]) == test

    lw(d, "predict", "run/model.keras", "labels.csv", "--images", "images", "--out", "pred.csv")
    pred = pd.read_csv(d / "pred.csv")
    assert pred["id"].astype(str).tolist() == table_ids  # the ids it read, in the table's order

    # calibration and decisions refitted on the raw validation scores train wrote (never on predict's
    # calibrated probabilities, which calibrate refuses: they would be calibrated twice)
    out = lw(d, "calibrate", "--truth", "labels.csv", "--scores", "run/val_scores.csv", "--splits", "splits.csv",
             "--split", "val", "--out", "calibration.json").stdout
    assert f"fitting on {len(val)} rows of split 'val'" in out
    assert json.loads((d / "calibration.json").read_text())["fitted_on"]["rows"] == len(val)

    out = lw(d, "thresholds", "--truth", "labels.csv", "--scores", "run/val_scores.csv", "--splits", "splits.csv",
             "--split", "val", "--calibration", "calibration.json", "--optimize", "instance-f1",
             "--out", "decision.json").stdout
    assert f"fitting on {len(val)} rows of split 'val'" in out
    # predict's raw probabilities: what another decision file is judged on
    lw(d, "predict", "run/model.keras", "labels.csv", "--images", "images", "--raw", "--out", "pred_raw.csv")
    assert json.loads((d / "pred_raw.csv.json").read_text())["values"] == "raw"

    # the test rows, scored by predict and by train, give the same numbers
    by_predict = evaluate_json(d, "pred.csv")
    by_train = evaluate_json(d, "run/test_predictions.csv")
    assert by_predict["summary"]["n_images"] == len(test)
    assert set(per_label(by_predict)) == set(LABELS)
    for label, auc in per_label(by_train).items():
        assert per_label(by_predict)[label] == pytest.approx(auc, abs=1e-6, nan_ok=True)
    decided = evaluate_json(d, "pred_raw.csv", "--thresholds", "decision.json")
    assert decided["summary"]["n_images"] == len(test)
    # the raw file judged by the model's own policy (its sidecar) gives train's numbers again
    by_raw = evaluate_json(d, "pred_raw.csv")
    assert by_raw["averages"]["labels_per_image_predicted"] == pytest.approx(
        by_train["averages"]["labels_per_image_predicted"], abs=1e-9)

    # predicting the folder writes ids relative to it (with the extension); they join the table too
    lw(d, "predict", "run/model.keras", "images", "--out", "pred_folder.csv")
    folder_ids = pd.read_csv(d / "pred_folder.csv", dtype=str)["id"]
    assert sorted(folder_ids) == sorted(f"{i}.png" for i in unique_ids)
    by_folder = evaluate_json(d, "pred_folder.csv")
    for label, auc in per_label(by_predict).items():
        assert per_label(by_folder)[label] == pytest.approx(auc, abs=1e-6, nan_ok=True)

    lw(d, "explain", "run/model.keras", "images/im000.png", "--out", "explain")
    assert (d / "explain" / "index.html").is_file()

    # serve: the probabilities of one posted image are predict's
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    server = subprocess.Popen([sys.executable, "-m", "labelwise", "serve", "run/model.keras", "--port", str(port),
                               "--quiet"], cwd=d, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{base}/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, server.stderr.read().decode()
            assert time.monotonic() < deadline, "labelwise serve did not become ready"
            time.sleep(0.5)
        body = (d / "images" / "im000.png").read_bytes()
        req = urllib.request.Request(f"{base}/predict", data=body, headers={"Content-Type": "image/png"})
        with urllib.request.urlopen(req, timeout=60) as r:
            served = json.loads(r.read())["predictions"][0]["probabilities"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    row = pred[pred["id"].astype(str) == "im000"].iloc[0]
    for label in LABELS:
        assert served[label] == pytest.approx(float(row[f"p_{label}"]), abs=1e-4)
