"""What keeps a run's out dir consistent: one writer at a time (:class:`RunLock`), a resume only
on the data the checkpoint was trained on (:func:`data_fingerprint`, :func:`check_fingerprint`),
and a failed checkpoint write (disk full) said in one line (:func:`checkpoint_failure`), its
half-written HDF5 file released (:func:`release_hdf5`) so the process exits cleanly.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import InputError, LabelwiseError

__all__ = ["RunLock", "LOCK_NAME", "data_fingerprint", "check_fingerprint", "CheckpointError", "checkpoint_failure",
           "release_hdf5"]

LOCK_NAME = ".labelwise-train.lock"


class RunLock:
    """A lock file ``out_dir/.labelwise-train.lock`` holding ``{"pid", "host", "started"}``.

    :meth:`acquire` creates it exclusively (``O_CREAT | O_EXCL``, atomic on local file systems).
    If it exists and its process is alive (same host) or on another host, the run is refused
    naming that process; if its process is gone (same host), the stale lock is taken over with a
    warning. :meth:`release` removes it only while it is still ours. Use as a context manager.
    """

    def __init__(self, out_dir: str | os.PathLike):
        self.path = Path(out_dir) / LOCK_NAME
        self.held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def acquire(self) -> "RunLock":
        """Take the lock or raise :class:`InputError` saying which run holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        mine = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                other = self._read()
                if other is None:  # being written this instant, or unreadable: look again
                    time.sleep(0.2)
                    other = self._read()
                if other is not None and not self._stale(other):
                    raise InputError(
                        f"{self.path.parent} is in use by another labelwise train (pid {other.get('pid')} on "
                        f"{other.get('host')}, started {other.get('started')}); wait for it to finish or choose "
                        f"another --out-dir. If that run is gone, delete {self.path}")
                warnings.warn(f"{self.path.parent}: taking over the lock of a run that is gone "
                              f"(pid {(other or {}).get('pid')} on {(other or {}).get('host')}, started "
                              f"{(other or {}).get('started')})")
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(mine, f)
            self.held, self._mine = True, mine
            return self
        raise InputError(f"could not take the lock {self.path}: another run keeps taking it; choose another --out-dir")

    def release(self) -> None:
        """Remove the lock if it is still ours (a run that took over a stale one keeps its own)."""
        if self.held and self._read() == self._mine:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        self.held = False

    def _read(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    @staticmethod
    def _stale(other: Mapping[str, Any]) -> bool:
        if other.get("host") != socket.gethostname():
            return False  # another machine's process cannot be checked from here
        try:
            pid = int(other.get("pid"))
        except (TypeError, ValueError):
            return True
        if pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False


def _digest(a: np.ndarray) -> str:
    """Short SHA-256 of an array's values: strings joined by a unit separator, numbers as bytes."""
    h = hashlib.sha256()
    if a.dtype.kind in "OUS":
        h.update("\x1f".join(map(str, a.ravel())).encode("utf-8"))
    else:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def data_fingerprint(data: Any) -> dict[str, Any]:
    """``{split: {"n", "ids", "labels"}}`` for train / val / test: row count and short SHA-256
    digests of the ids (in order) and of the 0/1 label matrix, plus ``"labels"``: the schema's
    label names. Recorded in every checkpoint, compared on resume."""
    out: dict[str, Any] = {"label_names": list(data.schema.labels)}
    for name in ("train", "val", "test"):
        part = getattr(data, name)
        if part is None:
            out[name] = None
            continue
        out[name] = {"n": int(len(part)), "ids": _digest(np.asarray(part.ids).astype(str)),
                     "labels": _digest(np.asarray(part.y).astype(np.uint8))}
    return out


def check_fingerprint(saved: Mapping[str, Any] | None, now: Mapping[str, Any], where: Path) -> None:
    """Refuse to resume when the data differ from the checkpoint's, naming what changed."""
    if not saved:
        return  # a checkpoint written before fingerprints: nothing to compare
    changed = []
    if saved.get("label_names") != now.get("label_names"):
        changed.append(f"the labels: {saved.get('label_names')} -> {now.get('label_names')}")
    for name in ("train", "val", "test"):
        a, b = saved.get(name), now.get(name)
        if a == b:
            continue
        if a is None or b is None:
            changed.append(f"the {name} split {'appeared' if a is None else 'is gone'}")
        elif a["n"] != b["n"]:
            changed.append(f"the {name} split has {b['n']} rows, the checkpoint's had {a['n']}")
        elif a["ids"] != b["ids"]:
            changed.append(f"the ids (or their order) in the {name} split")
        elif a["labels"] != b["labels"]:
            changed.append(f"the labels of rows in the {name} split (same ids)")
    if changed:
        raise InputError("--resume: the data differ from the run's checkpoint (" + str(where) + "): "
                         + "; ".join(changed) + ". Resume with the table the run started with, or start a new "
                         "run (--overwrite, or another --out-dir)")


class CheckpointError(LabelwiseError):
    """A checkpoint could not be written (disk full, permissions): the run stops; the previous
    checkpoint is intact."""


def checkpoint_failure(error: BaseException, epoch: int, ckdir: Path, last: Mapping[str, Any] | None) -> CheckpointError:
    """The one-line error for a failed checkpoint write of ``epoch`` (``last``: the intact pointer)."""
    code = getattr(error, "errno", None)
    full = code == errno.ENOSPC or "No space left" in str(error)
    # h5py's strerror is HDF5's whole multi-line report; the system's words for the errno say it in one
    reason = (os.strerror(code) if isinstance(code, int) and code > 0
              else (getattr(error, "strerror", None) or str(error)).strip().split("\n")[0])
    kept = (f"the last complete checkpoint (epoch {last['epoch']}) is intact" if last
            else "no earlier checkpoint exists")
    return CheckpointError(
        f"{'disk full' if full else 'cannot write'} while saving the checkpoint of epoch {epoch} in {ckdir} "
        f"({reason}); {kept}. " + ("Free some space, then " if full else "Fix the folder, then ")
        + "run the same command with --resume to continue")


def release_hdf5(path: str | os.PathLike) -> None:
    """Close every HDF5 handle still open on ``path`` after a failed write, freeing the file's space first.

    A write that fails half way (disk full) leaves h5py's file open: Keras closes its store only
    on success. Closing it later flushes HDF5's dirty metadata, which fails again on a full disk;
    the library then keeps a half-closed file and crashes at interpreter exit (a segmentation
    fault after the error was reported). Truncating the file to 0 bytes gives its blocks back, so
    the flush of a few metadata blocks succeeds and the close is clean. Call it while the
    exception of the failed write is still alive (its frames hold the h5py objects); the caller
    removes the file afterwards. Does nothing when h5py was never imported.
    """
    import sys

    h5py = sys.modules.get("h5py")
    if h5py is None:
        return
    target = os.path.abspath(os.fspath(path))
    try:
        ids = [fid for fid in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE)
               if os.path.abspath(os.fsdecode(fid.name)) == target]
    except Exception:  # h5py's own state is broken: nothing safer to do here
        return
    if not ids:
        return
    try:
        os.truncate(target, 0)
    except OSError:
        pass
    for fid in ids:
        for _ in range(8):  # one close per reference h5py handed out
            try:
                if not fid.valid:
                    break
                fid.close()
            except Exception:
                break
