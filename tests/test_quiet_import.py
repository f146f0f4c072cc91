"""`import labelwise, keras` leaves stderr empty, and TF_CPP_MIN_LOG_LEVEL set by the user wins.

Each case runs in a fresh interpreter: what is printed depends on which import loads TensorFlow.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("tensorflow")


def _run(code: str, **env_changes) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND")}
    env.update(env_changes)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_import_labelwise_then_keras_prints_nothing_on_stderr():
    done = _run("import labelwise, keras, os; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.strip() == "2"


@pytest.mark.slow
def test_a_log_level_the_user_set_is_kept_and_tensorflow_speaks():
    # The reference: the same import with the user's own setting shows TensorFlow's native
    # lines (abseil prints them before any log level applies), so the empty stderr above is
    # the filter's doing, not a quiet machine.
    done = _run("import labelwise, keras, os; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])", TF_CPP_MIN_LOG_LEVEL="0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"
    from labelwise import is_native_log_noise

    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    if not lines:
        pytest.skip("this TensorFlow build prints no native lines while loading")
    assert all(is_native_log_noise(ln) for ln in lines), lines


def test_native_log_lines_are_told_from_messages():
    from labelwise import is_native_log_noise

    assert is_native_log_noise("I0000 00:00:1796426716.247739    9429 cudart_stub.cc:31] Could not find cuda drivers")
    assert is_native_log_noise("E0000 00:00:1796426716.2 12 cuda_executor.cc:1228] failed call to cuInit")
    assert not is_native_log_noise("F0000 00:00:1796426716.2 12 x.cc:1] fatal: out of memory")
    assert not is_native_log_noise("labelwise train: error: table.csv: no such file")
    assert not is_native_log_noise("Traceback (most recent call last):")
