"""labelwise without TensorFlow: train -> predict -> evaluate on the Python pipeline, exact resume,
precision and jit_compile, and clear errors for what needs TensorFlow or a missing backend.

Every test here runs on any backend (the CI runs them in environments with Keras + JAX and
Keras + torch and no TensorFlow); where TensorFlow is installed, its absence is simulated.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from labelwise import LabelSchema  # noqa: E402
from labelwise.commands.cli import main  # noqa: E402
from labelwise.data import choose as sources  # noqa: E402  (where the pipeline is chosen)
from labelwise.errors import InputError  # noqa: E402
from labelwise.training import TrainConfig  # noqa: E402

from conftest import MNIST_IDX, ROOT, require  # noqa: E402

pytestmark = pytest.mark.backend
SCHEMA = LabelSchema(independent=("greater_than_5", "even"), none="small_odd")


def _digit_table(folder, n=(64, 32, 32), epochs=2, extra=""):
    from PIL import Image

    from labelwise.labels.tables import read_mnist_idx

    mnist = read_mnist_idx(require(MNIST_IDX) / "t10k-images-idx3-ubyte.gz", MNIST_IDX / "t10k-labels-idx1-ubyte.gz")
    digits = mnist.extra["digit"].to_numpy()
    (folder / "images").mkdir(parents=True)
    rows, i = [], 0
    for split, count in zip(("train", "val", "test"), n):
        for _ in range(count):
            d = int(digits[i])
            labels = [lab for lab, on in (("greater_than_5", d > 5), ("even", d % 2 == 0)) if on] or ["small_odd"]
            Image.fromarray(mnist.images[i]).save(folder / "images" / f"d{i:04d}.png")
            rows.append({"id": f"d{i:04d}.png", "labels": "|".join(labels), "split": split})
            i += 1
    pd.DataFrame(rows).to_csv(folder / "labels.csv", index=False)
    SCHEMA.save(folder / "schema.toml")
    config = folder / "train.toml"
    config.write_text(textwrap.dedent(f"""
        schema = "schema.toml"
        table = "labels.csv"
        images = "images"
        split_column = "split"
        backbone = "small_cnn"
        image_size = [12, 12]
        channels = 1
        bn_momentum = 0.9
        epochs = {epochs}
        batch_size = 16
        learning_rate = 0.003
        seed = 5
        verbose = 0
        bootstrap = 0
        plots = false
        pipeline = "python"
        out_dir = "run"
    """) + extra)
    return config


@pytest.mark.slow
def test_train_predict_evaluate_on_the_python_pipeline(tmp_path):
    config = _digit_table(tmp_path)
    assert main(["train", str(config)]) == 0
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["pipeline"] == "python"
    test_ids = pd.read_csv(tmp_path / "labels.csv").query("split == 'test'")["id"]
    pd.DataFrame({"path": test_ids}).to_csv(tmp_path / "test.csv", index=False)
    assert main(["predict", str(run / "model.keras"), str(tmp_path / "test.csv"), "--images", str(tmp_path / "images"),
                 "--out", str(tmp_path / "pred.csv"), "--quiet", "--pipeline", "python"]) == 0
    pred = pd.read_csv(tmp_path / "pred.csv")
    during = pd.read_csv(run / "test_predictions.csv")
    cols = [f"p_{lab}" for lab in SCHEMA.labels]
    # the artifact, reloaded, scores the test images as training's own final prediction did. The
    # batches differ (JAX: float noise ~1e-6 in the logits) and the p_ columns are Platt-calibrated,
    # which scales logit noise by the fitted slope: 2e-5 still tells a wrong image or label apart.
    np.testing.assert_allclose(pred[cols].to_numpy(), during[cols].to_numpy(), atol=2e-5)
    truth = tmp_path / "truth.csv"
    pd.read_csv(tmp_path / "labels.csv").query("split == 'test'")[["id", "labels"]].to_csv(truth, index=False)
    assert main(["evaluate", "--truth", str(truth), "--schema", str(tmp_path / "schema.toml"),
                 "--scores", str(run / "test_predictions.csv"), "--out", str(tmp_path / "eval")]) in (0, 1)
    metrics = json.loads((run / "report" / "metrics.json").read_text())
    assert metrics  # the run's own report, written without TensorFlow


@pytest.mark.slow
def test_resume_repeats_the_uninterrupted_run_exactly(tmp_path):
    aug = '\naugment = { rotate = 8.0, shift = 0.1, brightness = 0.05 }\n'
    whole = _digit_table(tmp_path / "a", n=(48, 16, 0), epochs=2, extra=aug)
    assert main(["train", str(whole)]) == 0
    part = _digit_table(tmp_path / "b", n=(48, 16, 0), epochs=1, extra=aug)
    assert main(["train", str(part)]) == 0
    assert main(["train", str(part), "--epochs", "2", "--resume"]) == 0
    a = pd.read_csv(tmp_path / "a" / "run" / "log.csv")
    b = pd.read_csv(tmp_path / "b" / "run" / "log.csv")
    np.testing.assert_allclose(b[["loss", "val_loss", "val_macro_auc"]].to_numpy(),
                               a[["loss", "val_loss", "val_macro_auc"]].to_numpy(), rtol=1e-6, atol=1e-7)
    # the other pipeline orders differently: resuming with it is refused, naming the setting
    if sources.tensorflow_installed():
        with pytest.raises(InputError, match="pipeline"):
            from labelwise.training import train

            train(TrainConfig.from_toml(part, epochs=3, resume=True, pipeline="tf"))


def test_tf_only_parts_say_so_without_tensorflow(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(sources, "tensorflow_installed", lambda: False)
    assert sources.resolve_pipeline("auto") == "python"
    with pytest.raises(InputError, match="needs TensorFlow, which is not installed"):
        sources.resolve_pipeline("tf")
    with pytest.raises(InputError, match="TFRecord.*TensorFlow is not installed"):
        sources.resolve_pipeline("auto", shards=True)
    config = _digit_table(tmp_path, n=(16, 16, 0))
    assert main(["train", str(config), "--pipeline", "tf"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pipeline = 'tf' needs TensorFlow" in err[0]
    assert main(["train", str(config), "--pipeline", "auto", "--train-shards", str(tmp_path)]) == 2
    assert "TFRecord" in capsys.readouterr().err
    monkeypatch.undo()
    with pytest.raises(InputError, match="only the tf.data pipeline"):
        sources.resolve_pipeline("python", shards=True)


def test_bad_speed_settings_are_refused():
    for key, value, what in (("pipeline", "torch", "pipeline must be"), ("precision", "float16", "precision must be"),
                             ("jit_compile", "maybe", "jit_compile must be")):
        with pytest.raises(InputError, match=what):
            TrainConfig(**{key: value})
    assert TrainConfig(jit_compile="false").jit_compile is False
    assert TrainConfig(jit_compile=True).jit_compile is True


def test_mixed_precision_keeps_float32_outputs_and_scales_float16_losses():
    from labelwise.training.phases import build_and_compile
    from labelwise.training.runtime import has_gpu, precision_policy

    config = TrainConfig(image_size=(12, 12), channels=1, epochs=1)
    x = np.random.default_rng(0).uniform(0, 255, (4, 12, 12, 1)).astype("float32")
    for precision in ("mixed_bfloat16", "mixed_float16"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with precision_policy(precision):
                model = build_and_compile(config, SCHEMA)
        slow = [w for w in caught if "mixed_float16' on a CPU" in str(w.message)]
        assert bool(slow) == (precision == "mixed_float16" and not has_gpu())
        conv = next(layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Conv2D))
        assert conv.compute_dtype == precision.split("_")[1] and conv.variable_dtype == "float32"
        head = model.get_layer("schema_head")
        assert head.compute_dtype == "float32"
        out = model.predict(x, verbose=0)
        assert out.dtype == np.float32 and np.all((out >= 0) & (out <= 1))
        scaled = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        assert scaled == (precision == "mixed_float16")
    assert keras.config.dtype_policy().name == "float32"  # restored


def test_a_missing_backend_is_one_clear_line(tmp_path):
    missing = next((b for b in ("torch", "jax", "tensorflow") if importlib.util.find_spec(b) is None), None)
    if missing is None:
        pytest.skip("every backend is installed here")
    env = {**os.environ, "KERAS_BACKEND": missing, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-m", "labelwise", "train", "--table", str(tmp_path / "x.csv")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{missing} is not installed" in lines[0] and "KERAS_BACKEND" in lines[0], proc.stderr
