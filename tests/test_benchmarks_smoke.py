"""Every benchmark script keeps a ``--smoke`` mode, and the slow tier runs each one, so a change that breaks a
benchmark fails CI instead of the next person who runs it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

BENCH = ROOT / "benchmarks"
SCRIPTS = sorted(BENCH.glob("bench_*.py"))
# gpu/bench.py needs torch beside Keras: .ci/no_tensorflow.sh runs gpu/run.sh --smoke in that venv.
GPU = BENCH / "gpu" / "bench.py"


def test_every_benchmark_script_has_a_smoke_mode():
    assert len(SCRIPTS) >= 10, SCRIPTS  # the glob sees the scripts
    missing = [p.name for p in [*SCRIPTS, GPU] if "--smoke" not in p.read_text() and "add_smoke(" not in p.read_text()]
    assert not missing, f"benchmarks without --smoke: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=[str(p.relative_to(BENCH)) for p in SCRIPTS])
def test_benchmark_smoke_run_exits_cleanly(script: Path, tmp_path: Path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    p = subprocess.run([sys.executable, str(script), "--smoke"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, f"{script.name} --smoke exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    assert p.stdout.strip(), f"{script.name} --smoke printed nothing"
