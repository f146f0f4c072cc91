"""Grad-CAM: against the class activation map (a hand-computed case), finite differences, the
per-label loop, a digit in a known quadrant, bad input, and ``labelwise explain`` on an artifact."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from conftest import MNIST_IDX, require  # noqa: E402

from labelwise import LabelSchema  # noqa: E402
from labelwise.errors import InputError  # noqa: E402
from labelwise.explain import grad_cam  # noqa: E402
from labelwise.explain import gradcam as G  # noqa: E402
from labelwise.blocks.layers import PowersetHead, SchemaHead  # noqa: E402
from labelwise.blocks.models import build_model  # noqa: E402

SCHEMA = LabelSchema(["a", "b"], {"view": ["PA", "AP"]}, none="none")


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def _tiny(head, size=9, seed=0):
    """Input -> Conv -> ReLU -> GAP -> head: the Grad-CAM of a logit is then the classic CAM."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 1))
    a = keras.layers.Conv2D(6, 3, padding="same", name="conv")(inp)
    a = keras.layers.Activation("relu", name="fmap")(a)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(a)
    model = keras.Model(inp, head(x))
    return model, keras.Model(inp, a)


def _cam_reference(fmap_model, x, w):
    """CAM (Zhou et al. 2016): ReLU(A @ w) scaled to its maximum; d logit / d A = w / (h w) for GAP + Dense."""
    cam = np.maximum(_np(fmap_model(x)) @ w, 0.0)
    peak = cam.max(axis=(1, 2), keepdims=True)
    return np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)


@pytest.mark.backend
def test_equals_class_activation_map_for_every_output_label():
    model, fmap = _tiny(SchemaHead(SCHEMA))
    x = np.random.default_rng(0).uniform(0, 1, (3, 9, 9, 1)).astype("float32")
    maps = grad_cam(model, x)
    assert maps.shape == (3, 4, 9, 9)
    W = _np(model.get_layer("schema_head").dense.kernel)
    for j in range(4):  # independent labels and exclusive members: the member's own logit
        np.testing.assert_allclose(maps[:, j], _cam_reference(fmap, x, W[:, j]), atol=2e-5)


@pytest.mark.backend
def test_powerset_label_is_the_logit_of_its_summed_score():
    schema = LabelSchema(["a", "b"])
    classes = np.array([[1, 0], [0, 1], [0, 0]])
    model, fmap = _tiny(PowersetHead(classes, schema))
    x = np.random.default_rng(1).uniform(0, 1, (2, 9, 9, 1)).astype("float32")
    maps = grad_cam(model, x, labels=["a"])
    # p_a = softmax(z)_0, so logit(p_a) = z_0 - log(e^z1 + e^z2): gradient w.r.t. features =
    # W0 - (s1 W1 + s2 W2) / (s1 + s2) with s the softmax of the other classes (per image).
    W = _np(model.get_layer("powerset_head").dense.kernel)
    z = _np(model.get_layer("powerset_head").dense(keras.layers.GlobalAveragePooling2D()(fmap(x))))
    s = np.exp(z[:, 1:] - z[:, 1:].max(1, keepdims=True))
    s /= s.sum(1, keepdims=True)
    A = _np(fmap(x))
    for i in range(2):
        w = W[:, 0] - W[:, 1:] @ s[i]
        np.testing.assert_allclose(maps[i, 0], _cam_reference(lambda _: A[i:i + 1], None, w)[0], atol=2e-5)


@pytest.mark.slow
@pytest.mark.backend
def test_gradient_of_an_inner_layer_matches_finite_differences():
    model = build_model(SCHEMA, "small_cnn", input_shape=(12, 12, 1), weights=None)
    target = G.resolve_target(model, ["b"], "bn2")
    forward = G._forward(target)
    x = np.random.default_rng(2).uniform(0, 255, (1, 12, 12, 1)).astype("float32")
    shape = tuple(target.layer.output.shape[1:])
    w = np.zeros((1, SCHEMA.n_outputs), "float32")
    w[0, 1] = 1
    _, grads = G._gradients(keras.backend.backend())(forward, keras.ops.convert_to_tensor(x),
                                                    np.zeros((1, *shape), "float32"), keras.ops.convert_to_tensor(w))
    grads = _np(grads)
    rng = np.random.default_rng(3)
    eps = 1e-2
    for _ in range(4):
        pos = tuple(int(rng.integers(0, d)) for d in shape)
        d = np.zeros((1, *shape), "float32")
        d[(0, *pos)] = eps
        up = _np(forward(keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(d))[1])[0, 1]
        down = _np(forward(keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(-d))[1])[0, 1]
        assert (up - down) / (2 * eps) == pytest.approx(grads[(0, *pos)], rel=0.05, abs=1e-4)


