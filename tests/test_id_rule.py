"""One id rule between commands: ids written by one command (the table's own, or paths relative
to a predicted folder, with or without the file extension) join the table another reads, with or
without --split; predict finds an image for an id without extension exactly as train does."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from labelwise.labels.ids import match_ids
from labelwise.training.predict import read_inputs
from conftest import noisy_scores, run_cli as run


def test_match_ids_tries_exact_then_path_then_name_then_stem():
    wanted = ["x1", "d/x2.png", "x3.png", "./e/x4.jpg", "x5"]
    given = ["e/x4.jpg", "x5", "a/x3.png", "x1.png", "d/x2.png"]
    assert match_ids(wanted, given).tolist() == [3, 4, 2, 0, 1]
    # a name two folders share pairs nothing: never a guess
    assert match_ids(["x1.png"], ["a/x1.png", "b/x1.png"]).tolist() == [-1]
    assert match_ids(["a/x1.png", "b/x1.png"], ["a/x1.png", "b/x1.png"]).tolist() == [0, 1]
    # several wanted ids may read one given id when asked (a table with repeated ids)
    assert match_ids(["x1", "x1"], ["x1.png"], one_to_one=False).tolist() == [0, 0]
    assert match_ids(["x1", "x1"], ["x1.png"]).tolist() == [-1, -1]


@pytest.fixture
def truth_and_folder_scores(tmp_path):
    rng = np.random.default_rng(1)
    n = 30
    y = rng.integers(0, 2, size=(n, 2))
    s = noisy_scores(rng, y, 0.7, 0.3, 0.25)
    names = [f"x{i}" for i in range(n)]
    split = np.where(np.arange(n) < 12, "val", "test")
    pd.DataFrame({"id": names, "a": y[:, 0], "b": y[:, 1], "split": split}).to_csv(tmp_path / "t.csv", index=False)
    # what predicting a folder with subfolders writes: paths relative to it, with the extension
    folder_ids = [f"{'d' if i % 2 else 'e'}/x{i}.png" for i in range(n)]
    pd.DataFrame({"id": folder_ids, "p_a": s[:, 0], "p_b": s[:, 1], "a": 0, "b": 0}).to_csv(
        tmp_path / "pred.csv", index=False)
    return tmp_path, y, s, split


def test_evaluate_joins_folder_ids_with_and_without_split(truth_and_folder_scores, capsys):
    d, y, s, split = truth_and_folder_scores
    test = split == "test"
    assert run("evaluate", "--truth", d / "t.csv", "--scores", d / "pred.csv", "--split", "test", "--bootstrap", 0,
               "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["n_images"] == int(test.sum())
    assert np.allclose([r["auc"] for r in doc["per_label"]], [roc_auc_score(y[test, j], s[test, j]) for j in (0, 1)])
    assert run("calibrate", "--truth", d / "t.csv", "--scores", d / "pred.csv", "--split", "val") == 0
    assert "fitting on 12 rows of split 'val'" in capsys.readouterr().out


def test_predict_table_finds_images_without_extension_like_train(tmp_path):
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    for name in ("a1.png", "a2.jpg", "sub/a3.png"):
        Image.new("L", (8, 8)).save(tmp_path / "imgs" / name)
    pd.DataFrame({"id": ["a1", "a2.jpg", "sub/a3"], "x": [1, 0, 1]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.warns(UserWarning, match="2 id"):
        ids, paths = read_inputs(tmp_path / "t.csv", images=tmp_path / "imgs")
    assert ids == ["a1", "a2.jpg", "sub/a3"]  # the table's ids, so the output joins back unedited
    assert [p.replace("\\", "/").split("imgs/")[1] for p in paths] == ["a1.png", "a2.jpg", "sub/a3.png"]
    # a folder: ids relative to it
    ids, _ = read_inputs(tmp_path / "imgs")
    assert sorted(i.replace("\\", "/") for i in ids) == ["a1.png", "a2.jpg", "sub/a3.png"]


def test_train_and_predict_resolve_a_tables_ids_to_the_same_files(tmp_path):
    from labelwise.errors import TableError
    from labelwise.labels.tables import read_table

    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    for name in ("a1.png", "a2.jpg", "sub/a3.png", "b.png", "b.jpg"):
        Image.new("L", (8, 8)).save(tmp_path / "imgs" / name)
    pd.DataFrame({"id": ["a1", "a2.jpg", "sub/a3"], "x": [1, 0, 1]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.warns(UserWarning, match="2 id"):
        table = read_table(tmp_path / "t.csv", images=tmp_path / "imgs")
    with pytest.warns(UserWarning, match="2 id"):
        _, paths = read_inputs(tmp_path / "t.csv", images=(tmp_path / "imgs").resolve())
    assert list(table.paths) == paths
    assert [p.replace("\\", "/").split("imgs/")[1] for p in paths] == ["a1.png", "a2.jpg", "sub/a3.png"]
    # a stem two files share names both, and is never guessed
    pd.DataFrame({"id": ["b", "a1"], "x": [1, 0]}).to_csv(tmp_path / "u.csv", index=False)
    with pytest.raises(TableError, match="'b.jpg' and 'b.png'"):
        read_table(tmp_path / "u.csv", images=tmp_path / "imgs")


def test_a_score_file_with_a_tables_repeated_rows_is_read_once(tmp_path):
    from labelwise.errors import InputError
    from labelwise.labels.scores import read_scores

    pd.DataFrame({"id": ["x1", "x2", "x1"], "a": [0.9, 0.2, 0.9 + 1e-9]}).to_csv(tmp_path / "s.csv", index=False)
    with pytest.warns(UserWarning, match="1 repeated row"):
        ids, s = read_scores(tmp_path / "s.csv", ids=["x2", "x1"], labels=["a"])
    assert s[:, 0].tolist() == pytest.approx([0.2, 0.9])
    pd.DataFrame({"id": ["x1", "x2", "x1"], "a": [0.9, 0.2, 0.1]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputError, match="line 4: id 'x1' appears twice .*other scores"):
        read_scores(tmp_path / "bad.csv", ids=["x2", "x1"], labels=["a"])
