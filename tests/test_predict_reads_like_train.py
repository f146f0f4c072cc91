"""`labelwise predict` reads exactly what `labelwise train` would read, or says why not.

* a case whose stack train refuses (NaN/inf in a slice, a 2-D array) is refused by predict with
  train's own message, or left out and named with --skip-unreadable;
* a case stored as a folder of slice images is found when predicting the parent folder, as it is
  from a table; its scores equal the model run on its slices alone;
* every input found but not predicted -- broken and looping symbolic links among images or
  stacks included -- stops the run (exit 2) naming it, or with --skip-unreadable is counted,
  named and listed in OUT's .skipped.csv.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from labelwise import LabelSchema  # noqa: E402
from labelwise.blocks.models import build_case_model, build_model  # noqa: E402
from labelwise.commands.cli import main  # noqa: E402
from labelwise.data.cases import CaseSet, check_cases  # noqa: E402
from labelwise.decide.thresholds import Thresholds  # noqa: E402
from labelwise.errors import InputError  # noqa: E402
from labelwise.training import artifact  # noqa: E402
from labelwise.training.predict import predict  # noqa: E402

SCHEMA = LabelSchema(independent=("a", "b"))
SIZE = 8
P = ["p_a", "p_b"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    thr = Thresholds(labels=SCHEMA.labels, values=[0.5, 0.5], method="fixed")
    keras.utils.set_random_seed(3)
    case = build_case_model(SCHEMA, "small_cnn", image_shape=(SIZE, SIZE, 1), weights=None, case_pooling="mean")
    case_path = artifact.save(case, root / "case.keras", SCHEMA, thr, artifact.Preprocessing((SIZE, SIZE), 1))
    image = build_model(SCHEMA, "small_cnn", input_shape=(SIZE, SIZE, 1), weights=None)
    image_path = artifact.save(image, root / "image.keras", SCHEMA, thr, artifact.Preprocessing((SIZE, SIZE), 1))
    return case, case_path, image, image_path


def _alone(model, stack):
    """The case model on one case: a batch of one, an all-ones mask (slices already SIZE x SIZE)."""
    x = np.asarray(stack, "float32")[None, ..., None]
    return keras.ops.convert_to_numpy(model([x, np.ones((1, x.shape[1]), "float32")], training=False))[0]


def _cases(folder, n=6, folder_cases=(), seed=0):
    """``n`` cases c00.. of 2-4 slices; those in ``folder_cases`` as a folder of PNG slices."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    stacks = {}
    for i in range(n):
        cid = f"c{i:02d}"
        st = rng.integers(0, 256, size=(int(rng.integers(2, 5)), SIZE, SIZE)).astype(np.uint8)
        stacks[cid] = st
        if cid in folder_cases:
            (folder / cid).mkdir()
            for s, sl in enumerate(st):
                Image.fromarray(sl).save(folder / cid / f"s{s:02d}.png")
        else:
            np.save(folder / f"{cid}.npy", st)
    return stacks


