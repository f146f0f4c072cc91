"""Losses against plain NumPy references (independent formulas written out here)."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from labelwise import LabelSchema  # noqa: E402
from labelwise.blocks import losses as L  # noqa: E402
from labelwise.errors import InputError  # noqa: E402

pytestmark = pytest.mark.backend

RNG = np.random.default_rng(0)
N, K = 12, 5


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _data(extreme=False):
    y = RNG.integers(0, 2, (N, K)).astype("float32")
    logits = RNG.normal(0, 3, (N, K)).astype("float32")
    p = _sigmoid(logits.astype(np.float64)).astype("float32")
    if extreme:
        p[0, :] = 0.0
        p[1, :] = 1.0
        y[0, :], y[1, :] = 1.0, 0.0  # the worst case: confidently wrong
    return y, logits, p


def _clip(p):
    return np.clip(p.astype(np.float64), L.EPSILON, 1 - L.EPSILON)


def ref_wbce(y, p, wp=1.0, wn=1.0):
    p = _clip(p)
    return -np.mean(wp * y * np.log(p) + wn * (1 - y) * np.log(1 - p), axis=-1)


def ref_focal(y, p, alpha, gamma, wp=1.0, wn=1.0):
    pc = _clip(p)
    ce = -(y * np.log(pc) + (1 - y) * np.log(1 - pc))
    pt = y * p + (1 - y) * (1 - p)
    a = 1.0 if alpha is None else y * alpha + (1 - y) * (1 - np.asarray(alpha))
    return np.mean((wp * y + wn * (1 - y)) * a * (1 - pt) ** gamma * ce, axis=-1)


def ref_asl(y, p, gp, gn, clip, wp=1.0, wn=1.0):
    """Written after the paper's reference implementation (AsymmetricLossOptimized)."""
    p = p.astype(np.float64)
    xs_neg = np.minimum(1 - p + clip, 1.0) if clip > 0 else 1 - p
    los_pos = y * np.log(np.maximum(p, L.EPSILON))
    los_neg = (1 - y) * np.log(np.maximum(xs_neg, L.EPSILON))
    pt = p * y + (1 - xs_neg) * (1 - y)  # for negatives: the shifted probability p_m
    w = np.where(y == 1, (1 - pt) ** gp, pt ** gn)
    return -np.mean((wp * y + wn * (1 - y)) * (los_pos + los_neg) * w, axis=-1)


