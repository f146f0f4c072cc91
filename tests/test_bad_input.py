"""Bad input: each case must end in a clear one-line error
(file, row and line, label, what to do) or, where the input is fine, in the right reading.

Every expected value here is written out by hand from the file the test writes, not computed
with labelwise.
"""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest

from conftest import NIH_TABLE, require
from labelwise import LabelSchema, SchemaViolation, TableError
from labelwise.commands.cli import main
from labelwise.errors import InputError, LabelwiseError
from labelwise.io import atomic_path, write_text
from labelwise.labels.split import grouped_stratified_split
from labelwise.labels.tables import read_table


def _write(path, text):
    path.write_text(text)
    return path


def _cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


# ------------------------------------------------------------ split --check
def test_check_empty_split_cell_names_the_row(tmp_path, capsys):
    p = _write(tmp_path / "hole_split.csv", "id,group,split\na,1,train\nb,2,\nc,3,test\n")
    rc, _, err = _cli(capsys, "split", p, "--check")
    assert rc == 2
    assert "hole_split.csv, row b at line 3: empty 'split'" in err and "every row needs" in err


def test_check_empty_group_cell_is_an_error_not_skipped(tmp_path, capsys):
    p = _write(tmp_path / "hole_group.csv", "id,group,split\na,1,train\nb,1,train\nc,,test\nd,2,test\n")
    rc, out, err = _cli(capsys, "split", p, "--check")
    assert rc == 2 and "no leakage" not in out
    assert "hole_group.csv, row c at line 4: empty 'group'" in err


def test_check_prefers_the_patient_column_and_sees_the_leak(tmp_path, capsys):
    # patient 1 is in train (a) and test (b); the 'group' column (x, y, z) hides it
    p = _write(tmp_path / "grp.csv", "id,Patient ID,group,split\na,1,x,train\nb,1,y,test\nc,2,z,val\n")
    rc, out, err = _cli(capsys, "split", p, "--check")
    assert rc != 0 and "no leakage" not in out
    assert "Patient ID" in out + err
    # a file written by `split --out` (id, group, split) is still checked by 'group'
    q = _write(tmp_path / "ours.csv", "id,group,split\na,1,train\nb,1,test\n")
    rc, out, _ = _cli(capsys, "split", q, "--check")
    assert rc == 1 and "LEAK: 1 group(s)" in out


def test_no_groups_with_group_column_is_an_error(tmp_path, capsys):
    p = _write(tmp_path / "t.csv", "id,labels,Patient ID\na,x,1\nb,y,2\nc,x,3\nd,y,4\n")
    rc, _, err = _cli(capsys, "split", p, "--fractions", "0.5,0.5", "--no-groups", "--group-column", "Patient ID")
    assert rc == 2 and "--no-groups" in err and "--group-column" in err


# ------------------------------------------------------------ ragged rows
def test_row_with_an_extra_field_is_an_error(tmp_path, capsys):
    p = _write(tmp_path / "ragged_all.csv", "Image Index,Finding Labels,Patient ID\na.png,Effusion,1,X\nb.png,Mass,2,Y\n")
    with pytest.raises(TableError, match=r"ragged_all\.csv, line 2: 4 fields but the header has 3 \(extra value 'X'\)"):
        read_table(p)
    rc, _, err = _cli(capsys, "inspect", p)
    assert rc == 2 and "line 2" in err
    # only a later row is ragged
    q = _write(tmp_path / "ragged_one.csv", "Image Index,Finding Labels,Patient ID\na.png,Effusion,1\nb.png,Mass,2,Y\n")
    with pytest.raises(TableError, match=r"ragged_one\.csv, line 3: 4 fields but the header has 3 \(extra value 'Y'\)"):
        read_table(q)


def test_trailing_empty_fields_are_harmless(tmp_path):
    p = _write(tmp_path / "trailing.csv", "Image Index,Finding Labels,Patient ID\na.png,Effusion,1,\nb.png,Mass|Nodule,2,\n")
    t = read_table(p)
    assert list(t.ids) == ["a.png", "b.png"] and set(t.labels) == {"Effusion", "Mass", "Nodule"}
    assert t.extra["Patient ID"].tolist() == ["1", "2"]
    q = _write(tmp_path / "trailing_one.csv", "Image Index,Finding Labels,Patient ID\na.png,Effusion,1\nb.png,Mass,2,\n")
    t = read_table(q)
    assert list(t.ids) == ["a.png", "b.png"] and t.lines.tolist() == [2, 3]


