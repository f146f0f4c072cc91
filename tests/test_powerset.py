"""Label powerset: encode/decode, marginal scores against brute force, unpredictable combinations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from labelwise import LabelSchema
from labelwise.errors import InputError
from labelwise.powerset import LabelPowerset, powerset_scores_to_label_scores

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
    from labelwise.models import build_model

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