def test_a_nan_slice_is_refused_by_predict_with_the_message_train_gives(models, tmp_path, capsys):
    case, case_path, _, _ = models
    stacks = _cases(tmp_path / "stacks")
    bad = stacks["c02"].astype(np.float32)
    bad[1, 3, 3] = np.nan
    np.save(tmp_path / "stacks" / "c02.npy", bad)
    with pytest.raises(InputError) as trained:  # what train's up-front check says about this case
        check_cases(CaseSet(np.array(["c02"]), [tmp_path / "stacks" / "c02.npy"]))
    reason = str(trained.value).split(": ", 1)[1]
    assert "NaN values in slice 1" in reason

    out = tmp_path / "p.csv"
    assert main(["predict", str(case_path), str(tmp_path / "stacks"), "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "1 of 6 stack file(s) cannot be used" in err and reason in err and "--skip-unreadable" in err
    assert not out.exists()

    with pytest.warns(UserWarning, match=r"(?s)skipping 1 .*c02\.npy.*NaN values in slice 1"):
        assert main(["predict", str(case_path), str(tmp_path / "stacks"), "--quiet", "--out", str(out),
                     "--skip-unreadable"]) == 0
    printed = capsys.readouterr().out
    frame = pd.read_csv(out)
    kept = ["c00", "c01", "c03", "c04", "c05"]
    assert frame["id"].tolist() == kept
    np.testing.assert_allclose(frame[P].to_numpy(), np.stack([_alone(case, stacks[c]) for c in kept]), atol=1e-5)
    listed = pd.read_csv(tmp_path / "p.skipped.csv")
    assert listed["input"].tolist() == [str(tmp_path / "stacks" / "c02.npy")]
    assert reason in listed["reason"][0]
    assert "skipped 1 unreadable input(s) of 6" in printed and "p.skipped.csv" in printed


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_an_inf_slice_is_refused_by_the_python_api_too(models, tmp_path, value):
    _, case_path, _, _ = models
    _cases(tmp_path / "stacks", n=2)
    a = np.ones((3, SIZE, SIZE), np.float32)
    a[2, 0, 0] = value
    np.save(tmp_path / "stacks" / "c01.npy", a)
    with pytest.raises(InputError, match=r"(?s)c01\.npy.*inf values in slice 2"):
        predict(case_path, tmp_path / "stacks", verbose=0)


def test_case_folders_are_predicted_from_the_parent_folder_as_from_a_table(models, tmp_path):
    case, case_path, _, _ = models
    stacks = _cases(tmp_path / "stacks", n=8, folder_cases=("c03", "c06"))
    (tmp_path / "stacks" / "plane").mkdir()  # a subfolder of stacks is not a case
    np.save(tmp_path / "stacks" / "plane" / "x.npy", stacks["c00"])
    from_folder = predict(case_path, tmp_path / "stacks", verbose=0)
    assert from_folder["id"].tolist() == sorted(stacks)  # 8 of 8, the two folders among them
    table = tmp_path / "cases.csv"
    table.write_text("case_id\n" + "".join(f"{c}\n" for c in sorted(stacks)))
    from_table = predict(case_path, table, images=tmp_path / "stacks", verbose=0)
    assert from_table["id"].tolist() == sorted(stacks)
    np.testing.assert_allclose(from_folder[P].to_numpy(), from_table[P].to_numpy(), atol=1e-6)
    ref = np.stack([_alone(case, stacks[c]) for c in sorted(stacks)])  # PNG slices round-trip uint8 exactly
    np.testing.assert_allclose(from_folder[P].to_numpy(), ref, atol=1e-5)


def test_a_parent_folder_of_case_folders_only_is_cases_not_single_images(models, tmp_path):
    case, case_path, _, _ = models
    stacks = _cases(tmp_path / "stacks", n=3, folder_cases=("c00", "c01", "c02"))
    frame = predict(case_path, tmp_path / "stacks", verbose=0)
    assert frame["id"].tolist() == ["c00", "c01", "c02"]
    np.testing.assert_allclose(frame[P].to_numpy(), np.stack([_alone(case, stacks[c]) for c in frame["id"]]),
                               atol=1e-5)
    Image.fromarray(stacks["c00"][0]).save(tmp_path / "stacks" / "loose.png")  # an image beside the cases
    with pytest.raises(InputError, match="single images"):
        predict(case_path, tmp_path / "stacks", verbose=0)


def test_a_stack_beside_a_case_folder_of_the_same_id_is_ambiguous(models, tmp_path):
    _, case_path, _, _ = models
    stacks = _cases(tmp_path / "stacks", n=3, folder_cases=("c01",))
    np.save(tmp_path / "stacks" / "c01.npy", stacks["c01"])
    with pytest.raises(InputError, match=r"case 'c01' has both .*c01\.npy and the folder"):
        predict(case_path, tmp_path / "stacks", verbose=0)


def test_a_broken_stack_link_is_named_not_dropped(models, tmp_path, capsys):
    _, case_path, _, _ = models
    _cases(tmp_path / "stacks", n=3)
    os.symlink(tmp_path / "gone.npy", tmp_path / "stacks" / "c09.npy")
    out = tmp_path / "p.csv"
    assert main(["predict", str(case_path), str(tmp_path / "stacks"), "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "1 of 4 stack file(s)" in err and "c09.npy" in err and "broken symbolic link" in err


def _images(folder, n=4):
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True)
    pixels = {}
    for i in range(n):
        a = rng.integers(0, 256, size=(SIZE, SIZE), dtype=np.uint8)
        Image.fromarray(a).save(folder / f"im{i}.png")
        pixels[f"im{i}.png"] = a
    return pixels


@pytest.mark.parametrize("pipeline", ["tf", "python"])
def test_broken_and_looping_image_links_stop_the_run_naming_them(models, tmp_path, capsys, pipeline):
    pytest.importorskip("tensorflow") if pipeline == "tf" else None
    _, _, _, image_path = models
    _images(tmp_path / "imgs")
    os.symlink(tmp_path / "nowhere.png", tmp_path / "imgs" / "dangling.png")
    os.symlink("loop.png", tmp_path / "imgs" / "loop.png")  # points at itself
    out = tmp_path / "p.csv"
    assert main(["predict", str(image_path), str(tmp_path / "imgs"), "--quiet", "--out", str(out),
                 "--pipeline", pipeline]) == 2
    err = capsys.readouterr().err
    assert "2 of 6 image file(s) cannot be read" in err
    assert "dangling.png: a broken symbolic link" in err and "nowhere.png" in err
    assert "loop.png: a symbolic link that cannot be followed" in err and "--skip-unreadable" in err
    assert not out.exists()


def test_skipped_image_links_are_counted_named_and_listed(models, tmp_path, capsys):
    _, _, image, image_path = models
    pixels = _images(tmp_path / "imgs")
    os.symlink(tmp_path / "nowhere.png", tmp_path / "imgs" / "dangling.png")
    os.symlink("loop.png", tmp_path / "imgs" / "loop.png")
    out = tmp_path / "p.csv"
    stale = tmp_path / "p.skipped.csv"
    with pytest.warns(UserWarning, match=r"(?s)skipping 2 unreadable image file\(s\) of 6.*dangling\.png.*loop\.png"):
        assert main(["predict", str(image_path), str(tmp_path / "imgs"), "--quiet", "--out", str(out),
                     "--skip-unreadable"]) == 0
    assert "skipped 2 unreadable input(s) of 6" in capsys.readouterr().out
    frame = pd.read_csv(out)
    assert frame["id"].tolist() == sorted(pixels)
    ref = image.predict(np.stack([pixels[k] for k in sorted(pixels)]).astype("float32")[..., None], verbose=0)
    np.testing.assert_allclose(frame[P].to_numpy(), ref, atol=1e-5)
    listed = pd.read_csv(stale)
    assert [os.path.basename(p) for p in listed["input"]] == ["dangling.png", "loop.png"]
    assert listed["reason"].str.contains("symbolic link").all()
    # a later run of the same --out with nothing skipped does not leave the old list behind
    (tmp_path / "imgs" / "dangling.png").unlink()
    (tmp_path / "imgs" / "loop.png").unlink()
    assert main(["predict", str(image_path), str(tmp_path / "imgs"), "--quiet", "--out", str(out)]) == 0
    assert not stale.exists()


def test_a_glob_pattern_matching_a_broken_link_names_it(models, tmp_path):
    _, _, _, image_path = models
    _images(tmp_path / "imgs", n=2)
    os.symlink(tmp_path / "nowhere.png", tmp_path / "imgs" / "dangling.png")
    with pytest.raises(InputError, match=r"(?s)1 of 3 image file\(s\).*dangling\.png: a broken symbolic link"):
        predict(image_path, str(tmp_path / "imgs" / "*.png"), verbose=0)