# ------------------------------------------------------------ single-label tables
def test_single_label_table_proposes_no_none_label(tmp_path, capsys):
    p = _write(tmp_path / "mc.csv", "id,cat,dog,bird\na,1,0,0\nb,0,1,0\nc,0,0,1\nd,1,0,0\n")
    t = read_table(p)
    assert t.schema.none is None and set(t.schema.independent) == {"cat", "dog", "bird"}
    assert any("exactly one label" in n and "exclusive group" in n for n in t.schema.notes)
    rc, out, _ = _cli(capsys, "inspect", p)
    assert rc == 0 and "none label '" not in out and "exclusive group" in out
    assert "if it means 'no finding'" not in out
    # with a declared all-independent schema, inspect itself says so
    s = _write(tmp_path / "s.toml", '[labels]\nindependent = ["cat", "dog", "bird"]\n')
    rc, out, _ = _cli(capsys, "inspect", p, "--schema", s)
    assert rc == 0 and "warning: every row has exactly one label" in out


def test_infer_proposes_only_a_unique_candidate():
    # A and B each hold alone on their rows: either could be "none", so neither is proposed
    y = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]])
    assert LabelSchema.infer(y, ["A", "B", "C", "D"]).none is None


# ------------------------------------------------------------ separator-only cell
def test_separator_only_cell_names_file_and_row(tmp_path):
    p = _write(tmp_path / "pipeonly.csv",
               "Image Index,Finding Labels,Patient ID\na.png,Effusion,1\nb.png,Effusion,2\nc.png,Effusion,3\nd.png,|,4\n")
    with pytest.raises(SchemaViolation, match=r"pipeonly\.csv, row d\.png at line 5: empty label cell"):
        read_table(p)


# ------------------------------------------------------------ NIH "No Finding"
def test_nih_format_without_schema_rejects_no_finding_with_a_finding(tmp_path, capsys):
    p = _write(tmp_path / "nofind_eff.csv", "Image Index,Finding Labels,Patient ID\na.png,Effusion,1\n"
                                             "b.png,No Finding|Effusion,2\nc.png,No Finding,3\n")
    with pytest.raises(SchemaViolation, match=r"nofind_eff\.csv, row b\.png at line 3: 'No Finding' is given "
                                              r"together with 'Effusion'"):
        read_table(p)
    rc, _, err = _cli(capsys, "inspect", p)
    assert rc == 2 and "row b.png at line 3" in err


def test_nih_format_without_schema_takes_no_finding_as_none(tmp_path):
    # here "No Finding" is on one row only, too few for the data alone to prove it is "none"
    p = _write(tmp_path / "nih_small.csv", "Image Index,Finding Labels,Patient ID\na.png,Effusion,1\n"
                                            "b.png,No Finding,2\n")
    t = read_table(p)
    assert t.schema.none == "No Finding" and t.schema.independent == ("Effusion",)
    assert t.y.tolist() == [[1, 0], [0, 1]]
    # without "No Finding" the format has no none label: a lone label is not guessed as one
    q = _write(tmp_path / "nih_nonone.csv", "Image Index,Finding Labels\na.png,Effusion\nb.png,Mass|Nodule\n")
    assert read_table(q).schema.none is None


def test_real_nih_table_still_reads_the_same(capsys):
    rc, out, _ = _cli(capsys, "inspect", require(NIH_TABLE))
    assert rc == 0
    assert "none label 'No Finding'" in out and "60,361 rows, never co-occurs with another label" in out
    hernia = [line for line in out.splitlines() if line.startswith("Hernia ")]
    assert hernia and hernia[0].split()[1] == "227"


# ------------------------------------------------------------ decode
MIXED = LabelSchema(["Effusion", "Mass"], none="No Finding", exclusive={"view": ["PA", "AP"]})


def test_decode_rejects_scores_and_points_to_decide():
    with pytest.raises(SchemaViolation, match=r"row 0, label 'Effusion': decode takes 0/1 decisions, got 0\.7.*"
                                              r"labelwise\.decide\.decide"):
        MIXED.decode(np.array([[0.7, 0, 1, 0, 0]]))
    with pytest.raises(SchemaViolation, match="got nan"):
        MIXED.decode(np.array([[1, np.nan, 1, 0]]))


