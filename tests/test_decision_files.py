"""Decision and calibration files are validated when read (one-line errors naming the file and the
field), degenerate requests are refused or warned about, and label-count bounds count the none label."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labelwise.decide import Calibration, DecisionPolicy, fit_calibration, fit_policy
from labelwise.errors import InputError
from labelwise.labels.schema import LabelSchema
from conftest import inflated_draw, run_cli, write_csv as _write

LABELS = ["A", "B", "C"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("decision_files")
    rng = np.random.default_rng(0)
    n = 400
    _, y, s = inflated_draw(rng, n, 3, -1.5, 1.0)
    ids = [f"img{i}" for i in range(n)]
    _write(d / "y.csv", ids, LABELS, y, "{:d}")
    _write(d / "s.csv", ids, LABELS, s)
    _write(d / "y5.csv", ids[:5], LABELS, y[:5], "{:d}")
    _write(d / "s5.csv", ids[:5], LABELS, s[:5])
    none = (y.sum(1) == 0).astype(int)[:, None]
    _write(d / "yn.csv", ids, [*LABELS, "No Finding"], np.concatenate([y, none], 1), "{:d}")
    (d / "s.toml").write_text('[labels]\nindependent = ["A", "B", "C"]\nnone = "No Finding"\n')
    fit_calibration(y, s, method="platt", labels=LABELS).save(d / "cal.json")
    fit_policy(y, s, LabelSchema(tuple(LABELS)), rule="instance-f1", calibration="isotonic").save(d / "iso.json")
    return d, y, s


def _edit(src, dst, change):
    doc = json.loads(src.read_text())
    change(doc)
    dst.write_text(json.dumps(doc))
    return dst


def _fails(capsys, argv, *expected):
    assert run_cli(*argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1, err
    for e in expected:
        assert e in lines[0], err
    return lines[0]


def _set(label, key, value):
    def change(doc):
        doc["independent"][label][key] = value
    return change


@pytest.mark.parametrize("key,value,words", [
    ("a", "x", ["'a'", "finite number"]),
    ("a", float("nan"), ["'a'", "finite number"]),
    ("b", None, ["'b'", "finite number"]),
])
def test_a_calibration_file_with_a_bad_parameter_is_refused_naming_the_file_and_field(files, capsys, key, value, words):
    d, y, s = files
    bad = _edit(d / "cal.json", d / f"bad_{key}.json", _set("B", key, value))
    line = _fails(capsys, ["thresholds", "--truth", d / "y.csv", "--scores", d / "s.csv", "--calibration", bad,
                           "--optimize", "hamming"], str(bad), "'B'", *words)
    assert "scores" not in line.split(str(bad))[-1]  # blamed on the file, not the scores
    # the same calibration inside a decision file, read by evaluate
    fit_policy(y, s, LabelSchema(tuple(LABELS)), rule="hamming", calibration="platt").save(d / "dec.json")

    def change(doc):
        doc["calibration"]["independent"]["B"][key] = value
    dec = _edit(d / "dec.json", d / f"dec_bad_{key}.json", change)
    line = _fails(capsys, ["evaluate", "--truth", d / "y.csv", "--scores", d / "s.csv", "--thresholds", dec,
                           "--bootstrap", "0"], str(dec), "calibration", "'B'", *words)
    assert "scores" not in line.split(str(dec))[-1]


def test_a_negative_platt_slope_in_a_file_is_read_with_a_warning_naming_it(files):
    d, _, _ = files
    old = _edit(d / "cal.json", d / "negative_a.json", _set("B", "a", -0.5))
    with pytest.warns(UserWarning, match=r"negative_a.json: label 'B': field 'a' is -0.5.*reverses"):
        cal = Calibration.load(old)
    assert cal.independent["B"]["a"] == -0.5


def test_unsorted_isotonic_knots_are_refused(files, capsys):
    d, _, _ = files

    def shuffle(doc):
        spec = doc["calibration"]["independent"]["A"]
        assert spec["kind"] == "isotonic" and len(spec["x"]) > 2
        spec["x"] = spec["x"][::-1]
    bad = _edit(d / "iso.json", d / "iso_bad.json", shuffle)
    _fails(capsys, ["evaluate", "--truth", d / "y.csv", "--scores", d / "s.csv", "--thresholds", bad,
                    "--bootstrap", "0"], str(bad), "'A'", "'x'", "not sorted")
    with pytest.raises(InputError, match="not sorted"):
        DecisionPolicy.load(bad)


def test_a_decision_file_whose_calibration_lacks_a_label_is_refused(files, capsys):
    d, y, s = files
    fit_policy(y, s, LabelSchema(tuple(LABELS)), rule="hamming", calibration="platt").save(d / "dec.json")
    bad = _edit(d / "dec.json", d / "dec_lacks.json", lambda doc: doc["calibration"]["independent"].pop("C"))
    _fails(capsys, ["evaluate", "--truth", d / "y.csv", "--scores", d / "s.csv", "--thresholds", bad,
                    "--bootstrap", "0"], str(bad), "'C'", "lacks")


@pytest.mark.parametrize("key,value,words", [
    ("rule", 5, ["'rule'", "string"]),
    ("rule", "fbeta=-2", ["'rule'", "positive"]),
    ("min_labels", "x", ["'min_labels'", "whole number"]),
    ("max_labels", 0, ["max_labels 0", "decides no label"]),
    ("notes", 7, ["'notes'", "list"]),
    ("fitted_on", "x", ["'fitted_on'"]),
])
def test_a_decision_file_with_a_bad_field_is_refused(files, capsys, key, value, words):
    d, y, s = files
    fit_policy(y, s, LabelSchema(tuple(LABELS)), rule="hamming", calibration="platt").save(d / "dec.json")

    def change(doc):
        doc[key] = value
    bad = _edit(d / "dec.json", d / f"dec_{key}.json", change)
    _fails(capsys, ["evaluate", "--truth", d / "y.csv", "--scores", d / "s.csv", "--thresholds", bad,
                    "--bootstrap", "0"], str(bad), *words)


def test_max_labels_zero_is_refused(files, capsys):
    d, y, s = files
    _fails(capsys, ["thresholds", "--truth", d / "y.csv", "--scores", d / "s.csv", "--optimize", "hamming",
                    "--max-labels", "0", "--out", d / "m0.json"], "max_labels 0")
    assert not (d / "m0.json").exists()
    with pytest.raises(InputError, match="max_labels 0"):
        fit_policy(y, s, LabelSchema(tuple(LABELS)), rule="hamming", max_labels=0)


@pytest.mark.parametrize("command", [["calibrate", "--method", "platt"], ["thresholds", "--optimize", "f1"],
                                     ["thresholds", "--optimize", "micro-f1", "--calibration", "platt"]])
def test_fits_on_a_handful_of_rows_warn_too_few_rows(files, capsys, command):
    d, _, _ = files
    out_file = d / f"few_{'_'.join(command).replace('=', '')}.json"
    assert run_cli(command[0], "--truth", d / "y5.csv", "--scores", d / "s5.csv", *command[1:], "--out", out_file) == 0
    out = capsys.readouterr().out
    assert "too few rows" in out and "5 row(s)" in out
    assert run_cli(command[0], "--truth", d / "y.csv", "--scores", d / "s.csv", *command[1:], "--out", out_file) == 0
    assert "too few rows" not in capsys.readouterr().out


def test_min_labels_one_keeps_the_none_label_decided(files, capsys):
    d, y, s = files
    schema = LabelSchema(tuple(LABELS), none="No Finding")
    yn = schema.complete(y)
    out = d / "min1.json"
    assert run_cli("thresholds", "--truth", d / "yn.csv", "--schema", d / "s.toml", "--scores", d / "s.csv",
                   "--optimize", "f1", "--min-labels", "1", "--out", out) == 0
    capsys.readouterr()
    pol = DecisionPolicy.load(out)
    s = np.vectorize(lambda v: float(f"{v:.9g}"))(s)  # what the CSV holds
    D = pol.decide(s)
    free = fit_policy(y, s, LabelSchema(tuple(LABELS)), rule="f1").decide(s)
    # the none label is one label: min 1 changes nothing, "No Finding" stays decided where no finding is
    np.testing.assert_array_equal(D[:, :3], free)
    assert D[:, 3].sum() > 0
    np.testing.assert_array_equal(D[:, 3], (free.sum(1) == 0))
    assert ((D[:, 3] == 1) & (yn[:, 3] == 1)).sum() > 0  # "No Finding" recall above 0
    # --compare with the bound: the same decisions as without it
    assert run_cli("thresholds", "--truth", d / "yn.csv", "--schema", d / "s.toml", "--scores", d / "s.csv",
                   "--compare", "--json", "--min-labels", "1") == 0
    with_bound = json.loads(capsys.readouterr().out)
    assert run_cli("thresholds", "--truth", d / "yn.csv", "--schema", d / "s.toml", "--scores", d / "s.csv",
                   "--compare", "--json") == 0
    without = json.loads(capsys.readouterr().out)
    assert with_bound["rules"] == without["rules"]
    assert any("'No Finding' counting as one" in n for n in with_bound["notes"]), with_bound["notes"]
    _fails(capsys, ["thresholds", "--truth", d / "yn.csv", "--schema", d / "s.toml", "--scores", d / "s.csv",
                    "--optimize", "f1", "--min-labels", "2"], "min_labels 2", "No Finding")


def test_training_refuses_min_labels_that_contradict_the_none_label_before_it_starts(tmp_path):
    from PIL import Image

    from labelwise.training.config import TrainConfig
    from labelwise.training.data import load_data

    (tmp_path / "images").mkdir()
    rows = ["id,A,B,No Finding,split"]
    for i in range(12):
        Image.new("L", (8, 8), color=i * 10).save(tmp_path / "images" / f"i{i}.png")
        a, b = i % 2, (i // 2) % 2
        rows.append(f"i{i}.png,{a},{b},{int(a + b == 0)},{['train', 'val', 'test'][i % 3]}")
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "s.toml").write_text('[labels]\nindependent = ["A", "B"]\nnone = "No Finding"\n')
    config = dict(table=str(tmp_path / "t.csv"), images=str(tmp_path / "images"), split_column="split",
                  schema=str(tmp_path / "s.toml"))
    with pytest.raises(InputError, match="contradicts the none label"):
        load_data(TrainConfig(**config, min_labels=2))
    assert len(load_data(TrainConfig(**config, min_labels=1)).train) == 4
