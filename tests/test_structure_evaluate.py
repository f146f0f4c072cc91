"""Evaluation and split: a truth table with unknown cells is evaluated on each label's
known rows (equal to scikit-learn on those rows), the structure-violation rate of naive decisions
is reported, and the split stratifies on known positives."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise import LabelSchema
from labelwise.evaluation import evaluate

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def _data(seed=0, n=300):
    rng = np.random.default_rng(seed)
    s = LabelSchema(independent=("a", "b", "c"), unknown_values=("-1",))
    y = (rng.random((n, 3)) < [0.3, 0.5, 0.2]).astype(np.uint8)
    scores = np.clip(0.35 * y + rng.random((n, 3)) * 0.65, 0, 1)
    known = rng.random((n, 3)) > [0.1, 0.4, 0.7]
    return s, y, scores, known


def test_evaluation_with_unknown_cells_equals_sklearn_on_known_rows():
    s, y, scores, known = _data()
    res = evaluate(np.where(known, y.astype(int), -1), scores, schema=s, bootstrap=200)
    thr = 0.5
    for j, row in enumerate(res.rows):
        r = known[:, j]
        t, sc, d = y[r, j], scores[r, j], (scores[r, j] >= thr).astype(int)
        assert row.auc == pytest.approx(sklearn_metrics.roc_auc_score(t, sc))
        assert row.ap == pytest.approx(sklearn_metrics.average_precision_score(t, sc))
        assert row.precision == pytest.approx(sklearn_metrics.precision_score(t, d))
        assert row.recall == pytest.approx(sklearn_metrics.recall_score(t, d))
        assert row.f1 == pytest.approx(sklearn_metrics.f1_score(t, d))
        assert row.positives == int(t.sum())
        assert f"evaluated on its {int(r.sum())} known rows of 300" in " ".join(row.notes)
        assert row.auc_low <= row.auc <= row.auc_high
    assert res.summary["known"] == {"a": int(known[:, 0].sum()), "b": int(known[:, 1].sum()),
                                    "c": int(known[:, 2].sum())}
    assert res.averages["auc_macro"] == pytest.approx(np.mean([r.auc for r in res.rows]))
    pooled_t, pooled_s = y[known], scores[known]
    assert res.averages["auc_micro"] == pytest.approx(sklearn_metrics.roc_auc_score(pooled_t, pooled_s))
    full = known.all(axis=1)
    d = (scores >= 0.5).astype(int)
    assert res.averages["subset_accuracy"] == pytest.approx((d[full] == y[full]).all(axis=1).mean())
    assert any("truth cell(s) are unknown" in n for n in res.notes)
    # the known mask passed explicitly gives the same numbers
    again = evaluate(y, scores, schema=s, bootstrap=0, known=known)
    assert [r.auc for r in again.rows] == pytest.approx([r.auc for r in res.rows])


def test_evaluation_reports_the_structure_violation_rate():
    s = LabelSchema(independent=("lung", "pneumonia"), implies={"pneumonia": ["lung"]},
                    derived={"any": {"any_of": ["lung", "pneumonia"]}})
    y = s.complete(np.array([[1, 1], [1, 0], [0, 0], [1, 1]]))
    scores = np.array([[0.2, 0.7, 0.7], [0.8, 0.1, 0.8], [0.1, 0.1, 0.6], [0.9, 0.9, 0.95]])
    res = evaluate(y, scores, schema=s, bootstrap=0)
    v = res.summary["structure_violations"]
    # row 0: child without parent; row 2: derived on without sources
    assert v["any"] == pytest.approx(0.5) and v["by_rule"]["implies"] == pytest.approx(0.25)
    assert v["by_rule"]["derived"] == pytest.approx(0.25)
    assert (res.y_pred[:, 0] >= res.y_pred[:, 1]).all()  # the decisions themselves obey the schema


def test_split_stratifies_on_known_positives(tmp_path):
    from labelwise.labels.split import split_table
    from labelwise.labels.tables import read_table

    rng = np.random.default_rng(0)
    n = 400
    y = (rng.random((n, 2)) < 0.3).astype(int)
    cells = np.where(rng.random((n, 2)) < 0.5, "-1", y.astype(str))
    # the unknown cells of 'a' hide positives more often than not: stratifying on raw values would skew
    p = tmp_path / "t.csv"
    p.write_text("id,a,b\n" + "".join(f"r{i},{c[0]},{c[1]}\n" for i, c in enumerate(cells)))
    s = LabelSchema(independent=("a", "b"), unknown_values=("-1",))
    t = read_table(p, schema=s)
    parts = split_table(t, False, "0.5,0.5", seed=0, names=("train", "val"))
    known_pos = (t.y == 1) & t.known
    for j in range(2):
        per_split = [int(known_pos[(parts["split"] == k).to_numpy(), j].sum()) for k in ("train", "val")]
        assert abs(per_split[0] - per_split[1]) <= 2, per_split   # brute count: half of the known positives each


def test_thresholds_tuned_on_known_rows_only():
    from labelwise.decide.thresholds import tune_thresholds
    from labelwise.evaluation.known import tune_known

    s, y, scores, known = _data(seed=2)
    th = tune_known(y, scores, known, list(s.labels), s, {"method": "f1"})
    for j, label in enumerate(s.labels):
        r = known[:, j]
        ref = tune_thresholds(y[r, j:j + 1], scores[r, j:j + 1], labels=[label])
        assert th[label] == ref.values[0]
        assert th.tuned_on["positives"][label] == int(y[r, j].sum())
    # tuning on every row (unknown read as 0) gives other thresholds here: the check can fail
    naive = tune_thresholds(y * known, scores, labels=list(s.labels))
    assert any(naive[x] != th[x] for x in s.labels)
    res = evaluate(np.where(known, y.astype(int), -1), scores, schema=s, tune="f1", bootstrap=0)
    assert [r.threshold for r in res.rows] == [th[x] for x in s.labels]
