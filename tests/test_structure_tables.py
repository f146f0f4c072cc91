"""The table readers and ``inspect``: unknown cells (known mask), refused or
repaired implications, derived labels given against their definition, training targets."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from labelwise import LabelSchema, SchemaViolation
from labelwise.labels.tables import read_table

SCHEMA_TOML = """\
[labels]
independent = ["Pneumonia", "Viral", "Bacterial", "Effusion"]
none = "No Finding"

[labels.implies]
Viral = ["Pneumonia"]
Bacterial = ["Pneumonia"]

[labels.derived]
Infection = { any_of = ["Viral", "Bacterial"] }

[labels.at_most_one]
severity = ["mild", "moderate", "severe"]

[labels.unknown]
values = ["", "-1", "uncertain"]
policy = { default = "ignore", Effusion = "positive" }
"""
HEADER = "id,Pneumonia,Viral,Bacterial,Effusion,mild,moderate,severe\n"


@pytest.fixture
def schema_path(tmp_path):
    p = tmp_path / "schema.toml"
    p.write_text(SCHEMA_TOML)
    return p


def test_known_mask_beside_y(tmp_path, schema_path):
    p = tmp_path / "t.csv"
    p.write_text(HEADER + "a,1,1,0,-1,0,1,0\n" "b,0,0,0,uncertain,,0,0\n" "c,,1,0,0,0,0,0\n" "d,0,0,0,0,0,0,0\n")
    t = read_table(p, schema=schema_path)
    s = t.schema
    L = s.labels
    assert t.known.shape == t.y.shape == (4, s.n_labels)
    # hand-computed: a: Effusion unknown; b: Effusion unknown, severity unknown (mild blank, none on);
    # c: Pneumonia unknown but implied by Viral -> known 1; none unknown where an independent label is
    expected_unknown = {("a", "Effusion"), ("b", "Effusion"), ("b", "mild"), ("b", "moderate"), ("b", "severe"),
                        ("b", "No Finding")}
    got = {(t.ids[r], L[c]) for r, c in zip(*np.nonzero(~t.known))}
    assert got == expected_unknown
    assert t.y[2, L.index("Pneumonia")] == 1 and t.y[0, L.index("Infection")] == 1
    assert t.y[3, L.index("No Finding")] == 1 and t.y[3, L.index("Infection")] == 0
    targets = t.targets()
    assert targets[0, L.index("Effusion")] == 1.0          # policy positive
    assert targets[1, L.index("mild")] == -1.0             # ignore
    assert any("unknown" in n for n in t.notes)
    sub = t.subset([1, 3])
    np.testing.assert_array_equal(sub.known, t.known[[1, 3]])


def test_no_unknown_values_means_all_known_and_empty_cells_refused(tmp_path):
    s = LabelSchema(independent=("a", "b"))
    p = tmp_path / "t.csv"
    p.write_text("id,a,b\nx,1,0\ny,0,1\n")
    t = read_table(p, schema=s)
    assert t.known.all() and t.known.shape == t.y.shape
    p.write_text("id,a,b\nx,1,\ny,0,1\n")
    with pytest.raises(Exception, match=r"row x at line 2: label 'b' has an empty cell"):
        read_table(p, schema=s)


def test_child_without_parent_refused_or_repaired(tmp_path, schema_path):
    p = tmp_path / "t.csv"
    p.write_text(HEADER + "a,1,1,0,0,0,0,0\n" "b,0,0,1,0,0,0,0\n" "c,0,1,1,0,0,0,0\n")
    with pytest.raises(SchemaViolation, match=r"t\.csv, row b at line 3: 'Bacterial' is true but its parent "
                                              r"'Pneumonia' is not .*repair-implications.*\(1 more row"):
        read_table(p, schema=schema_path)
    t = read_table(p, schema=schema_path, repair_implications=True)
    assert t.y[:, t.schema.index("Pneumonia")].tolist() == [1, 1, 1]
    assert any("2 missing parent label(s) added in 2 row(s)" in n for n in t.notes)


def test_derived_given_against_its_definition_is_refused(tmp_path, schema_path):
    p = tmp_path / "t.csv"
    p.write_text(HEADER.strip() + ",Infection\n" "a,1,1,0,0,0,0,0,1\n" "b,1,0,0,0,0,0,0,1\n")
    with pytest.raises(SchemaViolation, match=r"row b at line 3: derived label 'Infection' is true but none of its"):
        read_table(p, schema=schema_path)
    # a label-list table too
    q = tmp_path / "l.csv"
    q.write_text("id,labels\na,Effusion|Infection\n")
    with pytest.raises(SchemaViolation, match=r"row a at line 2: derived label 'Infection' is given but none"):
        read_table(q, schema=schema_path)


def test_unknown_in_an_exclusive_group_masks_the_group_row(tmp_path):
    s = LabelSchema(independent=("a",), exclusive={"view": ("PA", "AP")}, unknown_values=("-1",))
    p = tmp_path / "t.csv"
    p.write_text("id,a,PA,AP\nx,1,-1,1\ny,0,-1,0\nz,0,-1,-1\n")
    t = read_table(p, schema=s)
    # x: AP is 1, so PA is known 0; y, z: no member 1 and one unknown -> the group row is unknown
    assert t.known[:, 1:3].tolist() == [[True, True], [False, False], [False, False]]


def test_inspect_shows_known_counts_and_the_implication_tree(tmp_path, schema_path):
    p = tmp_path / "t.csv"
    p.write_text(HEADER + "a,1,1,0,-1,0,1,0\n" "b,0,0,0,uncertain,,0,0\n" "c,1,0,1,0,0,0,0\n")
    out = subprocess.run([sys.executable, "-m", "labelwise", "inspect", str(p), "--schema", str(schema_path)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "Implications" in text and "Pneumonia\n" in text.split("Implications")[1] and "- Viral" in text
    line = next(x for x in text.splitlines() if x.strip().startswith("Effusion"))
    assert "1 known" in line and "2 unknown" in line
    out = subprocess.run([sys.executable, "-m", "labelwise", "inspect", str(p), "--schema", str(schema_path),
                          "--json"], capture_output=True, text=True)
    import json

    data = json.loads(out.stdout)
    assert data["known"]["Effusion"] == {"known": 1, "unknown": 2}
    assert data["implications"] == {"Viral": ["Pneumonia"], "Bacterial": ["Pneumonia"]}


def test_cli_refuses_in_one_line_or_repairs(tmp_path, schema_path):
    p = tmp_path / "t.csv"
    p.write_text(HEADER + "a,1,1,0,0,0,0,0\n" "b,0,0,1,0,0,0,0\n")
    out = subprocess.run([sys.executable, "-m", "labelwise", "inspect", str(p), "--schema", str(schema_path)],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "row b at line 3" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([sys.executable, "-m", "labelwise", "inspect", str(p), "--schema", str(schema_path),
                          "--repair-implications"], capture_output=True, text=True)
    assert out.returncode == 0 and "1 missing parent label(s) added in 1 row(s)" in out.stdout
