"""The report never contradicts itself: one ECE in the text, the JSON and the plot legend; the rule
and calibration actually applied; diagnostics that know the calibration and the loss before they
advise, and count float-noise scores as collapsed."""

from __future__ import annotations

import re

import numpy as np
import pytest

from labelwise.decide import fit_policy
from labelwise.evaluation import evaluate
from labelwise.evaluation.diagnostics import diagnose
from labelwise.labels.schema import LabelSchema
from labelwise.metrics import expected_calibration_error


def _codes(findings, label=None):
    return {f.code for f in findings if label is None or f.label == label}


def test_scores_with_a_float_rounding_std_count_as_collapsed():
    rng = np.random.default_rng(0)
    n = 400
    y = (rng.random((n, 3)) < 0.3).astype(np.uint8)
    s = rng.random((n, 3)) * 0.4 + 0.3 * y  # two healthy labels
    flat = 0.3 + 2e-7 * y[:, 0]  # ranks perfectly, by 2e-7
    flat[:3] += 3e-6  # a range above float rounding, a std ~3e-7
    s[:, 0] = flat
    assert 1e-7 < s[:, 0].std() < 1e-6 and np.ptp(s[:, 0]) > 1e-6
    f = diagnose(y, s, labels=["a", "b", "c"])
    assert "near_constant" in _codes(f, "a")
    assert "compressed" not in _codes(f, "a")


def _compressed(n=20000, seed=1):
    """A rare label whose scores barely vary but are calibrated and rank above chance."""
    rng = np.random.default_rng(seed)
    s = np.clip(0.05 + 0.004 * rng.normal(size=n), 0.001, 0.2)
    y = (rng.random(n) < s).astype(np.uint8)
    return y[:, None], s[:, None]


def test_a_calibrated_compressed_label_is_not_called_uncalibrated():
    y, s = _compressed()
    ece = [expected_calibration_error(y, s)]
    assert ece[0] < 0.01
    f = diagnose(y, s, labels=["rare"], ece=ece)
    msg = next(x.message for x in f if x.label == "rare" and x.code == "compressed")
    assert "uncalibrated" not in msg and "recalibrate" not in msg and f"{ece[0]:.3f}" in msg
    # with an ECE far above the tolerance, the advice to recalibrate stays
    s_bad = s + 0.45
    f = diagnose(y, s_bad, labels=["rare"], ece=[expected_calibration_error(y, s_bad)])
    msg = next(x.message for x in f if x.label == "rare" and x.code == "compressed")
    assert "uncalibrated" in msg and "recalibrate" in msg
    # ... unless the scores are calibrated already
    f = diagnose(y, s_bad, labels=["rare"], ece=[expected_calibration_error(y, s_bad)], calibration="platt")
    msg = next(x.message for x in f if x.label == "rare" and x.code == "compressed")
    assert "recalibrate" not in msg and "platt" in msg


def test_loss_weighting_is_a_cause_only_when_the_loss_reweights():
    rng = np.random.default_rng(2)
    y = (rng.random((300, 4)) < 0.3).astype(np.uint8)
    s = np.full((300, 4), 0.5) + 1e-3 * rng.random((300, 4))  # collapsed near 0.5
    for loss, expect in ((None, True), ("bce", False), ("weighted", True)):
        f = diagnose(y, s, labels=list("abcd"), loss=loss)
        causes = {c for x in f for c in x.causes}
        assert ("loss_weighting" in causes) == expect, (loss, causes)
        assert "collapse" in _codes(f)


@pytest.fixture
def policy_result():
    rng = np.random.default_rng(3)
    n = 1500
    schema = LabelSchema(("A", "B", "C"), none="No Finding")
    z = rng.normal(size=(n, 3)) * 1.5 - 1
    y = (rng.random((n, 3)) < 1 / (1 + np.exp(-z))).astype(np.uint8)
    s = 1 / (1 + np.exp(-(0.5 * z + 1.5)))  # inflated scores
    pol = fit_policy(y[:700], s[:700], schema, rule="instance-f1", calibration="platt")
    return evaluate(schema.complete(y[700:]), s[700:], schema=schema, thresholds=pol, bootstrap=0,
                    score_source="bce")


def test_the_report_states_the_rule_and_calibration_applied_and_one_ece(policy_result, tmp_path, monkeypatch):
    from labelwise.evaluation.report import plots

    legends = []
    real_png = plots._png

    def spy(fig):
        for ax in fig.axes:
            if ax.get_legend() is not None:
                legends.extend(t.get_text() for t in ax.get_legend().get_texts())
        return real_png(fig)

    monkeypatch.setattr(plots, "_png", spy)
    r = policy_result
    written = r.save(tmp_path / "out", plots=True, html=True)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "default 0.5" not in html
    assert "instance-f1" in html and "platt" in html
    d = r.to_dict()
    after, before = d["decisions"]["ece_after"], d["decisions"]["ece_before"]
    assert after == pytest.approx(d["averages"]["ece_classwise"], abs=1e-12)
    # the one ECE: classwise mean over the free labels of the calibrated / raw scores
    y, p = r.y_true[:, :3], r.y_score[:, :3]
    assert after == pytest.approx(np.mean(expected_calibration_error(y, p, average=None)), abs=1e-12)
    assert before == pytest.approx(np.mean(expected_calibration_error(y, r.y_score_uncalibrated[:, :3],
                                                                      average=None)), abs=1e-12)
    text = re.search(r"Classwise ECE \(15 bins\): ([0-9.]+) before calibration, ([0-9.]+)", html)
    assert text and (text.group(1), text.group(2)) == (f"{before:.3f}", f"{after:.3f}")
    ece_legends = [t for t in legends if "ECE" in t]
    assert ece_legends == [f"before calibration (ECE {before:.3f})", f"after calibration (ECE {after:.3f})"]
    assert written


def test_evaluate_tells_the_diagnostics_the_calibration_the_loss_and_the_ece(monkeypatch):
    import importlib

    ev = importlib.import_module("labelwise.evaluation.evaluate")
    seen = {}
    real = ev.diagnose

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(ev, "diagnose", spy)
    rng = np.random.default_rng(3)
    schema = LabelSchema(("A", "B", "C"), none="No Finding")
    y = (rng.random((600, 3)) < 0.3).astype(np.uint8)
    s = np.clip(0.3 * y + 0.7 * rng.random((600, 3)), 0, 1)
    pol = fit_policy(y, s, schema, rule="hamming", calibration="platt")
    r = evaluate(schema.complete(y), s, schema=schema, thresholds=pol, bootstrap=0, score_source="bce")
    assert seen["calibration"] == "platt" and seen["loss"] == "bce"
    np.testing.assert_allclose(seen["ece"], [x.ece for x in r.rows])
