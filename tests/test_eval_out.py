"""``evaluate --out DIR`` never leaves a report that mixes two runs (a kill
midway leaves the old report or the new one), and ``evaluate``, ``thresholds`` and ``split`` refuse
an unwritable ``--out`` before computing anything."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from labelwise.evaluation import evaluate


def _result(seed: int, n: int = 200):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 3)) < 0.3).astype(np.uint8)
    s = np.clip(0.3 * y + 0.7 * rng.random(y.shape), 0, 1)
    return evaluate(y, s, labels=["a", "b", "c"], bootstrap=0)


@pytest.fixture(scope="module")
def old_report(tmp_path_factory):
    """A full report (plots, HTML) saved once; tests copy it."""
    out = tmp_path_factory.mktemp("old") / "report"
    _result(0).save(out)
    return out


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# A child process that writes a second report into DIR and is killed (os._exit, no cleanup) after
# its K-th file write, wherever the writer is at that moment.
_KILLED_WRITER = r"""
import os, sys, pathlib
import numpy as np
sys.path.insert(0, {tests!r})
from test_eval_out import _result
K = int(sys.argv[2])
count = [0]
def hook(orig):
    def f(self, *a, **k):
        count[0] += 1
        if count[0] > K:
            os._exit(9)
        return orig(self, *a, **k)
    return f
pathlib.Path.write_bytes = hook(pathlib.Path.write_bytes)
pathlib.Path.write_text = hook(pathlib.Path.write_text)
_result(1).save(sys.argv[1], plots=K > 1, html=K > 1)
os._exit(0)
"""


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [1, 4])
def test_killed_save_never_mixes_two_reports(tmp_path, old_report, kill_after):
    out = _copy(old_report, tmp_path / "report")
    (out / "my_notes.txt").write_text("the user's own file")
    before = _snapshot(out)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER.format(tests=str(ROOT / "tests")), str(out),
                           str(kill_after)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr[-2000:]
    assert _snapshot(out) == before  # the old report, whole: not one new file beside old ones
    # The next successful save replaces it whole, keeps the user's file and clears the killed run's temp folder.
    _result(2).save(out, plots=False, html=False)
    after = _snapshot(out)
    assert after["my_notes.txt"] == b"the user's own file"
    assert after["metrics.json"] != before["metrics.json"] and "report.html" not in after
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_new_report_folder_has_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        _result(0).save(tmp_path / "r", plots=False, html=False)
    finally:
        os.umask(mask)
    assert (tmp_path / "r").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "r" / "metrics.json").stat().st_mode & 0o777 == 0o644


def test_no_plots_drops_the_old_plots_and_keeps_other_files(tmp_path, old_report):
    out = _copy(old_report, tmp_path / "r")
    (out / "keep.csv").write_text("x\n")
    _result(1).save(out, plots=False, html=False)
    assert sorted(p.name for p in out.iterdir()) == ["keep.csv", "metrics.json", "thresholds.json"]


def test_in_place_when_out_is_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _result(0).save(".", plots=False, html=False)
    (tmp_path / "data.csv").write_text("x\n")
    (tmp_path / "report.html").write_text("an older run's page")
    _result(1).save(".", plots=False, html=False)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["data.csv", "metrics.json", "thresholds.json"]
    assert os.getcwd() == str(tmp_path)


def test_in_place_when_the_parent_folder_is_not_writable(tmp_path, monkeypatch, old_report):
    import tempfile

    out = _copy(old_report, tmp_path / "r")

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    _result(1).save(out, plots=False, html=False)
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "thresholds.json"]
    assert '"n_samples": 200' in (out / "metrics.json").read_text()


# ------------------------------------------------------------------ --out checked first
def _cli(*argv):
    from labelwise.commands.cli import main

    return main([str(a) for a in argv])


def _truth(tmp_path):
    rng = np.random.default_rng(0)
    y = (rng.random((60, 2)) < 0.4).astype(int)
    lines = ["id,a,b,Patient ID"] + [f"i{k},{y[k, 0]},{y[k, 1]},{k // 2}" for k in range(60)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    lines = ["id,a,b"] + [f"i{k},{rng.random():.4f},{rng.random():.4f}" for k in range(60)]
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")


def test_split_checks_out_before_splitting(tmp_path, capsys, monkeypatch):
    import labelwise.labels.split as S

    _truth(tmp_path)
    called = []
    real = S.split_table
    monkeypatch.setattr(S, "split_table", lambda *a, **k: called.append(1) or real(*a, **k))
    rc = _cli("split", tmp_path / "t.csv", "--out", tmp_path / "missing" / "splits.csv")
    err = capsys.readouterr().err
    assert rc == 2 and "does not exist" in err and not called
    rc = _cli("split", tmp_path / "t.csv", "--out", tmp_path / "splits.csv")
    assert rc == 0 and called and (tmp_path / "splits.csv").exists()


@pytest.mark.parametrize("command", ["evaluate", "thresholds", "split"])
def test_unwritable_out_is_refused_before_computing(tmp_path, capsys, monkeypatch, command):
    import labelwise.io as io

    _truth(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() != 0:
        locked.chmod(0o555)
    else:  # root may write anywhere: stand in for a read-only mount where access(2) says no
        real = os.access
        monkeypatch.setattr(io.os, "access", lambda p, m, real=real: False if str(p) == str(locked) else real(p, m))
    import labelwise.evaluation.inputs as inputs
    import labelwise.labels.tables as tables

    def boom(*a, **k):
        raise AssertionError("computed before checking --out")

    monkeypatch.setattr(inputs, "read_truth", boom)
    monkeypatch.setattr(tables, "read_table", boom)
    out = {"evaluate": locked / "report", "thresholds": locked / "t.json", "split": locked / "s.csv"}[command]
    argv = (["split", tmp_path / "t.csv"] if command == "split"
            else [command, "--truth", tmp_path / "t.csv", "--scores", tmp_path / "s.csv"])
    try:
        rc = _cli(*argv, "--out", out)
    finally:
        locked.chmod(0o755)
    err = capsys.readouterr().err
    assert rc == 2 and "cannot write into" in err and "locked" in err, err
