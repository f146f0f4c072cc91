"""Scores written by another tool cover the free labels only: labelwise computes the derived labels
(and the none label) from them, as the model's head does."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from labelwise.errors import InputError
from labelwise.labels.schema import LabelSchema
from labelwise.labels.scores import read_scores

SCHEMA = ('[labels]\nindependent = ["A", "Viral", "Bacterial"]\nnone = "No Finding"\n'
          '[labels.derived]\nInfection = { any_of = ["Viral", "Bacterial"] }\n')


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    y = (rng.random((n, 3)) < 0.3).astype(int)
    s = np.round(np.clip(y * 0.4 + rng.random((n, 3)) * 0.6, 0, 1), 6)
    infection, none = y[:, 1] | y[:, 2], (y.sum(1) == 0).astype(int)
    with open(tmp_path / "y.csv", "w") as f:
        f.write("id,No Finding,A,Infection,Viral,Bacterial\n")
        for i in range(n):
            f.write(f"i{i},{none[i]},{y[i, 0]},{infection[i]},{y[i, 1]},{y[i, 2]}\n")
    order = rng.permutation(n)
    with open(tmp_path / "s.csv", "w") as f:
        f.write("Bacterial,image,A,Viral\n")
        for i in order:
            f.write(f"{s[i, 2]:.6f},i{i},{s[i, 0]:.6f},{s[i, 1]:.6f}\n")
    (tmp_path / "s.toml").write_text(SCHEMA)
    return tmp_path, y, s, infection, none


def test_evaluate_computes_derived_labels_for_scores_of_the_independent_labels_only(files, capsys):
    from labelwise.commands.cli import main

    d, y, s, infection, none = files
    assert main(["evaluate", "--truth", str(d / "y.csv"), "--schema", str(d / "s.toml"), "--scores", str(d / "s.csv"),
                 "--bootstrap", "0", "--json"]) == 0
    cap = capsys.readouterr()
    doc = json.loads(cap.out)
    auc = {r["label"]: r["auc"] for r in doc["per_label"]}
    noisy_or = 1 - (1 - s[:, 1]) * (1 - s[:, 2])
    assert auc["Infection"] == pytest.approx(roc_auc_score(infection, noisy_or), abs=1e-12)
    assert auc["No Finding"] == pytest.approx(roc_auc_score(none, np.prod(1 - s, axis=1)), abs=1e-12)
    assert auc["A"] == pytest.approx(roc_auc_score(y[:, 0], s[:, 0]), abs=1e-12)
    assert "Infection" in cap.err and "computed" in cap.err  # said once


def test_read_scores_completes_free_label_scores_and_refuses_logits(files):
    d, y, s, infection, none = files
    schema = LabelSchema.from_toml(d / "s.toml")
    ids = [f"i{i}" for i in range(len(s))]
    with pytest.warns(UserWarning, match="derived"):
        _, m = read_scores(d / "s.csv", ids=ids, schema=schema)
    assert m.shape == (len(s), schema.n_labels)
    np.testing.assert_allclose(m[:, schema.index("Infection")], 1 - (1 - s[:, 1]) * (1 - s[:, 2]), atol=1e-12)
    with pytest.raises(InputError, match="derived"):
        read_scores(d / "s.csv", ids=ids, schema=schema, from_logits=True)
