"""labelwise predict: a folder or a table of images -> probabilities + schema-consistent decisions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from labelwise import LabelSchema, artifact  # noqa: E402
from labelwise.cli import main  # noqa: E402
from labelwise.models import build_model  # noqa: E402
from labelwise.predict import predict  # noqa: E402
from labelwise.thresholds import Thresholds  # noqa: E402

SCHEMA = LabelSchema(independent=("cat", "dog"), exclusive={"view": ("indoor", "outdoor", "night")}, none="nothing")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("predict")
    keras.utils.set_random_seed(1)
    model = build_model(SCHEMA, backbone="small_cnn", input_shape=(12, 12, 1), weights=None)
    thr = Thresholds(labels=SCHEMA.labels, values=[0.45, 0.55, np.nan, np.nan, np.nan, np.nan], method="fixed")
    path = artifact.save(model, folder / "model.keras", SCHEMA, thr, artifact.Preprocessing((12, 12), 1))
    images = folder / "images"
    (images / "sub").mkdir(parents=True)
    rng = np.random.default_rng(3)
    pixels = {}
    for i in range(7):
        name = f"sub/img{i}.png" if i % 3 == 0 else f"img{i}.png"
        arr = rng.integers(0, 256, size=(12, 12), dtype=np.uint8)
        Image.fromarray(arr).save(images / name)
        pixels[name] = arr
    return folder, path, model, thr, images, pixels


def _reference(model, pixels, names):
    """Independent path: Pillow-decoded pixels straight into model.predict."""
    x = np.stack([pixels[n] for n in names])[..., None].astype("float32")
    return SCHEMA.complete_scores(model.predict(x, verbose=0))


def test_predict_folder_via_cli(setup, tmp_path, capsys):
    folder, path, model, thr, images, pixels = setup
    out = tmp_path / "preds.csv"
    assert main(["predict", str(path), str(images), "--out", str(out), "--batch-size", "3"]) == 0
    assert "7 image(s)" in capsys.readouterr().out
    frame = pd.read_csv(out, keep_default_na=False)
    assert frame["id"].tolist() == sorted(pixels)  # every image, in sorted path order, recursive
    p = frame[[f"p_{label}" for label in SCHEMA.labels]].to_numpy()
    np.testing.assert_allclose(p, _reference(model, pixels, frame["id"]), atol=2e-6)  # CSV keeps 6 decimals
    d = frame[list(SCHEMA.labels)].to_numpy()
    SCHEMA.validate(d)  # never a schema violation
    # decisions follow the stored thresholds and the group arg-max
    np.testing.assert_array_equal(d[:, 0], (p[:, 0] >= 0.45).astype(int))
    np.testing.assert_array_equal(d[:, 1], (p[:, 1] >= 0.55).astype(int))
    np.testing.assert_array_equal(d[:, 2:5].argmax(1), p[:, 2:5].argmax(1))
    assert frame["labels"].tolist() == ["|".join(r) for r in SCHEMA.decode(d)]


def test_predict_table_with_paths_and_unreadable_files(setup, tmp_path, capsys):
    folder, path, model, thr, images, pixels = setup
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    table = tmp_path / "cases.csv"
    names = ["img1.png", "sub/img3.png", str(tmp_path / "broken.png"), "img2.png"]
    pd.DataFrame({"case": ["a", "b", "c", "d"], "image_path": names}).to_csv(table, index=False)
    args = ["predict", str(path), str(table), "--images", str(images), "--column", "image_path",
            "--out", str(tmp_path / "t.csv"), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "broken.png" in err and "--skip-unreadable" in err
    assert not (tmp_path / "t.csv").exists()
    with pytest.warns(UserWarning, match="broken.png"):
        assert main(args + ["--skip-unreadable"]) == 0
    frame = pd.read_csv(tmp_path / "t.csv")
    assert frame["id"].tolist() == ["img1.png", "sub/img3.png", "img2.png"]
    np.testing.assert_allclose(frame[[f"p_{label}" for label in SCHEMA.labels]].to_numpy(),
                               _reference(model, pixels, frame["id"]), atol=2e-6)


def test_predict_python_api_and_errors(setup, tmp_path):
    folder, path, model, thr, images, pixels = setup
    frame = predict(path, [str(images / "img1.png"), str(images / "img2.png")], verbose=0)
    assert len(frame) == 2 and {"id", "labels", "p_nothing", "nothing"} <= set(frame.columns)
    assert main(["predict", str(path), str(tmp_path / "missing"), "--quiet"]) == 2
    assert main(["predict", str(tmp_path / "none.keras"), str(images), "--quiet"]) == 2
