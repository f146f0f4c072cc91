"""Temporary files left by a killed writer go on the next write into the folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from labelwise.io import LEGACY_TEMP_AGE, atomic_path, write_json, write_text

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _killed_writer(folder: Path, name: str) -> int:
    """Start a process that opens an atomic write of ``folder/name``, then kill -9 it mid-write."""
    code = (f"import sys, time; sys.path.insert(0, {SRC!r}); from labelwise.io import atomic_path\n"
            f"with atomic_path({str(folder / name)!r}) as t:\n"
            "    t.write_bytes(b'half'); print('writing', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return proc.pid


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_of_a_killed_writer_are_removed_on_the_next_write(tmp_path):
    for name in ("model.keras", "log.json", "t.csv"):
        _killed_writer(tmp_path, name)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 3 and all(".tmp." in n for n in left), left
    # a checkpoint's weights, written under the name that keeps Keras' ".weights.h5" ending
    (tmp_path / f".tmp-{_dead_pid()}-epoch-003.weights.h5").write_bytes(b"half")
    assert not (tmp_path / "model.keras").exists()  # the kill never produced a half file
    write_json(tmp_path / "other.json", {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.json"]


def test_live_writers_user_files_and_recent_legacy_names_are_kept(tmp_path):
    live = tmp_path / f".model.{os.getppid()}-abcd1234.tmp.keras"  # a running process's write
    recent = tmp_path / ".log.abcd1234.tmp.json"  # no pid (older versions): kept while recent
    old = tmp_path / ".t.zzzz9999.tmp.csv"
    mine = tmp_path / ".notes.txt"
    for p in (live, recent, old, mine):
        p.write_text("x")
    past = time.time() - LEGACY_TEMP_AGE - 60
    os.utime(old, (past, past))
    with atomic_path(tmp_path / "model.keras") as t:
        t.write_text("model")
        # our own temporary file is not taken for a leftover while we write
        write_text(tmp_path / "b.txt", "b")
        assert t.exists()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([live.name, recent.name, mine.name, "model.keras", "b.txt"])
