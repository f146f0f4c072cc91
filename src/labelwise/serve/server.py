"""Run the app on uvicorn: :func:`serve` (what ``labelwise serve`` calls)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["serve", "LOOPBACK", "check_stack"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_stack() -> None:
    """Refuse with install advice when the serving stack (Starlette, uvicorn, python-multipart) is missing."""
    import importlib.util

    missing = [pkg for mod, pkg in (("starlette", "starlette"), ("uvicorn", "uvicorn"),
                                    ("multipart", "python-multipart")) if importlib.util.find_spec(mod) is None]
    if missing:
        raise InputError(f"labelwise serve needs {', '.join(missing)}: pip install 'labelwise[serve]'")


def serve(model: str | os.PathLike, *, host: str = "127.0.0.1", port: int = 8080, max_batch: int = 32,
          max_delay_ms: float = 5.0, max_upload_mb: float = 20.0, name: str | None = None,
          log_level: str = "info", verbose: int = 1) -> None:
    """Open ``model`` (a ``model.keras`` artifact), build the app and serve it until interrupted.

    Binds ``host:port`` (loopback by default; any other host prints a warning, since the server
    has no authentication). Settings are checked before the model is loaded.
    """
    check_stack()
    if not Path(model).is_file():
        raise InputError(f"model file {model} does not exist; give the model.keras that labelwise train or demo wrote")
    if int(max_batch) < 1:
        raise InputError(f"--max-batch must be at least 1, got {max_batch}")
    if float(max_delay_ms) < 0:
        raise InputError(f"--max-delay-ms must be 0 or more, got {max_delay_ms}")
    if not float(max_upload_mb) > 0:
        raise InputError(f"--max-upload-mb must be more than 0, got {max_upload_mb}")
    if not 0 <= int(port) <= 65535:
        raise InputError(f"--port must be 0-65535, got {port}")
    if host not in LOOPBACK:
        print(f"labelwise serve: warning: binding {host}, not loopback: anyone who can reach this machine "
              f"on port {port} can use the model (there is no authentication); use --host 127.0.0.1 to keep it "
              "local", file=sys.stderr, flush=True)
    import uvicorn

    from .app import create_app
    from .model import ServedModel

    served = ServedModel.open(model, name=name)
    app = create_app(served, max_batch=max_batch, max_delay_ms=max_delay_ms, max_upload_mb=max_upload_mb)
    if verbose:
        h, w, c = served.input_shape
        shown = f"[{host}]" if ":" in host else host
        print(f"labelwise serve: model {served.name!r} ({len(served.schema.labels)} labels, input {h}x{w}x{c}) "
              f"on http://{shown}:{port}/  (OIP v2 at /v2/models/{served.name}; batches of up to {max_batch} "
              f"within {max_delay_ms:g} ms)", flush=True)
    config: Any = uvicorn.Config(app, host=host, port=int(port), log_level=log_level, lifespan="on")
    uvicorn.Server(config).run()
