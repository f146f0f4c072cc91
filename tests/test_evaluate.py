"""The evaluation API, the scores reader and the ``labelwise evaluate`` / ``thresholds`` commands.

Fixture: the chest X-ray user's files. Truth = 2,000 real rows of the CheXNet test list
(cut here, not committed) written as ``y_true.csv`` (id + 14 0/1 columns); scores =
synthetic, written as ``y_pred.csv`` in a different row order.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import CHEXNET_SPLIT, NIH_FINDINGS, NIH_TABLE, ROOT, require, run_cli

from labelwise import LabelSchema
from labelwise.errors import InputError
from labelwise.evaluation import evaluate, parse_tune
from labelwise.labels.scores import read_scores

N_ROWS = 2000
# Per-label separation of the synthetic scores: AUCs from near chance (Hernia) to strong.
STRENGTH = np.linspace(2.2, 0.5, len(NIH_FINDINGS))


def synthetic_scores(y: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = -2.0 + STRENGTH * y + rng.normal(0, 1.0, y.shape)
    return 1 / (1 + np.exp(-logits))


@pytest.fixture(scope="module")
def xray(tmp_path_factory):
    """(folder, ids, y (n,14), scores (n,14)) with y_true.csv and y_pred.csv written."""
    lines = require(CHEXNET_SPLIT / "test_list.txt").read_text().split("\n")
    rows = [ln.split() for ln in lines if ln.strip()][::11][:N_ROWS]
    ids = np.array([r[0] for r in rows])
    y = np.array([[int(v) for v in r[1:]] for r in rows], dtype=np.uint8)
    scores = synthetic_scores(y)
    d = tmp_path_factory.mktemp("xray")
    truth = pd.DataFrame(y, columns=NIH_FINDINGS)
    truth.insert(0, "id", ids)
    truth.to_csv(d / "y_true.csv", index=False)
    order = np.random.default_rng(1).permutation(len(ids))
    pred = pd.DataFrame(scores[order], columns=NIH_FINDINGS)
    pred.insert(0, "id", ids[order])
    pred.to_csv(d / "y_pred.csv", index=False, float_format="%.6f")
    scores = pd.read_csv(d / "y_pred.csv").set_index("id").loc[ids].to_numpy()  # as written (6 decimals)
    return d, ids, y, scores


# ------------------------------------------------------------------ scores reader
def test_read_scores_aligns_by_id(xray):
    d, ids, y, scores = xray
    got_ids, got = read_scores(d / "y_pred.csv", ids=ids, labels=NIH_FINDINGS)
    assert list(got_ids) == list(ids)
    np.testing.assert_allclose(got, scores)


def test_read_scores_output_labels_and_npy(tmp_path):
    schema = LabelSchema(independent=["A", "B"], none="No Finding")
    ids = ["x1", "x2", "x3"]
    p = np.array([[0.1, 0.2], [0.9, 0.5], [0.3, 0.3]])
    pd.DataFrame({"image": ["x3", "x1", "x2"], "A": p[[2, 0, 1], 0], "B": p[[2, 0, 1], 1]}).to_csv(
        tmp_path / "s.csv", index=False)
    _, got = read_scores(tmp_path / "s.csv", ids=ids, schema=schema)
    np.testing.assert_allclose(got[:, :2], p)
    np.testing.assert_allclose(got[:, 2], (1 - p[:, 0]) * (1 - p[:, 1]))  # derived none score
    np.save(tmp_path / "s.npy", p)
    _, got_npy = read_scores(tmp_path / "s.npy", ids=ids, schema=schema)
    np.testing.assert_allclose(got_npy, got)
    # Paths on one side, file names on the other: matched by file name.
    pd.DataFrame({"path": [f"imgs/{i}" for i in ids], "A": p[:, 0], "B": p[:, 1]}).to_csv(
        tmp_path / "paths.csv", index=False)
    np.testing.assert_allclose(read_scores(tmp_path / "paths.csv", ids=ids, schema=schema)[1], got)


@pytest.mark.parametrize("case, pattern", [
    ("missing_id", r"s\.csv: ids in column 'id' do not match.*1 truth id\(s\) have no score row \(e\.g\. \['c'\]\)"),
    ("extra_id", r"1 score row\(s\) have ids not in the truth table \(e\.g\. \['zz'\]\)"),
    ("missing_col", r"s\.csv: missing score column\(s\) \['B'\].*did you mean: 'B' \(found 'b'\)"),
    ("text_cell", r"s\.csv, line 3, column 'B': 'high' is not a finite number"),
    ("empty_cell", r"s\.csv, line 2, column 'A': empty cell"),
    ("dup_id", r"s\.csv, line 5: id 'a' appears twice \(first on line 2\)"),
])
def test_read_scores_errors(tmp_path, case, pattern):
    ids = ["a", "b", "c"]
    rows = {"id": ["a", "b", "c"], "A": ["0.1", "0.2", "0.3"], "B": ["0.5", "0.6", "0.7"]}
    if case == "missing_id":
        rows = {k: v[:2] for k, v in rows.items()}
    elif case == "extra_id":
        rows = {k: v + (["zz"] if k == "id" else ["0.1"]) for k, v in rows.items()}
    elif case == "missing_col":
        rows["b"] = rows.pop("B")
    elif case == "text_cell":
        rows["B"][1] = "high"
    elif case == "empty_cell":
        rows["A"][0] = ""
    elif case == "dup_id":
        rows = {k: v + (["a"] if k == "id" else ["0.1"]) for k, v in rows.items()}
    pd.DataFrame(rows).to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(InputError, match=pattern):
        read_scores(tmp_path / "s.csv", ids=ids, labels=["A", "B"])


def test_read_scores_npy_shape_errors(tmp_path):
    np.save(tmp_path / "s.npy", np.zeros((3, 5)))
    with pytest.raises(InputError, match=r"s\.npy: scores array has shape \(3, 5\); expected \(n, 2\)"):
        read_scores(tmp_path / "s.npy", ids=["a", "b", "c"], labels=["A", "B"])
    np.save(tmp_path / "s.npy", np.zeros((4, 2)))
    with pytest.raises(InputError, match="4 score rows but the truth table has 3 rows"):
        read_scores(tmp_path / "s.npy", ids=["a", "b", "c"], labels=["A", "B"])
    with pytest.raises(InputError, match="does not exist"):
        read_scores(tmp_path / "nope.csv", labels=["A"])


# ------------------------------------------------------------------ evaluate()
def nih_schema_15():
    return LabelSchema(independent=NIH_FINDINGS, none="No Finding")


@pytest.fixture(scope="module")
def result(xray):
    _, _, y, scores = xray
    schema = nih_schema_15()
    return evaluate(schema.complete(y), scores, schema=schema, bootstrap=200, seed=0)


@pytest.mark.slow
def test_evaluate_matches_sklearn(xray, result):
    from sklearn import metrics as skm

    _, _, y, scores = xray
    schema = nih_schema_15()
    yt, ys = schema.complete(y), schema.complete_scores(scores)
    yp = (ys >= 0.5).astype(int)
    yp[:, -1] = 1 - yp[:, :-1].max(axis=1)  # none decided by derivation, not by its own score
    assert result.labels == schema.labels and len(result.rows) == 15
    for label in ("Atelectasis", "Edema", "Hernia", "No Finding"):
        j = schema.index(label)
        r = result.row(label)
        assert r.positives == int(yt[:, j].sum())
        assert r.auc == pytest.approx(skm.roc_auc_score(yt[:, j], ys[:, j]), abs=1e-12)
        assert r.ap == pytest.approx(skm.average_precision_score(yt[:, j], ys[:, j]), abs=1e-12)
        if min(r.positives, len(yt) - r.positives) >= 10:
            assert r.auc_low <= r.auc <= r.auc_high
        else:  # Hernia: 4 positives, too few for an interval
            assert np.isnan([r.auc_low, r.auc_high]).all()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert r.recall == pytest.approx(skm.recall_score(yt[:, j], yp[:, j]), abs=1e-12)
            assert r.f1 == pytest.approx(skm.f1_score(yt[:, j], yp[:, j]), abs=1e-12)
            assert r.precision == pytest.approx(skm.precision_score(yt[:, j], yp[:, j], zero_division=np.nan),
                                                abs=1e-12, nan_ok=True)
    assert result.row("No Finding").rule == "derived" and result.row("Mass").threshold == 0.5
    av = result.averages
    # the averages cover the 14 findings (the free labels), not the derived "No Finding"
    f = slice(0, 14)
    assert av["auc_macro"] == pytest.approx(skm.roc_auc_score(yt[:, f], ys[:, f], average="macro"), abs=1e-12)
    assert av["auc_micro"] == pytest.approx(skm.roc_auc_score(yt[:, f], ys[:, f], average="micro"), abs=1e-12)
    assert av["ap_weighted"] == pytest.approx(skm.average_precision_score(yt[:, f], ys[:, f], average="weighted"),
                                              abs=1e-12)
    assert av["hamming_loss"] == pytest.approx(skm.hamming_loss(yt, yp), abs=1e-12)
    assert av["subset_accuracy"] == pytest.approx(skm.accuracy_score(yt, yp), abs=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert av["f1_micro"] == pytest.approx(skm.f1_score(yt[:, f], yp[:, f], average="micro"), abs=1e-12)
    assert result.summary["averages_cover"] == {"over": "free", "labels": list(schema.labels[:14])}
    low, high = result.averages_ci["auc_macro_ci_labels"]  # over the labels with >= 10 of each class
    assert low < av["auc_macro_ci_labels"] < high
    # The per-label table: every label, aligned columns, CIs.
    table = result.format_table()
    for label in schema.labels:
        assert label in table
    assert "AUC [95% CI]" in table and "Classification report" in table and "Diagnostics" in table
    lines = table.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("label "))
    block = lines[start:start + 2 + 15]  # header, rule, 15 labels: right-aligned numbers, equal widths
    assert len({len(ln) for ln in block}) == 1, block
    assert block[2].split()[0] == "Atelectasis" and block[-1].startswith("No Finding")
    assert result.findings == [] or all(f.severity != "error" for f in result.findings)


def test_output_scores_and_logits_agree(xray, result):
    _, _, y, scores = xray
    schema = nih_schema_15()
    # Head outputs only (14 columns): the none score is derived.
    r14 = evaluate(schema.complete(y), scores, schema=schema, bootstrap=0)
    assert [r.auc for r in r14.rows] == pytest.approx([r.auc for r in result.rows], abs=1e-12)
    logits = np.log(scores / (1 - scores))
    rl = evaluate(schema.complete(y), logits, schema=schema, bootstrap=0, from_logits=True)
    assert [r.auc for r in rl.rows] == pytest.approx([r.auc for r in result.rows], abs=1e-9)
    assert [r.f1 for r in rl.rows] == pytest.approx([r.f1 for r in result.rows], abs=1e-9, nan_ok=True)
    assert r14.bootstrap["n_resamples"] == 0 and r14.averages_ci == {}


@pytest.mark.parametrize("spec, kw", [
    ("f1", {"method": "f1"}), ("youden", {"method": "youden"}), ("fbeta=2", {"method": "fbeta", "beta": 2.0}),
    ("sensitivity=0.9", {"method": "sensitivity", "target": 0.9}), ("recall=0.8", {"method": "sensitivity", "target": 0.8}),
    ("specificity=0.95", {"method": "specificity", "target": 0.95}), ("precision = 0.8", {"method": "precision", "target": 0.8}),
])
def test_parse_tune(spec, kw):
    assert parse_tune(spec) == kw


@pytest.mark.parametrize("spec, msg", [
    ("accuracy", "unknown tuning rule"), ("sensitivity", "needs a target in"), ("sensitivity=1.5", "needs a target in"),
    ("f1=2", "takes no value"), ("fbeta", "positive beta"), ("fbeta=-1", "positive beta"),
])
def test_parse_tune_errors(spec, msg):
    with pytest.raises(InputError, match=msg):
        parse_tune(spec)


@pytest.mark.slow
def test_tuned_thresholds_reach_targets_and_say_optimistic(xray, tmp_path):
    _, _, y, scores = xray
    schema = nih_schema_15()
    yt = schema.complete(y)
    r = evaluate(yt, scores, schema=schema, tune="sensitivity=0.9", bootstrap=0)
    assert any("optimistic" in n for n in r.notes) and "optimistic" in r.threshold_source
    assert "optimistic" in r.format_table()
    for row in r.rows:
        if row.rule == "threshold" and row.positives > 0:
            assert row.recall >= 0.9 - 1e-12, row.label
    r = evaluate(yt, scores, schema=schema, tune="specificity=0.95", bootstrap=0)
    for row in r.rows:
        if row.rule == "threshold":
            assert row.specificity >= 0.95 - 1e-12, row.label
    # Thresholds tuned once, saved, and passed back give the same decisions; the file's recorded hash
    # shows they were tuned on this very data, so the note stays.
    tuned = evaluate(yt, scores, schema=schema, tune="f1", bootstrap=0)
    tuned.thresholds.save(tmp_path / "t.json")
    again = evaluate(yt, scores, schema=schema, thresholds=tmp_path / "t.json", bootstrap=0)
    np.testing.assert_array_equal(again.y_pred, tuned.y_pred)
    assert any("optimistic" in n for n in again.notes) and str(tmp_path / "t.json") in again.threshold_source
    assert "tuned on this same data" in again.threshold_source
    # On other rows (here: half of them) the hash differs and there is no note.
    half = evaluate(yt[::2], scores[::2], schema=schema, thresholds=tmp_path / "t.json", bootstrap=0)
    assert not any("optimistic" in n for n in half.notes)
    with pytest.raises(InputError, match="not both"):
        evaluate(yt, scores, schema=schema, tune="f1", thresholds=tmp_path / "t.json")


def test_undefined_values_shown_as_na_with_reason(xray):
    _, _, y, scores = xray
    schema = nih_schema_15()
    y = y.copy()
    y[:, NIH_FINDINGS.index("Hernia")] = 0
    r = evaluate(schema.complete(y), scores, schema=schema, bootstrap=50)
    row = r.row("Hernia")
    assert np.isnan(row.auc) and np.isnan(row.ap) and "only negatives" in row.notes[0]
    table = r.format_table()
    hernia_line = next(ln for ln in table.splitlines() if ln.startswith("Hernia *"))
    assert "n/a" in hernia_line
    assert "Hernia: only negatives in this data: AUC/AP undefined" in table
    doc = json.loads((write_json_text(r.to_dict())))
    assert doc["per_label"][NIH_FINDINGS.index("Hernia")]["auc"] is None


def write_json_text(obj):
    from labelwise.io import _nan_to_none

    return json.dumps(_nan_to_none(obj), allow_nan=False)


def test_collapsed_model_is_called_out(xray):
    _, _, y, _ = xray
    schema = nih_schema_15()
    scores = np.random.default_rng(0).uniform(0.49, 0.51, y.shape)
    r = evaluate(schema.complete(y), scores, schema=schema, bootstrap=100)
    assert {f.code for f in r.findings if f.label is None} == {"collapse"}
    assert "collapsed" in r.notes[0]
    text = r.format_table()
    assert "the model has collapsed" in text and "BatchNorm" in text


def test_exclusive_group_schema():
    schema = LabelSchema(independent=["cat", "dog"], exclusive={"view": ["front", "side"]})
    rng = np.random.default_rng(0)
    n = 300
    y = np.zeros((n, 4), dtype=np.uint8)
    y[:, :2] = rng.random((n, 2)) < 0.3
    side = rng.random(n) < 0.4
    y[:, 2], y[:, 3] = ~side, side
    s = np.clip(0.6 * y + rng.uniform(0, 0.5, y.shape), 0, 1)
    s[:, 2:] /= s[:, 2:].sum(axis=1, keepdims=True)
    r = evaluate(y, s, schema=schema, bootstrap=0)
    assert r.row("front").rule == "argmax" and r.row("cat").rule == "threshold"
    assert (r.y_pred[:, 2:].sum(axis=1) == 1).all()
    with pytest.raises(InputError, match="expected \\(300, 4\\)"):
        evaluate(y, s[:, :3], schema=schema)


# ------------------------------------------------------------------ commands
@pytest.mark.slow
def test_cli_evaluate_writes_report(xray, tmp_path, capsys):
    d, _, y, _ = xray
    out = tmp_path / "report"
    rc = run_cli("evaluate", "--truth", d / "y_true.csv", "--scores", d / "y_pred.csv", "--tune", "f1",
                 "--bootstrap", 100, "--out", out)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    for label in NIH_FINDINGS:
        assert label in captured.out
    assert "AUC [95% CI]" in captured.out and "optimistic" in captured.out and "micro avg" in captured.out
    assert "bootstrapping 100 resamples" in captured.err
    names = {"metrics.json", "thresholds.json", "report.html", "roc.png", "pr.png", "calibration.png",
             "histograms.png", "error_cooccurrence.png"}
    assert names <= {p.name for p in out.iterdir()}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_samples"] == N_ROWS and [r["label"] for r in metrics["per_label"]] == NIH_FINDINGS
    assert metrics["thresholds"]["method"] == "f1"
    th = json.loads((out / "thresholds.json").read_text())
    assert th  # the thresholds module's own JSON; read back below
    html_text = (out / "report.html").read_text()
    for label in NIH_FINDINGS:
        assert label in html_text
    for name in ("roc", "pr", "calibration", "histograms", "error_cooccurrence"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The tuned thresholds feed a second run.
    rc = run_cli("evaluate", "--truth", d / "y_true.csv", "--scores", d / "y_pred.csv",
                 "--thresholds", out / "thresholds.json", "--bootstrap", 0, "--json")
    doc = json.loads(capsys.readouterr().out)
    # Tuned on this same data (the recorded hash matches): still flagged as optimistic.
    assert rc == 0 and doc["thresholds"]["method"] == "f1" and "optimistic" in json.dumps(doc["notes"])
    assert doc["per_label"][0]["f1"] == pytest.approx(metrics["per_label"][0]["f1"])


def test_cli_thresholds_command(xray, tmp_path, capsys):
    d, _, _, _ = xray
    rc = run_cli("thresholds", "--truth", d / "y_true.csv", "--scores", d / "y_pred.csv", "--method", "youden",
                 "--out", tmp_path / "t.json")
    out = capsys.readouterr().out
    assert rc == 0 and (tmp_path / "t.json").exists()
    assert "Youden J" in out
    for label in NIH_FINDINGS:
        assert label in out
    from labelwise.decide.thresholds import Thresholds

    t = Thresholds.load(tmp_path / "t.json")
    assert t.method == "youden" and list(t.labels)[:14] == NIH_FINDINGS


@pytest.mark.slow
def test_cli_nih_table_grouped_by_patient(xray, tmp_path, capsys):
    d, ids, _, _ = xray
    full = pd.read_csv(require(NIH_TABLE), usecols=["Image Index", "Finding Labels", "Patient ID"])
    sub = full.set_index("Image Index").loc[ids].reset_index()
    sub.to_csv(tmp_path / "Data_Entry_cut.csv", index=False)
    rc = run_cli("evaluate", "--truth", tmp_path / "Data_Entry_cut.csv", "--format", "nih", "--scores",
                 d / "y_pred.csv", "--group-column", "Patient ID", "--bootstrap", 100, "--json")
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    doc = json.loads(cap.out)
    assert doc["bootstrap"]["unit"] == "groups"
    assert doc["bootstrap"]["n_groups"] == sub["Patient ID"].nunique() < N_ROWS
    assert "No Finding" in doc["labels"]  # inferred none label; its score derived from the 14 outputs
    said = [n for n in doc["notes"] if "intervals resample" in n]
    assert len(said) == 1 and f"{sub['Patient ID'].nunique()} groups" in said[0] and "not independent" in said[0]


def test_groups_of_one_image_each_are_said_to_resample_images():
    from labelwise.evaluation.evaluate import groups_note

    assert "not independent" in groups_note(["p1", "p1", "p2"], "patients")
    one_each = groups_note(["p1", "p2", "p3"], "patients")
    assert "each of the 3 groups holds one image" in one_each and "not independent" not in one_each


def test_cli_errors_are_clear(xray, tmp_path, capsys):
    d, _, _, _ = xray
    lines = (d / "y_pred.csv").read_text().splitlines()
    (tmp_path / "short.csv").write_text("\n".join(lines[:-5]) + "\n")
    rc = run_cli("evaluate", "--truth", d / "y_true.csv", "--scores", tmp_path / "short.csv")
    err = capsys.readouterr().err
    assert rc == 2 and "short.csv" in err and "5 truth id(s) have no score row" in err and "Traceback" not in err
    rc = run_cli("evaluate", "--truth", d / "y_true.csv", "--scores", d / "y_pred.csv", "--tune", "accuracy")
    assert rc == 2 and "unknown tuning rule" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_command_does_not_import_frameworks(xray):
    d, _, _, _ = xray
    code = (
        "import sys, io, contextlib\n"
        "from labelwise.commands.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        f"    rc = main(['evaluate', '--truth', r'{d / 'y_true.csv'}', '--scores', r'{d / 'y_pred.csv'}',"
        " '--bootstrap', '20', '--json'])\n"
        "assert rc == 0, rc\n"
        "bad = sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch', 'matplotlib') if m in sys.modules)\n"
        "print('LOADED', bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout, proc.stdout


def test_logits_without_flag_are_refused(xray):
    _, _, y, scores = xray
    with pytest.raises(InputError, match="look like logits.*from_logits=True"):
        evaluate(y, np.log(scores / (1 - scores)), labels=NIH_FINDINGS, bootstrap=0)


@pytest.mark.slow
def test_cli_from_logits(xray, tmp_path, capsys):
    d, ids, _, scores = xray
    frame = pd.DataFrame(np.log(scores / (1 - scores)), columns=NIH_FINDINGS)
    frame.insert(0, "id", ids)
    frame.to_csv(tmp_path / "logits.csv", index=False)
    args = ["evaluate", "--truth", d / "y_true.csv", "--bootstrap", 0, "--json"]
    assert run_cli(*args, "--scores", tmp_path / "logits.csv", "--from-logits") == 0
    from_logits = json.loads(capsys.readouterr().out)
    assert run_cli(*args, "--scores", d / "y_pred.csv") == 0
    probs = json.loads(capsys.readouterr().out)
    assert [r["auc"] for r in from_logits["per_label"]] == pytest.approx([r["auc"] for r in probs["per_label"]], abs=1e-9)
    assert run_cli(*args, "--scores", tmp_path / "logits.csv") == 2
    assert "--from-logits" in capsys.readouterr().err


def test_read_scores_warns_about_ignored_columns(tmp_path):
    pd.DataFrame({"id": ["a", "b"], "A": [0.1, 0.2], "Hernia": [0.3, 0.4]}).to_csv(tmp_path / "s.csv", index=False)
    with pytest.warns(UserWarning, match=r"\['Hernia'\] are not labels"):
        _, m = read_scores(tmp_path / "s.csv", ids=["b", "a"], labels=["A"])
    np.testing.assert_allclose(m[:, 0], [0.2, 0.1])
