"""Evaluation edge cases: output folders, input checks, single-class metrics, collapse diagnostics, messages.

Small synthetic files in ``tmp_path``: a truth table (id + 4 labels) and scores written in a
shuffled order, so every test runs in well under a second (no bootstrap unless the item needs one).
"""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from labelwise.errors import InputError
from labelwise.evaluation import evaluate
from conftest import run_cli

LABELS = ["Atelectasis", "Effusion", "Mass", "Nodule"]


def make_data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(LABELS))) < [0.3, 0.25, 0.2, 0.15]).astype(np.uint8)
    z = -1.5 + 2.5 * y + rng.normal(0, 1, y.shape)
    s = np.round(1 / (1 + np.exp(-z)), 6)
    return y, s


@pytest.fixture
def files(tmp_path):
    """(folder, ids, y, scores): y_true.csv and y_pred.csv (shuffled rows) in ``tmp_path``."""
    y, s = make_data()
    ids = np.array([f"img{i:04d}.png" for i in range(len(y))])
    truth = pd.DataFrame(y, columns=LABELS)
    truth.insert(0, "id", ids)
    truth.to_csv(tmp_path / "y_true.csv", index=False)
    write_scores(tmp_path / "y_pred.csv", ids, s)
    return tmp_path, ids, y, s


def write_scores(path, ids, s, *, order_seed=1, with_id=True):
    order = np.random.default_rng(order_seed).permutation(len(ids))
    frame = pd.DataFrame(s[order], columns=LABELS)
    if with_id:
        frame.insert(0, "id", ids[order])
    frame.to_csv(path, index=False)
    return order


# ------------------------------------------------------------------ --out checked up front
def test_evaluate_out_that_is_a_file_is_refused_before_any_work(files, capsys):
    d, *_ = files
    (d / "afile").write_text("x")
    rc = run_cli("evaluate", "--truth", d / "y_true.csv", "--scores", d / "y_pred.csv", "--bootstrap", 0,
                 "--out", d / "afile")
    err = capsys.readouterr().err
    assert rc == 2 and "afile" in err and "--out" in err and "Traceback" not in err
    rc = run_cli("evaluate", "--truth", d / "y_true.csv", "--scores", d / "y_pred.csv", "--bootstrap", 0,
                 "--out", d / "afile" / "sub")
    err = capsys.readouterr().err
    assert rc == 2 and "afile" in err and "not a folder" in err
    # Checked before the inputs are read: a missing truth file is not reached.
    rc = run_cli("evaluate", "--truth", d / "missing.csv", "--scores", d / "y_pred.csv", "--out", d / "afile")
    assert rc == 2 and "--out" in capsys.readouterr().err


def test_thresholds_out_that_is_a_folder_or_under_a_file_is_refused(files, capsys):
    d, *_ = files
    (d / "outdir").mkdir()
    (d / "afile").write_text("x")
    for bad, says in ((d / "outdir", "is a folder"), (d / "afile" / "T.json", "not a folder"),
                      (d / "nodir" / "T.json", "does not exist")):
        rc = run_cli("thresholds", "--truth", d / "missing.csv", "--scores", d / "y_pred.csv", "--out", bad)
        err = capsys.readouterr().err
        assert rc == 2 and says in err and "--out" in err and "Traceback" not in err, (bad, err)
    assert not list((d / "outdir").iterdir())


# ------------------------------------------------------------------ evaluate() checks y_true
@pytest.mark.parametrize("value, says", [(np.nan, "nan at row 5, label 'Effusion'"),
                                         (0.7, "found 0.7 at row 5, label 'Effusion'")])
def test_evaluate_api_refuses_bad_truth_values(value, says):
    y, s = make_data(100)
    y = y.astype(float)
    y[5, 1] = value
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "invalid value encountered in cast"
        with pytest.raises(InputError, match=says):
            evaluate(y, s, labels=LABELS, bootstrap=0)


def test_evaluate_api_nan_score_names_the_label():
    y, s = make_data(100)
    s[7, 2] = np.nan
    with pytest.raises(InputError, match="row 7, label 'Mass'"):
        evaluate(y, s, labels=LABELS, bootstrap=0)