def test_decode_rejects_rows_that_break_the_schema():
    with pytest.raises(SchemaViolation, match="'No Finding' is true together with 'Effusion'"):
        MIXED.decode(np.array([[1, 0, 1, 0, 1]]))
    with pytest.raises(SchemaViolation, match=r"2 members of exclusive group 'view' are true \(PA, AP\)"):
        MIXED.decode(np.array([[1, 0, 1, 1, 0]]))
    with pytest.raises(SchemaViolation, match=r"row 1: no member of exclusive group 'view'"):
        MIXED.decode(np.array([[1, 0, 1, 0], [0, 0, 0, 0]]))  # head outputs: none is derived
    # valid input still decodes; booleans and floats 0.0/1.0 are decisions too
    assert MIXED.decode(np.array([[1, 0, 0, 1, 0], [0, 0, 1, 0, 1]])) == [["Effusion", "AP"], ["PA", "No Finding"]]
    assert MIXED.decode(np.array([[True, True, False, True]])) == [["Effusion", "Mass", "AP"]]
    assert MIXED.decode(np.array([[0.0, 1.0, 1.0, 0.0]])) == [["Mass", "PA"]]


# ------------------------------------------------------------ missing columns
def test_nih_table_without_finding_labels_names_the_column(tmp_path):
    p = _write(tmp_path / "missingcol.csv", "Image Index,Patient ID\na.png,1\nb.png,2\n")
    with pytest.raises(TableError, match=r"missingcol\.csv: no labels column 'Finding Labels'"):
        read_table(p)


def test_patient_column_is_never_taken_as_the_id(tmp_path):
    p = _write(tmp_path / "noid2.csv", "Patient ID,Finding Labels\n1,Effusion\n1,Mass\n")
    with pytest.raises(TableError, match=r"noid2\.csv: no id column 'Image Index'"):
        read_table(p)
    q = _write(tmp_path / "noid3.csv", "Patient ID,labels\n1,Effusion\n1,Mass\n")
    with pytest.raises(TableError, match=r"noid3\.csv: cannot tell which column holds the id.*'Patient ID' groups rows"):
        read_table(q)


# ------------------------------------------------------------ one-hot label columns
def test_onehot_label_column_with_a_stray_value_is_an_error(tmp_path):
    rows = "".join(f"img{i:02d}.png,{i % 2},{(i // 2) % 2},{30 + i},P{i % 7}\n" for i in range(40))
    rows = rows.replace("img07.png,1,1,", "img07.png,1,2,")  # Mass = 2 on the row at file line 9
    p = _write(tmp_path / "truth_bad.csv", "id,Effusion,Mass,Patient Age,Patient ID\n" + rows)
    with pytest.raises(TableError, match=r"truth_bad\.csv, row img07\.png at line 9: label 'Mass' has '2'; "
                                         r"one-hot label columns hold 0 or 1"):
        read_table(p)


def test_onehot_small_table_stray_value_is_an_error(tmp_path):
    p = _write(tmp_path / "oh_bad.csv", "id,Effusion,Mass,No Finding,Patient ID\na,1,0,0,1\nb,0,2,0,2\nc,0,0,1,3\n")
    with pytest.raises(TableError, match=r"oh_bad\.csv, row b at line 3: label 'Mass' has '2'.*give a schema "
                                         r"\(--schema, schema=\) that lists the labels"):
        read_table(p)
    q = _write(tmp_path / "oh_bad2.csv", "id,Effusion,Mass,Patient ID\na,1,0,1\nb,0,2,2\n")
    with pytest.raises(TableError, match=r"oh_bad2\.csv, row b at line 3: label 'Mass' has '2'"):
        read_table(q)


def test_onehot_metadata_columns_stay_extras(tmp_path):
    rows = "".join(f"img{i:02d}.png,{i % 2},{(i // 3) % 2},{20 + i},{i // 2},{'M' if i % 2 else 'F'}\n"
                   for i in range(30))
    p = _write(tmp_path / "meta.csv", "id,Effusion,Mass,Patient Age,Patient ID,Patient Gender\n" + rows)
    t = read_table(p)
    assert set(t.labels) == {"Effusion", "Mass"}
    assert list(t.extra.columns) == ["Patient Age", "Patient ID", "Patient Gender"]
    # a patient column holding only 0/1 ids is still a patient column, not a label
    q = _write(tmp_path / "meta01.csv", "id,Effusion,Mass,Patient ID\na,1,0,0\nb,0,1,1\nc,1,1,1\n")
    assert set(read_table(q).labels) == {"Effusion", "Mass"}


