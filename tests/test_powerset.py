"""Label powerset: encode/decode, marginal scores against brute force, unpredictable combinations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from labelwise import LabelSchema
from labelwise.errors import InputError
from labelwise.labels.powerset import LabelPowerset, powerset_scores_to_label_scores

SCHEMA = LabelSchema(["Mass", "Edema", "Nodule"], none="No Finding")


def _y(rows):
    return SCHEMA.encode(rows)


TRAIN = _y(["Mass", "Mass|Edema", "No Finding", "No Finding", "Edema", "Mass", "No Finding"])


def test_fit_orders_classes_by_frequency_and_encodes():
    ps = LabelPowerset(SCHEMA).fit(TRAIN)
    assert ps.n_classes == 4
    assert SCHEMA.decode(ps.classes) == [["No Finding"], ["Mass"], ["Mass", "Edema"], ["Edema"]]
    # ties (one each) keep training row order
    assert ps.counts.tolist() == [3, 2, 1, 1]
    ids = ps.encode(_y(["Mass|Edema", "No Finding"]))
    assert ids.tolist() == [2, 0]
    assert ps.one_hot(_y(["Edema"])).tolist() == [[0, 0, 0, 1]]
    # head-output matrices (without the none column) encode the same
    assert ps.encode(TRAIN[:, :3]).tolist() == ps.encode(TRAIN).tolist()


def test_unseen_combinations_error_or_minus_one_and_are_reported():
    ps = LabelPowerset.from_targets(TRAIN, SCHEMA)
    test = _y(["Mass|Nodule", "Nodule", "Mass", "Nodule", "Mass|Edema|Nodule"])
    with pytest.raises(InputError, match=r"row 0: the combination \['Mass', 'Nodule'\] never occurs"):
        ps.encode(test)
    assert ps.encode(test, unseen=-1).tolist() == [-1, -1, 1, -1, -1]
    assert ps.unpredictable(test) == [(["Nodule"], 2), (["Mass", "Nodule"], 1), (["Mass", "Edema", "Nodule"], 1)]
    assert ps.unpredictable(TRAIN) == []


def test_decode_marginalises_over_combinations_brute_force():
    ps = LabelPowerset(SCHEMA).fit(TRAIN)
    probs = np.random.default_rng(0).dirichlet(np.ones(ps.n_classes), size=6)
    scores, decisions = ps.decode(probs)
    assert scores.shape == decisions.shape == (6, SCHEMA.n_labels)
    for i in range(6):
        for j, label in enumerate(SCHEMA.labels):
            total = 0.0
            for k, combo in enumerate(SCHEMA.decode(ps.classes)):
                if label in combo:
                    total += probs[i, k]
            assert scores[i, j] == pytest.approx(total)
        assert SCHEMA.decode(decisions[i:i + 1])[0] == SCHEMA.decode(ps.classes)[int(probs[i].argmax())]


def test_exclusive_groups_keep_their_sum_after_decoding():
    schema = LabelSchema(["a", "b"], {"view": ["PA", "AP"]})
    y = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [1, 1, 1, 0], [0, 0, 0, 1]])
    ps = LabelPowerset(schema).fit(y)
    probs = np.random.default_rng(1).dirichlet(np.ones(ps.n_classes), size=5)
    scores = powerset_scores_to_label_scores(probs, ps.classes, schema)
    np.testing.assert_allclose(scores[:, 2:4].sum(axis=1), 1.0)
    # enumerate all 2^4 combinations independently: the marginal of each column is a weighted count
    all_combos = np.array(list(itertools.product([0, 1], repeat=4)))
    full = np.zeros((5, len(all_combos)))
    for k, c in enumerate(ps.classes):
        full[:, int(np.flatnonzero((all_combos == c).all(axis=1))[0])] = probs[:, k]
    np.testing.assert_allclose(scores, full @ all_combos)


def test_round_trip_and_errors():
    ps = LabelPowerset(SCHEMA).fit(TRAIN)
    back = LabelPowerset.from_dict(ps.to_dict())
    assert np.array_equal(back.classes, ps.classes) and back.encode(TRAIN).tolist() == ps.encode(TRAIN).tolist()
    with pytest.raises(InputError, match="not fitted"):
        LabelPowerset(SCHEMA).encode(TRAIN)
    with pytest.raises(InputError, match="shape"):
        LabelPowerset(SCHEMA).fit(np.zeros((3, 7)))
    with pytest.raises(InputError, match="do not fit"):
        powerset_scores_to_label_scores(np.ones((2, 3)), ps.classes, SCHEMA)


def test_powerset_model_trains_and_decodes():
    keras = pytest.importorskip("keras")
    from labelwise.blocks.models import build_model

    ps = LabelPowerset(SCHEMA).fit(TRAIN)
    model = build_model(SCHEMA, "small_cnn", input_shape=(8, 8, 1), weights=None, powerset=ps)
    assert model.layers[-1].name == "powerset_head" and model.output_shape == (None, ps.n_classes)
    x = np.random.default_rng(2).uniform(0, 255, (len(TRAIN), 8, 8, 1)).astype("float32")
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.fit(x, ps.one_hot(TRAIN), epochs=1, verbose=0)
    probs = np.asarray(keras.ops.convert_to_numpy(model(x)))
    scores, decisions = ps.decode(probs)
    assert scores.shape == (len(TRAIN), SCHEMA.n_labels)
    np.testing.assert_allclose(scores[:, -1], probs[:, 0], rtol=1e-6)  # class 0 is the only no-finding combination
    assert set(map(tuple, decisions[:, :3])) <= set(map(tuple, ps.classes))


# ------------------------------------------------------------- the Keras head
_DECODE_CHILD = """
import json, sys
import numpy as np
import keras
from labelwise import LabelPowerset

