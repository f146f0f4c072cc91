"""HTTP serving of one labelwise artifact: ``labelwise serve MODEL.keras``.

* :mod:`labelwise.serve.model` -- :class:`ServedModel`: the artifact opened once; bytes ->
  model input -> scores -> decisions through the same functions as ``labelwise predict``;
* :mod:`labelwise.serve.batching` -- :class:`Batcher`: concurrent requests gathered up to
  ``max_batch`` images within ``max_delay_ms`` into one model call;
* :mod:`labelwise.serve.protocol` -- Open Inference Protocol v2 (KServe) infer requests;
* :mod:`labelwise.serve.app` -- the Starlette app (endpoints, errors, body limit, the page in
  ``static/``); :mod:`labelwise.serve.server` -- running it on uvicorn.

The stack is Starlette on uvicorn (why not FastAPI: see :mod:`labelwise.serve.app`); install it
with ``pip install 'labelwise[serve]'``. Nothing here is imported by the rest of labelwise.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServedModel", "Batcher", "create_app", "serve"]

_NAMES = {"ServedModel": "model", "Batcher": "batching", "create_app": "app", "serve": "server"}


def __getattr__(name: str) -> Any:
    # lazy, so `import labelwise.serve.batching` needs neither Starlette nor Keras
    if name in _NAMES:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
