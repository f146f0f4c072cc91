"""Atomic file output: a reader never sees a half-written file.

Everything labelwise writes (tables, JSON, reports, checkpoints) goes to a temporary
file in the destination folder first and is renamed over the target only once complete;
``os.replace`` is atomic on POSIX and Windows when both paths are on one file system.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it.

    Use for writers that want a file name (``np.save``, ``fig.savefig``, ``model.save``).
    The temporary name keeps the target's suffix, since some writers choose the format by it.
    An ``OSError`` while writing (the folder cannot be made, no permission, disk full, the target
    is a folder) is raised as a :class:`~labelwise.errors.LabelwiseError`
    ``"cannot write PATH: reason; choose another path"``, so the CLI prints one line, not a traceback.
    After a successful write, temporary files that killed writers left in the folder are removed
    (:func:`remove_stale_temps`).
    """
    target = Path(path)
    if target.is_dir():
        # os.replace would fail only after the whole output was computed and written.
        raise _cannot_write(target, "it is a folder")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # The pid in the name lets a later write tell a dead writer's leftover from a live one's.
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.{os.getpid()}-", suffix=f".tmp{target.suffix}",
                                   dir=target.parent)
    except OSError as e:
        raise _cannot_write(target, _reason(e, target)) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates the file 0600; give the result the permissions a plain open() would.
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise _cannot_write(target, _reason(e, target)) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise
    remove_stale_temps(target.parent)


# mkstemp's random part: 8 characters of [a-z0-9_].
_TEMP_NAME = re.compile(r"^\..*\.(?:(\d+)-)?[a-z0-9_]{8}\.tmp(?:\.[^.]*)?$")
# The checkpoint writer's name, which keeps Keras' whole ".weights.h5" ending: ".tmp-<pid>-<name>".
_CHECKPOINT_TEMP = re.compile(r"^\.tmp-(\d+)-.+$")
#: A leftover temporary file without a writer's pid (written before pids were in the name)
#: is removed once it is this old (seconds): no live write leaves a file untouched that long.
LEGACY_TEMP_AGE = 3600.0


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files :func:`atomic_path` left in ``folder`` when its writer was killed.

    Ours are named ``.<stem>.<pid>-<random>.tmp<suffix>`` (e.g. ``.model.4242-x1y2z3w4.tmp.keras``),
    or ``.tmp-<pid>-<name>`` for checkpoint weights (``.tmp-4242-epoch-003.weights.h5``); one is stale when process ``<pid>`` is gone (on this host). Names without a pid, from older
    versions, are stale after :data:`LEGACY_TEMP_AGE` seconds. Called after every successful
    atomic write, so a killed run's debris goes on the next write into that folder. Returns the
    removed paths; a file that cannot be removed is left alone.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        m = _TEMP_NAME.match(entry.name) or _CHECKPOINT_TEMP.match(entry.name)
        if m is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if m.group(1) is not None:
                pid = int(m.group(1))
                if pid == os.getpid() or _alive(pid):
                    continue
            elif now - entry.stat(follow_symlinks=False).st_mtime < LEGACY_TEMP_AGE:
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a process we may not signal counts as alive)."""
    if os.name == "nt":  # os.kill would terminate it there; keep the file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _reason(e: OSError, target: Path) -> str:
    reason = str(e.strerror or e)
    if isinstance(e, (FileExistsError, NotADirectoryError)):
        # The folder cannot be made because part of its path is a file: say which part.
        blocker = next((p for p in target.parents if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            return f"{blocker} is a file, not a folder"
    return reason


def _cannot_write(target: Path, reason: str) -> Exception:
    # Imported here: errors.py is tiny, but io must stay importable on its own.
    from .errors import LabelwiseError

    return LabelwiseError(f"cannot write {target}: {reason}; choose another path")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def json_text(obj: Any, indent: int = 2) -> str:
    """Strict JSON text of ``obj``: numpy values become plain numbers, NaN and inf become null."""
    return json.dumps(_nan_to_none(obj), indent=indent, allow_nan=False)


def write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (NaN written as null); return the path."""
    return write_text(path, json_text(obj, indent) + "\n")


def _nan_to_none(obj: Any) -> Any:
    # JSON has no NaN; a metric undefined for a label (one class present) becomes null.
    if isinstance(obj, float):
        return None if obj != obj or obj in (float("inf"), float("-inf")) else obj
    if isinstance(obj, dict):
        return {str(k): _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy scalars and arrays, without importing numpy here
        return _nan_to_none(obj.tolist())
    return obj


def check_out_dir(out: str | os.PathLike | None, *, option: str = "--out", what: str = "a folder of files") -> None:
    """Refuse, before any work, an output folder that cannot become one: it must be an existing
    folder or a path that does not exist yet, under folders (not files). ``None`` passes."""
    from .errors import InputError

    if not out:
        return
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {out}: this is an existing file, but this writes {what} "
                         "(report.html, metrics.json, ...); give a folder path, e.g. --out report/")
    _check_ancestors(option, out, path)


def check_out_file(out: str | os.PathLike | None, *, option: str = "--out", example: str = "thresholds.json") -> None:
    """Refuse, before any work, an output file path that cannot be written: not a folder, and its
    parent folder must exist. ``None`` passes."""
    from .errors import InputError

    if not out:
        return
    path = Path(out)
    if path.is_dir():
        raise InputError(f"{option} {out}: this is a folder; give a file path, e.g. {option} {path / example}")
    _check_ancestors(option, out, path)
    if not path.parent.exists():
        raise InputError(f"{option} {out}: the folder {path.parent} does not exist; create it first or choose "
                         f"another {option}")


