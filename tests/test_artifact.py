"""The one artifact: model.keras with schema, thresholds and preprocessing, loadable by plain
``keras.saving.load_model`` in a fresh process (only ``import labelwise, keras``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from conftest import ROOT

keras = pytest.importorskip("keras")

from labelwise import LabelSchema  # noqa: E402
from labelwise.training import artifact  # noqa: E402
from labelwise.errors import InputError  # noqa: E402
from labelwise.blocks.models import build_model  # noqa: E402
from labelwise.decide.thresholds import Thresholds, decide, tune_thresholds  # noqa: E402

SCHEMA = LabelSchema(independent=("cat", "dog"), exclusive={"view": ("indoor", "outdoor")}, none="nothing")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("artifact")
    keras.utils.set_random_seed(0)
    model = build_model(SCHEMA, backbone="small_cnn", input_shape=(16, 16, 1), weights=None)
    model.compile(optimizer="adam", loss="binary_crossentropy")  # an optimizer must not leak into the file
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(40, 16, 16, 1)).astype("float32")
    model.fit(x, rng.integers(0, 2, size=(40, SCHEMA.n_outputs)).astype("float32"), epochs=1, verbose=0)
    scores = SCHEMA.complete_scores(model.predict(x, verbose=0))
    y = SCHEMA.encode([["cat", "indoor"], ["dog", "outdoor"], ["nothing", "indoor"], ["cat", "dog", "outdoor"]] * 10)
    thresholds = tune_thresholds(y, scores, schema=SCHEMA)
    path = artifact.save(model, folder / "model.keras", SCHEMA, thresholds,
                         artifact.Preprocessing((16, 16), 1), info={"note": "test"})
    np.save(folder / "x.npy", x)
    return folder, path, model, thresholds, x


@pytest.mark.backend
def test_load_returns_model_and_metadata(saved):
    folder, path, model, thresholds, x = saved
    loaded, schema, thr, pre = artifact.load(path)
    assert schema == SCHEMA
    assert isinstance(thr, Thresholds)
    np.testing.assert_array_equal(thr.values, thresholds.values)
    assert thr.labels == thresholds.labels
    assert pre.image_size == (16, 16) and pre.channels == 1
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert artifact.metadata_of(loaded).info == {"note": "test"}
    # the artifact is for predicting: no optimizer state inside, and no temporary file left
    names = zipfile.ZipFile(path).namelist()
    with zipfile.ZipFile(path) as z, z.open("model.weights.h5") as f:
        import h5py

        assert "optimizer" not in h5py.File(f, "r")
    assert "config.json" in names
    assert sorted(p.name for p in folder.iterdir()) == ["model.keras", "x.npy"]


@pytest.mark.slow
def test_fresh_process_plain_keras_load_gives_identical_outputs(saved, tmp_path):
    folder, path, model, thresholds, x = saved
    code = f"""
import json, sys
import numpy as np
import labelwise, keras
m = keras.saving.load_model({str(path)!r})
meta = m.get_layer("labelwise_metadata")
head = m.get_layer("schema_head")
np.save({str(tmp_path / "out.npy")!r}, m.predict(np.load({str(folder / "x.npy")!r}), verbose=0))
json.dump({{"schema": meta.get_config()["schema"], "head_schema": head.schema.to_dict(),
           "thresholds": meta.get_config()["thresholds"]["values"] if "values" in meta.get_config()["thresholds"]
           else None, "preprocessing": meta.get_config()["preprocessing"]}}, open({str(tmp_path / "meta.json")!r}, "w"))
"""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = np.load(tmp_path / "out.npy")
    np.testing.assert_array_equal(out, model.predict(x, verbose=0))
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert LabelSchema.from_dict(meta["schema"]) == SCHEMA
    assert LabelSchema.from_dict(meta["head_schema"]) == SCHEMA
    assert meta["preprocessing"]["image_size"] == [16, 16]
    # decisions from the reloaded outputs obey the schema
    d = decide(SCHEMA.complete_scores(out), SCHEMA, thresholds)
    SCHEMA.validate(d)


@pytest.mark.backend
def test_resaving_replaces_thresholds_without_nesting(saved, tmp_path):
    _, path, _, _, x = saved
    loaded, schema, thr, pre = artifact.load(path)
    new = {"labels": list(thr.labels), "values": [0.9] * len(thr.labels), "method": "fixed"}
    new_thr = Thresholds.from_dict({**thr.to_dict(), **new})
    again = artifact.save(loaded, tmp_path / "again.keras", schema, new_thr, pre)
    m2, _, thr2, _ = artifact.load(again)
    assert sum(isinstance(layer, artifact.LabelwiseMetadata) for layer in m2.layers) == 1
    np.testing.assert_array_equal(thr2.values, 0.9)
    np.testing.assert_array_equal(m2.predict(x, verbose=0), loaded.predict(x, verbose=0))


@pytest.mark.backend
def test_errors_name_the_file(tmp_path, saved):
    with pytest.raises(InputError, match="does not exist"):
        artifact.load(tmp_path / "nope.keras")
    bad = tmp_path / "bad.keras"
    bad.write_text("not a zip")
    with pytest.raises(InputError, match="bad.keras"):
        artifact.load(bad)
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    plain.save(tmp_path / "plain.keras")
    with pytest.raises(InputError, match="not a labelwise artifact"):
        artifact.load(tmp_path / "plain.keras")
    with pytest.raises(InputError, match=".keras"):
        artifact.save(plain, tmp_path / "model.h5", SCHEMA)
