"""Grouped multi-label stratified split: guarantees on the real NIH table, leak checks, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import NIH_IMAGES, NIH_TABLE, require
from labelwise.commands.cli import main
from labelwise.errors import InputError, TableError
from labelwise.labels.split import (check_split, grouped_stratified_split, integer_floor_pp, parse_fractions,
                             random_group_split, split_report, split_table)
from labelwise.labels.tables import read_table

F = (0.7, 0.1, 0.2)


@pytest.fixture(scope="module")
def nih(request):
    from labelwise import LabelSchema
    from conftest import NIH_FINDINGS

    return read_table(require(NIH_TABLE), schema=LabelSchema(NIH_FINDINGS, none="No Finding"))


@pytest.fixture(scope="module")
def nih_split(nih):
    groups = nih.groups("Patient ID")
    return groups, grouped_stratified_split(nih.y, groups, F, seed=0)


def _brute_deviation(y, assign, f):
    """Independent re-computation: per label, max over splits of |pos in split / pos - f| in pp."""
    out = []
    for j in range(y.shape[1]):
        tot = y[:, j].sum()
        out.append(max(abs(y[assign == k, j].sum() / tot - f[k]) * 100 for k in range(len(f))))
    return np.array(out)


def test_nih_split_meets_targets(nih, nih_split):
    groups, assign = nih_split
    # no patient in two splits
    per_patient = pd.Series(assign).groupby(groups).nunique()
    assert (per_patient == 1).all()
    # sizes within 0.1 pp of the fractions
    sizes = np.bincount(assign, minlength=3) / len(assign)
    assert np.all(np.abs(sizes - F) * 100 <= 0.1), sizes
    dev = _brute_deviation(nih.y, assign, F)
    pos = nih.y.sum(axis=0)
    assert np.all(dev[pos >= 1000] <= 0.1), dict(zip(nih.labels, dev))
    assert np.all(dev[(pos >= 200) & (pos < 1000)] <= 0.5), dict(zip(nih.labels, dev))
    # the report computes the same numbers
    rep = split_report(nih.y, groups, assign, F, nih.labels)
    assert rep["group_overlap"] == 0
    np.testing.assert_allclose([rep["labels"][n]["max_deviation_pp"] for n in nih.labels], dev)
    assert rep["labels"]["Hernia"]["positives"] == 227 and sum(rep["labels"]["Hernia"]["count"].values()) == 227


def test_much_better_than_a_random_group_split_on_hernia(nih, nih_split):
    groups, assign = nih_split
    ours = _brute_deviation(nih.y, assign, F)
    rand = _brute_deviation(nih.y, random_group_split(groups, F, seed=0), F)
    h = nih.labels.index("Hernia")
    assert rand[h] > 5 * ours[h] and rand[h] > 2.0  # the random split misses Hernia by several pp
    assert ours.max() < rand.max() / 5


def test_deterministic_and_seeded(nih, nih_split):
    groups, assign = nih_split
    small = nih.subset(pd.Series(groups).isin(pd.unique(groups)[:3000]).to_numpy())
    g = small.groups("Patient ID")
    a = grouped_stratified_split(small.y, g, F, seed=3)
    np.testing.assert_array_equal(a, grouped_stratified_split(small.y, g, F, seed=3))
    assert not np.array_equal(a, grouped_stratified_split(small.y, g, F, seed=4))


def test_hand_made_case_every_label_split_exactly():
    # 10 groups of one row per label: a perfect 70/10/20 split exists for every label
    labels = 3
    y = np.zeros((10 * labels, labels), dtype=np.uint8)
    y[np.arange(10 * labels), np.repeat(np.arange(labels), 10)] = 1
    groups = np.arange(10 * labels)
    a = grouped_stratified_split(y, groups, F, seed=1)
    for j in range(labels):
        assert np.bincount(a[y[:, j] == 1], minlength=3).tolist() == [7, 1, 2]


def test_groups_stay_together_with_large_groups():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 40, size=500)
    y = (rng.random((500, 4)) < 0.2).astype(np.uint8)
    a = grouped_stratified_split(y, groups, "0.5,0.5", seed=0)
    assert (pd.Series(a).groupby(groups).nunique() == 1).all()
    assert set(a.tolist()) == {0, 1}


def test_bad_arguments():
    with pytest.raises(InputError, match="sum to 0.9"):
        parse_fractions("0.7,0.1,0.1")
    with pytest.raises(InputError, match="numbers separated by commas"):
        parse_fractions("0.7;0.3")
    with pytest.raises(InputError, match="a 0 is not allowed: leave that split out"):
        parse_fractions([0.8, 0.2, 0.0])
    with pytest.raises(InputError, match="each above 0") as err:
        parse_fractions([1.0])
    assert "a 0 is not allowed" not in str(err.value)
    with pytest.raises(InputError, match="one group per row"):
        grouped_stratified_split(np.zeros((3, 2)), [1, 2], F)
    with pytest.raises(InputError, match="only 0 and 1"):
        grouped_stratified_split(np.full((3, 2), 2), [1, 2, 3], "0.5,0.5")


def test_split_table_and_check_split_detects_injected_leak(nih):
    tiny = read_table(require(NIH_IMAGES / "labels.csv"))
    frame = split_table(tiny, "Patient ID", "0.5,0.5", names=("a", "b"))
    assert list(frame.columns) == ["id", "group", "split"] and set(frame.split) <= {"a", "b"}
    assert not check_split(frame, "split", "group")["leak"]
    # the official NIH split in labels.csv is patient-disjoint
    assert not check_split(tiny, "official_split", "Patient ID")["leak"]
    leaky = frame.copy()
    i = int(np.flatnonzero(leaky.group.duplicated(keep=False))[0])  # a patient with several rows
    leaky.loc[i, "split"] = "b" if leaky.loc[i, "split"] == "a" else "a"
    res = check_split(leaky, "split", "group")
    assert res["leak"] and res["overlaps"][0]["groups"] == 1
    assert res["overlaps"][0]["examples"] == [str(leaky.loc[i, "group"])]
    with pytest.raises(TableError, match=r"no column 'fold'; the columns are \['id', 'group', 'split'\]"):
        check_split(frame, "fold", "group")


def test_cli_split_writes_csv_and_check(tmp_path, capsys, nih):
    out = tmp_path / "splits.csv"
    assert main(["split", str(NIH_TABLE), "--group-column", "Patient ID", "--fractions", "0.7,0.1,0.2",
                 "--seed", "0", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "groups in more than one split: 0" in text and "Hernia" in text and "max dev pp" in text
    frame = pd.read_csv(out, dtype=str)
    assert list(frame.columns) == ["id", "group", "split"] and len(frame) == 112120
    assert frame.split.value_counts().to_dict().keys() == {"train", "val", "test"}
    assert main(["split", str(out), "--check"]) == 0
    assert "no leakage" in capsys.readouterr().out
    # inject a leak: move one image of patient 1 (3 images in the table) to another split
    first = frame.index[frame.group == "1"][0]
    frame.loc[first, "split"] = "val" if frame.loc[first, "split"] != "val" else "test"
    frame.to_csv(out, index=False)
    assert main(["split", str(out), "--check", "--split-column", "split", "--group-column", "group"]) == 1
    assert "LEAK: 1 group(s)" in capsys.readouterr().out


def test_cli_split_json_and_errors(tmp_path, capsys):
    table = require(NIH_IMAGES / "labels.csv")
    assert main(["split", str(table), "--fractions", "0.5,0.5", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["group_column"] == "Patient ID" and set(rep["splits"]) == {"train", "test"}
    assert rep["group_overlap"] == 0
    p = tmp_path / "nogroups.csv"
    p.write_text("id,labels\na,cat\nb,dog\nc,cat\nd,dog\n")
    assert main(["split", str(p), "--fractions", "0.5,0.5"]) == 2
    assert "no patient column found" in capsys.readouterr().err
    assert main(["split", str(p), "--fractions", "0.5,0.5", "--no-groups"]) == 0
    assert main(["split", str(table), "--check", "--split-column", "fold"]) == 2
    assert "no split column 'fold'" in capsys.readouterr().err


def test_missing_group_value_names_the_row(tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("id,labels,Patient ID\na,cat,1\nb,dog,\nc,cat,2\n")
    with pytest.raises(TableError, match=r"g.csv, row b at line 3: empty 'Patient ID'"):
        split_table(read_table(p), "Patient ID", "0.5,0.5", names=("x", "y"))
    frame = split_table(read_table(p), False, "0.5,0.5", names=("x", "y"))
    assert list(frame.group) == ["a", "b", "c"]


def test_split_table_default_groups_by_patient():
    tiny = read_table(require(NIH_IMAGES / "labels.csv"))
    frame = split_table(tiny, None, "0.5,0.5", names=("a", "b"))
    np.testing.assert_array_equal(frame.group.to_numpy(), tiny.groups("Patient ID"))
    assert not check_split(frame, "split", "group")["leak"]


def test_integer_floor_against_brute_force():
    f = np.array(F)
    for total in (1, 9, 47, 227):
        brute = min(max(abs(a / total - f[0]), abs(b / total - f[1]), abs((total - a - b) / total - f[2])) * 100
                    for a in range(total + 1) for b in range(total + 1 - a))
        assert integer_floor_pp(total, F) == pytest.approx(brute)
    assert integer_floor_pp(227, F) == pytest.approx(abs(45 / 227 - 0.2) * 100)  # 159/23/45


def test_nih_split_reaches_the_integer_floor_for_most_labels(nih, nih_split):
    groups, assign = nih_split
    rep = split_report(nih.y, groups, assign, F, nih.labels)
    at_floor = [n for n, d in rep["labels"].items() if d["max_deviation_pp"] <= d["floor_pp"] + 1e-9]
    assert "Hernia" in at_floor and len(at_floor) >= 10, at_floor