def _check_ancestors(option: str, out: Any, path: Path) -> None:
    from .errors import InputError

    # The folder that will receive the output (or its first part to be created) must be writable;
    # the path itself when it is an existing folder. os.access also says no on a read-only mount.
    candidates = ([path] if path.is_dir() else []) + list(path.parents)
    for parent in candidates:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{option} {out}: {parent} is a file, not a folder; choose another {option}")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise InputError(f"{option} {out}: cannot write into {parent} (permission denied or a read-only "
                                 f"file system); choose another {option}")
            return


# ------------------------------------------------------------------ whole folders
def write_tree(path: str | os.PathLike, files: "dict[str, str | bytes]", *, owned: "tuple[str, ...] | list[str]" = ()
               ) -> dict[str, Path]:
    """Write a folder of files (``{relative path: text or bytes}``) so that ``path`` never mixes two runs.

    The files are written into a new hidden folder beside ``path`` (``.NAME.<pid>.<random>.tmp``);
    entries of the old folder that are neither written now nor ``owned`` (names of outputs an
    earlier run may have left, which this run replaces or drops) are hard-linked (else copied) into
    it, so the user's own files stay; then the new folder takes the old one's place: one atomic
    ``renameat2(RENAME_EXCHANGE)`` on Linux, else two renames (for an instant ``path`` is absent,
    never mixed). A kill at any moment leaves either the old folder or the new one at ``path``,
    plus at most a hidden ``.tmp`` folder, removed by the next successful write. Where the folder
    cannot be swapped (it is the working directory or holds it, a symlink or a mount point, or its
    parent is not writable) the old
    ``owned`` files are deleted first and the new ones written after, the first file of ``files``
    (e.g. ``metrics.json``) last, so a reader finds either it and a complete set, or no it.
    Returns ``{relative path: final path}``.
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise _cannot_write(target, "it is a file, not a folder")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _cannot_write(target, _reason(e, target)) from None
    final = {rel: target / rel for rel in files}
    if not _swappable(target):
        _write_in_place(target, files, owned)
        return final
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent))
    except OSError:
        # The folder's parent is not ours to write (only the folder is): no sibling to swap in.
        _write_in_place(target, files, owned)
        return final
    try:
        # mkdtemp makes the folder 0700; give it the mode the old folder had (or a plain mkdir's).
        os.chmod(tmp, (target.stat().st_mode & 0o7777) if target.is_dir() else (0o777 & ~_umask()))
        for rel, content in files.items():
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content, encoding="utf-8")
        if target.is_dir():
            tops = {Path(rel).parts[0] for rel in files}
            for entry in target.iterdir():
                if entry.name not in tops and entry.name not in owned:
                    _link_copy(entry, tmp / entry.name)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _cannot_write(target, _reason(e, target)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        _swap(tmp, target)
    except OSError:
        # Cannot be renamed (a mount point, a folder held open on some systems): write in place.
        shutil.rmtree(tmp, ignore_errors=True)
        _write_in_place(target, files, owned)
        return final
    _remove_stale(target)
    return final


def _swappable(target: Path) -> bool:
    if target.is_symlink():
        return False
    if not target.exists():
        return True
    here, there = Path.cwd().resolve(), target.resolve()
    return not (here == there or there in here.parents)


def _write_in_place(target: Path, files, owned) -> None:
    names = list(files)
    first = names[:1]
    target.mkdir(parents=True, exist_ok=True)
    for rel in first + [n for n in owned if n not in first]:  # the marker file goes first
        p = target / rel
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    for rel in names[1:] + first:  # ... and comes back last
        content = files[rel]
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            write_bytes(target / rel, content)
        else:
            write_text(target / rel, content)


def _link_copy(src: Path, dst: Path) -> None:
    def link(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True, copy_function=link)
    elif src.is_symlink():
        os.symlink(os.readlink(src), dst)
    else:
        link(src, dst)


def _swap(new: Path, target: Path) -> None:
    """Put ``new`` at ``target``; the old ``target`` (if any) is removed."""
    if not target.exists():
        os.rename(new, target)
        return
    if _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # now holds the old folder
        return
    aside = new.with_name(new.name[:-4] + ".old.tmp")
    os.rename(target, aside)
    try:
        os.rename(new, target)
    except OSError:
        os.rename(aside, target)  # put the old report back before giving up
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux ``renameat2`` with ``RENAME_EXCHANGE``); False where unsupported."""
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    ok = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), exchange) == 0
    return ok  # on EINVAL/ENOSYS (file system without it) the two-rename fallback runs


def _remove_stale(target: Path) -> None:
    """Remove hidden ``.NAME.<pid>.*.tmp`` folders left beside ``target`` by killed writers (their pid is gone)."""
    for entry in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        parts = entry.name[len(target.name) + 2:].split(".")
        if not parts or not parts[0].isdigit() or not entry.is_dir():
            continue
        pid = int(parts[0])
        if pid == os.getpid() or not _alive(pid):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def read_json(path: str | os.PathLike, what: str) -> Any:
    """The JSON document in ``path``; a missing, unreadable or malformed file is an InputError
    naming the file (and ``what`` it should be), with the line and column of a syntax error."""
    from .errors import InputError

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} file {path} does not exist") from None
    except OSError as e:
        raise InputError(f"cannot read {what} file {path}: {e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
