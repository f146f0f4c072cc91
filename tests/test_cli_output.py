"""No TensorFlow native log noise, warnings without source lines, no escape-code
progress bars written into files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labelwise.commands.cli import main
from labelwise.commands.noise import is_noise

SRC = str(Path(__file__).resolve().parents[1] / "src")

# lines the user saw on a CPU machine
NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795841166.859493    6388 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
    "GPU will not be used.",
    "E0000 00:00:1795841172.318679    6388 cuda_executor.cc:1228] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)",
    "W0000 00:00:1795841172.318679    6388 local_rendezvous.cc:404] Local rendezvous is aborting with status: "
    "OUT_OF_RANGE: End of sequence",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate "
    "compiler flags.",
]


def test_noise_lines_are_recognised_and_messages_are_not():
    assert all(is_noise(line) for line in NOISE)
    assert not is_noise("labelwise train: error: t.csv: duplicate id 'a'")
    assert not is_noise("F0000 00:00:1.0 1 check.cc:1] Check failed: fatal")  # fatal errors stay


def test_warnings_are_printed_as_the_message_alone(tmp_path):
    (tmp_path / "t.csv").write_text("id,labels\na,x\nb,y\na,x\n")
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run([sys.executable, "-m", "labelwise", "inspect", str(tmp_path / "t.csv")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    warned = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(warned) == 1 and warned[0].startswith("labelwise inspect: warning: "), run.stderr
    assert "duplicate row(s)" in warned[0]
    assert ".py:" not in run.stderr and "args.func" not in run.stderr and "UserWarning" not in run.stderr


def test_what_the_reader_chose_is_a_note_and_a_problem_is_a_warning(tmp_path):
    (tmp_path / "t.csv").write_text("Image Index,Finding Labels,Patient ID\na.png,Mass,1\nb.png,No Finding,2\n"
                                    "a.png,Mass,1\n")
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run([sys.executable, "-m", "labelwise", "inspect", str(tmp_path / "t.csv")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    notes = [ln for ln in lines if ln.startswith("labelwise inspect: note: ")]
    warned = [ln for ln in lines if ln.startswith("labelwise inspect: warning: ")]
    assert len(notes) == 1 and "read as nih" in notes[0] and "'Patient ID'" in notes[0], run.stderr
    assert len(warned) == 1 and "duplicate row(s)" in warned[0], run.stderr


@pytest.mark.slow
def test_predict_into_a_file_has_no_native_logs_and_no_escape_codes(tmp_path):
    keras = pytest.importorskip("keras")
    from labelwise import LabelSchema
    from labelwise.training import artifact
    from labelwise.blocks.models import build_model
    from labelwise.decide.thresholds import Thresholds

    schema = LabelSchema(independent=("a", "b"))
    model = build_model(schema, backbone="small_cnn", input_shape=(8, 8, 1), weights=None)
    path = artifact.save(model, tmp_path / "m.keras", schema, Thresholds(labels=schema.labels, values=[0.5, 0.5],
                                                                        method="fixed"),
                         artifact.Preprocessing((8, 8), 1))
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    run = subprocess.run([sys.executable, "-m", "labelwise", "predict", str(path), str(tmp_path),
                          "--out", str(tmp_path / "p.csv")], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert not [ln for ln in run.stderr.splitlines() if is_noise(ln)], run.stderr
    assert "\x1b[" not in run.stdout and "\x1b[" not in run.stderr
    assert "3 image(s)" in run.stdout
    del keras