# ------------------------------------------------------------ output paths
def test_atomic_path_turns_oserror_into_a_clear_error(tmp_path):
    folder = tmp_path / "outdir"
    folder.mkdir()
    with pytest.raises(LabelwiseError, match=r"cannot write .*outdir: it is a folder; choose another path"):
        write_text(folder, "x")
    afile = _write(tmp_path / "afile", "keep")
    with pytest.raises(LabelwiseError, match=r"cannot write .*afile/sub\.csv: .*; choose another path"):
        write_text(afile / "sub.csv", "x")
    # an OSError raised by the writer itself (e.g. disk full) is reported the same way
    with pytest.raises(LabelwiseError, match=r"cannot write .*x\.csv: No space left on device; choose another path"):
        with atomic_path(tmp_path / "x.csv") as tmp:
            tmp.write_text("half")
            raise OSError(28, "No space left on device")
    assert sorted(os.listdir(tmp_path)) == ["afile", "outdir"]  # no temporary file left
    assert afile.read_text() == "keep"


def test_cli_output_path_errors_are_one_line(tmp_path, capsys):
    table = _write(tmp_path / "t.csv", "id,labels,Patient ID\na,x,1\nb,y,2\nc,x,3\nd,y,4\n")
    (tmp_path / "outdir").mkdir()
    rc, _, err = _cli(capsys, "split", table, "--fractions", "0.5,0.5", "--out", tmp_path / "outdir")
    # Refused before splitting, in one line that says what to give instead.
    assert rc == 2 and "this is a folder; give a file path" in err and len(err.strip().splitlines()) == 1
    rc, _, err = _cli(capsys, "split", table, "--fractions", "0.5,0.5", "--out", tmp_path / "t.csv" / "s.csv")
    assert rc == 2 and "is a file, not a folder" in err and len(err.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == ["outdir", "t.csv"]


def test_cli_reports_a_stray_oserror_without_traceback(capsys, monkeypatch):
    import labelwise.commands.inspect as cmd

    def boom(args):
        raise PermissionError(13, "Permission denied", "/some/where.png")

    monkeypatch.setattr(cmd, "run", boom)
    rc, _, err = _cli(capsys, "inspect", "whatever.csv")
    assert rc == 2 and "/some/where.png: Permission denied" in err


# ------------------------------------------------------------ seed
def test_negative_seed_is_a_clear_error(tmp_path, capsys):
    table = _write(tmp_path / "t.csv", "id,labels,Patient ID\na,x,1\nb,y,2\nc,x,3\nd,y,4\n")
    with pytest.raises(SystemExit) as e:
        main(["split", str(table), "--fractions", "0.5,0.5", "--seed", "-1"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--seed" in err and "non-negative" in err and "Traceback" not in err
    with pytest.raises(InputError, match=r"seed must be a non-negative integer, got -1"):
        grouped_stratified_split(np.array([[1], [0]]), np.array([1, 2]), "0.5,0.5", seed=-1)


# ------------------------------------------------------------ IDX
def test_truncated_idx_header_is_a_table_error(tmp_path):
    p = tmp_path / "trunc-labels-idx1-ubyte"
    p.write_bytes(b"\x00\x00\x08\x05\x00\x00\x00\x01")
    with pytest.raises(TableError, match=r"trunc-labels-idx1-ubyte: the IDX header is cut short"):
        read_table(p)


def test_idx_digit_out_of_range_is_named(tmp_path):
    p = tmp_path / "bad-labels-idx1-ubyte"
    p.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 3) + bytes([1, 12, 3]))
    with pytest.raises(TableError, match=r"bad-labels-idx1-ubyte, row 1: label value 12 is not a digit 0-9"):
        read_table(p)


# ------------------------------------------------------------ violation counts
def test_more_rows_count_only_the_same_violation():
    s = LabelSchema(["x"], exclusive={"view": ["PA", "AP"]})
    y = np.array([[1, 1, 1], [0, 0, 0], [1, 1, 0]])
    with pytest.raises(SchemaViolation) as e:
        s.validate(y)
    msg = str(e.value)
    assert "row 0: 2 members of exclusive group 'view' are true" in msg and "more row" not in msg
    assert "1 row(s) with no member" in msg
    y2 = np.array([[1, 1, 1], [0, 1, 1], [1, 1, 0]])
    with pytest.raises(SchemaViolation, match=r"\(1 more row\(s\) like this\)$"):
        s.validate(y2)
