"""Comparing strategies side by side: the paired bootstrap, ``labelwise.evaluation.compare`` and
``labelwise evaluate --scores a=... --scores b=...``.

References are independent of the code under test: scikit-learn per label, and a brute-force
bootstrap that draws explicit resample index arrays the way ``resample_weights`` documents
(``rng.integers(0, m, size=(R, m))``: rows, or groups whose rows all enter) and loops over them.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, run_cli

sk = pytest.importorskip("sklearn.metrics")

from labelwise import LabelSchema  # noqa: E402
from labelwise.errors import InputError  # noqa: E402
from labelwise.evaluation import compare, evaluate  # noqa: E402
from labelwise.metrics.bootstrap import bootstrap_ci, paired_bootstrap  # noqa: E402
from labelwise.labels.powerset import LabelPowerset, powerset_scores_to_label_scores  # noqa: E402

TOL = 1e-9
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _data(n=80, L=3, seed=0, tied=False):
    """Truth and two correlated strategies: b = a plus extra noise (so b is worse, and paired)."""
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, L)) < 0.35).astype(np.uint8)
    Y[:2] = [[1] * L, [0] * L]  # both classes present in every label
    a = np.clip(0.35 * Y + 0.65 * rng.random((n, L)), 0, 1)
    b = np.clip(a + rng.normal(0, 0.25, (n, L)), 0, 1)
    if tied:
        a, b = np.round(a, 1), np.round(b, 1)
    return Y, a, b


def _sk_auc(y, s):
    return np.nan if y.min() == y.max() else sk.roc_auc_score(y, s)


def _brute_force_differences(Y, a, b, n_resamples, seed, groups=None):
    """(R, L) per-resample AUC(b) - AUC(a), by sklearn on explicitly indexed resamples."""
    rng = np.random.default_rng(seed)
    n, L = Y.shape
    if groups is None:
        draws = rng.integers(0, n, size=(n_resamples, n))
        index_arrays = list(draws)
    else:
        uniq, inv = np.unique(groups, return_inverse=True)
        members = [np.flatnonzero(inv == g) for g in range(len(uniq))]
        draws = rng.integers(0, len(uniq), size=(n_resamples, len(uniq)))
        index_arrays = [np.concatenate([members[g] for g in row]) for row in draws]
    out = np.empty((n_resamples, L))
    for r, idx in enumerate(index_arrays):
        for j in range(L):
            y = Y[idx, j]
            out[r, j] = np.nan if y.min() == y.max() else _sk_auc(y, b[idx, j]) - _sk_auc(y, a[idx, j])
    return out


# ------------------------------------------------------------------ paired_bootstrap
def test_paired_point_difference_equals_sklearn():
    Y, a, b = _data(n=300, L=4, tied=True)
    res = paired_bootstrap(Y, {"a": a, "b": b}, n_resamples=20, seed=1)
    d = res.differences["b"]["roc_auc"]
    want = np.array([sk.roc_auc_score(Y[:, j], b[:, j]) - sk.roc_auc_score(Y[:, j], a[:, j]) for j in range(4)])
    np.testing.assert_allclose(d.point, want, atol=TOL, rtol=0)
    assert d.macro_point == pytest.approx(want.mean(), abs=TOL)
    want_ap = np.array([sk.average_precision_score(Y[:, j], b[:, j]) - sk.average_precision_score(Y[:, j], a[:, j])
                        for j in range(4)])
    np.testing.assert_allclose(res.differences["b"]["average_precision"].point, want_ap, atol=TOL, rtol=0)
    assert set(res.differences) == {"b"} and res.reference == "a"


@pytest.mark.parametrize("grouped, tied", [(False, False), (False, True), (True, False)])
def test_paired_interval_equals_brute_force_bootstrap(grouped, tied):
    Y, a, b = _data(n=60, L=3, seed=2, tied=tied)
    groups = np.repeat([f"p{i:02d}" for i in range(20)], 3)[np.random.default_rng(4).permutation(60)] if grouped else None
    R, seed = 40, 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = paired_bootstrap(Y, {"a": a, "b": b}, n_resamples=R, seed=seed, groups=groups)
        want = _brute_force_differences(Y, a, b, R, seed, groups)
    d = res.differences["b"]["roc_auc"]
    np.testing.assert_allclose(d.samples, want, atol=TOL, rtol=0, equal_nan=True)
    lo, hi = np.nanquantile(want, [0.025, 0.975], axis=0)
    np.testing.assert_allclose(d.low, lo, atol=TOL, rtol=0)
    np.testing.assert_allclose(d.high, hi, atol=TOL, rtol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        macro = np.nanmean(want, axis=1)
    m_lo, m_hi = np.nanquantile(macro, [0.025, 0.975])
    assert d.macro_low == pytest.approx(m_lo, abs=TOL) and d.macro_high == pytest.approx(m_hi, abs=TOL)
    assert res.unit == ("groups" if grouped else "images")


def test_each_strategy_sees_the_resamples_bootstrap_ci_draws():
    Y, a, b = _data(n=200, L=3)
    res = paired_bootstrap(Y, [a, b], n_resamples=30, seed=9, chunk_bytes=8 * 200 * 7)  # several chunks
    for name, s in (("0", a), ("1", b)):
        alone = bootstrap_ci(Y, s, n_resamples=30, seed=9)
        for m in ("roc_auc", "average_precision"):
            np.testing.assert_array_equal(res.results[name][m].samples, alone[m].samples)
            assert res.results[name][m].macro_low == alone[m].macro_low


def test_pairing_narrows_the_interval_of_a_difference():
    # b is a with a little noise: both vary together across resamples, so the paired interval of
    # their difference is much narrower than what two separate intervals suggest.
    rng = np.random.default_rng(0)
    Y = (rng.random((400, 2)) < 0.3).astype(np.uint8)
    a = np.clip(0.25 * Y + 0.75 * rng.random(Y.shape), 0, 1)
    b = np.clip(a + rng.normal(0, 0.03, Y.shape), 0, 1)
    res = paired_bootstrap(Y, {"a": a, "b": b}, n_resamples=300, seed=0, metrics="roc_auc")
    d = res.differences["b"]["roc_auc"]
    ra, rb = res.results["a"]["roc_auc"], res.results["b"]["roc_auc"]
    assert ((d.high - d.low) < 0.5 * np.minimum(ra.high - ra.low, rb.high - rb.low)).all()


def test_a_strategy_against_itself_differs_by_exactly_zero():
    Y, a, _ = _data(n=150, L=3)
    res = paired_bootstrap(Y, {"a": a, "same": a.copy()}, n_resamples=50, seed=0)
    d = res.differences["same"]["roc_auc"]
    assert np.nanmax(np.abs(d.samples)) == 0 and (d.low == 0).all() and (d.high == 0).all()
    assert d.macro_low == d.macro_high == 0


def test_paired_bootstrap_validation():
    Y, a, b = _data()
    with pytest.raises(InputError, match="strategy 'b': y_true has shape"):
        paired_bootstrap(Y, {"a": a, "b": b[:, :2]})
    with pytest.raises(InputError, match="reference 'c' is not one of"):
        paired_bootstrap(Y, {"a": a, "b": b}, reference="c")
    with pytest.raises(InputError, match="at least one"):
        paired_bootstrap(Y, {})
    with pytest.raises(InputError, match="one group id per row"):
        paired_bootstrap(Y, {"a": a, "b": b}, groups=[1, 2])
    seen = []
    paired_bootstrap(Y, {"a": a, "b": b}, n_resamples=5, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(5, 10), (10, 10)]


# ------------------------------------------------------------------ compare()
@pytest.fixture(scope="module")
def powerset_case():
    """A 3-label schema with a derived none label; a good per-label model and a noisier powerset
    model whose label scores are its marginals (powerset_scores_to_label_scores)."""
    schema = LabelSchema(independent=["Effusion", "Mass", "Nodule"], none="No Finding")
    rng = np.random.default_rng(0)

    def draw(n):
        return schema.complete((rng.random((n, 3)) < [0.3, 0.2, 0.15]).astype(np.uint8))

    y_train, y = draw(2000), draw(600)
    ps = LabelPowerset(schema).fit(y_train)
    logits = 1.5 * rng.normal(size=(len(y), ps.n_classes))  # noisy: true combination only mildly favoured
    ids = ps.encode(y, unseen=-1)
    logits[ids >= 0, ids[ids >= 0]] += 2.0
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    powerset = powerset_scores_to_label_scores(probs, ps.classes, schema)
    good = schema.complete_scores(1 / (1 + np.exp(-(-2 + 3.5 * y[:, :3] + rng.normal(0, 1, (len(y), 3))))))
    return schema, y, good, powerset


def test_compare_equals_separate_evaluations_and_sklearn(powerset_case):
    schema, y, good, powerset = powerset_case
    c = compare(y, {"sigmoid": good, "powerset": powerset}, schema=schema, bootstrap=200, seed=4, tune="f1")
    assert c.names == ("sigmoid", "powerset") and c.reference == "sigmoid" and c.labels == schema.labels
    for name, s in (("sigmoid", good), ("powerset", powerset)):
        alone = evaluate(y, s, schema=schema, bootstrap=200, seed=4, tune="f1")  # each tuned on its own scores
        got = c.results[name]
        assert got.averages == pytest.approx(alone.averages, nan_ok=True)
        assert got.averages_ci.keys() == alone.averages_ci.keys()
        for key, interval in alone.averages_ci.items():  # the same resamples as evaluate's
            assert got.averages_ci[key] == pytest.approx(interval), key
        np.testing.assert_allclose([(r.auc_low, r.auc_high, r.threshold) for r in got.rows],
                                   [(r.auc_low, r.auc_high, r.threshold) for r in alone.rows], rtol=1e-12)
    rows = {r["label"]: r for r in c.per_label_auc()}
    for j, label in enumerate(schema.labels):
        want = sk.roc_auc_score(y[:, j], powerset[:, j]) - sk.roc_auc_score(y[:, j], good[:, j])
        d = rows[label]["difference"]["powerset"]
        assert d["point"] == pytest.approx(want, abs=TOL)
        assert d["low"] <= d["point"] <= d["high"]
    summary = {r["strategy"]: r for r in c.summary_rows()}
    macro_diff = summary["powerset"]["auc_macro_diff"]
    assert macro_diff == pytest.approx(c.results["powerset"].averages["auc_macro"]
                                       - c.results["sigmoid"].averages["auc_macro"], abs=TOL)
    assert summary["powerset"]["auc_macro_diff_high"] < 0 and summary["powerset"]["auc_macro_verdict"] == "lower"
    assert "auc_macro_diff" not in summary["sigmoid"]
    doc = c.to_dict()
    assert set(doc) == {"reference", "strategies", "comparison"} and set(doc["strategies"]) == {"sigmoid", "powerset"}
    json.dumps(doc["comparison"], default=float)  # plain data
    text = c.format_table()
    assert "=== sigmoid (reference)" in text and "=== powerset" in text and "Paired difference vs sigmoid" in text
    assert "diff powerset [95% CI]" in text and "optimistic" in text


def test_compare_reference_thresholds_and_errors(powerset_case, tmp_path):
    schema, y, good, powerset = powerset_case
    c = compare(y, {"sigmoid": good, "powerset": powerset}, schema=schema, bootstrap=0, reference="powerset")
    assert c.paired is None and c.reference == "powerset"
    d = c.per_label_auc()[0]["difference"]["sigmoid"]
    assert d["point"] == pytest.approx(sk.roc_auc_score(y[:, 0], good[:, 0]) - sk.roc_auc_score(y[:, 0], powerset[:, 0]))
    assert np.isnan(d["low"]) and "no bootstrap" in c.format_comparison()
    # thresholds: one for all, or one per strategy
    t_good = evaluate(y, good, schema=schema, tune="f1", bootstrap=0).thresholds
    t_ps = evaluate(y, powerset, schema=schema, tune="youden", bootstrap=0).thresholds
    c = compare(y, {"sigmoid": good, "powerset": powerset}, schema=schema, bootstrap=0,
                thresholds={"sigmoid": t_good, "powerset": t_ps})
    assert c.results["powerset"].thresholds.method == "youden" and c.results["sigmoid"].thresholds.method == "f1"
    with pytest.raises(InputError, match=r"none given for \['powerset'\]"):
        compare(y, {"sigmoid": good, "powerset": powerset}, schema=schema, thresholds={"sigmoid": t_good})
    with pytest.raises(InputError, match="strategy 'powerset': y_score has shape"):
        compare(y, {"sigmoid": good, "powerset": powerset[:, :2]}, schema=schema, bootstrap=0)
    with pytest.raises(InputError, match="strategy name 'report.html' cannot name an output folder"):
        compare(y, {"sigmoid": good, "report.html": powerset}, schema=schema, bootstrap=0)
    with pytest.raises(InputError, match="not both"):
        compare(y, {"a": good}, schema=schema, tune="f1", thresholds=t_good)


# ------------------------------------------------------------------ the command
def _write_scores(path: Path, ids, scores, labels):
    frame = pd.DataFrame(scores, columns=labels)
    frame.insert(0, "id", ids)
    frame.to_csv(path, index=False, float_format="%.8f")


@pytest.fixture(scope="module")
def files(powerset_case, tmp_path_factory):
    schema, y, good, powerset = powerset_case
    d = tmp_path_factory.mktemp("compare")
    ids = np.array([f"img{i:04d}.png" for i in range(len(y))])
    truth = pd.DataFrame(y[:, :3], columns=list(schema.independent))
    truth.insert(0, "id", ids)
    truth.to_csv(d / "y_true.csv", index=False)
    (d / "schema.toml").write_text('[labels]\nindependent = ["Effusion", "Mass", "Nodule"]\nnone = "No Finding"\n')
    order = np.random.default_rng(1).permutation(len(ids))  # any row order
    _write_scores(d / "pred_a.csv", ids[order], good[order, :3], schema.independent)  # head outputs only
    _write_scores(d / "pred_b.csv", ids[order], powerset[order], schema.labels)  # the powerset's exact none mass
    return d, schema, y


def test_cli_compares_two_strategies(files, capsys):
    d, schema, y = files
    base = ["evaluate", "--truth", d / "y_true.csv", "--schema", d / "schema.toml", "--bootstrap", 300]
    rc = run_cli(*base, "--scores", f"sigmoid={d / 'pred_a.csv'}", "--scores", f"powerset={d / 'pred_b.csv'}")
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    out = cap.out
    assert "=== sigmoid (reference)" in out and "=== powerset" in out and "bootstrapping 300 resamples" in cap.err
    assert "Paired difference vs sigmoid" in out and "AUC per label" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("powerset ") and "lower" in ln)
    assert line  # the paired difference row: the noisy powerset is clearly worse
    rc = run_cli(*base, "--scores", f"sigmoid={d / 'pred_a.csv'}", "--scores", f"powerset={d / 'pred_b.csv'}", "--json")
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and set(doc["strategies"]) == {"sigmoid", "powerset"}
    assert doc["strategies"]["powerset"]["summary"]["scores"] == str(d / "pred_b.csv")
    ps_row = next(r for r in doc["comparison"]["summary"] if r["strategy"] == "powerset")
    assert ps_row["auc_macro_diff_high"] < 0  # the difference CI excludes 0
    truth = pd.read_csv(d / "y_true.csv")
    a = pd.read_csv(d / "pred_a.csv").set_index("id").loc[truth["id"]]
    b = pd.read_csv(d / "pred_b.csv").set_index("id").loc[truth["id"]]
    for row in doc["comparison"]["per_label_auc"][:3]:
        j = row["label"]
        want = sk.roc_auc_score(truth[j], b[j]) - sk.roc_auc_score(truth[j], a[j])
        assert row["difference"]["powerset"]["point"] == pytest.approx(want, abs=TOL)


def test_cli_single_named_scores_is_the_usual_evaluation(files, capsys):
    d, _, _ = files
    base = ["evaluate", "--truth", d / "y_true.csv", "--schema", d / "schema.toml", "--bootstrap", 50, "--json"]
    assert run_cli(*base, "--scores", d / "pred_a.csv") == 0
    plain = json.loads(capsys.readouterr().out)
    assert run_cli(*base, "--scores", f"sigmoid={d / 'pred_a.csv'}") == 0
    named = json.loads(capsys.readouterr().out)
    assert "strategies" not in named and named["per_label"] == plain["per_label"]
    assert named["summary"]["scores"] == str(d / "pred_a.csv")


def test_cli_compare_writes_report(files, tmp_path, capsys):
    d, schema, _ = files
    out = tmp_path / "out"
    rc = run_cli("evaluate", "--truth", d / "y_true.csv", "--schema", d / "schema.toml", "--bootstrap", 100,
                 "--scores", d / "pred_a.csv", "--scores", d / "pred_b.csv", "--tune", "f1", "--out", out)
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "Wrote " in cap.out and "pred_a/" in cap.out  # bare paths are named by their stem
    for name in ("pred_a", "pred_b"):
        assert {"metrics.json", "thresholds.json", "report.html", "roc.png"} <= {p.name for p in (out / name).iterdir()}
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["reference"] == "pred_a" and comparison["strategies"] == ["pred_a", "pred_b"]
    assert [r["label"] for r in comparison["per_label_auc"]] == list(schema.labels)
    assert not [p for p in out.rglob(".*")]  # no temp files left
    html_path = out / "report.html"
    text = html_path.read_text()

    class Refs(HTMLParser):
        def __init__(self):
            super().__init__()
            self.imgs, self.links = [], []

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "img":
                self.imgs.append(a.get("src", ""))
            elif "href" in a:
                self.links.append(a["href"])

    refs = Refs()
    refs.feed(text)
    assert len(refs.imgs) == 2  # overlaid ROC grid, AUC differences
    for src in refs.imgs:  # every image exists: embedded PNG data, or a file beside the page
        if src.startswith("data:"):
            assert src.startswith("data:image/png;base64,") and base64.b64decode(src.split(",", 1)[1])[:8] == PNG_MAGIC
        else:
            assert (html_path.parent / src).is_file(), src
    for href in refs.links:  # in-page anchors or the strategies' own reports, which exist
        assert href.startswith("#") or (html_path.parent / href).is_file(), href
    assert "pred_a/report.html" in refs.links and "pred_b/report.html" in refs.links
    for label in schema.labels:
        assert f"<td>{label}</td>" in text
    assert "Paired difference to pred_a" in text and "optimistic" in text
    assert (out / "roc_comparison.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize("case, pattern", [
    ("duplicate", r"the strategy name 'pred_a' is given twice"),
    ("same_stem", r"the strategy name 'pred_a' is given twice .*name each one"),
    ("labels", r"strategy 'bad': .*bad\.csv: missing score column\(s\) \['Nodule'\]"),
    ("bad_name", r"strategy name 'my model' cannot name an output folder"),
    ("thresholds_names", r"--thresholds: give one file for every strategy, or NAME=T\.json for each of"),
    ("empty_name", r"--scores '=.*pred_a\.csv': write NAME=PATH"),
])
def test_cli_compare_errors_are_clear(files, tmp_path, capsys, case, pattern):
    d, _, _ = files
    a, b = d / "pred_a.csv", d / "pred_b.csv"
    scores = {
        "duplicate": [f"pred_a={a}", f"pred_a={b}"],
        "same_stem": [a, tmp_path / "pred_a.csv"],
        "labels": [a, f"bad={tmp_path / 'bad.csv'}"],
        "bad_name": [a, f"my model={b}"],
        "thresholds_names": [a, b],
        "empty_name": [f"={a}", b],
    }[case]
    if case == "labels":
        pd.read_csv(b).drop(columns=["Nodule"]).to_csv(tmp_path / "bad.csv", index=False)
    extra = ["--thresholds", f"pred_a={tmp_path / 't.json'}"] if case == "thresholds_names" else []
    args = ["evaluate", "--truth", d / "y_true.csv", "--schema", d / "schema.toml", "--bootstrap", 0, *extra]
    for s in scores:
        args += ["--scores", s]
    rc = run_cli(*args)
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err
    assert __import__("re").search(pattern, err), err


def test_thresholds_command_takes_one_scores_file(files, tmp_path, capsys):
    d, _, _ = files
    rc = run_cli("thresholds", "--truth", d / "y_true.csv", "--schema", d / "schema.toml",
                 "--scores", d / "pred_a.csv", "--scores", d / "pred_b.csv", "--out", tmp_path / "t.json")
    err = capsys.readouterr().err
    assert rc == 2 and "takes one --scores; got 2" in err and "once per scores file" in err
    assert not (tmp_path / "t.json").exists()
    # Per-strategy thresholds from the thresholds command feed the comparison.
    for name in ("pred_a", "pred_b"):
        assert run_cli("thresholds", "--truth", d / "y_true.csv", "--schema", d / "schema.toml",
                       "--scores", d / f"{name}.csv", "--method", "youden", "--out", tmp_path / f"t_{name}.json") == 0
    capsys.readouterr()
    rc = run_cli("evaluate", "--truth", d / "y_true.csv", "--schema", d / "schema.toml", "--bootstrap", 0, "--json",
                 "--scores", d / "pred_a.csv", "--scores", d / "pred_b.csv",
                 "--thresholds", f"pred_a={tmp_path / 't_pred_a.json'}", "--thresholds", f"pred_b={tmp_path / 't_pred_b.json'}")
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0
    for name in ("pred_a", "pred_b"):
        th = json.loads((tmp_path / f"t_{name}.json").read_text())
        got = doc["strategies"][name]["thresholds"]
        assert got["method"] == "youden" and str(tmp_path / f"t_{name}.json") in got["source"]
        assert got["values"]["Effusion"] == pytest.approx(th["values"][th["labels"].index("Effusion")])


def test_compare_command_does_not_import_frameworks(files):
    d, _, _ = files
    code = (
        "import sys, io, contextlib\n"
        "from labelwise.commands.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        f"    rc = main(['evaluate', '--truth', r'{d / 'y_true.csv'}', '--schema', r'{d / 'schema.toml'}',"
        f" '--scores', r'{d / 'pred_a.csv'}', '--scores', r'{d / 'pred_b.csv'}', '--bootstrap', '20', '--json'])\n"
        "assert rc == 0, rc\n"
        "bad = sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch', 'matplotlib') if m in sys.modules)\n"
        "print('LOADED', bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout, proc.stdout
