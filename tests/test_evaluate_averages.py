"""Which labels the averages cover (the free labels by default), and intervals that resample
patients by default when the table has a patient column."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from labelwise.evaluation import evaluate
from labelwise.labels.schema import LabelSchema
from labelwise.metrics import bootstrap_ci


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    n = 400
    schema = LabelSchema(("A", "Viral", "Bacterial"), none="No Finding",
                         derived={"Infection": ("Viral", "Bacterial")})
    y = (rng.random((n, 3)) < 0.3).astype(np.uint8)
    s = np.clip(y * 0.3 + rng.random((n, 3)) * 0.7, 0, 1)
    return schema, schema.complete(y), schema.complete_scores(s)


def test_macro_averages_cover_the_free_labels_and_the_json_says_which(data):
    schema, y, s = data
    free = [schema.index(x) for x in schema.free_labels]
    r = evaluate(y, s, schema=schema, bootstrap=0)
    assert r.averages["auc_macro"] == pytest.approx(roc_auc_score(y[:, free], s[:, free], average="macro"), abs=1e-12)
    assert r.averages["auc_macro"] != pytest.approx(roc_auc_score(y, s, average="macro"), abs=1e-6)
    assert r.summary["averages_cover"] == {"over": "free", "labels": ["A", "Viral", "Bacterial"]}
    assert any("Infection" in n and "No Finding" in n and "own rows" in n for n in r.notes)
    # the derived and none labels keep their own rows
    assert r.row("Infection").auc == pytest.approx(roc_auc_score(y[:, 3], s[:, 3]), abs=1e-12)
    every = evaluate(y, s, schema=schema, bootstrap=0, average_over="all")
    assert every.averages["auc_macro"] == pytest.approx(roc_auc_score(y, s, average="macro"), abs=1e-12)
    assert every.summary["averages_cover"]["labels"] == list(schema.labels)
    doc = json.loads(json.dumps(r.to_dict(), default=float))
    assert doc["summary"]["averages_cover"]["over"] == "free"


def test_macro_interval_covers_the_same_labels(data):
    schema, y, s = data
    r = evaluate(y, s, schema=schema, bootstrap=200, seed=3, min_class_count=1)
    ref = bootstrap_ci(y[:, :3], s[:, :3], metrics=("roc_auc",), n_resamples=200, seed=3, min_class_count=1)
    lo, hi = r.averages_ci["auc_macro"]
    assert (lo, hi) == pytest.approx((ref["roc_auc"].macro_low, ref["roc_auc"].macro_high), abs=1e-12)


def test_labels_per_image_has_one_definition(data):
    schema, y, s = data
    r = evaluate(y, s, schema=schema, bootstrap=0)
    assert r.summary["labels_per_image"] == pytest.approx(r.averages["labels_per_image_true"], abs=1e-12)
    assert r.summary["labels_per_image"] == pytest.approx(y.sum(1).mean(), abs=1e-12)
    assert r.decisions["labels_per_image_true"] == pytest.approx(y.sum(1).mean(), abs=1e-12)
    assert "none label" in r.summary["labels_per_image_counts"]


def test_evaluate_resamples_patients_by_default_when_the_table_has_a_patient_column(tmp_path, capsys):
    from labelwise.commands.cli import main

    rng = np.random.default_rng(1)
    n = 300
    patients = np.repeat(np.arange(100), 3)
    y = (rng.random((n, 2)) < 0.4).astype(int)
    s = np.round(np.clip(y * 0.3 + rng.random((n, 2)) * 0.7, 0, 1), 6)
    with open(tmp_path / "y.csv", "w") as f:
        f.write("id,Patient ID,A,B\n")
        for i in range(n):
            f.write(f"i{i},p{patients[i]},{y[i, 0]},{y[i, 1]}\n")
    with open(tmp_path / "s.csv", "w") as f:
        f.write("id,A,B\n")
        for i in range(n):
            f.write(f"i{i},{s[i, 0]:.6f},{s[i, 1]:.6f}\n")
    args = ["evaluate", "--truth", str(tmp_path / "y.csv"), "--scores", str(tmp_path / "s.csv"), "--bootstrap", "200",
            "--json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["bootstrap"]["unit"] == "groups" and doc["bootstrap"]["n_groups"] == 100
    assert doc["bootstrap"]["group_column"] == "Patient ID"
    assert any("100 groups" in n and "Patient ID" in n for n in doc["notes"])
    ref = bootstrap_ci(y, s, metrics=("roc_auc",), n_resamples=200, seed=0, groups=[f"p{p}" for p in patients])
    low = [r["auc_low"] for r in doc["per_label"]]
    np.testing.assert_allclose(low, ref["roc_auc"].low, atol=1e-12)
    assert main(args + ["--no-groups"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["bootstrap"]["unit"] == "images"


def test_training_splits_carry_the_patient_ids_to_the_report(tmp_path):
    from PIL import Image

    from labelwise.training.config import TrainConfig
    from labelwise.training.data import load_data

    (tmp_path / "images").mkdir()
    rows = ["id,Patient ID,A,B,split"]
    for i in range(24):
        Image.new("L", (8, 8), color=i * 10).save(tmp_path / "images" / f"i{i}.png")
        rows.append(f"i{i}.png,p{i // 2},{i % 2},{(i // 3) % 2},{['train', 'val', 'test'][i % 3]}")
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    data = load_data(TrainConfig(table=str(tmp_path / "t.csv"), images=str(tmp_path / "images"),
                                 split_column="split"))
    for part in (data.train, data.val, data.test):
        assert list(part.groups) == [f"p{int(str(i).split('.')[0][1:]) // 2}" for i in part.ids]
