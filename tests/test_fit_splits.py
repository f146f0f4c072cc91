"""Fits (calibrate, thresholds, training's decisions) use only the rows of the chosen split, say how
many rows of which split they used, and refuse rows marked test; the split file written by
``labelwise split --out`` is accepted wherever a split is; one split-name reader everywhere."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from labelwise.decide import fit_calibration, fit_policy
from labelwise.errors import InputError
from labelwise.labels.split import split_name
from conftest import noisy_scores, run_cli as run


@pytest.fixture
def val_test(tmp_path):
    """Two labels, 40 val rows and 60 test rows whose scores disagree with the truth."""
    rng = np.random.default_rng(0)
    n = 100
    y = rng.integers(0, 2, size=(n, 2))
    split = np.array(["Validation"] * 40 + ["Holdout"] * 60)
    s = noisy_scores(rng, y, 0.65, 0.35, 0.2)
    s[40:] = 1 - s[40:]  # test rows rank the other way: a fit that sees them is visibly different
    ids = [f"img{i:03d}" for i in range(n)]
    pd.DataFrame({"id": ids, "a": y[:, 0], "b": y[:, 1], "split": split}).to_csv(tmp_path / "t.csv", index=False)
    pd.DataFrame({"id": ids, "a": s[:, 0], "b": s[:, 1]}).to_csv(tmp_path / "s.csv", index=False)
    pd.DataFrame({"id": ids, "group": ids, "split": ["val"] * 40 + ["test"] * 60}).to_csv(tmp_path / "splits.csv",
                                                                                          index=False)
    pd.DataFrame({"id": ids, "a": y[:, 0], "b": y[:, 1]}).to_csv(tmp_path / "nosplit.csv", index=False)
    return tmp_path, y, s


def test_calibrate_fits_on_the_chosen_split_only(val_test, capsys):
    d, y, s = val_test
    assert run("calibrate", "--truth", d / "t.csv", "--scores", d / "s.csv", "--split", "val",
               "--out", d / "cal.json") == 0
    out = capsys.readouterr().out
    assert "fitting on 40 rows of split 'val' (column 'split')" in out
    doc = json.loads((d / "cal.json").read_text())
    ref = fit_calibration(y[:40], s[:40], method="platt", labels=["a", "b"])
    assert doc["fitted_on"]["rows"] == 40
    for label in ("a", "b"):
        assert doc["independent"][label]["a"] == pytest.approx(ref.independent[label]["a"], rel=1e-6)
        assert doc["independent"][label]["b"] == pytest.approx(ref.independent[label]["b"], rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("extra", [["--calibration", "platt"], ["--min-labels", "1", "--optimize", "instance-f1"],
                                   ["--optimize", "hamming"], ["--optimize", "f1"]])
def test_thresholds_fits_on_the_chosen_split_on_every_path(val_test, capsys, extra):
    d, y, s = val_test
    assert run("thresholds", "--truth", d / "t.csv", "--scores", d / "s.csv", "--split", "val",
               "--out", d / "x.json", *extra) == 0
    assert "fitting on 40 rows of split 'val'" in capsys.readouterr().out
    got = json.loads((d / "x.json").read_text())
    kw = dict(zip(extra[::2], extra[1::2]))
    ref = fit_policy(y[:40], s[:40], labels=["a", "b"], rule=kw.get("--optimize", "f1"),
                     calibration=kw.get("--calibration"), min_labels=int(kw["--min-labels"]) if "--min-labels" in kw
                     else None)
    if ref.thresholds is not None:
        values = got["thresholds"]["values"] if "thresholds" in got and isinstance(got["thresholds"], dict) \
            else got["values"]
        values = list(values.values()) if isinstance(values, dict) else values
        assert np.allclose(values, ref.thresholds.values, equal_nan=True)


def test_thresholds_compare_uses_the_chosen_split(val_test, capsys):
    d, y, s = val_test
    pd.read_csv(d / "t.csv").iloc[:40].to_csv(d / "val_only.csv", index=False)
    pd.read_csv(d / "s.csv").iloc[:40].to_csv(d / "s_val.csv", index=False)
    assert run("thresholds", "--truth", d / "t.csv", "--scores", d / "s.csv", "--split", "val", "--compare",
               "--calibration", "platt", "--json") == 0
    split_doc = json.loads(capsys.readouterr().out)
    assert run("thresholds", "--truth", d / "val_only.csv", "--scores", d / "s_val.csv", "--compare",
               "--calibration", "platt", "--json") == 0
    assert json.loads(capsys.readouterr().out)["rules"] == split_doc["rules"]
    assert split_doc["images"] == 40


@pytest.mark.parametrize("command", [["calibrate"], ["thresholds"], ["thresholds", "--calibration", "platt"],
                                     ["thresholds", "--compare"]])
def test_a_fit_refuses_rows_marked_test_unless_allowed(val_test, capsys, command):
    d, *_ = val_test
    base = [*command, "--truth", d / "t.csv", "--scores", d / "s.csv"]
    assert run(*base) == 2  # the whole table: 60 rows are 'Holdout'
    assert "60 of the 100 rows to fit on are marked test" in capsys.readouterr().err
    assert run(*base, "--split", "testing") == 2
    assert "--allow-test-rows" in capsys.readouterr().err
    assert run(*base, "--allow-test-rows") == 0
    assert "test rows allowed" in capsys.readouterr().out


def test_the_split_file_selects_rows_in_evaluate_calibrate_and_thresholds(val_test, capsys):
    d, y, s = val_test
    assert run("evaluate", "--truth", d / "nosplit.csv", "--scores", d / "s.csv", "--splits", d / "splits.csv",
               "--split", "test", "--bootstrap", 0, "--json") == 0
    by_file = json.loads(capsys.readouterr().out)
    assert run("evaluate", "--truth", d / "t.csv", "--scores", d / "s.csv", "--split", "test", "--bootstrap", 0,
               "--json") == 0
    by_column = json.loads(capsys.readouterr().out)
    assert by_file["summary"]["n_images"] == 60
    assert by_file["per_label"] == by_column["per_label"]
    from sklearn.metrics import roc_auc_score

    auc = [row["auc"] for row in by_file["per_label"]]
    assert np.allclose(auc, [roc_auc_score(y[40:, j], s[40:, j]) for j in range(2)])
    assert run("calibrate", "--truth", d / "nosplit.csv", "--scores", d / "s.csv", "--splits", d / "splits.csv",
               "--split", "val", "--out", d / "cal.json") == 0
    assert "fitting on 40 rows of split 'val' (" in capsys.readouterr().out
    assert json.loads((d / "cal.json").read_text())["fitted_on"]["rows"] == 40
    # without --split, the split file still says which rows are test: refused
    assert run("thresholds", "--truth", d / "nosplit.csv", "--scores", d / "s.csv", "--splits", d / "splits.csv") == 2
    assert "marked test" in capsys.readouterr().err
    # an id the split file lacks is named
    pd.read_csv(d / "splits.csv").iloc[1:].to_csv(d / "short.csv", index=False)
    assert run("calibrate", "--truth", d / "nosplit.csv", "--scores", d / "s.csv", "--splits", d / "short.csv",
               "--split", "val") == 2
    err = capsys.readouterr().err
    assert "1 of 100 row(s) have no split in" in err and "'img000'" in err


def test_the_split_file_joins_ids_with_or_without_extension(val_test, capsys):
    d, y, s = val_test
    f = pd.read_csv(d / "splits.csv")
    f["id"] = "imgs/" + f["id"] + ".png"  # what a folder-relative id looks like
    f.to_csv(d / "paths.csv", index=False)
    assert run("calibrate", "--truth", d / "nosplit.csv", "--scores", d / "s.csv", "--splits", d / "paths.csv",
               "--split", "val") == 0
    assert "fitting on 40 rows" in capsys.readouterr().out


def test_split_names_read_as_one():
    for raw, want in [(" Validation ", "val"), ("VALID", "val"), ("dev", "val"), ("Training", "train"),
                      ("testing", "test"), ("HoldOut", "test"), ("held-out", "test"), ("fold3", "fold3")]:
        assert split_name(raw) == want


def test_split_check_reads_val_and_validation_as_one_split(tmp_path, capsys):
    pd.DataFrame({"id": ["a", "b", "c", "d"], "Patient ID": [1, 1, 2, 3],
                  "split": ["val", "Validation", "train", "test"]}).to_csv(tmp_path / "t.csv", index=False)
    assert run("split", tmp_path / "t.csv", "--check") == 0
    out = capsys.readouterr().out
    assert "no leakage" in out and "val 2" in out


def test_train_reads_split_aliases_in_column_and_file(tmp_path):
    from types import SimpleNamespace

    from labelwise.training.data import split_masks

    table = SimpleNamespace(ids=np.array(["a", "b", "c", "d"]), source="t.csv",
                            extra=pd.DataFrame({"split": ["Training", "dev", "HOLDOUT", "train"]}))
    cfg = SimpleNamespace(splits=None, split_column="split", table="t.csv")
    m = split_masks(cfg, table)
    assert m["train"].tolist() == [True, False, False, True] and m["val"].tolist() == [False, True, False, False]
    assert m["test"].tolist() == [False, False, True, False]
    pd.DataFrame({"id": ["a", "b", "c", "d"], "split": ["train", "Validation", "testing", "train"]}).to_csv(
        tmp_path / "s.csv", index=False)
    cfg = SimpleNamespace(splits=str(tmp_path / "s.csv"), split_column=None, table="t.csv")
    assert split_masks(cfg, table)["test"].tolist() == [False, False, True, False]


def test_train_refuses_an_image_in_both_val_and_test(tmp_path):
    from types import SimpleNamespace

    from labelwise.training.data import _check_fit_rows

    table = SimpleNamespace(ids=np.array(["a", "b", "b", "c"]))
    masks = {"train": np.array([1, 0, 0, 0], bool), "val": np.array([0, 1, 0, 0], bool),
             "test": np.array([0, 0, 1, 1], bool)}
    with pytest.raises(InputError, match="in both the val and the test split.*allow_test_rows"):
        _check_fit_rows(SimpleNamespace(allow_test_rows=False, table="t.csv"), table, masks)
    _check_fit_rows(SimpleNamespace(allow_test_rows=True, table="t.csv"), table, masks)


def test_explain_picks_a_tables_split_rows_from_the_split_file_or_column(tmp_path):
    from types import SimpleNamespace

    from PIL import Image

    from labelwise.commands.explain import _split_rows

    for i in range(4):
        Image.new("L", (8, 8)).save(tmp_path / f"x{i}.png")
    pd.DataFrame({"id": [f"x{i}" for i in range(4)], "a": [1, 0, 1, 0],
                  "split": ["train", "Testing", "val", "test"]}).to_csv(tmp_path / "t.csv", index=False)
    pd.DataFrame({"id": [f"x{i}" for i in range(4)], "split": ["test", "val", "val", "train"]}).to_csv(
        tmp_path / "s.csv", index=False)
    args = SimpleNamespace(images=str(tmp_path / "t.csv"), split="test", splits=None, split_column=None)
    assert [p.rsplit("/", 1)[-1] for p in _split_rows(args)] == ["x1.png", "x3.png"]
    args.splits = str(tmp_path / "s.csv")
    assert [p.rsplit("/", 1)[-1] for p in _split_rows(args)] == ["x0.png"]
