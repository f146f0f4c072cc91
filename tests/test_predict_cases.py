"""labelwise predict with a case model: .npy stacks of different lengths -> one row per case.

The reference for every score is the in-memory model run on one case alone (a batch of one,
no padding, an all-ones mask), its slices prepared by the image pipeline's own function: so
padding, the mask, batching by length, the artifact round trip and the CSV are all checked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from labelwise import LabelSchema  # noqa: E402
from labelwise.training import artifact  # noqa: E402
from labelwise.commands.cli import main  # noqa: E402
from labelwise.errors import InputError  # noqa: E402
from labelwise.blocks.models import build_case_model, build_model  # noqa: E402
from labelwise.training.predict import model_inputs, predict, prepare_stack  # noqa: E402
from labelwise.data.stacks import MRNET_LABELS  # noqa: E402
from labelwise.decide.thresholds import Thresholds, decide  # noqa: E402

SCHEMA = LabelSchema(independent=MRNET_LABELS, exclusive={"side": ("left", "right")}, none="no_finding")
SIZE = 16
# case id -> (slices, H, W): seven different lengths, one stack to shrink, one to enlarge
STACKS = {"0000": (3, 16, 16), "0001": (1, 16, 16), "0002": (7, 24, 24), "0003": (2, 16, 16),
          "0004": (5, 12, 12), "0005": (4, 16, 16), "0006": (6, 16, 16)}
POOLINGS = ("max", "mean", "attention")


def _slices(stack):
    """Independent preparation: the image pipeline's array -> image function, slice by slice."""
    try:
        from labelwise.data.pipeline import _array_to_image
    except ImportError:  # no TensorFlow: the Python pipeline's twin, tied to it by tests/test_pypipeline.py
        from labelwise.data.pypipeline import prepare

        return np.stack([prepare(s[..., None], (SIZE, SIZE), 1) for s in stack]).astype("float32")

    return np.stack([_array_to_image(s[..., None], (SIZE, SIZE), 1).numpy() for s in stack]).astype("float32")


def _alone(model, stack, cut=None):
    """The model on one case alone: batch of one, no padding, an all-ones mask; full scores."""
    if cut is not None and len(stack) > cut:
        start = (len(stack) - cut) // 2
        stack = stack[start : start + cut]
    x = _slices(stack)[None]
    p = keras.ops.convert_to_numpy(model([x, np.ones((1, x.shape[1]), "float32")], training=False))
    return SCHEMA.complete_scores(p)[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cases")
    rng = np.random.default_rng(7)
    stacks = {}
    folder = root / "valid" / "sagittal"  # MRNet's layout
    folder.mkdir(parents=True)
    for cid, shape in STACKS.items():
        stacks[cid] = rng.integers(0, 256, size=shape).astype(np.uint8)
        np.save(folder / f"{cid}.npy", stacks[cid])
    # MRNet's label file: no header, ids without the zero padding for some rows
    (root / "valid-acl.csv").write_text("".join(f"{int(c) if i % 2 else c},{i % 2}\n" for i, c in enumerate(STACKS)))
    models = {}
    for pooling in POOLINGS:
        keras.utils.set_random_seed(11)
        model = build_case_model(SCHEMA, "small_cnn", image_shape=(SIZE, SIZE, 1), weights=None,
                                 case_pooling=pooling, attention_units=4)
        ref = np.stack([_alone(model, stacks[c]) for c in STACKS])
        # thresholds half-way between the 4th and 5th score: some cases above, some below
        mid = [float(np.mean(np.sort(ref[:, j])[3:5])) for j in range(3)]
        thr = Thresholds(labels=SCHEMA.labels, values=mid + [np.nan] * 3, method="fixed")
        path = artifact.save(model, root / f"{pooling}.keras", SCHEMA, thr, artifact.Preprocessing((SIZE, SIZE), 1))
        models[pooling] = (model, path, thr, ref)
    return root, folder, stacks, models


def _check_decisions(frame, thr):
    p = frame[[f"p_{label}" for label in SCHEMA.labels]].to_numpy()
    d = frame[list(SCHEMA.labels)].to_numpy()
    SCHEMA.validate(d)  # never a schema violation
    np.testing.assert_array_equal(d, decide(p, SCHEMA, thr))
    # and by hand: thresholds on the independent labels, arg-max in the group, none derived
    np.testing.assert_array_equal(d[:, :3], (p[:, :3] >= thr.values[:3]).astype(int))
    np.testing.assert_array_equal(d[:, 3:5].argmax(1), p[:, 3:5].argmax(1))
    np.testing.assert_array_equal(d[:, 5], (d[:, :3].sum(1) == 0).astype(int))
    assert frame["labels"].tolist() == ["|".join(r) for r in SCHEMA.decode(d)]
    assert 0 < d[:, :3].sum() < d[:, :3].size  # the thresholds split the cases: decisions are tested


@pytest.mark.backend
def test_case_artifact_loads_with_plain_keras(data):
    root, folder, stacks, models = data
    model, path, thr, ref = models["attention"]
    loaded = keras.saving.load_model(path)  # no custom_objects
    spec = model_inputs(loaded)
    assert (spec.kind, spec.image_shape, spec.n_images) == ("case", (SIZE, SIZE, 1), None)
    assert model_inputs(build_model(SCHEMA, "small_cnn", input_shape=(SIZE, SIZE, 1), weights=None)).kind == "image"
    x = _slices(stacks["0002"])[None]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded([x, np.ones((1, 7), "float32")])),
                               keras.ops.convert_to_numpy(model([x, np.ones((1, 7), "float32")])), atol=1e-6)
    _, schema, thresholds, pre = artifact.load(path)
    assert schema == SCHEMA and pre.max_slices is None and "max_slices" not in pre.to_dict()
    np.testing.assert_array_equal(thresholds.values, thr.values)


