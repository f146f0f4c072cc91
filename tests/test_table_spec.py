"""One table specification: the same table flags in every command, train's config keys, the spec a
run writes, and every CSV read through one reader (true line numbers, no "nan" paths)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from labelwise import InputError
from labelwise.commands.cli import main
from labelwise.labels.scores import read_scores
from labelwise.labels.spec import TableSpec
from labelwise.labels.tables import read_table
from labelwise.training.config import TrainConfig

# A table whose 'labels' column disagrees with its one-hot columns: only a flag settles it.
MIXED = "id,labels,Effusion,Mass\nx1,Mass,1,0\nx2,Effusion,0,1\nx3,Mass,1,1\nx4,Effusion|Mass,0,0\n"


@pytest.fixture
def mixed(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(MIXED)
    return p


def test_a_spec_and_the_keyword_call_read_the_same_table(mixed):
    a = read_table(TableSpec(mixed, format="onehot"))
    b = read_table(mixed, format="onehot")
    assert list(a.ids) == list(b.ids) and a.labels == b.labels and np.array_equal(a.y, b.y)


def test_a_spec_survives_its_json_file(tmp_path, mixed):
    spec = TableSpec(mixed, format="labels", label_column="labels", labels="a, b", repair_implications=True)
    spec.save(tmp_path / "spec.json")
    assert TableSpec.load(tmp_path / "spec.json") == spec and spec.labels == ("a", "b")
    with pytest.raises(InputError, match="unknown key.*'colour'"):
        TableSpec.from_dict({"path": "t.csv", "colour": 1})


@pytest.mark.parametrize("flags,expected", [
    (["--format", "onehot"], {"Effusion": 2, "Mass": 2}),
    (["--label-column", "labels"], {"Effusion": 2, "Mass": 3}),
])
def test_the_table_flags_choose_the_reading_in_inspect_split_and_evaluate(tmp_path, mixed, capsys, flags, expected):
    assert main(["inspect", str(mixed), "--json", *flags]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {k: summary["prevalence"][k]["count"] for k in expected} == expected
    scores = tmp_path / "s.csv"
    scores.write_text("id,Effusion,Mass\nx1,.9,.2\nx2,.1,.8\nx3,.7,.6\nx4,.3,.1\n")
    assert main(["evaluate", "--truth", str(mixed), "--scores", str(scores), "--bootstrap", "0", "--json",
                 *flags]) == 0
    out = json.loads(capsys.readouterr().out)
    assert json.dumps(out).count('"Mass"') >= 1  # evaluated, not refused
    assert main(["split", str(mixed), "--out", str(tmp_path / "sp.csv"), "--no-groups", *flags]) == 0


def test_without_a_flag_every_command_refuses_the_ambiguous_table_naming_the_flags(tmp_path, mixed, capsys):
    scores = tmp_path / "s.csv"
    scores.write_text("id,Effusion,Mass\nx1,.9,.2\nx2,.1,.8\nx3,.7,.6\nx4,.3,.1\n")
    for argv in (["inspect", str(mixed)], ["evaluate", "--truth", str(mixed), "--scores", str(scores)],
                 ["calibrate", "--truth", str(mixed), "--scores", str(scores)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert str(mixed) in err and "disagree" in err and "--format onehot" in err and "--label-column labels" in err


def test_train_config_takes_the_table_keys_and_rejects_a_bad_format(tmp_path, mixed):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'table = "{mixed.name}"\nformat = "labels"\nlabel_column = "labels"\nid_column = "id"\n')
    config = TrainConfig.from_toml(cfg)
    spec = config.table_spec()
    assert (spec.format, spec.label_column, spec.id_column) == ("labels", "labels", "id")
    assert set(read_table(spec).labels) == {"Effusion", "Mass"}
    with pytest.raises(InputError, match="format must be one of"):
        TrainConfig(table=str(mixed), format="csv")


def test_train_reads_the_table_as_its_spec_says(tmp_path, mixed):
    from labelwise.training.data import load_data

    images = tmp_path / "img"
    images.mkdir()
    for i in range(1, 5):
        (images / f"x{i}").write_bytes(b"")
    config = TrainConfig(table=str(mixed), images=str(images), format="onehot", split_fractions=(.5, .25, .25))
    data = load_data(config)
    got = {str(i): tuple(y) for part in (data.train, data.val, data.test) for i, y in zip(part.ids, part.y)}
    order = [data.schema.labels.index(x) for x in ("Effusion", "Mass")]
    assert {i: tuple(int(v[j]) for j in order) for i, v in got.items()} == {
        "x1": (1, 0), "x2": (0, 1), "x3": (1, 1), "x4": (0, 0)}


def test_score_errors_name_the_true_line_after_a_blank_line(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("id ,a\nx1,.5\n\nx2,1.5\n")
    with pytest.raises(InputError, match=r"s\.csv, line 4, column 'a'"):
        read_scores(p, ids=["x1", "x2"], labels=["a"])


def test_a_predict_table_with_an_empty_path_cell_is_refused_naming_the_line(tmp_path):
    from labelwise.training.predict import read_inputs

    p = tmp_path / "t.csv"
    p.write_text("path,x\na.png,1\n,2\n")
    with pytest.raises(InputError, match=r"line 3: empty 'path'"):
        read_inputs(p)


def test_a_splits_file_error_names_the_true_line(tmp_path, mixed):
    from labelwise.training.data import split_masks

    sp = tmp_path / "splits.csv"
    sp.write_text("id,split\nx1,train\n\nx2,val\nx3,tset\nx4,test\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = read_table(mixed, format="onehot")
    with pytest.raises(InputError, match=r"line 5: split value"):
        split_masks(TrainConfig(table=str(mixed), splits=str(sp)), table)


def test_a_saved_spec_is_reused_by_a_later_command(tmp_path, mixed, capsys):
    spec = tmp_path / "table_spec.json"
    TrainConfig(table=str(mixed), format="labels", label_column="labels").table_spec().save(spec)
    assert main(["inspect", str(mixed), "--json", "--table-spec", str(spec)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {k: summary["prevalence"][k]["count"] for k in ("Effusion", "Mass")} == {"Effusion": 2, "Mass": 3}
    # a flag given beside it wins
    assert main(["inspect", str(mixed), "--json", "--table-spec", str(spec), "--format", "onehot"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {k: summary["prevalence"][k]["count"] for k in ("Effusion", "Mass")} == {"Effusion": 2, "Mass": 2}


@pytest.mark.slow
def test_train_takes_the_table_keys_and_writes_the_spec_it_read_with(tmp_path):
    from test_train import make_digit_table

    config = make_digit_table(tmp_path, n={"train": 48, "val": 24, "test": 24})
    config.write_text(config.read_text().replace("epochs = 3", "epochs = 1").replace("\"balanced\"", "\"none\"")
                      + 'format = "labels"\nlabel_column = "labels"\nid_column = "id"\n')
    assert main(["train", str(config)]) == 0
    spec = TableSpec.load(tmp_path / "run" / "table_spec.json")
    assert (spec.format, spec.label_column, spec.id_column) == ("labels", "labels", "id")
    again = read_table(spec)
    direct = read_table(tmp_path / "labels.csv", schema=tmp_path / "schema.toml", label_column="labels")
    assert again.labels == direct.labels and list(again.ids) == list(direct.ids)
    assert np.array_equal(again.y, direct.y)


def test_evaluate_id_column_names_the_truth_column_and_scores_keep_their_own(tmp_path, capsys):
    truth = tmp_path / "t.csv"
    truth.write_text("path,Image Index,a\n/d/x1.png,x1.png,1\n/d/x2.png,x2.png,0\n/d/x3.png,x3.png,1\n/d/x4.png,x4.png,0\n")
    scores = tmp_path / "s.csv"
    scores.write_text("id,a\nx2.png,.2\nx1.png,.9\nx4.png,.1\nx3.png,.8\n")
    assert main(["evaluate", "--truth", str(truth), "--scores", str(scores), "--id-column", "Image Index",
                 "--bootstrap", "0", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["per_label"][0]["auc"] == 1.0 and "no column 'Image Index'" in captured.err
