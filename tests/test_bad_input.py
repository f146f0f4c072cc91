"""Bad input found by the issue-2/issue-3 audits: each case must end in a clear one-line error
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
from labelwise.cli import main
from labelwise.errors import InputError, LabelwiseError
from labelwise.io import atomic_path, write_text
from labelwise.split import grouped_stratified_split
from labelwise.tables import read_table


def _write(path, text):
    path.write_text(text)
    return path


def _cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


# ------------------------------------------------------------ split --check (audit items 1-3)
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


# ------------------------------------------------------------ single-label tables (item 5)
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


# ------------------------------------------------------------ decode (item 8)
MIXED = LabelSchema(["Effusion", "Mass"], none="No Finding", exclusive={"view": ["PA", "AP"]})


def test_decode_rejects_scores_and_points_to_decide():
    with pytest.raises(SchemaViolation, match=r"row 0, label 'Effusion': decode takes 0/1 decisions, got 0\.7.*"
                                              r"labelwise\.thresholds\.decide"):
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


# ------------------------------------------------------------ output paths (item 11)
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
    assert rc == 2 and "cannot write" in err and "choose another path" in err and len(err.strip().splitlines()) == 1
    rc, _, err = _cli(capsys, "split", table, "--fractions", "0.5,0.5", "--out", tmp_path / "t.csv" / "s.csv")
    assert rc == 2 and "cannot write" in err
    assert sorted(os.listdir(tmp_path)) == ["outdir", "t.csv"]


def test_cli_reports_a_stray_oserror_without_traceback(capsys, monkeypatch):
    import labelwise.commands.inspect as cmd

    def boom(args):
        raise PermissionError(13, "Permission denied", "/some/where.png")

    monkeypatch.setattr(cmd, "run", boom)
    rc, _, err = _cli(capsys, "inspect", "whatever.csv")
    assert rc == 2 and "/some/where.png: Permission denied" in err


# ------------------------------------------------------------ seed (item 12)
def test_negative_seed_is_a_clear_error(tmp_path, capsys):
    table = _write(tmp_path / "t.csv", "id,labels,Patient ID\na,x,1\nb,y,2\nc,x,3\nd,y,4\n")
    with pytest.raises(SystemExit) as e:
        main(["split", str(table), "--fractions", "0.5,0.5", "--seed", "-1"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--seed" in err and "non-negative" in err and "Traceback" not in err
    with pytest.raises(InputError, match=r"seed must be a non-negative integer, got -1"):
        grouped_stratified_split(np.array([[1], [0]]), np.array([1, 2]), "0.5,0.5", seed=-1)


# ------------------------------------------------------------ violation counts (item 14)
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