@pytest.mark.slow
@pytest.mark.backend
def test_one_backward_pass_equals_a_loop_over_labels_and_images():
    model = build_model(SCHEMA, "small_cnn", input_shape=(16, 16, 1), weights=None)
    x = np.random.default_rng(4).uniform(0, 255, (5, 16, 16, 1)).astype("float32")
    batched = grad_cam(model, x, labels=["AP", "a", "b"], batch_size=2)
    for j, label in enumerate(["AP", "a", "b"]):
        for i in range(5):
            np.testing.assert_allclose(batched[i, j], grad_cam(model, x[i:i + 1], labels=label)[0, 0], atol=1e-5)
    assert batched.min() >= 0 and batched.max() <= 1


@pytest.mark.slow
@pytest.mark.backend
def test_a_layer_that_a_shortcut_bypasses_gives_the_same_maps_as_one_image_and_label_at_a_time():
    keras.utils.set_random_seed(7)
    inp = keras.Input((10, 10, 1))
    r = keras.layers.Activation("relu", name="r")(keras.layers.Conv2D(4, 3, padding="same", name="c1")(inp))
    b = keras.layers.Conv2D(4, 3, padding="same", name="inside")(r)
    x = keras.layers.Activation("relu", name="out")(keras.layers.Add(name="add")([r, b]))
    model = keras.Model(inp, SchemaHead(SCHEMA)(keras.layers.GlobalAveragePooling2D()(x)))
    xs = np.random.default_rng(8).uniform(0, 1, (3, 10, 10, 1)).astype("float32")
    for layer in ("inside", "r", "out"):
        both = grad_cam(model, xs, labels=["a", "PA"], layer=layer)
        for i in range(3):
            for j, label in enumerate(["a", "PA"]):
                np.testing.assert_allclose(both[i, j], grad_cam(model, xs[i:i + 1], labels=[label], layer=layer)[0, 0],
                                           atol=1e-5, err_msg=layer)


@pytest.mark.slow
def test_default_layer_is_the_last_feature_map_of_backbones():
    small = build_model(SCHEMA, "small_cnn", input_shape=(16, 16, 1), weights=None)
    assert G.feature_map_candidates(small)[-1] == "relu3"
    mobile = build_model(SCHEMA, "mobilenetv2", input_shape=(32, 32, 3), weights=None)
    names = G.feature_map_candidates(mobile)
    assert names[-1] == "out_relu" and "preprocess" not in names
    assert grad_cam(mobile, np.zeros((1, 32, 32, 3), "float32"), labels="a").shape == (1, 1, 32, 32)


@pytest.mark.slow
def test_every_keras_application_has_a_default_feature_map():
    from labelwise.blocks.models import BACKBONES, build_backbone

    for name, spec in BACKBONES.items():
        if name == "small_cnn":
            continue
        size = max(spec.min_size, 32)
        net = build_backbone(name, (size, size, 3), weights=None)
        names = G.feature_map_candidates(net)
        assert names, name
        # the default is the map the final global pooling reads (squeeze-excite blocks pool inside)
        pool = [l for l in G._walk(net) if isinstance(l, keras.layers.GlobalAveragePooling2D)][-1]
        assert pool.input.shape == G._find_layer(net, names[-1]).output.shape, name
        keras.backend.clear_session()


def test_bad_input_is_named():
    model = build_model(SCHEMA, "small_cnn", input_shape=(16, 16, 1), weights=None)
    x = np.zeros((1, 16, 16, 1), "float32")
    with pytest.raises(InputError, match="not a convolutional feature map.*relu3"):
        grad_cam(model, x, layer="avg_pool")
    with pytest.raises(InputError, match="no layer.*relu3"):
        grad_cam(model, x, layer="conv9")
    with pytest.raises(InputError, match="'c' is not in the model's schema"):
        grad_cam(model, x, labels=["a", "c"])
    with pytest.raises(InputError, match="derived 'none' label"):
        grad_cam(model, x, labels=["none"])
    with pytest.raises(InputError, match="3 channel.*takes 1"):
        grad_cam(model, np.zeros((1, 16, 16, 3), "float32"))
    with pytest.raises(InputError, match="16x16"):
        grad_cam(model, np.zeros((1, 8, 8, 1), "float32"))
    with pytest.raises(InputError, match="batch axis"):
        grad_cam(model, np.zeros((16, 16, 1), "float32"))
    inp = keras.Input((4, 4, 1))
    dense = keras.Model(inp, SchemaHead(SCHEMA)(keras.layers.Flatten()(inp)))
    with pytest.raises(InputError, match="no convolutional layer"):
        grad_cam(dense, np.zeros((1, 4, 4, 1), "float32"))
    inp = keras.Input((16, 16, 1))
    plain = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.Conv2D(2, 3)(inp))))
    with pytest.raises(InputError, match="no labelwise head"):
        grad_cam(plain, x)