# ------------------------------------------------------------------ out-of-range scores
def test_one_bad_score_cell_names_file_line_label_and_value(files, capsys):
    d, ids, y, s = files
    s = s.copy()
    s[10, 2] = 3.2
    order = write_scores(d / "bad.csv", ids, s)
    line = int(np.flatnonzero(order == 10)[0]) + 2
    for cmd in ("evaluate", "thresholds"):
        extra = ["--bootstrap", 0] if cmd == "evaluate" else []
        rc = run_cli(cmd, "--truth", d / "y_true.csv", "--scores", d / "bad.csv", *extra)
        err = capsys.readouterr().err
        assert rc == 2, err
        assert f"bad.csv, line {line}, column 'Mass'" in err and "3.2" in err, err
        assert "np.float64" not in err and "--from-logits" not in err and "logits" not in err
        assert "bad cell" in err


def test_percentages_are_told_to_divide_by_100(files, capsys):
    d, ids, y, s = files
    write_scores(d / "pct.csv", ids, s * 100)
    rc = run_cli("evaluate", "--truth", d / "y_true.csv", "--scores", d / "pct.csv", "--bootstrap", 0)
    err = capsys.readouterr().err
    assert rc == 2 and "divide" in err and "100" in err and "--from-logits" not in err


def test_logits_are_told_to_use_from_logits(files, capsys):
    d, ids, y, s = files
    write_scores(d / "logits.csv", ids, np.log(s / (1 - s)))
    rc = run_cli("evaluate", "--truth", d / "y_true.csv", "--scores", d / "logits.csv", "--bootstrap", 0)
    err = capsys.readouterr().err
    assert rc == 2 and "--from-logits" in err and "logits.csv" in err
    assert run_cli("evaluate", "--truth", d / "y_true.csv", "--scores", d / "logits.csv", "--bootstrap", 0,
                   "--from-logits") == 0


def test_npy_bad_cell_named(files, capsys):
    d, ids, y, s = files
    s = s.copy()
    s[4, 1] = -0.2
    np.save(d / "bad.npy", s)
    rc = run_cli("evaluate", "--truth", d / "y_true.csv", "--scores", d / "bad.npy", "--bootstrap", 0)
    err = capsys.readouterr().err
    assert rc == 2 and "bad.npy" in err and "row 4" in err and "'Effusion'" in err and "-0.2" in err
    assert "--from-logits" not in err


def test_api_out_of_range_message_plain_numbers():
    y, s = make_data(100)
    s[3, 0] = 1.5
    with pytest.raises(InputError) as e:
        evaluate(y, s, labels=LABELS, bootstrap=0)
    msg = str(e.value)
    assert "row 3, label 'Atelectasis'" in msg and "1.5" in msg and "np.float64" not in msg
    assert "from_logits" not in msg
    from labelwise.metrics import roc_auc_score

    with pytest.raises(InputError) as e:
        roc_auc_score(y, s, labels=LABELS)
    assert "np.float64" not in str(e.value) and "from_logits" not in str(e.value) and "1.5" in str(e.value)
    z = np.log(np.clip(s, 0.01, 0.99) / (1 - np.clip(s, 0.01, 0.99)))
    with pytest.raises(InputError, match="from_logits=True"):
        evaluate(y, z, labels=LABELS, bootstrap=0)


# ------------------------------------------------------------------ thresholds tuned on this data
def test_thresholds_tuned_on_the_same_data_are_flagged(files, capsys):
    d, *_ = files
    assert run_cli("thresholds", "--truth", d / "y_true.csv", "--scores", d / "y_pred.csv", "--out", d / "T.json") == 0
    capsys.readouterr()
    assert run_cli("evaluate", "--truth", d / "y_true.csv", "--scores", d / "y_pred.csv", "--thresholds",
                   d / "T.json", "--bootstrap", 0) == 0
    out = capsys.readouterr().out
    assert "tuned on this same data" in out and "optimistic" in out
    # Other data (a different seed): no such note.
    y2, s2 = make_data(300, seed=5)
    r = evaluate(y2, s2, labels=LABELS, thresholds=d / "T.json", bootstrap=0)
    assert not any("optimistic" in n for n in r.notes)


# ------------------------------------------------------------------ collapse diagnostics
def test_compressed_but_informative_scores_are_not_collapse():
    y, _ = make_data(400)
    rng = np.random.default_rng(2)
    s = 0.49 + 0.02 * (0.7 * y + 0.3 * rng.random(y.shape))  # inside 0.49-0.51, ranks perfectly
    r = evaluate(y, s, labels=LABELS, bootstrap=100)
    codes = {f.code for f in r.findings}
    assert "collapse" not in codes and "narrow_band" not in codes
    assert "compressed" in codes
    assert not any(f.severity == "error" for f in r.findings)
    assert "collapsed" not in r.format_table()
    # The real collapse (0.49-0.51, no signal) is still flagged.
    noise = rng.uniform(0.49, 0.51, y.shape)
    r = evaluate(y, noise, labels=LABELS, bootstrap=100)
    assert "collapse" in {f.code for f in r.findings}


