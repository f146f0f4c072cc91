"""What the CLI prints around its own messages: TensorFlow's native log lines, Python warnings,
progress bars.

* TensorFlow's C++ logging (``cudart_stub.cc ... Could not find cuda drivers``, oneDNN and CPU
  feature notes, ``failed call to cuInit``, ``Local rendezvous is aborting``) is noise for a user
  of this CLI: unless they set ``TF_CPP_MIN_LOG_LEVEL`` themselves or asked for ``--verbose 2``,
  it is turned down to fatal errors, and the lines abseil prints while TensorFlow is imported
  (before its log level applies) are filtered out of stderr; any other line is passed on.
* Python warnings are printed as ``labelwise CMD: warning: MESSAGE``, without the source line.
* :func:`interactive` tells whether stdout is a terminal: a progress bar written into a log
  file is a stream of escape codes, so commands print one line per stage instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from typing import Iterator

__all__ = ["quiet_native_logs", "plain_warnings", "interactive", "is_noise"]

from .. import is_native_log_noise as is_noise  # the one definition of a native log line
from .. import restore_tensorflow_logs, tensorflow_logs_quieted_by_labelwise


def interactive() -> bool:
    """Whether stdout is a terminal (progress bars) rather than a file or pipe (one line per stage)."""
    return bool(getattr(sys.stdout, "isatty", lambda: False)())


@contextlib.contextmanager
def quiet_native_logs(verbose: int | None, command: str) -> Iterator[None]:
    """Run a command with TensorFlow's native logging quiet (see the module docstring).

    Does nothing when ``TF_CPP_MIN_LOG_LEVEL`` is set or ``verbose >= 2``. Otherwise sets it to 3
    and imports TensorFlow now (for the commands that use it) with file descriptor 2 sent to a
    temporary file, then writes back to stderr the lines that are not noise.
    """
    if verbose is not None and verbose >= 2:
        restore_tensorflow_logs()  # import labelwise quiets them by default
        yield
        return
    user_set = "TF_CPP_MIN_LOG_LEVEL" in os.environ and not tensorflow_logs_quieted_by_labelwise()
    if user_set or "tensorflow" in sys.modules:
        yield
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if command in ("train", "predict", "demo", "shard", "explain", "serve"):
        _import_tensorflow_quietly()
    yield


def _import_tensorflow_quietly() -> None:
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced (pytest capture, IDEs): no fd to redirect
        fd = None
    if fd is None:
        _imports()
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as log:
        os.dup2(log.fileno(), fd)
        try:
            _imports()
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
        log.seek(0)
        kept = [ln for ln in log.read().decode("utf-8", "replace").splitlines() if ln.strip() and not is_noise(ln)]
    for line in kept:
        print(line, file=sys.stderr)


def _imports() -> None:
    # Keras first: TensorFlow's import loads Keras half-way through its own, and labelwise
    # registers its Keras layers when Keras finishes loading, which then needs TensorFlow whole.
    with contextlib.suppress(ImportError):
        import keras  # noqa: F401
    with contextlib.suppress(ImportError):
        import tensorflow  # noqa: F401


@contextlib.contextmanager
def plain_warnings(command: str) -> Iterator[None]:
    """Print Python warnings as ``labelwise COMMAND: warning: MESSAGE`` (``note:`` for a
    :class:`labelwise.errors.Note`; no file, line or source).

    Replaces ``warnings.formatwarning`` only, so whoever records warnings (``catch_warnings``,
    pytest) still receives them; the filters (each warning once per place) stay as they are.
    """
    from ..errors import Note

    def fmt(message, category, filename, lineno, line=None):
        kind = "note" if issubclass(category, Note) else "warning"
        return f"labelwise {command}: {kind}: {str(message).rstrip()}\n"

    old = warnings.formatwarning
    warnings.formatwarning = fmt
    try:
        yield
    finally:
        warnings.formatwarning = old
