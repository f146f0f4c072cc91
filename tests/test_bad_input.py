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
