"""No confidence interval and no significance mark for a label with fewer than
``min_class_count`` (default 10) positives or negatives; macro intervals over ONE fixed label set in
every resample; the left-out labels listed in the text, the JSON and the HTML page."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labelwise.evaluation import compare, evaluate
from labelwise.metrics.bootstrap import resample_metrics, resample_weights

LABELS = ["common", "frequent", "rare1", "rare3"]


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    y = np.zeros((n, 4), dtype=np.uint8)
    y[:, 0] = rng.random(n) < 0.3
    y[:, 1] = rng.random(n) < 0.2
    y[rng.choice(n, 1, replace=False), 2] = 1  # one positive: absent from ~1/3 of the resamples
    y[rng.choice(n, 3, replace=False), 3] = 1
    s = np.clip(0.25 * y + 0.75 * rng.random(y.shape), 0, 1)
    return y, s


def test_rare_labels_get_no_ci_and_the_macro_ci_uses_one_label_set():
    y, s = _data()
    res = evaluate(y, s, labels=LABELS, bootstrap=300, seed=4)
    rows = {r.label: r for r in res.rows}
    for label in ("rare1", "rare3"):
        assert np.isfinite(rows[label].auc) and np.isnan([rows[label].auc_low, rows[label].auc_high]).all()
        assert np.isnan([rows[label].ap_low, rows[label].ap_high]).all()
        assert any("no confidence interval" in n for n in rows[label].notes)
    assert np.isfinite([rows["common"].auc_low, rows["frequent"].auc_high]).all()
    # Independent reference: the same resamples (one chunk, same seed) scored by resample_metrics,
    # the macro per resample over the two labels with >= 10 positives and negatives only.
    W = resample_weights(np.random.default_rng(4), len(y), 300)
    per = resample_metrics(y, s, W)["roc_auc"][:, :2].mean(axis=1)
    lo, hi = np.quantile(per, [0.025, 0.975])
    assert res.averages_ci["auc_macro_ci_labels"] == pytest.approx((lo, hi), abs=1e-12)
    assert res.averages["auc_macro_ci_labels"] == pytest.approx(np.mean([rows["common"].auc, rows["frequent"].auc]))
    assert "auc_macro" not in res.averages_ci  # the all-label macro has no interval of its own
    # The left-out labels, named with their counts, in the text, the JSON and the HTML page.
    text = res.format_table()
    assert "fewer than 10 positives or negatives" in text and "rare1 (1 positive)" in text
    assert "rare3 (3 positives)" in text and "macro AUC, labels with CI" in text
    doc = res.to_dict()
    assert doc["bootstrap"]["ci_left_out"] == {"rare1": "1 positive", "rare3": "3 positives"}
    assert doc["bootstrap"]["min_class_count"] == 10
    from labelwise.evaluation.report.html import render_report

    page = render_report(res, {})
    assert "rare1 (1 positive)" in page and "macro AUC, labels with a CI" in page


def test_min_class_count_is_configurable():
    y, s = _data()
    res = evaluate(y, s, labels=LABELS, bootstrap=100, min_class_count=3)
    rows = {r.label: r for r in res.rows}
    assert np.isfinite(rows["rare3"].auc_low) and np.isnan(rows["rare1"].auc_low)
    with pytest.raises(Exception, match="min_class_count"):
        evaluate(y, s, labels=LABELS, bootstrap=10, min_class_count=0)


def test_no_significance_mark_for_a_label_with_one_positive():
    y, a = _data()
    b = a.copy()
    b[:, 2] = np.where(y[:, 2] == 1, 1.0, 0.5 * a[:, 2])  # strategy b ranks the single positive first
    res = compare(y, {"a": a, "b": b}, labels=LABELS, bootstrap=200)
    per = {r["label"]: r for r in res.per_label_auc()}
    assert per["rare1"]["difference"]["b"]["verdict"] == "n/a"
    assert np.isnan(per["rare1"]["difference"]["b"]["low"])
    line = next(x for x in res.format_comparison().splitlines() if x.startswith("rare1"))
    assert "*" not in line and "[" not in line
    assert any("no interval and no verdict" in n and "rare1 (1 positive)" in n for n in res.notes())
    d = res.paired.differences["b"]["roc_auc"]
    assert list(d.eligible) == [True, True, False, False]
    assert d.macro_point == pytest.approx(np.nanmean(d.point[:2]))


def test_cli_min_class_count(tmp_path, capsys):
    from labelwise.commands.cli import main

    y, s = _data(n=200)
    ids = [f"i{k}" for k in range(len(y))]
    (tmp_path / "t.csv").write_text("id," + ",".join(LABELS) + "\n"
                                    + "".join(f"{i}," + ",".join(map(str, r)) + "\n" for i, r in zip(ids, y)))
    (tmp_path / "s.csv").write_text("id," + ",".join(LABELS) + "\n"
                                    + "".join(f"{i}," + ",".join(f"{v:.6f}" for v in r) + "\n" for i, r in zip(ids, s)))
    rc = main(["evaluate", "--truth", str(tmp_path / "t.csv"), "--scores", str(tmp_path / "s.csv"),
               "--bootstrap", "50", "--min-class-count", "2", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["bootstrap"]["ci_left_out"] == {"rare1": "1 positive"}
    with pytest.raises(SystemExit):
        main(["evaluate", "--truth", str(tmp_path / "t.csv"), "--scores", str(tmp_path / "s.csv"),
              "--min-class-count", "0"])
