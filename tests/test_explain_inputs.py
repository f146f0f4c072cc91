"""`labelwise explain` on a file it cannot read says what it takes, before loading the model."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from labelwise import LabelSchema  # noqa: E402
from labelwise.blocks.models import build_model  # noqa: E402
from labelwise.commands.cli import main  # noqa: E402
from labelwise.decide.thresholds import Thresholds  # noqa: E402
from labelwise.training import artifact  # noqa: E402

SCHEMA = LabelSchema(independent=("a", "b"))


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    keras.utils.set_random_seed(2)
    model = build_model(SCHEMA, "small_cnn", input_shape=(8, 8, 1), weights=None)
    thr = Thresholds(labels=SCHEMA.labels, values=[0.5, 0.5], method="fixed")
    return artifact.save(model, root / "model.keras", SCHEMA, thr, artifact.Preprocessing((8, 8), 1))


@pytest.mark.parametrize("name, text", [("note.txt", "remember to explain the model\n"),
                                         ("scan.dcm", "DICM"), ("README", "hello\n")])
def test_a_file_that_is_neither_image_nor_table_is_refused_saying_what_explain_takes(model_path, tmp_path, capsys,
                                                                                    name, text):
    source = tmp_path / name
    source.write_text(text)
    out = tmp_path / "out"
    assert main(["explain", str(model_path), str(source), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(source) in err and "explain cannot read" in err
    assert "folder of images" in err and ".png" in err and ".csv" in err and ".npy" in err
    assert "no rows" not in err
    assert not out.exists()


def test_a_table_and_an_image_are_still_explained(model_path, tmp_path, capsys):
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(tmp_path / "x.png")
    (tmp_path / "list.csv").write_text("path\nx.png\n")
    for source in ("x.png", "list.csv"):
        out = tmp_path / f"out-{source}"
        assert main(["explain", str(model_path), str(tmp_path / source), "--out", str(out)]) == 0
        assert (out / "index.html").exists()
        assert "1 image(s)" in capsys.readouterr().out


def test_a_tables_image_column_is_named_with_id_column_as_in_predict(model_path, tmp_path, capsys):
    for name, v in (("x.png", 10), ("y.png", 200)):
        Image.fromarray(np.full((8, 8), v, dtype=np.uint8)).save(tmp_path / name)
    # "case" comes first and is no path column, so without the flag it would be read as the paths
    (tmp_path / "list.csv").write_text("case,img\nc1,x.png\nc2,y.png\n")
    out = tmp_path / "out"
    assert main(["explain", str(model_path), str(tmp_path / "list.csv"), "--id-column", "img", "--out", str(out)]) == 0
    assert "2 image(s)" in capsys.readouterr().out
    explained = sorted(line.split(",")[0] for line in (out / "predictions.csv").read_text().splitlines()[1:])
    assert main(["predict", str(model_path), str(tmp_path / "list.csv"), "--id-column", "img",
                 "--out", str(tmp_path / "p.csv")]) == 0
    predicted = sorted(line.split(",")[0] for line in (tmp_path / "p.csv").read_text().splitlines()[1:])
    assert explained == predicted and len(explained) == 2 and all(i.endswith((".png")) for i in explained)
    assert main(["explain", str(model_path), str(tmp_path / "list.csv"), "--out", str(tmp_path / "o2")]) != 0


def test_split_rows_of_a_tab_separated_table_are_found_by_the_shared_split_column_names(model_path, tmp_path,
                                                                                       capsys):
    for name, v in (("x.png", 10), ("y.png", 200), ("z.png", 90)):
        Image.fromarray(np.full((8, 8), v, dtype=np.uint8)).save(tmp_path / name)
    (tmp_path / "list.tsv").write_text("image\tSubset\nx.png\tValidation\ny.png\ttest\nz.png\t Test \n")
    out = tmp_path / "out"
    assert main(["explain", str(model_path), str(tmp_path / "list.tsv"), "--split", "test", "--out", str(out)]) == 0
    assert "2 image(s)" in capsys.readouterr().out
    written = (out / "index.html").read_text()
    assert "y.png" in written and "z.png" in written and "x.png" not in written
