"""Vectorised bootstrap: weighted resamples equal scikit-learn on explicitly repeated rows."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

sk = pytest.importorskip("sklearn.metrics")

from labelwise.errors import InputError  # noqa: E402
from labelwise.metrics import UndefinedMetricWarning  # noqa: E402
from labelwise.metrics.bootstrap import bootstrap_ci, resample_metrics, resample_weights  # noqa: E402

TOL = 1e-9


def _data(n=120, L=4, tied=False, seed=0):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, L)) < 0.3).astype(int)
    S = np.clip(0.3 * Y + rng.random((n, L)) * 0.7, 0, 1)
    return Y, (np.round(S, 1) if tied else S)


@pytest.mark.parametrize("tied", [False, True])
def test_weighted_resample_equals_sklearn_on_repeated_rows(tied):
    Y, S = _data(tied=tied)
    rng = np.random.default_rng(1)
    W = np.vstack([rng.multinomial(len(Y), np.full(len(Y), 1 / len(Y))) for _ in range(4)] + [rng.integers(0, 4, len(Y))])
    got = resample_metrics(Y, S, W)
    checked = 0
    for r, w in enumerate(W):
        rows = np.repeat(np.arange(len(Y)), w)
        for j in range(Y.shape[1]):
            y, s = Y[rows, j], S[rows, j]
            if y.min() == y.max():
                assert np.isnan(got["roc_auc"][r, j])
                continue
            assert abs(got["roc_auc"][r, j] - sk.roc_auc_score(y, s)) < TOL
            assert abs(got["average_precision"][r, j] - sk.average_precision_score(y, s)) < TOL
            checked += 1
    assert checked >= 15


def test_resample_with_one_class_is_nan():
    Y = np.array([[1], [0], [0], [1]])
    S = np.array([[0.9], [0.1], [0.5], [0.4]])
    got = resample_metrics(Y, S, np.array([[2, 0, 0, 1], [1, 1, 1, 1]]))
    assert np.isnan(got["roc_auc"][0, 0]) and np.isnan(got["average_precision"][0, 0])
    assert abs(got["roc_auc"][1, 0] - sk.roc_auc_score(Y[:, 0], S[:, 0])) < TOL


def test_point_estimates_equal_sklearn_and_ci_contains_point():
    Y, S = _data(n=400, L=5, tied=True)
    res = bootstrap_ci(Y, S, n_resamples=200, seed=3, labels=list("abcde"))
    for name, fn in [("roc_auc", sk.roc_auc_score), ("average_precision", sk.average_precision_score)]:
        r = res[name]
        np.testing.assert_allclose(r.point, fn(Y, S, average=None), atol=TOL, rtol=0)
        assert r.samples.shape == (200, 5)
        assert (r.low <= r.point).all() and (r.point <= r.high).all() and (r.low < r.high).all()
        np.testing.assert_allclose(r.low, np.quantile(r.samples, 0.025, axis=0))
        assert r.macro_low <= r.macro_point <= r.macro_high
        assert r.labels == tuple("abcde")
        assert (r.n_valid == 200).all()


def test_seeding_is_reproducible():
    Y, S = _data()
    a = bootstrap_ci(Y, S, n_resamples=50, seed=7)
    b = bootstrap_ci(Y, S, n_resamples=50, seed=7)
    c = bootstrap_ci(Y, S, n_resamples=50, seed=8)
    np.testing.assert_array_equal(a["roc_auc"].samples, b["roc_auc"].samples)
    assert not np.array_equal(a["roc_auc"].samples, c["roc_auc"].samples)


def test_resample_draws_are_bootstrap_multiplicities():
    rng = np.random.default_rng(0)
    W = resample_weights(rng, 30, 500)
    assert W.shape == (500, 30) and (W.sum(axis=1) == 30).all()
    assert abs(W.mean() - 1.0) < 0.05  # each row drawn once on average
    groups = np.repeat(np.arange(10), 3)
    Wg = resample_weights(np.random.default_rng(0), 30, 200, groups, 10)
    assert (Wg.reshape(200, 10, 3) == Wg.reshape(200, 10, 3)[:, :, :1]).all()  # a group moves together
    assert (Wg.sum(axis=1) == 30).all()


def test_grouped_bootstrap_keeps_groups_together():
    # Every row duplicated 3 times with the copies in one group: the grouped bootstrap of the
    # copies must equal the plain bootstrap of the original rows (same draws, weights x3).
    Y, S = _data(n=80, L=3)
    Y3, S3 = np.repeat(Y, 3, axis=0), np.repeat(S, 3, axis=0)
    groups = np.repeat([f"patient{i:03d}" for i in range(80)], 3)
    plain = bootstrap_ci(Y, S, n_resamples=40, seed=5)
    grouped = bootstrap_ci(Y3, S3, n_resamples=40, seed=5, groups=groups)
    for m in plain:
        np.testing.assert_allclose(grouped[m].samples, plain[m].samples, atol=TOL, equal_nan=True)
    # ... whereas resampling the copies row by row gives different (too narrow) intervals
    rowwise = bootstrap_ci(Y3, S3, n_resamples=40, seed=5)
    assert not np.allclose(rowwise["roc_auc"].samples, plain["roc_auc"].samples)


def test_rare_and_undefined_labels():
    Y, S = _data(n=60, L=3)
    Y[:, 1] = 0
    Y[5, 1] = 1  # a single positive: many resamples lack it
    Y[:, 2] = 0  # no positive at all
    with pytest.warns(UndefinedMetricWarning, match="'none_here'"):
        res = bootstrap_ci(Y, S, n_resamples=100, labels=["a", "rare", "none_here"])
    r = res["roc_auc"]
    assert 0 < r.n_valid[1] < 100 and r.n_valid[2] == 0
    # One positive (< min_class_count = 10): no interval, out of the macro ...
    assert np.isfinite(r.point[1]) and np.isnan([r.low[1], r.high[1]]).all()
    assert np.isnan([r.point[2], r.low[2], r.high[2]]).all()
    assert list(r.eligible) == [True, False, False] and r.macro_point == pytest.approx(r.point[0])
    # ... unless asked for (min_class_count=1 gives the old, too narrow interval).
    with pytest.warns(UndefinedMetricWarning):
        old = bootstrap_ci(Y, S, n_resamples=100, labels=["a", "rare", "none_here"], min_class_count=1)["roc_auc"]
    assert np.isfinite([old.low[1], old.high[1]]).all()


def test_bootstrap_validation():
    Y, S = _data()
    with pytest.raises(InputError, match="n_resamples"):
        bootstrap_ci(Y, S, n_resamples=0)
    with pytest.raises(InputError, match="level"):
        bootstrap_ci(Y, S, level=95)
    with pytest.raises(InputError, match="one group id per row"):
        bootstrap_ci(Y, S, groups=[1, 2, 3])
    with pytest.raises(InputError, match="unknown bootstrap metric"):
        bootstrap_ci(Y, S, metrics=("f1",))
    # Logits (many cells outside [0, 1], some negative) are told to pass from_logits; 0-10 is not logits.
    with pytest.raises(InputError, match="from_logits"):
        bootstrap_ci(Y, S * 10 - 5)
    with pytest.raises(InputError, match=r"outside \[0, 1\]"):
        bootstrap_ci(Y, S * 10)
    with pytest.raises(InputError, match="non-negative integers"):
        resample_metrics(Y, S, np.full((1, len(Y)), 0.5))


def test_chunking_does_not_change_results():
    Y, S = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = bootstrap_ci(Y, S, n_resamples=30, seed=2)
        b = bootstrap_ci(Y, S, n_resamples=30, seed=2, chunk_bytes=8 * len(Y) * 7)
    # chunks draw the same stream of row indices, so the resamples are identical
    np.testing.assert_allclose(a["average_precision"].samples, b["average_precision"].samples, atol=TOL)


def test_progress_is_reported_per_chunk_and_samples_can_be_dropped():
    Y, S = _data()
    seen = []
    res = bootstrap_ci(Y, S, n_resamples=25, metrics="roc_auc", chunk_bytes=8 * len(Y) * 10,
                       keep_samples=False, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(10, 25), (20, 25), (25, 25)]
    assert set(res) == {"roc_auc"} and res["roc_auc"].samples is None
    d = res["roc_auc"].to_dict()
    assert d["level"] == 0.95 and len(d["low"]) == Y.shape[1]
