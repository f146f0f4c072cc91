"""How label tables are read when real tables differ from tidy ones: columns addressed by name,
list columns beside one-hot columns, bool and float cells, repeated headers, split columns,
id-column choice, label subsets of a schema, and stray spaces."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from labelwise import LabelSchema, SchemaViolation, TableError
from labelwise.labels.tables import read_table


def _write(tmp_path, text, name="t.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _by_name(table):
    """{id: set of true labels}: what the table says, independent of column order."""
    return {str(i): {lbl for lbl, v in zip(table.labels, row) if v} for i, row in zip(table.ids, table.y)}


@pytest.mark.parametrize("header,rows,expected", [
    # an inferred none label in the middle
    ("id,a,none,b", ["1,1,0,0", "2,0,1,0", "3,0,0,1", "4,1,0,1"],
     {"1": {"a"}, "2": {"none"}, "3": {"b"}, "4": {"a", "b"}}),
    # ... and first, as CheXpert's "No Finding"
    ("id,No Finding,a,b,c", ["1,0,1,0,0", "2,1,0,0,0", "3,0,0,1,1", "4,0,1,0,1", "5,1,0,0,0"],
     {"1": {"a"}, "2": {"No Finding"}, "3": {"b", "c"}, "4": {"a", "c"}, "5": {"No Finding"}}),
])
def test_inferred_none_label_anywhere_is_read_by_name(tmp_path, header, rows, expected):
    t = read_table(_write(tmp_path, "\n".join([header, *rows]) + "\n"))
    assert _by_name(t) == expected


def test_declared_none_label_first_is_read_by_name(tmp_path):
    schema = LabelSchema(independent=("b", "a"), none="No Finding")
    t = read_table(_write(tmp_path, "id,No Finding,a,b\n1,1,0,0\n2,0,1,0\n3,0,1,1\n4,0,0,1\n"), schema=schema)
    assert _by_name(t) == {"1": {"No Finding"}, "2": {"a"}, "3": {"a", "b"}, "4": {"b"}}


def test_one_hot_columns_beside_an_agreeing_list_column_are_read_as_one_hot(tmp_path):
    p = _write(tmp_path, "id,labels,Effusion,Mass\n1,Effusion,1,0\n2,Effusion|Mass,1,1\n3,Mass,0,1\n")
    with pytest.warns(UserWarning, match="agree"):
        t = read_table(p)
    assert _by_name(t) == {"1": {"Effusion"}, "2": {"Effusion", "Mass"}, "3": {"Mass"}}
    assert t.format == "onehot" and "labels" in t.extra.columns


def test_one_hot_columns_beside_a_disagreeing_list_column_are_refused_with_the_flags(tmp_path):
    p = _write(tmp_path, "id,label,Effusion\n1,1,0\n2,0,1\n3,1,1\n")
    with pytest.raises(TableError) as e:
        read_table(p)
    msg = str(e.value)
    assert str(p) in msg and "'label'" in msg and "Effusion" in msg
    assert "--format onehot" in msg and "--label-column" in msg
    # either reading is available when asked for
    assert _by_name(read_table(p, format="onehot")) == {"1": set(), "2": {"Effusion"}, "3": {"Effusion"}}
    assert set(read_table(p, label_column="label").labels) == {"0", "1"}


def test_list_literal_tags_column_beside_one_hot_columns(tmp_path):
    p = _write(tmp_path, 'id,a,N/A,b,Tags\nx1,1,0,0,"[\'a\']"\nx2,0,1,0,"[\'N/A\']"\nx3,1,0,1,"[\'a\', \'b\']"\n')
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = read_table(p)
    assert _by_name(t) == {"x1": {"a"}, "x2": {"N/A"}, "x3": {"a", "b"}}


@pytest.mark.parametrize("cells", [("True", "False", "True"), ("TRUE", "FALSE", "TRUE"), ("true", "false", "true"),
                                   ("1.00", "0.00", "1.00"), ("1.0", "0.0", "1.0")])
def test_boolean_and_float_cells_are_binary(tmp_path, cells):
    rows = [f"{i},{e},{m}" for i, e, m in zip((1, 2, 3), ("1", "0", "0"), cells)]
    t = read_table(_write(tmp_path, "id,Effusion,Mass\n" + "\n".join(rows) + "\n"))
    assert _by_name(t) == {"1": {"Effusion", "Mass"}, "2": set(), "3": {"Mass"}}


def test_a_column_name_given_twice_is_refused_naming_it(tmp_path):
    p = _write(tmp_path, "id,a,b,a\n1,1,0,1\n2,0,1,0\n")
    with pytest.raises(TableError, match=r"'a'.*(twice|more than once)") as e:
        read_table(p)
    assert str(p) in str(e.value)


@pytest.mark.parametrize("column", ["fold", "split", "Subset", "partition", "set"])
def test_split_columns_are_never_labels(tmp_path, column):
    p = _write(tmp_path, f"id,a,b,{column}\n1,1,0,0\n2,0,1,1\n3,1,1,0\n4,0,0,1\n")
    t = read_table(p)
    assert set(t.labels) <= {"a", "b", "none"} and column in t.extra.columns


def test_an_image_name_column_is_the_id_rather_than_a_path_column(tmp_path):
    p = _write(tmp_path, "Image Index,path,a,b\nx1.png,/data/i/x1.png,1,0\nx2.png,/data/i/x2.png,0,1\n")
    t = read_table(p)
    assert list(t.ids) == ["x1.png", "x2.png"] and t.id_column == "Image Index" and "path" in t.extra.columns


def test_label_names_outside_the_schema_are_refused_clearly(tmp_path):
    p = _write(tmp_path, "x1 1 0\nx2 0 1\n", name="list.txt")
    schema = LabelSchema(independent=("a", "b"))
    with pytest.raises(TableError, match=r"'c'.*not.*schema") as e:
        read_table(p, format="onehot", schema=schema, labels=["a", "c"])
    assert str(p) in str(e.value)


def test_a_label_subset_of_the_schema_says_which_labels_are_unknown(tmp_path):
    p = _write(tmp_path, "x1 1\nx2 0\n", name="list.txt")
    schema = LabelSchema(independent=("a", "b", "c"))
    with pytest.warns(UserWarning, match=r"'b'.*'c'.*unknown|unknown.*'b'.*'c'"):
        t = read_table(p, format="onehot", schema=schema, labels=["a"])
    assert t.y[:, t.labels.index("a")].tolist() == [1, 0]
    assert not t.known[:, t.labels.index("b")].any() and t.known[:, t.labels.index("a")].all()


def test_a_label_subset_of_the_schema_in_a_headed_table_leaves_the_others_unknown(tmp_path):
    p = _write(tmp_path, "id,c,a,x\n1,1,0,7\n2,0,1,8\n")
    schema = LabelSchema(independent=("a", "b", "c"))
    with pytest.warns(UserWarning, match=r"\['b'\].*unknown"):
        t = read_table(p, schema=schema, labels=["a", "c"])
    assert _by_name(t) == {"1": {"c"}, "2": {"a"}} and not t.known[:, t.labels.index("b")].any()


def test_trailing_spaces_in_headers_and_cells_are_stripped(tmp_path):
    p = _write(tmp_path, "id ,a ,b\nx1 ,1 ,0\nx2,0, 1 \n")
    t = read_table(p)
    assert _by_name(t) == {"x1": {"a"}, "x2": {"b"}}


def test_tab_separated_and_headerless_files_get_the_same_csv_guarantees(tmp_path):
    from labelwise.labels.csvread import read_csv

    p = _write(tmp_path, "id\tscore \n x1 \t 0.5 \n\t\nx2\t0.25\t\n", name="s.tsv")
    with pytest.warns(UserWarning, match=r"spaces around column name\(s\) \['score '\]"):
        frame = read_csv(p, sep="\t")
    assert list(frame.columns) == ["id", "score"] and frame.fillna("").to_numpy().tolist() == [
        ["x1", "0.5"], ["", ""], ["x2", "0.25"]]
    with pytest.raises(TableError, match=r"s.tsv: column 'a' appears more than once in the header"):
        read_csv(_write(tmp_path, "a\ta\n1\t2\n", name="s.tsv"), sep="\t")
    with pytest.raises(TableError, match=r"s.tsv, line 3: 3 fields but the header has 2 \(extra value '9'\)"):
        read_csv(_write(tmp_path, "a\tb\n1\t2\n3\t4\t9\n", name="s.tsv"), sep="\t")
    gz = tmp_path / "g.csv"
    gz.write_bytes(b"\x1f\x8b\x08\x00")
    with pytest.raises(TableError, match="binary file"):
        read_csv(gz, header=False)
    frame = read_csv(_write(tmp_path, "0001, 1 \n0002,0\n", name="l.csv"), header=False, empty="")
    assert frame.to_numpy().tolist() == [["0001", "1"], ["0002", "0"]]


def test_a_label_list_the_schema_refuses_names_its_first_bad_row_and_counts_the_others(tmp_path):
    schema = LabelSchema(independent=("a", "b"), none="none")
    p = _write(tmp_path, "id,labels\nx,a\ny,a|none\nz,b|none\nw,a|none\n")
    with pytest.raises(SchemaViolation, match=r"t.csv, row y at line 3: 'none' is given together with 'a'.*"
                                              r"\(2 more row\(s\) like this\)"):
        read_table(p, schema=schema)
    p = _write(tmp_path, "id,labels\nx,a\ny,a|q\nz,b|q\n")
    with pytest.raises(SchemaViolation, match=r"t.csv, row y at line 3: unknown label 'q'"):
        read_table(p, schema=schema)