def test_one_row_is_too_few_not_collapse():
    from labelwise.evaluation.diagnostics import diagnose

    f = diagnose(np.array([[1, 0, 0, 1]]), np.array([[0.8, 0.1, 0.2, 0.7]]), labels=LABELS)
    codes = {x.code for x in f}
    assert "collapse" not in codes and "too_few_rows" in codes
    assert not any(x.severity == "error" for x in f)


# ------------------------------------------------------------------ single-class decision metrics
def test_single_class_decision_metrics_are_nan_and_left_out_like_sklearn():
    from sklearn.metrics import precision_recall_fscore_support as prfs

    y, s = make_data(300)
    y[:, 2] = 0          # Mass: no positives
    y[:, 3] = 1          # Nodule: no negatives
    r = evaluate(y, s, labels=LABELS, bootstrap=0)
    p, rec, f1, _ = prfs(y, r.y_pred, average=None, zero_division=np.nan)
    mass, nod = r.row("Mass"), r.row("Nodule")
    assert np.isnan(mass.recall) and np.isnan(nod.specificity)
    np.testing.assert_allclose([x.recall for x in r.rows], rec, equal_nan=True)
    np.testing.assert_allclose([x.precision for x in r.rows], p, equal_nan=True)
    np.testing.assert_allclose([x.f1 for x in r.rows], f1, equal_nan=True)
    for key, i in (("precision", 0), ("recall", 1), ("f1", 2)):
        for avg in ("macro", "micro"):
            want = prfs(y, r.y_pred, average=avg, zero_division=np.nan)[i]
            assert r.averages[f"{key}_{avg}"] == pytest.approx(want, abs=1e-12), (key, avg)
    tn = ((y == 0) & (r.y_pred == 0)).sum(0)
    neg = (y == 0).sum(0)
    spec = [tn[j] / neg[j] for j in range(4) if neg[j]]
    assert r.averages["specificity_macro"] == pytest.approx(np.mean(spec))
    text = r.format_table()
    mass_line = next(ln for ln in text.splitlines() if ln.startswith("Mass *"))
    assert mass_line.split()[-3] == "n/a"  # recall column
    nod_line = next(ln for ln in text.splitlines() if ln.startswith("Nodule *"))
    assert nod_line.split()[-2] == "n/a"  # specificity column
    assert any("recall" in n and "'Mass'" in n and "left out" in n for n in r.notes), r.notes
    assert any("specificity" in n and "'Nodule'" in n for n in r.notes), r.notes


@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted", "samples"])
def test_decision_metrics_zero_division_nan_match_sklearn(average):
    from sklearn import metrics as skm

    from labelwise import metrics as M

    rng = np.random.default_rng(3)
    y = (rng.random((40, 5)) < 0.3).astype(np.uint8)
    p = (rng.random((40, 5)) < 0.3).astype(np.uint8)
    y[:, 1] = 0
    p[:, 2] = 0
    y[:, 4] = 0
    p[:, 4] = 0
    y[0] = 0
    p[0] = 0  # an all-empty row for the samples average
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for ours, theirs in ((M.precision_score, skm.precision_score), (M.recall_score, skm.recall_score),
                             (M.f1_score, skm.f1_score)):
            np.testing.assert_allclose(ours(y, p, average=average, zero_division=np.nan),
                                       theirs(y, p, average=average, zero_division=np.nan), equal_nan=True)
        np.testing.assert_allclose(
            M.fbeta_score(y, p, beta=2, average=average, zero_division=np.nan),
            skm.fbeta_score(y, p, beta=2, average=average, zero_division=np.nan), equal_nan=True)


def test_tuning_warning_says_which_class_is_missing():
    from labelwise.decide.thresholds import tune_thresholds

    y, s = make_data(100)
    y[:, 0] = 1
    y[:, 1] = 0
    with pytest.warns(UserWarning) as rec:
        tune_thresholds(y, s, method="youden", labels=LABELS)
    text = " ".join(str(w.message) for w in rec)
    assert "'Atelectasis' (no negatives)" in text and "'Effusion' (no positives)" in text
    assert "no positives and negatives" not in text


