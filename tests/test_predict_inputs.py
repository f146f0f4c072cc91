"""Predict one image, several paths or a glob; a broken .keras file is
named as such; a schema that does not fit the model is refused at save time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from labelwise import LabelSchema  # noqa: E402
from labelwise.training import artifact  # noqa: E402
from labelwise.commands.cli import main  # noqa: E402
from labelwise.errors import InputError  # noqa: E402
from labelwise.blocks.models import build_model  # noqa: E402
from labelwise.training.predict import predict_scores  # noqa: E402
from labelwise.decide.thresholds import Thresholds  # noqa: E402

SCHEMA = LabelSchema(independent=("cat", "dog", "owl"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pin")
    keras.utils.set_random_seed(0)
    model = build_model(SCHEMA, backbone="small_cnn", input_shape=(8, 8, 1), weights=None)
    thr = Thresholds(labels=SCHEMA.labels, values=[0.5, 0.5, 0.5], method="fixed")
    path = artifact.save(model, folder / "model.keras", SCHEMA, thr, artifact.Preprocessing((8, 8), 1))
    rng = np.random.default_rng(0)
    pixels = {}
    for i in range(3):
        a = rng.integers(0, 256, size=(8, 8), dtype=np.uint8)
        Image.fromarray(a).save(folder / f"im{i}.png")
        pixels[f"im{i}.png"] = a
    return folder, path, model, pixels


def _expected(model, arrays):
    return model.predict(np.stack(arrays).astype(np.float32)[..., None], verbose=0)


@pytest.mark.slow
def test_predict_one_image_several_paths_and_a_glob(saved, capsys):
    folder, path, model, pixels = saved
    one = folder / "im1.png"
    assert main(["predict", str(path), str(one), "--out", str(folder / "one.csv"), "--quiet"]) == 0
    frame = pd.read_csv(folder / "one.csv")
    assert list(frame["id"]) == [str(one)]
    np.testing.assert_allclose(frame[["p_cat", "p_dog", "p_owl"]].to_numpy(),
                               _expected(model, [pixels["im1.png"]]), atol=1e-5)
    two = [str(folder / "im2.png"), str(folder / "im0.png")]
    assert main(["predict", str(path), *two, "--out", str(folder / "two.csv"), "--quiet"]) == 0
    assert list(pd.read_csv(folder / "two.csv")["id"]) == two
    assert main(["predict", str(path), str(folder / "im*.png"), "--out", str(folder / "glob.csv"), "--quiet"]) == 0
    frame = pd.read_csv(folder / "glob.csv")
    assert [p.rsplit("/", 1)[1] for p in frame["id"]] == ["im0.png", "im1.png", "im2.png"]
    np.testing.assert_allclose(frame[["p_cat", "p_dog", "p_owl"]].to_numpy(),
                               _expected(model, [pixels[f"im{i}.png"] for i in range(3)]), atol=1e-5)
    capsys.readouterr()
    assert main(["predict", str(path), str(folder / "nothing*.png"), "--out", str(folder / "x.csv")]) == 2
    assert "matches no image file" in capsys.readouterr().err


def test_truncated_or_empty_keras_file_is_named_not_valid(saved, tmp_path, capsys):
    _, path, _, _ = saved
    data = path.read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.keras").write_bytes(b"")
    (tmp_path / "text.keras").write_text("hello")
    for name, why in (("cut", "truncated or not a zip"), ("empty", "empty"), ("text", "truncated or not a zip")):
        with pytest.raises(InputError, match=f"is not a valid .keras file: it is {why}"):
            artifact.load(tmp_path / f"{name}.keras")
    assert main(["predict", str(tmp_path / "cut.keras"), str(tmp_path), "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert "not a valid .keras file" in err and "not found" not in err.lower()


def test_schema_must_fit_the_model_at_save_and_shape_message_has_no_batch(saved, tmp_path):
    folder, _, model, _ = saved
    two = LabelSchema(independent=("cat", "dog"))
    with pytest.raises(InputError, match=r"outputs 3 scores per image, but the schema has 2 outputs \['cat', 'dog'\]"):
        artifact.save(model, tmp_path / "bad.keras", two)
    assert not (tmp_path / "bad.keras").exists()
    paths = [str(folder / f"im{i % 3}.png") for i in range(5)]
    with pytest.raises(InputError) as e:
        predict_scores(model, paths, schema=two, image_size=(8, 8), channels=1, batch_size=4)
    msg = str(e.value)
    assert "3 scores per image" in msg and "(5, 3)" not in msg and "5" not in msg