@pytest.mark.parametrize("per_label", [False, True])
def test_weighted_bce_matches_numpy_from_probs_and_logits(per_label):
    y, logits, p = _data()
    wp = RNG.uniform(0.5, 3, K) if per_label else 2.0
    wn = RNG.uniform(0.5, 3, K) if per_label else 0.5
    ref = ref_wbce(y, p, wp, wn)
    np.testing.assert_allclose(_np(L.weighted_binary_crossentropy(y, p, wp, wn)), ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(_np(L.weighted_binary_crossentropy(y, logits, wp, wn, from_logits=True)), ref,
                               rtol=1e-3, atol=1e-4)
    loss = L.WeightedBinaryCrossentropy(pos_weight=wp, neg_weight=wn, from_logits=True)
    np.testing.assert_allclose(float(_np(loss(y, logits))), ref.mean(), rtol=1e-3)


def test_plain_weights_equal_keras_bce():
    y, logits, p = _data()
    ours = _np(L.WeightedBinaryCrossentropy(from_logits=True)(y, logits))
    theirs = _np(keras.losses.BinaryCrossentropy(from_logits=True)(y, logits))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


def test_from_logits_is_exact_where_probabilities_saturate():
    y = np.array([[1.0, 0.0]], "float32")
    logits = np.array([[-100.0, 100.0]], "float32")  # confidently wrong, sigmoid saturates
    out = float(_np(L.weighted_binary_crossentropy(y, logits, from_logits=True))[0])
    assert out == pytest.approx(100.0, rel=1e-5)  # -log(sigmoid(-100)) = 100 exactly (softplus)


@pytest.mark.parametrize("alpha,gamma", [(None, 2.0), (0.25, 2.0), ("vec", "vec"), (None, 0.0)])
def test_focal_matches_numpy(alpha, gamma):
    y, logits, p = _data()
    if alpha == "vec":
        alpha, gamma = RNG.uniform(0.1, 0.9, K), RNG.uniform(0, 3, K)
    ref = ref_focal(y, p.astype(np.float64), alpha, gamma)
    np.testing.assert_allclose(_np(L.binary_focal_loss(y, p, alpha, gamma)), ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(_np(L.binary_focal_loss(y, logits, alpha, gamma, from_logits=True)), ref,
                               rtol=2e-3, atol=1e-5)
    obj = L.BinaryFocalLoss(alpha=alpha, gamma=gamma)
    np.testing.assert_allclose(float(_np(obj(y, p))), ref.mean(), rtol=1e-4)


def test_focal_gamma0_no_alpha_is_bce():
    y, logits, p = _data()
    np.testing.assert_allclose(_np(L.binary_focal_loss(y, logits, None, 0.0, from_logits=True)),
                               ref_wbce(y, p), rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("gp,gn,clip", [(0.0, 4.0, 0.05), (1.0, 2.0, 0.0), (0.0, 0.0, 0.0), (0.5, 3.0, 0.2)])
def test_asymmetric_matches_numpy(gp, gn, clip):
    y, logits, p = _data()
    ref = ref_asl(y, p, gp, gn, clip)
    np.testing.assert_allclose(_np(L.asymmetric_loss(y, p, gp, gn, clip)), ref, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(_np(L.asymmetric_loss(y, logits, gp, gn, clip, from_logits=True)), ref,
                               rtol=2e-3, atol=1e-5)
    if gp == gn == clip == 0:
        np.testing.assert_allclose(ref, ref_wbce(y, p), rtol=1e-4)


def test_asymmetric_discards_easy_negatives():
    y = np.zeros((1, 3), "float32")
    p = np.array([[0.01, 0.04, 0.5]], "float32")  # the first two are below the 0.05 margin
    per_label = [float(_np(L.asymmetric_loss(y[:, j:j + 1], p[:, j:j + 1]))[0]) for j in range(3)]
    assert per_label[0] == 0.0 and per_label[1] == 0.0 and per_label[2] > 0


@pytest.mark.parametrize("make", [
    lambda: L.WeightedBinaryCrossentropy(pos_weight=np.full(K, 3.0), neg_weight=0.5),
    lambda: L.BinaryFocalLoss(alpha=0.25, gamma=2.0),
    lambda: L.AsymmetricLoss(),
    lambda: L.AsymmetricLoss(clip=0.0),
])
def test_extreme_probabilities_stay_finite(make):
    y, _, p = _data(extreme=True)
    loss = make()
    yt, pt = keras.ops.convert_to_tensor(y), keras.ops.convert_to_tensor(p)
    value = float(_np(loss(yt, pt)))
    assert np.isfinite(value) and value > 0
    # and the gradient with respect to the predictions is finite too
    import keras as k

    if k.backend.backend() == "jax":
        import jax

        g = jax.grad(lambda q: loss(yt, q))(pt)
    elif k.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(pt)
            v = loss(yt, pt)
        g = tape.gradient(v, pt)
    else:  # pragma: no cover
        return
    assert np.all(np.isfinite(_np(g)))


def test_balanced_weights_formula_and_errors():
    y = np.array([[1, 0], [0, 1], [0, 1], [0, 1]])
    pos, neg = L.balanced_weights(y)
    np.testing.assert_allclose(pos, [4 / 2, 4 / 6])
    np.testing.assert_allclose(neg, [4 / 6, 4 / 2])
    with pytest.raises(InputError, match="'Mass' has no positive"):
        L.balanced_weights(np.array([[0, 1], [0, 0]]), labels=["Mass", "Edema"])
    pos, _ = L.balanced_weights(np.array([[0, 1], [0, 0]]), on_missing="clamp")
    assert pos[0] == 1.0  # n / (2 * max(0, 1)) with n = 2
    loss = L.WeightedBinaryCrossentropy(weights="balanced", y=y)
    assert loss.pos_weight == pytest.approx([2.0, 4 / 6])
    assert L.WeightedBinaryCrossentropy.from_labels(y).neg_weight == pytest.approx([4 / 6, 2.0])


def test_check_class_weight_refuses_multi_hot():
    L.check_class_weight({0: 1.0}, np.eye(3))  # one-hot rows: fine
    with pytest.raises(InputError, match="arg-max"):
        L.check_class_weight({0: 1.0, 1: 5.0}, np.array([[1, 1], [0, 1]]))


def _schema():
    return LabelSchema(["a", "b", "c"], {"view": ["PA", "AP", "LL"], "sex": ["F", "M"]}, none="none")


def _schema_data(schema, n=10, seed=1):
    r = np.random.default_rng(seed)
    ind = r.integers(0, 2, (n, 3))
    view = np.eye(3)[r.integers(0, 3, n)]
    sex = np.eye(2)[r.integers(0, 2, n)]
    y = schema.complete(np.concatenate([ind, view, sex], axis=1).astype("float32"))
    logits = r.normal(0, 2, (n, schema.n_outputs)).astype("float32")
    return y, logits


def ref_schema_loss(y, logits, wp=1.0, wn=1.0, bw=1.0, gw=None):
    gw = gw or {}
    p = _sigmoid(logits[:, :3].astype(np.float64))
    total = bw * ref_wbce(y[:, :3], p, wp, wn)
    for name, (a, b) in {"view": (3, 6), "sex": (6, 8)}.items():
        z = logits[:, a:b].astype(np.float64)
        logsm = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        total = total + gw.get(name, 1.0) * -(y[:, a:b] * logsm).sum(axis=1)
    return total


def test_schema_loss_matches_numpy_with_term_weights():
    schema = _schema()
    y, logits = _schema_data(schema)
    assert y.shape[1] == schema.n_labels == 9  # full targets, with the derived none column
    wp = RNG.uniform(0.5, 2, 3)
    ref = ref_schema_loss(y, logits, wp=wp, bw=0.5, gw={"view": 2.0})
    loss = L.SchemaLoss(schema, "weighted", pos_weight=wp, binary_weight=0.5, group_weights={"view": 2.0},
                        from_logits=True)
    np.testing.assert_allclose(float(_np(loss(y, logits))), ref.mean(), rtol=1e-4)
    # the same on probabilities from the schema's activations, and on head targets only
    from labelwise.blocks.layers import schema_activation

    probs = _np(schema_activation(logits, schema)).astype("float32")
    loss_p = L.SchemaLoss(schema, "weighted", pos_weight=wp, binary_weight=0.5, group_weights={"view": 2.0})
    np.testing.assert_allclose(float(_np(loss_p(y[:, :8], probs))), ref.mean(), rtol=1e-3)


@pytest.mark.parametrize("binary", ["focal", "asymmetric"])
def test_schema_loss_binary_variants(binary):
    schema = _schema()
    y, logits = _schema_data(schema)
    p = _sigmoid(logits[:, :3].astype(np.float64))
    b = ref_focal(y[:, :3], p, None, 2.0) if binary == "focal" else ref_asl(y[:, :3], p, 0.0, 4.0, 0.05)
    ref = ref_schema_loss(y, logits) - ref_wbce(y[:, :3], p) + b
    loss = L.SchemaLoss(schema, binary, from_logits=True)
    np.testing.assert_allclose(float(_np(loss(y, logits))), ref.mean(), rtol=1e-3)


def test_loss_configs_round_trip():
    schema = _schema()
    y, logits = _schema_data(schema)
    objs = [
        L.WeightedBinaryCrossentropy(pos_weight=[1.0, 2.0, 3.0, 1, 1, 1, 1, 1], neg_weight=0.5, from_logits=True),
        L.BinaryFocalLoss(alpha=0.3, gamma=[1.0] * 8, from_logits=True),
        L.AsymmetricLoss(1.0, 3.0, 0.1, from_logits=True),
        L.SchemaLoss(schema, L.BinaryFocalLoss(gamma=1.0, from_logits=True), group_weights={"sex": 3.0},
                     from_logits=True),
    ]
    for obj in objs:
        clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
        assert type(clone) is type(obj) and clone.get_config() == obj.get_config()
        yt = y[:, :8]
        assert float(_np(clone(yt, logits))) == pytest.approx(float(_np(obj(yt, logits))), rel=1e-6)


def test_bad_inputs_name_the_problem():
    schema = _schema()
    with pytest.raises(InputError, match="unknown group"):
        L.SchemaLoss(schema, group_weights={"viwe": 1.0})
    with pytest.raises(InputError, match="one of"):
        L.SchemaLoss(schema, "hinge")
    with pytest.raises(InputError, match="takes"):
        L.SchemaLoss(schema, "focal", clip=2.0)
    with pytest.raises(InputError, match="columns"):
        L.weighted_binary_crossentropy(np.zeros((2, 4)), np.zeros((2, 3)))
    with pytest.raises(InputError, match="from_logits"):
        L.SchemaLoss(schema, L.BinaryFocalLoss(from_logits=True))


def test_schema_loss_with_only_a_group_is_keras_categorical_crossentropy():
    schema = LabelSchema([], {"digit": [str(d) for d in range(4)]})
    r = np.random.default_rng(3)
    y = np.eye(4, dtype="float32")[r.integers(0, 4, 9)]
    z = r.normal(0, 2, (9, 4)).astype("float32")
    ours = float(_np(L.SchemaLoss(schema, from_logits=True)(y, z)))
    theirs = float(_np(keras.losses.CategoricalCrossentropy(from_logits=True)(y, z)))
    assert ours == pytest.approx(theirs, rel=1e-5)


def test_focal_and_asymmetric_take_per_label_class_weights():
    y, logits, p = _data()
    wp, wn = RNG.uniform(0.5, 3, K), RNG.uniform(0.5, 3, K)
    ref = ref_focal(y, p.astype(np.float64), 0.3, 2.0, wp, wn)
    np.testing.assert_allclose(_np(L.BinaryFocalLoss(0.3, 2.0, pos_weight=wp, neg_weight=wn).call(y, p)), ref,
                               rtol=1e-4, atol=1e-6)
    ref = ref_asl(y, p, 1.0, 3.0, 0.05, wp, wn)
    np.testing.assert_allclose(_np(L.AsymmetricLoss(1.0, 3.0, pos_weight=wp, neg_weight=wn, from_logits=True)
                                   .call(y, logits)), ref, rtol=2e-3, atol=1e-5)
    # SchemaLoss passes balanced weights to any named binary loss (as `labelwise train` does)
    schema = LabelSchema([f"l{j}" for j in range(K)])
    loss = L.SchemaLoss(schema, "focal", pos_weight=wp, neg_weight=wn, gamma=2.0)
    np.testing.assert_allclose(float(_np(loss(y, p))), ref_focal(y, p.astype(np.float64), None, 2.0, wp, wn).mean(),
                               rtol=1e-4)


@pytest.mark.parametrize("make,arg", [
    (lambda: L.WeightedBinaryCrossentropy(pos_weight=[1.0, 2.0, 3.0]), "pos_weight"),
    (lambda: L.WeightedBinaryCrossentropy(neg_weight=np.ones(K + 2)), "neg_weight"),
    (lambda: L.BinaryFocalLoss(alpha=[0.2, 0.3]), "alpha"),
    (lambda: L.BinaryFocalLoss(gamma=[1.0] * (K - 1)), "gamma"),
    (lambda: L.AsymmetricLoss(gamma_neg=[4.0] * 3), "gamma_neg"),
    (lambda: L.AsymmetricLoss(pos_weight=[1.0] * (K + 1)), "pos_weight"),
])
def test_per_label_vector_of_the_wrong_length_names_the_argument(make, arg):
    """Raised where the predictions' width is known (the call), not as a backend shape error."""
    y, logits, p = _data()
    loss = make()
    n = len(getattr(loss, arg))
    with pytest.raises(InputError, match=rf"^{arg} has {n} values but the model has {K} outputs"):
        loss(y, p)


def test_bad_loss_arguments_are_refused_when_the_loss_is_built():
    y, _, p = _data()
    cases = [
        (lambda: L.BinaryFocalLoss(alpha=2.0), r"alpha must be in \[0, 1\]; got alpha=2.0"),
        (lambda: L.BinaryFocalLoss(alpha=[0.5, -0.1, 0.5]), r"alpha must be in \[0, 1\] \(label 1 of 3\)"),
        (lambda: L.BinaryFocalLoss(gamma=-1.0), r"gamma must be >= 0; got gamma=-1.0"),
        (lambda: L.WeightedBinaryCrossentropy(pos_weight=-1.0), "pos_weight must be >= 0"),
        (lambda: L.WeightedBinaryCrossentropy(neg_weight=[1.0, float("nan")]), "neg_weight must be finite"),
        (lambda: L.WeightedBinaryCrossentropy(pos_weight="heavy"), "pos_weight must be a number"),
        (lambda: L.AsymmetricLoss(clip=1.5), r"clip must be in \[0, 1\).*clip=1.5"),
        (lambda: L.AsymmetricLoss(clip=-0.1), r"clip must be in \[0, 1\)"),
        (lambda: L.AsymmetricLoss(gamma_pos=-2.0), "gamma_pos must be >= 0"),
        (lambda: L.SchemaLoss(_schema(), binary_weight=-1.0), "binary_weight must be"),
        (lambda: L.SchemaLoss(_schema(), group_weights={"view": -2.0}), r"group_weights\['view'\] must be"),
        (lambda: L.SchemaLoss(_schema(), "focal", alpha=1.5), "alpha must be in"),
    ]
    for make, message in cases:
        with pytest.raises(InputError, match=message):
            make()
    # the pure functions check the same ranges
    with pytest.raises(InputError, match="alpha must be in"):
        L.binary_focal_loss(y, p, alpha=2.0)
    with pytest.raises(InputError, match="clip must be in"):
        L.asymmetric_loss(y, p, clip=1.0)
    with pytest.raises(InputError, match="pos_weight has 2 values"):
        L.weighted_binary_crossentropy(y, p, pos_weight=[1.0, 2.0])
    # the edges of each range are allowed
    for loss in (L.BinaryFocalLoss(alpha=[0.0, 1.0, 0.5, 0.5, 0.5], gamma=0.0), L.AsymmetricLoss(0.0, 0.0, 0.0),
                 L.WeightedBinaryCrossentropy(pos_weight=0.0)):
        assert np.isfinite(float(_np(loss(y, p))))


class _Table:
    """What balanced_weights reads of a LabelTable: .y (with the none column) and .schema."""

    def __init__(self, y, schema):
        self.y, self.schema = y, schema


def test_balanced_weights_drop_the_derived_none_column():
    schema = LabelSchema(["a", "b"], {"view": ["PA", "AP"]}, none="none")
    y = schema.complete(np.array([[1, 0, 1, 0], [0, 0, 0, 1], [0, 1, 1, 0], [0, 0, 1, 0]], "float32"))
    assert y.shape == (4, 5)
    n = 4.0
    pos_ref = [n / (2 * 1), n / (2 * 1), n / (2 * 3), n / (2 * 1)]  # counted by hand over the 4 outputs
    neg_ref = [n / (2 * 3), n / (2 * 3), n / (2 * 1), n / (2 * 3)]
    for pos, neg in (L.balanced_weights(_Table(y, schema)), L.balanced_weights(y, schema=schema),
                     L.balanced_weights(y[:, :4], schema=schema)):
        np.testing.assert_allclose(pos, pos_ref)
        np.testing.assert_allclose(neg, neg_ref)
    for loss in (L.WeightedBinaryCrossentropy(weights="balanced", y=_Table(y, schema)),
                 L.WeightedBinaryCrossentropy(weights="balanced", y=y, schema=schema),
                 L.WeightedBinaryCrossentropy.from_labels(y, schema=schema)):
        assert loss.pos_weight == pytest.approx(pos_ref) and loss.neg_weight == pytest.approx(neg_ref)
        assert np.isfinite(float(_np(loss(y[:, :4], np.full((4, 4), 0.5, "float32")))))
    # errors name the output labels, not column numbers
    with pytest.raises(InputError, match="'b' has no positive"):
        L.balanced_weights(y[:2], schema=schema)
    with pytest.raises(InputError, match=r"shape \(4, 3\) but the schema has 4 outputs"):
        L.balanced_weights(y[:, :3], schema=schema)
    # without the schema the full matrix gives 5 weights, and the loss then says what went wrong
    loss = L.WeightedBinaryCrossentropy(weights="balanced", y=y)
    with pytest.raises(InputError, match="pos_weight has 5 values but the model has 4 outputs.*'none' column"):
        loss(y[:, :4], np.full((4, 4), 0.5, "float32"))
    with pytest.raises(InputError, match="not both"):
        L.WeightedBinaryCrossentropy(pos_weight=2.0, weights="balanced", y=y)


def test_balanced_weights_accept_a_real_label_table(tmp_path):
    from labelwise.labels.tables import read_table

    (tmp_path / "labels.csv").write_text("id,labels\nr1,a\nr2,No Finding\nr3,a|b\nr4,No Finding\n")
    schema = LabelSchema(["a", "b"], none="No Finding")
    table = read_table(tmp_path / "labels.csv", schema=schema)
    assert table.y.shape[1] == 3
    pos, neg = L.balanced_weights(table)
    np.testing.assert_allclose(pos, [4 / 4, 4 / 2])
    np.testing.assert_allclose(neg, [4 / 4, 4 / 6])