def test_case_model_is_refused_clearly():
    from labelwise.blocks.models import build_case_model

    case = build_case_model(SCHEMA, "small_cnn", n_images=2, image_shape=(8, 8, 1), weights=None)
    with pytest.raises(InputError, match="case model"):
        grad_cam(case, np.zeros((1, 8, 8, 1), "float32"))


def _quadrant_task(n, rng, images, digits, keep=(0, 1, 2)):
    """Digits 0-2 pasted into a random quadrant of a blank 40x40 canvas."""
    pick = rng.choice(np.flatnonzero(np.isin(digits, keep)), n, replace=False)
    canvas = np.zeros((n, 40, 40, 1), "float32")
    quadrant = rng.integers(0, 4, n)
    for k, (i, q) in enumerate(zip(pick, quadrant)):
        r, c = 20 * (q // 2), 20 * (q % 2)
        canvas[k, r:r + 20, c:c + 20, 0] = images[i, 4:24, 4:24]  # the digit's 20x20 core
    y = (digits[pick][:, None] == np.array(keep)[None]).astype("float32")
    return canvas, y, quadrant


@pytest.mark.slow
@pytest.mark.backend
def test_heatmap_mass_lands_in_the_digits_quadrant():
    from labelwise.labels.tables import read_mnist_idx

    table = read_mnist_idx(require(MNIST_IDX) / "t10k-images-idx3-ubyte.gz", MNIST_IDX / "t10k-labels-idx1-ubyte.gz")
    images, digits = table.images.astype("float32"), table.extra["digit"].to_numpy()
    rng = np.random.default_rng(0)
    x, y, _ = _quadrant_task(900, rng, images, digits)
    schema = LabelSchema(["zero", "one", "two"])
    keras.utils.set_random_seed(0)
    model = build_model(schema, "small_cnn", input_shape=(40, 40, 1), weights=None)
    model.compile(keras.optimizers.Adam(3e-3), "binary_crossentropy")
    model.fit(x, y, batch_size=32, epochs=4, verbose=0)
    xt, yt, qt = _quadrant_task(60, np.random.default_rng(1), images, digits)
    label = yt.argmax(1)
    maps = grad_cam(model, xt)
    own = maps[np.arange(len(xt)), label]  # each image's map of its own digit
    masses = np.stack([own[:, r:r + 20, c:c + 20].sum((1, 2)) for r, c in ((0, 0), (0, 20), (20, 0), (20, 20))], 1)
    share = masses[np.arange(len(xt)), qt] / np.maximum(masses.sum(1), 1e-9)
    assert np.mean(share > 0.5) >= 0.7, np.round(share, 2)


@pytest.mark.slow
def test_explain_command_on_a_saved_artifact(tmp_path, capsys):
    from PIL import Image

    from labelwise.training import artifact
    from labelwise.commands.cli import main as cli_main
    from labelwise.training.predict import predict
    from labelwise.decide import Thresholds

    keras.utils.set_random_seed(5)
    model = build_model(SCHEMA, "small_cnn", input_shape=(12, 12, 1), weights=None)
    thr = Thresholds(labels=SCHEMA.labels, values=[0.45, 0.55, np.nan, np.nan, np.nan], method="fixed")
    path = artifact.save(model, tmp_path / "model.keras", SCHEMA, thr, artifact.Preprocessing((12, 12), 1))
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(6)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8)).save(folder / f"x{i}.png")
    out = tmp_path / "explained"
    assert cli_main(["explain", str(path), str(folder), "--labels", "a,AP", "--out", str(out)]) == 0
    assert "gets no heatmap" not in capsys.readouterr().out  # the labels asked for: nothing left out unsaid
    assert cli_main(["explain", str(path), str(folder), "--out", str(tmp_path / "every")]) == 0
    assert "'none' gets no heatmap: it is derived" in capsys.readouterr().out
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 6 and all(Image.open(out / p).size[0] > 100 for p in pngs)
    page = (out / "index.html").read_text()
    assert all(p in page for p in pngs)
    # the captions agree with labelwise predict on the same files
    frame = predict(str(path), str(folder), verbose=0)
    for _, row in frame.iterrows():
        for label in ("a", "AP"):
            said = "positive" if row[label] else "negative"
            assert f"{label}: p = {row['p_' + label]:.3f}, {said}" in page
    # the same on the loaded artifact from Python, maps included
    loaded = artifact.load(path)
    x = np.stack([np.asarray(Image.open(folder / f"x{i}.png"), "float32")[..., None] for i in range(3)])
    np.testing.assert_allclose(grad_cam(loaded[0], x, labels=["a", "AP"]),
                               grad_cam(model, x, labels=["a", "AP"]), atol=1e-5)
    capsys.readouterr()
    assert cli_main(["explain", str(path), str(folder), "--labels", "a,zz", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'zz' is not in the model's schema" in err[0]
    assert cli_main(["explain", str(path), str(folder), "--layer", "avg_pool", "--out", str(out)]) == 2
    assert "relu3" in capsys.readouterr().err


@pytest.mark.backend
def test_case_explanation_ranks_slices_by_what_the_model_says_of_each_alone():
    from labelwise.blocks.models import build_case_model
    from labelwise.explain.cases import explain_case

    keras.utils.set_random_seed(9)
    schema = LabelSchema(["a", "b"])
    case = build_case_model(schema, "small_cnn", image_shape=(12, 12, 1), weights=None, case_pooling="max")
    stack = np.random.default_rng(10).uniform(0, 255, (5, 12, 12, 1)).astype("float32")
    stack[3] *= 0.1  # slices differ, so their scores do
    result = explain_case(case, stack, labels=["b", "a"], top_k=2)
    # reference: the case model itself on one-slice cases
    alone = np.stack([case.predict([stack[i:i + 1][None], np.ones((1, 1), "float32")], verbose=0)[0]
                      for i in range(5)])
    np.testing.assert_allclose(result.slice_scores, alone[:, [1, 0]], atol=1e-5)
    for j in range(2):
        assert list(result.top[j]) == list(np.argsort(-alone[:, [1, 0][j]])[:2])
    whole = case.predict([stack[None], np.ones((1, 5), "float32")], verbose=0)[0]
    np.testing.assert_allclose(result.case_scores, whole[[1, 0]], atol=1e-6)
    assert result.maps.shape == (2, 2, 12, 12) and 0 <= result.maps.min() and result.maps.max() <= 1
    assert "slices" in result.describe().splitlines()[0]


@pytest.mark.parametrize("storage", ["npy", "folders"])
def test_explain_command_on_a_case_artifact_names_the_slices(tmp_path, storage):
    """A case model explains cases as predict reads them: .npy stacks, or a folder of case folders of
    slice images (each sub-folder one case, not a pile of single images)."""
    import pandas as pd
    from PIL import Image

    from labelwise.blocks.models import build_case_model
    from labelwise.commands.cli import main as cli_main
    from labelwise.decide import Thresholds
    from labelwise.explain.cases import explain_case
    from labelwise.training import artifact

    keras.utils.set_random_seed(11)
    schema = LabelSchema(["a", "b"])
    case = build_case_model(schema, "small_cnn", image_shape=(12, 12, 1), weights=None)
    thr = Thresholds(labels=schema.labels, values=[0.5, 0.5], method="fixed")
    path = artifact.save(case, tmp_path / "case.keras", schema, thr, artifact.Preprocessing((12, 12), 1))
    rng = np.random.default_rng(12)
    stacks = {name: rng.integers(0, 255, (4, 12, 12)).astype("uint8") for name in ("exam1", "exam2")}
    for name, stack in stacks.items():
        if storage == "npy":
            (tmp_path / "exams").mkdir(exist_ok=True)
            np.save(tmp_path / "exams" / f"{name}.npy", stack)
            continue
        (tmp_path / "exams" / name).mkdir(parents=True)
        for i, img in enumerate(stack):
            Image.fromarray(img).save(tmp_path / "exams" / name / f"{i:02d}.png")
    out = tmp_path / "out"
    assert cli_main(["explain", str(path), str(tmp_path / "exams"), "--labels", "b", "--top-slices", "2",
                     "--out", str(out)]) == 0
    assert len(list(out.glob("*.png"))) == 4  # 2 cases x 1 label x 2 slices
    assert sorted(pd.read_csv(out / "predictions.csv")["id"]) == ["exam1", "exam2"]
    e = explain_case(artifact.load(path)[0], stacks["exam1"][..., None].astype("float32"), ["b"], top_k=2)
    assert f"<td>{int(e.top[0][0])} ({e.slice_scores[e.top[0][0], 0]:.3f})</td>" in (out / "index.html").read_text()
