"""labelwise predict: a folder or a table of images -> probabilities + schema-consistent decisions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from labelwise import LabelSchema  # noqa: E402
from labelwise.training import artifact  # noqa: E402
from labelwise.commands.cli import main  # noqa: E402
from labelwise.blocks.models import build_model  # noqa: E402
from labelwise.training.predict import predict  # noqa: E402
from labelwise.decide.thresholds import Thresholds  # noqa: E402

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


@pytest.mark.slow
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


@pytest.mark.slow
def test_bmp_gif_cmyk_on_gray_model_and_undecodable_files(setup, tmp_path, capsys):
    """Files Pillow accepts but TF's channels=1 decode refused crashed predict with a TF traceback."""
    folder, path, model, thr, images, pixels = setup
    arr = pixels["img1.png"]
    rgb = np.repeat(arr[..., None], 3, axis=2)
    good = tmp_path / "good"
    good.mkdir()
    Image.fromarray(rgb).save(good / "a.bmp")
    Image.fromarray(arr).save(good / "b.gif")
    Image.fromarray(rgb).convert("CMYK").save(good / "c.jpg", quality=100)
    out = tmp_path / "p.csv"
    assert main(["predict", str(path), str(good), "--out", str(out), "--quiet"]) == 0
    frame = pd.read_csv(out)
    assert frame["id"].tolist() == ["a.bmp", "b.gif", "c.jpg"]
    p = frame[[f"p_{label}" for label in SCHEMA.labels]].to_numpy()
    ref = _reference(model, {"x": arr}, ["x"])
    np.testing.assert_allclose(p[:2], np.repeat(ref, 2, axis=0), atol=1e-4)  # lossless (gray via RGB: weights sum to 0.9999)
    np.testing.assert_allclose(p[2:], ref, atol=0.05)  # JPEG: close
    # a TIFF named .png and a PNG with corrupt deflate data: named, and skipped only when asked
    Image.fromarray(arr).save(good / "t.png", format="TIFF")
    out.unlink()
    assert main(["predict", str(path), str(good), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "t.png" in err and "TIFF" in err and "--skip-unreadable" in err and "Traceback" not in err
    assert not out.exists()
    with pytest.warns(UserWarning, match="t.png"):
        assert main(["predict", str(path), str(good), "--out", str(out), "--quiet", "--skip-unreadable"]) == 0
    assert pd.read_csv(out)["id"].tolist() == ["a.bmp", "b.gif", "c.jpg"]


def test_unusable_out_is_refused_before_the_model_is_loaded(setup, tmp_path, capsys, monkeypatch):
    folder, path, model, thr, images, pixels = setup
    loaded = []
    monkeypatch.setattr(artifact, "load", lambda *a, **k: loaded.append(a))
    assert main(["predict", str(path), str(images), "--out", str(tmp_path), "--quiet"]) == 2
    assert "is a folder" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["predict", str(path), str(images), "--out", str(tmp_path / "file" / "p.csv"), "--quiet"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert loaded == []
