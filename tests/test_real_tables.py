"""Label tables as a new user brings them: ids without extensions,
duplicate rows, label cells holding list literals."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from labelwise.errors import TableError
from labelwise.labels.tables import read_table


def _images(folder, names):
    folder.mkdir(exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"x")  # only existence is checked when attaching paths
    return folder


def test_ids_without_extension_match_the_one_file_with_that_stem(tmp_path):
    imgs = _images(tmp_path / "img", ["tt01.jpg", "tt02.jpg", "tt03.png"])
    (tmp_path / "t.csv").write_text("id,labels\ntt01,a\ntt02,b\ntt03,a|b\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = read_table(tmp_path / "t.csv", images=imgs)
    said = [str(w.message) for w in caught if "no file extension" in str(w.message)]
    assert len(said) == 1 and "3 id(s)" in said[0] and "'tt01' -> 'tt01.jpg'" in said[0]
    assert [p.rsplit("/", 1)[1] for p in t.paths] == ["tt01.jpg", "tt02.jpg", "tt03.png"]


def test_not_found_names_a_near_miss_and_never_suggests_dropping_most_rows(tmp_path):
    imgs = _images(tmp_path / "img", ["tt01.jpg", "tt01.png", "tt02.JPG", "tt03.jpg", "tt04.jpg"])
    # tt01 is ambiguous (two files), the rest are named by another spelling: every row is missing
    (tmp_path / "t.csv").write_text("id,labels\ntt01,a\nTT02.jpg,b\ntt03.jpeg,a\n")
    with pytest.raises(TableError) as e:
        read_table(tmp_path / "t.csv", images=imgs)
    msg = str(e.value)
    assert "3 of 3 images" in msg and "'tt01.jpg' and 'tt01.png'" in msg
    assert "drop" not in msg and "skip" not in msg and "not found in" not in msg
    assert "right one" in msg
    # a few missing of many: dropping them is offered, with the near miss
    (tmp_path / "u.csv").write_text("id,labels\ntt01.jpg,a\ntt03.jpg,b\ntt04.jpg,a\ntt02.jpg,b\n")
    with pytest.raises(TableError) as e:
        read_table(tmp_path / "u.csv", images=imgs)
    assert "1 of 4 images not found" in str(e.value) and "'tt02.JPG'" in str(e.value)
    assert "on_missing='drop'" in str(e.value)


def test_duplicate_rows_with_the_same_labels_are_merged_with_a_count(tmp_path):
    (tmp_path / "t.csv").write_text("id,labels,site\na.png,x|y,1\nb.png,x,2\na.png,y|x,3\nc.png,y,4\n"
                                    "b.png,x,5\na.png,x|y,6\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = read_table(tmp_path / "t.csv")
    said = [str(w.message) for w in caught if "duplicate row" in str(w.message)]
    assert len(said) == 1 and "3 duplicate row(s) of 2 id(s)" in said[0] and "lines 2, 4, 7" in said[0]
    assert list(t.ids) == ["a.png", "b.png", "c.png"]
    assert list(t.lines) == [2, 3, 5] and list(t.extra["site"]) == ["1", "2", "4"]  # the first row is kept
    np.testing.assert_array_equal(t.y, [[1, 1], [1, 0], [0, 1]])
    # one-hot tables too
    (tmp_path / "o.csv").write_text("id,x,y\na,1,0\nb,0,1\na,1,0\n")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert list(read_table(tmp_path / "o.csv", format="onehot").ids) == ["a", "b"]


def test_duplicate_ids_with_different_labels_name_both_lines(tmp_path):
    (tmp_path / "t.csv").write_text("id,labels\na.png,x\nb.png,y\na.png,y\n")
    with pytest.raises(TableError) as e:
        read_table(tmp_path / "t.csv")
    msg = str(e.value)
    assert "'a.png'" in msg and "line 2 says 'x'" in msg and "line 4 says 'y'" in msg


def test_list_literal_cells_are_read_as_lists(tmp_path):
    (tmp_path / "t.csv").write_text('id,genres\nm1,"[\'Comedy\', \'Drama\']"\nm2,"[""Drama""]"\n'
                                    'm3,"[\'Sci-Fi, Fantasy\']"\nm4,Comedy\n')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = read_table(tmp_path / "t.csv", label_column="genres", sep=", ")
    said = [str(w.message) for w in caught if "list literals" in str(w.message)]
    assert len(said) == 1
    assert not [w for w in caught if "brackets" in str(w.message)]
    assert sorted(t.labels) == ["Comedy", "Drama", "Sci-Fi, Fantasy"]
    rows = {i: {lbl for lbl, v in zip(t.labels, r) if v} for i, r in zip(t.ids, t.y)}
    assert rows == {"m1": {"Comedy", "Drama"}, "m2": {"Drama"}, "m3": {"Sci-Fi, Fantasy"}, "m4": {"Comedy"}}


def test_broken_list_cell_is_refused_naming_it_and_odd_names_warn(tmp_path):
    (tmp_path / "t.csv").write_text('id,labels\nm1,"[\'Comedy\', \'Drama\'"\nm2,Drama\n')
    with pytest.raises(TableError) as e:
        read_table(tmp_path / "t.csv")
    assert "m1 at line 2" in str(e.value) and "['a', 'b']" in str(e.value)
    (tmp_path / "u.csv").write_text("id,labels\nm1,'Comedy'|Drama\nm2,Drama\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_table(tmp_path / "u.csv")
    assert [w for w in caught if "brackets or quotes" in str(w.message) and "\"'Comedy'\"" in str(w.message)]


def test_schema_none_means_infer_not_a_file_name(tmp_path, capsys, monkeypatch):
    from labelwise.commands.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text("id,labels\na,x|y\nb,x\nc,y\n")
    inferred = read_table(tmp_path / "t.csv")
    for word in ("none", "None", "auto"):
        t = read_table(tmp_path / "t.csv", schema=word)
        assert t.schema.labels == inferred.schema.labels
        np.testing.assert_array_equal(t.y, inferred.y)
    assert main(["inspect", "t.csv", "--schema", "none"]) == 0
    assert "no such file" not in capsys.readouterr().err.lower()
    # a real file called "none" is still read as the schema it holds
    (tmp_path / "none").write_text('[labels]\nindependent = ["x", "y", "z"]\n')
    assert read_table(tmp_path / "t.csv", schema="none").schema.labels == ("x", "y", "z")