# ------------------------------------------------------------------ output folders
@pytest.mark.slow
def test_stale_report_files_are_removed(files, capsys):
    d, *_ = files
    out = d / "out"
    args = ["evaluate", "--truth", d / "y_true.csv", "--scores", d / "y_pred.csv", "--bootstrap", 0]
    assert run_cli(*args, "--out", out) == 0
    assert (out / "report.html").exists() and (out / "roc.png").exists()
    (out / "mine.txt").write_text("keep me")
    assert run_cli(*args, "--tune", "youden", "--no-plots", "--out", out) == 0
    capsys.readouterr()
    names = {p.name for p in out.iterdir()}
    assert names == {"metrics.json", "thresholds.json", "mine.txt"}, names


def test_missing_matplotlib_is_a_clean_error_and_writes_nothing(files, capsys, monkeypatch):
    d, *_ = files
    out = d / "out2"
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    rc = run_cli("evaluate", "--truth", d / "y_true.csv", "--scores", d / "y_pred.csv", "--bootstrap", 0,
                 "--out", out)
    err = capsys.readouterr().err
    assert rc == 2 and "matplotlib" in err and "--no-plots" in err
    assert not out.exists() or not list(out.iterdir())


# ------------------------------------------------------------------ scores without ids
def test_scores_without_id_column_say_matched_by_position(files, capsys):
    d, ids, y, s = files
    pd.DataFrame(s, columns=LABELS).to_csv(d / "noid.csv", index=False)
    assert run_cli("evaluate", "--truth", d / "y_true.csv", "--scores", d / "noid.csv", "--bootstrap", 0) == 0
    err = capsys.readouterr().err
    assert "no id column" in err and "position" in err


# ------------------------------------------------------------------ small messages
def test_thresholds_file_messages(files, capsys, tmp_path):
    d, *_ = files
    (d / "bad.json").write_text('{"labels": ["a"]}')
    rc = run_cli("evaluate", "--truth", d / "y_true.csv", "--scores", d / "y_pred.csv", "--thresholds", d / "bad.json")
    err = capsys.readouterr().err
    assert rc == 2 and "labelwise thresholds" in err and "labelwise tune" not in err
    (d / "few.json").write_text(json.dumps({"labels": LABELS[:3], "values": [0.5] * 3, "method": "f1"}))
    rc = run_cli("evaluate", "--truth", d / "y_true.csv", "--scores", d / "y_pred.csv", "--thresholds", d / "few.json",
                 "--bootstrap", 0)
    err = capsys.readouterr().err
    assert rc == 2 and "few.json" in err and "'Nodule'" in err and "labelwise thresholds" in err
    (d / "big.json").write_text(json.dumps({"labels": LABELS, "values": [7.5, 0.5, 0.5, 0.5], "method": "f1"}))
    rc = run_cli("evaluate", "--truth", d / "y_true.csv", "--scores", d / "y_pred.csv", "--thresholds", d / "big.json",
                 "--bootstrap", 0)
    err = capsys.readouterr().err
    assert rc == 2 and "big.json" in err and "'Atelectasis'" in err and "7.5" in err


def test_negative_bootstrap_is_refused(files, capsys):
    d, *_ = files
    with pytest.raises(SystemExit) as e:
        run_cli("evaluate", "--truth", d / "y_true.csv", "--scores", d / "y_pred.csv", "--bootstrap", -5)
    assert e.value.code == 2 and "--bootstrap" in capsys.readouterr().err


def test_scores_passed_as_decisions_get_a_hint():
    from labelwise.metrics import f1_score

    y, s = make_data(50)
    with pytest.raises(InputError, match="decide"):
        f1_score(y, s)


# ------------------------------------------------------------------ ranking metrics in the output
@pytest.mark.slow
def test_samples_and_ranking_metrics_are_reported(files, capsys):
    from sklearn import metrics as skm

    d, ids, y, s = files
    r = evaluate(y, s, labels=LABELS, bootstrap=0)
    av = r.averages
    assert av["auc_samples"] == pytest.approx(skm.roc_auc_score(y[(y.sum(1) > 0) & (y.sum(1) < 4)],
                                                                s[(y.sum(1) > 0) & (y.sum(1) < 4)], average="samples"))
    assert av["ap_samples"] == pytest.approx(skm.average_precision_score(
        y[y.sum(1) > 0], s[y.sum(1) > 0], average="samples"))
    assert av["lrap"] == pytest.approx(skm.label_ranking_average_precision_score(y, s))
    assert av["coverage_error"] == pytest.approx(skm.coverage_error(y, s))
    assert av["ranking_loss"] == pytest.approx(skm.label_ranking_loss(y, s))
    text = r.format_table()
    for name in ("samples AUC", "samples AP", "label ranking AP", "coverage error", "ranking loss"):
        assert name in text
    from labelwise.evaluation.report.html import render_report

    html = render_report(r)
    assert "coverage error" in html and "ranking loss" in html