model = keras.saving.load_model(sys.argv[1])
ps = LabelPowerset.from_model(model)
probs = model.predict(np.load(sys.argv[2]), verbose=0)
scores, decisions = ps.decode(probs)
np.save(sys.argv[1] + ".scores.npy", scores)
print("RESULT" + json.dumps({"decisions": ps.schema.decode(decisions), "classes": ps.classes.tolist(),
                             "counts": ps.counts.tolist(), "labels": list(ps.schema.labels),
                             "head": type(model.get_layer("powerset_head")).__name__}))
"""


@pytest.mark.slow
def test_saved_powerset_model_decodes_on_its_own(tmp_path):
    """A fresh process gets everything it needs to decode from the .keras file alone."""
    import json
    import os
    import subprocess
    import sys

    pytest.importorskip("keras")
    from labelwise.blocks.models import build_model

    ps = LabelPowerset(SCHEMA).fit(TRAIN)
    model = build_model(SCHEMA, "small_cnn", input_shape=(8, 8, 1), weights=None, powerset=ps)
    x = np.random.default_rng(3).uniform(0, 255, (5, 8, 8, 1)).astype("float32")
    probs = model.predict(x, verbose=0)
    ref_scores, ref_decisions = ps.decode(probs)  # the original, separately kept powerset
    path = tmp_path / "ps.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", _DECODE_CHILD, str(path), str(tmp_path / "x.npy")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert out["head"] == "PowersetHead"
    assert out["classes"] == ps.classes.tolist() and out["counts"] == ps.counts.tolist()
    assert out["labels"] == list(SCHEMA.labels)
    assert out["decisions"] == SCHEMA.decode(ref_decisions)
    np.testing.assert_allclose(np.load(str(path) + ".scores.npy"), ref_scores, rtol=1e-5, atol=1e-6)


def test_powerset_head_config_and_errors():
    keras = pytest.importorskip("keras")
    from labelwise.blocks.layers import PowersetHead
    from labelwise.blocks.models import build_model
    from labelwise.blocks.layers import build_powerset_head

    ps = LabelPowerset(SCHEMA).fit(TRAIN)
    head = build_powerset_head(ps)
    assert isinstance(head, PowersetHead) and head.name == "powerset_head"
    feats = np.random.default_rng(4).normal(size=(3, 6)).astype("float32")
    probs = np.asarray(keras.ops.convert_to_numpy(head(feats)), dtype=np.float64)
    kernel, bias = (np.asarray(keras.ops.convert_to_numpy(w), dtype=np.float64) for w in head.dense.weights)
    z = feats.astype(np.float64) @ kernel + bias
    ref = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs, ref / ref.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(head))
    assert type(clone) is PowersetHead and clone.get_config() == head.get_config()
    back = clone.powerset
    assert back.schema == SCHEMA and np.array_equal(back.classes, ps.classes)
    assert back.counts.tolist() == ps.counts.tolist()
    assert back.encode(TRAIN).tolist() == ps.encode(TRAIN).tolist()

    with pytest.raises(InputError, match=r"\(n_classes, 3\) 0/1 array"):
        PowersetHead([[1, 0]], SCHEMA)
    with pytest.raises(InputError, match="same label combination twice"):
        PowersetHead([[1, 0, 0], [1, 0, 0]], SCHEMA)
    with pytest.raises(InputError, match="counts has 1 values for 2 classes"):
        PowersetHead([[1, 0, 0], [0, 0, 0]], SCHEMA, counts=[3])
    with pytest.raises(InputError, match="output must be"):
        PowersetHead([[1, 0, 0]], SCHEMA, output="softmax")
    other = LabelPowerset(LabelSchema(["x", "y"])).fit(np.array([[1, 0], [0, 1]]))
    with pytest.raises(InputError, match="different schema"):
        build_model(SCHEMA, "small_cnn", input_shape=(8, 8, 1), weights=None, powerset=other)
    # a class count alone builds a head that cannot decode, and from_model says so
    plain = build_model(SCHEMA, "small_cnn", input_shape=(8, 8, 1), weights=None, powerset=4)
    with pytest.raises(InputError, match="does not store the label combinations"):
        LabelPowerset.from_model(plain)
    with pytest.raises(InputError, match="no layer named 'powerset_head'"):
        LabelPowerset.from_model(build_model(SCHEMA, "small_cnn", input_shape=(8, 8, 1), weights=None))
    with pytest.raises(InputError, match="class count >= 1"):
        build_powerset_head(0)


@pytest.mark.backend
def test_keras_powerset_label_scores_match_numpy():
    keras = pytest.importorskip("keras")
    from labelwise.blocks.layers import powerset_label_scores

    for schema, y in ((SCHEMA, TRAIN),
                      (LabelSchema(["a", "b"], {"view": ["PA", "AP"]}, none="none"),
                       LabelSchema(["a", "b"], {"view": ["PA", "AP"]}, none="none").encode(
                           ["a|PA", "PA", "b|AP", "a|b|AP", "AP"]))):
        ps = LabelPowerset(schema).fit(y)
        probs = np.random.default_rng(5).dirichlet(np.ones(ps.n_classes), size=4).astype("float32")
        ours = np.asarray(keras.ops.convert_to_numpy(powerset_label_scores(probs, ps.classes, schema)))
        np.testing.assert_allclose(ours, powerset_scores_to_label_scores(probs, ps.classes, schema),
                                   rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="3 columns but there are 4 powerset classes"):
        powerset_label_scores(np.ones((1, 3), "float32"), LabelPowerset(SCHEMA).fit(TRAIN).classes, SCHEMA)