@pytest.mark.backend
@pytest.mark.parametrize("pooling", POOLINGS)
def test_predict_cases_equal_each_case_alone(data, pooling):
    """Padding to the batch's longest case plus the mask changes nothing (to 1e-5)."""
    root, folder, stacks, models = data
    model, path, thr, ref = models[pooling]
    frame = predict(path, folder, batch_size=3, verbose=0)  # batches mix lengths 1..7
    assert frame.attrs["kind"] == "case"
    assert frame["id"].tolist() == sorted(STACKS)  # input order, though run sorted by length
    p = frame[[f"p_{label}" for label in SCHEMA.labels]].to_numpy()
    np.testing.assert_allclose(p, ref, atol=1e-5)
    _check_decisions(frame, thr)


def test_predict_cases_via_cli_from_mrnet_label_table(data, tmp_path, capsys):
    root, folder, stacks, models = data
    model, path, thr, _ = models["max"]
    out = tmp_path / "sub" / "cases.csv"
    args = ["predict", str(path), str(root / "valid-acl.csv"), "--images", str(folder), "--out", str(out),
            "--batch-size", "2", "--max-slices", "3"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "7 case(s)" in printed and "7/7" in printed  # the progress bar counts cases
    frame = pd.read_csv(out, dtype={"id": str}, keep_default_na=False)
    assert frame["id"].tolist() == [str(int(c)) if i % 2 else c for i, c in enumerate(STACKS)]  # as in the table
    ref = np.stack([_alone(model, stacks[c], cut=3) for c in STACKS])  # central 3 slices
    np.testing.assert_allclose(frame[[f"p_{label}" for label in SCHEMA.labels]].to_numpy(), ref, atol=1e-5)
    SCHEMA.validate(frame[list(SCHEMA.labels)].to_numpy())
    np.testing.assert_array_equal(frame[list(SCHEMA.labels)].to_numpy(),
                                  decide(frame[[f"p_{label}" for label in SCHEMA.labels]].to_numpy(), SCHEMA, thr))
    assert sorted(p.name for p in out.parent.iterdir()) == ["cases.csv", "cases.csv.json"]  # no temporary left


def test_fixed_length_case_model_and_stored_max_slices(data, tmp_path):
    """A model built for exactly 4 slices gets every case cut/padded to 4; the artifact's
    max_slices is the default cut."""
    root, folder, stacks, models = data
    model, _, thr, _ = models["mean"]
    fixed = build_case_model(SCHEMA, "small_cnn", n_images=4, image_shape=(SIZE, SIZE, 1), weights=None,
                             case_pooling="mean")
    fixed.set_weights(model.get_weights())
    path = artifact.save(fixed, tmp_path / "fixed.keras", SCHEMA, thr, artifact.Preprocessing((SIZE, SIZE), 1))
    assert model_inputs(keras.saving.load_model(path)).n_images == 4
    frame = predict(path, folder, verbose=0)
    np.testing.assert_allclose(frame[[f"p_{label}" for label in SCHEMA.labels]].to_numpy(),
                               np.stack([_alone(model, stacks[c], cut=4) for c in STACKS]), atol=1e-5)
    path = artifact.save(model, tmp_path / "cut2.keras", SCHEMA, thr,
                         artifact.Preprocessing((SIZE, SIZE), 1, max_slices=2))
    assert artifact.load(path)[3].max_slices == 2
    frame = predict(path, [folder / "0002.npy", folder / "0001.npy"], verbose=0)
    assert frame["id"].tolist() == [str(folder / "0002.npy"), str(folder / "0001.npy")]
    np.testing.assert_allclose(frame[[f"p_{label}" for label in SCHEMA.labels]].to_numpy(),
                               np.stack([_alone(model, stacks[c], cut=2) for c in ("0002", "0001")]), atol=1e-5)


def test_prepare_stack_matches_the_image_pipeline():
    pytest.importorskip("tensorflow")
    from labelwise.data.pipeline import _array_to_image

    rng = np.random.default_rng(0)
    for shape, channels in [((3, 24, 20), 1), ((2, 9, 30), 1), ((2, 10, 10, 3), 1), ((2, 10, 10), 3),
                            ((2, 16, 16, 4), 3)]:
        stack = rng.integers(0, 256, size=shape).astype(np.uint8)
        got = prepare_stack(stack, image_size=(16, 16), channels=channels)
        x = stack if stack.ndim == 4 else stack[..., None]
        want = np.stack([_array_to_image(s, (16, 16), channels).numpy() for s in x])
        assert got.shape == (shape[0], 16, 16, channels) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_model_and_input_kind_mismatch_is_explained(data, tmp_path, capsys):
    root, folder, stacks, models = data
    _, case_path, thr, _ = models["max"]
    image_model = build_model(SCHEMA, "small_cnn", input_shape=(SIZE, SIZE, 1), weights=None)
    image_path = artifact.save(image_model, tmp_path / "image.keras", SCHEMA, thr, artifact.Preprocessing((SIZE, SIZE), 1))
    with pytest.raises(InputError, match=r"per-image model.*\.npy stacks.*case model"):
        predict(image_path, folder, verbose=0)
    with pytest.raises(InputError, match="per-image model"):
        predict(image_path, [folder / "0000.npy"], verbose=0)
    from PIL import Image

    pngs = tmp_path / "pngs"
    pngs.mkdir()
    Image.fromarray(stacks["0000"][0]).save(pngs / "a.png")
    with pytest.raises(InputError, match=r"case model.*stacks \(batch, any, 16, 16, 1\).*single images"):
        predict(case_path, pngs, verbose=0)
    assert main(["predict", str(case_path), str(pngs / "a.png"), "--quiet", "--out", str(tmp_path / "x.csv")]) == 2
    assert "case model" in capsys.readouterr().err
    assert main(["predict", str(image_path), str(folder), "--quiet", "--out", str(tmp_path / "x.csv")]) == 2
    assert "per-image model" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_bad_stacks_are_named_by_path(data, tmp_path, capsys):
    root, folder, stacks, models = data
    model, path, thr, ref = models["max"]
    bad = tmp_path / "stacks"
    bad.mkdir()
    for cid in ("0000", "0001", "0003"):
        np.save(bad / f"{cid}.npy", stacks[cid])
    (bad / "0007.npy").write_bytes(b"not an array at all")
    with pytest.raises(InputError, match=r"(?s)0007\.npy.*not a NumPy \.npy file.*--skip-unreadable"):
        predict(path, bad, verbose=0)
    (bad / "0007.npy").unlink()
    full = (folder / "0005.npy").read_bytes()
    (bad / "0005.npy").write_bytes(full[: len(full) // 2])  # truncated: the header promises more
    with pytest.raises(InputError, match=r"0005\.npy: cannot read"):
        predict(path, bad, verbose=0)
    (bad / "0005.npy").unlink()
    np.save(bad / "0009.npy", stacks["0000"][0])  # one 2-D image, not a stack
    out = tmp_path / "p.csv"
    assert main(["predict", str(path), str(bad), "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "0009.npy" in err and "slices x H x W" in err and "(1, H, W)" in err
    assert not out.exists()
    with pytest.warns(UserWarning, match=r"0009\.npy"):
        assert main(["predict", str(path), str(bad), "--quiet", "--out", str(out), "--skip-unreadable"]) == 0
    frame = pd.read_csv(out, dtype={"id": str})
    assert frame["id"].tolist() == ["0000", "0001", "0003"]
    np.testing.assert_allclose(frame[[f"p_{label}" for label in SCHEMA.labels]].to_numpy(), ref[[0, 1, 3]], atol=1e-5)
    np.save(bad / "0009.npy", stacks["0000"].astype("float32") * 4.0)  # outside 0-255
    with pytest.warns(UserWarning, match=r"(?s)pixel range 0 to 255.*0009\.npy"):
        predict(path, bad, verbose=0)
    table = bad / "cases.csv"  # stacks default to the table's folder
    table.write_text("case_id,acl\n0000,1\n0042,0\n")
    with pytest.raises(InputError, match=r"cases\.csv, row 3: no stack file for case '0042'.*--images"):
        predict(path, table, verbose=0)
