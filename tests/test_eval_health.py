"""Diagnostics on real failure modes. Scores that vary only by float noise are a
collapse, not "compressed but ranks well"; an AUC whose interval contains 0.5 never ranks well; the
MODEL HEALTH banner leads with the model-level finding, not a derived label with 2 positives."""

from __future__ import annotations

import re

import numpy as np

from labelwise import LabelSchema
from labelwise.evaluation import evaluate
from labelwise.evaluation.diagnostics import diagnose

TAGS = [f"tag{j:02d}" for j in range(12)]


def _noise_model(n=600, seed=0):
    """A collapsed float32 head: every score 0.3 up to ~1e-8 noise that still leans to the positives
    (the real case: std 1.4e-8 and AUC 0.647)."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(TAGS))) < 0.25).astype(np.uint8)
    s = 0.3 + 1e-8 * (0.6 * y + rng.normal(0, 1, y.shape))
    return y, s


def test_float_noise_is_a_collapse_not_compressed():
    y, s = _noise_model()
    findings = diagnose(y, s, labels=TAGS)
    by_label = {f.label: f for f in findings if f.label is not None}
    assert not any(f.code == "compressed" for f in findings)
    assert all(by_label[t].code == "near_constant" and "float rounding noise" in by_label[t].message for t in TAGS)
    assert findings[0].label is None and findings[0].code == "collapse"
    # The noise does rank (that is what fooled the old rule), so the check is not vacuous.
    from sklearn.metrics import roc_auc_score

    assert np.mean([roc_auc_score(y[:, j], s[:, j]) for j in range(len(TAGS))]) > 0.6


def test_an_auc_whose_interval_contains_half_never_ranks_well():
    rng = np.random.default_rng(1)
    n = 400
    y = np.zeros((n, 2), dtype=np.uint8)
    y[: n // 3, 0] = 1
    y[7, 1] = 1  # one positive
    s = np.empty((n, 2))
    s[:, 0] = 0.5 + 0.004 * (y[:, 0] + rng.normal(0, 1, n))  # compressed and well ranked: a warning
    s[:, 1] = 0.5 + 0.004 * rng.normal(0, 1, n)
    s[7, 1] = np.quantile(s[:, 1], 0.89)  # the single positive ranked above ~89% of the negatives
    res = evaluate(y, s, labels=["ok", "one_pos"], bootstrap=300, seed=0)
    f = {x.label: x for x in res.findings if x.label is not None}
    assert f["ok"].code == "compressed" and "rank well" in f["ok"].message
    assert "rank well" not in f["one_pos"].message and f["one_pos"].code == "narrow_band"
    lo, hi = f["one_pos"].evidence["auc_low"], f["one_pos"].evidence["auc_high"]
    assert lo <= 0.5 <= hi  # judged on an interval that says what one positive can support
    # Given directly: an interval containing 0.5 is never "ranks well", however high the point.
    g = diagnose(y[:, :1], s[:, :1], labels=["ok"], auc=[0.9], auc_ci=[(0.45, 0.99)])
    assert not any("rank well" in x.message for x in g)


def test_banner_leads_with_the_model_level_finding(tmp_path):
    y, s = _noise_model()
    schema = LabelSchema(independent=TAGS, none="none")
    yt = schema.complete(y)
    keep = np.flatnonzero(yt[:, -1] == 0)
    keep = np.r_[keep, np.flatnonzero(yt[:, -1] == 1)[:2]]  # the derived none label: 2 positives
    res = evaluate(yt[keep], s[keep], schema=schema, bootstrap=100)
    from labelwise.evaluation.report.html import render_report

    page = render_report(res, {})
    banner = re.search(r'<div class="finding error"><b>model health</b>(.*?)</div>', page).group(1)
    assert "the model has collapsed" in banner and "none" not in banner.split("collapsed")[0]
    from labelwise.evaluation.diagnostics import headline

    lead = headline(res.findings, derived=["none"])
    assert lead.label is None and lead.code == "collapse"


def test_headline_prefers_real_labels_with_evidence():
    from labelwise.evaluation.diagnostics import Finding, headline

    f = [Finding("none", "prevalence", "error", "m1", {"positives": 2, "prevalence": 2 / 500}),
         Finding("tiny", "narrow_band", "error", "m2", {"positives": 3, "prevalence": 3 / 500}),
         Finding("big", "narrow_band", "error", "m3", {"positives": 120, "prevalence": 120 / 500})]
    assert headline(f, derived=["none"]).label == "big"
    assert headline(f[:1] + f[1:2], derived=["none"]).label == "tiny"
    assert headline([]) is None
