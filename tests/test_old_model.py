"""Models saved by the code before the package layout moved still load and predict the same.

The files in ``fixtures/old_model/`` were written once by ``make.py`` with main at a208a9b
(flat modules: ``labelwise.blocks.layers``, ``labelwise.blocks.models``, ``labelwise.training.artifact``). Keras
stores each object by its registered name (``labelwise>SchemaHead``), so those names must
never change; this test fails if one does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import labelwise  # noqa: E402,F401  (registers labelwise's Keras objects)

FIXTURES = Path(__file__).parent / "fixtures" / "old_model"


@pytest.fixture(scope="module")
def data():
    return np.load(FIXTURES / "inputs.npz")


@pytest.mark.backend
def test_old_image_artifact_loads_and_predicts_the_same(data):
    model = keras.saving.load_model(FIXTURES / "image_model.keras", compile=False)
    np.testing.assert_allclose(model.predict(data["x"], verbose=0), data["image_scores"], rtol=1e-5, atol=1e-6)
    meta = labelwise.training.artifact.metadata_of(model)
    assert list(meta.schema.labels) == ["a", "b", "PA", "AP", "none"]
    assert meta.thresholds is not None and meta.preprocessing["image_size"] == [16, 16]


def test_old_image_artifact_through_labelwise_load(data):
    model, schema, thresholds, pre = labelwise.training.artifact.load(FIXTURES / "image_model.keras")
    assert schema.n_outputs == 4 and pre.channels == 1 and tuple(pre.image_size) == (16, 16)
    assert set(thresholds.labels) <= set(schema.labels)
    np.testing.assert_allclose(model.predict(data["x"], verbose=0), data["image_scores"], rtol=1e-5, atol=1e-6)


@pytest.mark.backend
def test_old_case_model_loads_and_predicts_the_same(data):
    model = keras.saving.load_model(FIXTURES / "case_model.keras", compile=False)
    got = model.predict([data["images"], data["mask"]], verbose=0)
    np.testing.assert_allclose(got, data["case_scores"], rtol=1e-5, atol=1e-6)


def test_old_powerset_model_loads_decodes_and_predicts_the_same(data):
    model = keras.saving.load_model(FIXTURES / "powerset_model.keras", compile=False)
    got = model.predict(data["x"], verbose=0)
    np.testing.assert_allclose(got, data["powerset_scores"], rtol=1e-5, atol=1e-6)
    ps = labelwise.LabelPowerset.from_model(model)
    scores, decisions = ps.decode(got)
    assert scores.shape == decisions.shape == (4, 5)
    # every decision names exactly one view and the none column is derived
    np.testing.assert_array_equal(decisions[:, 2:4].sum(axis=1), 1)
    np.testing.assert_array_equal(decisions[:, 4], 1 - decisions[:, :2].max(axis=1))
