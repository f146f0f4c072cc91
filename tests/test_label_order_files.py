"""A decision or calibration file fitted on a truth ``id,a,b`` applies to a truth ``id,b,a`` with
the same scores: columns are matched by label name, and the numbers equal those on ``id,a,b``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import noisy_scores, run_cli as run


@pytest.fixture
def two_orders(tmp_path):
    rng = np.random.default_rng(5)
    n = 60
    y = rng.integers(0, 2, size=(n, 2))
    s = noisy_scores(rng, y, 0.65, 0.35, 0.2)
    ids = [f"i{k}" for k in range(n)]
    pd.DataFrame({"id": ids, "a": y[:, 0], "b": y[:, 1]}).to_csv(tmp_path / "ab.csv", index=False)
    pd.DataFrame({"id": ids, "b": y[:, 1], "a": y[:, 0]}).to_csv(tmp_path / "ba.csv", index=False)
    pd.DataFrame({"id": ids, "a": s[:, 0], "b": s[:, 1]}).to_csv(tmp_path / "s.csv", index=False)
    return tmp_path


def _per_label(capsys):
    doc = json.loads(capsys.readouterr().out)
    return {r["label"]: (r["auc"], r["threshold"], r["f1"], r["precision"]) for r in doc["per_label"]}


def test_decision_file_applies_to_a_truth_with_another_column_order(two_orders, capsys):
    d = two_orders
    assert run("thresholds", "--truth", d / "ab.csv", "--scores", d / "s.csv", "--calibration", "platt",
               "--optimize", "f1", "--out", d / "dec.json") == 0
    capsys.readouterr()
    assert run("evaluate", "--truth", d / "ab.csv", "--scores", d / "s.csv", "--thresholds", d / "dec.json",
               "--bootstrap", 0, "--json") == 0
    same = _per_label(capsys)
    assert run("evaluate", "--truth", d / "ba.csv", "--scores", d / "s.csv", "--thresholds", d / "dec.json",
               "--bootstrap", 0, "--json") == 0
    assert _per_label(capsys) == same
    assert run("evaluate", "--truth", d / "ba.csv", "--scores", f"x={d / 's.csv'}", "--scores",
               f"y={d / 's.csv'}", "--thresholds", d / "dec.json", "--bootstrap", 0, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    got = {r["label"]: (r["auc"], r["threshold"], r["f1"], r["precision"]) for r in doc["strategies"]["y"]["per_label"]}
    assert got == same


def test_calibration_file_applies_to_a_truth_with_another_column_order(two_orders, capsys):
    d = two_orders
    assert run("calibrate", "--truth", d / "ab.csv", "--scores", d / "s.csv", "--out", d / "cal.json") == 0
    for truth in ("ab.csv", "ba.csv"):
        assert run("thresholds", "--truth", d / truth, "--scores", d / "s.csv", "--calibration", d / "cal.json",
                   "--optimize", "instance-f1", "--out", d / f"p_{truth}.json") == 0
    a = json.loads((d / "p_ab.csv.json").read_text())
    b = json.loads((d / "p_ba.csv.json").read_text())
    assert a["labels"] == b["labels"] == ["a", "b"]
    assert a["thresholds"] == b["thresholds"]
