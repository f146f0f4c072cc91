"""Keras: the structured SchemaHead (max-constraint, derived labels, at-most-one
softmax with an absent member) and the unknown-masking losses.

References are independent: numpy on the head's own outputs, the unmasked loss on the known
entries alone, hand-computed cross-entropies. A model with the new head is saved and loaded in a
fresh process with no custom_objects.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from labelwise import LabelSchema  # noqa: E402
from labelwise.labels.structure import derive_scores  # noqa: E402

pytestmark = pytest.mark.backend

ISSUE = LabelSchema(
    independent=("Pneumonia", "Viral", "Bacterial", "Effusion"), none="No Finding",
    implies={"Viral": ["Pneumonia"], "Bacterial": ["Pneumonia"], "severe": ["Effusion"]},
    derived={"Infection": {"any_of": ["Viral", "Bacterial"]}},
    at_most_one={"severity": ("mild", "moderate", "severe")},
    unknown_values=("", "-1"), unknown_policy={"default": "ignore", "Effusion": "positive"},
)
DIGITS = tuple(str(d) for d in range(10))
DERIVED_DIGITS = LabelSchema(exclusive={"digit": DIGITS}, derived={
    "even": {"any_of": ["0", "2", "4", "6", "8"]}, "greater_than_5": {"any_of": ["6", "7", "8", "9"]}})


def _head_outputs(schema, n=64, seed=0):
    from labelwise.blocks.layers import SchemaHead

    x = np.random.default_rng(seed).normal(0, 3, (n, 5)).astype("float32")
    head = SchemaHead(schema)
    p = keras.ops.convert_to_numpy(head(x))
    logits_head = SchemaHead(schema, output="logits")
    logits_head.build(x.shape)
    logits_head.set_weights(head.get_weights())
    z = keras.ops.convert_to_numpy(logits_head(x))
    return p, z


def test_head_is_coherent_by_construction():
    from labelwise.blocks.layers import schema_activation

    s = ISSUE
    p, z = _head_outputs(s)
    assert p.shape == (64, s.n_outputs) and z.shape == (64, s.n_outputs)
    col = {x: s.labels.index(x) for x in s.output_labels}
    for child, parents in s.implies.items():
        for parent in parents:
            assert (p[:, col[child]] <= p[:, col[parent]] + 1e-6).all(), (child, parent)
    sev = p[:, col["mild"]:col["severe"] + 1]
    assert (sev.sum(axis=1) <= 1 + 1e-6).all() and (sev.sum(axis=1) < 0.999).any()  # the absent member has mass
    # derived = noisy-OR of its (constrained) sources, recomputed in numpy from the head's own outputs
    np.testing.assert_allclose(p[:, s.n_free:], derive_scores(p[:, :s.n_free], s), rtol=1e-4, atol=1e-6)
    # logits mode + the activation gives the probabilities
    np.testing.assert_allclose(keras.ops.convert_to_numpy(schema_activation(z, s)), p, rtol=1e-5, atol=1e-6)


def test_derived_over_a_group_is_the_sum_of_its_members():
    s = DERIVED_DIGITS
    p, _ = _head_outputs(s)
    digits = p[:, :10]
    np.testing.assert_allclose(digits.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(p[:, 10], digits[:, [0, 2, 4, 6, 8]].sum(axis=1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(p[:, 11], digits[:, [6, 7, 8, 9]].sum(axis=1), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["bce", "focal", "asymmetric"])
@pytest.mark.parametrize("from_logits", [False, True])
def test_binary_losses_mask_unknown_entries(name, from_logits):
    from labelwise.blocks.losses import asymmetric_loss, binary_focal_loss, weighted_binary_crossentropy

    fn = {"bce": weighted_binary_crossentropy, "focal": binary_focal_loss, "asymmetric": asymmetric_loss}[name]
    rng = np.random.default_rng(3)
    y = (rng.random((6, 4)) < 0.5).astype("float32")
    y[rng.random((6, 4)) < 0.3] = -1
    pred = rng.normal(0, 2, (6, 4)).astype("float32") if from_logits else rng.uniform(0.02, 0.98, (6, 4)).astype("float32")
    got = keras.ops.convert_to_numpy(fn(y, pred, from_logits=from_logits))
    known = y >= 0
    # reference: the unmasked loss over the known entries alone, laid out as one row
    ref = keras.ops.convert_to_numpy(fn(y[known][None, :], pred[known][None, :], from_logits=from_logits))[0]
    assert got.mean() == pytest.approx(ref, rel=1e-5)
    # no gradient through unknown entries: moving their predictions changes nothing
    moved = pred.copy()
    moved[~known] = (-pred[~known]) if from_logits else 1.0 - pred[~known]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fn(y, moved, from_logits=from_logits)), got, rtol=1e-6)
    # policy positive == the same targets with 1 written in the unknown cells
    filled = np.where(known, y, 1.0).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fn(y, pred, from_logits=from_logits, unknown="positive")),
                               keras.ops.convert_to_numpy(fn(filled, pred, from_logits=from_logits)), rtol=1e-6)


def _bce(y, p):
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def test_schema_loss_policy_groups_absent_and_derived_by_hand():
    from labelwise.blocks.losses import SchemaLoss

    s = ISSUE
    L = s.labels
    p, _ = _head_outputs(s, n=2, seed=5)
    y = np.zeros((2, s.n_labels), dtype="float32")
    y[0, [L.index("Pneumonia"), L.index("Viral"), L.index("Infection"), L.index("moderate")]] = 1
    y[0, L.index("Effusion")] = -1                      # policy positive -> trained as 1
    y[0, L.index("Bacterial")] = -1                     # ignored
    y[1, L.index("mild")] = -1                          # severity unknown on row 1 -> group masked
    y[1, L.index("Infection")] = -1                     # derived unknown -> masked
    y[1, L.index("No Finding")] = 1
    got = keras.ops.convert_to_numpy(SchemaLoss(s, reduction="none")(y, p))
    pc = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    # independent block: mean over its known entries (7 of 8), Effusion counted as positive
    yi = np.where(y[:, :4] < 0, np.array([[-1, -1, -1, 1]]), y[:, :4])
    m = yi >= 0
    ind = (_bce(np.maximum(yi, 0), pc[:, :4]) * m).sum(axis=1) * 2 / m.sum()
    # at-most-one: row 0 only (moderate), with the absent member; normalised over the 1 known row
    sev = np.concatenate([p[:, 4:7], 1 - p[:, 4:7].sum(axis=1, keepdims=True)], axis=1)
    grp = np.array([-np.log(sev[0, 1]) * 2 / 1, 0.0])
    der = np.array([_bce(1.0, pc[0, 7]) * 2 / 1, 0.0])
    np.testing.assert_allclose(got, ind + grp + der, rtol=1e-4)


@pytest.mark.slow
def test_fit_with_unknown_targets_and_reload_in_a_fresh_process(tmp_path):
    from labelwise.blocks.layers import SchemaHead
    from labelwise.blocks.losses import SchemaLoss
    from labelwise.labels.structure import apply_policy

    s = ISSUE
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype("float32")
    yk = s.encode([["Pneumonia", "Viral"] if i % 3 == 0 else ["Effusion", "mild"] if i % 3 == 1 else ["No Finding"]
                   for i in range(32)])
    known = rng.random(yk.shape) > 0.3
    y = apply_policy(yk, known, s)
    inputs = keras.Input((6,))
    model = keras.Model(inputs, SchemaHead(s)(keras.layers.Dense(8, activation="relu")(inputs)))
    model.compile(optimizer="adam", loss=SchemaLoss(s))
    hist = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(hist.history["loss"]).all()
    path = tmp_path / "structured.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    expected = model.predict(x, verbose=0)
    code = textwrap.dedent(f"""
        import numpy as np, keras, labelwise  # labelwise registers its objects; no custom_objects
        model = keras.saving.load_model({str(path)!r})
        head = model.get_layer("schema_head")
        assert head.schema.implies and head.schema.derived and head.schema.at_most_one, head.schema
        assert type(model.loss).__name__ == "SchemaLoss" and model.loss.schema == head.schema
        np.save({str(tmp_path / "child.npy")!r}, model.predict(np.load({str(tmp_path / "x.npy")!r}), verbose=0))
        print("CHILD OK")
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=240)
    assert "CHILD OK" in out.stdout, out.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "child.npy"), expected, rtol=1e-5, atol=1e-6)
