"""Run the app on uvicorn: :func:`serve` (what ``labelwise serve`` calls), with connection hygiene.

uvicorn alone gives a keep-alive timeout and a concurrency limit, but a fresh connection that
never finishes its request headers (a slow or idle client) is held forever and keeps its file
descriptor. :func:`uvicorn_config` uses uvicorn's h11 protocol with two additions
(:func:`protocol_class`): the request headers must arrive within ``header_timeout_s`` of the
connection opening (or of the previous answer), and past ``max_connections`` open connections
the one idle longest is closed to make room -- so idle clients, not working ones, lose their place.
Each closing is one log line.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["serve", "LOOPBACK", "check_stack", "uvicorn_config", "protocol_class", "default_max_connections",
           "default_backlog"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_stack() -> None:
    """Refuse with install advice when the serving stack (Starlette, uvicorn, python-multipart) is missing."""
    import importlib.util

    missing = [pkg for mod, pkg in (("starlette", "starlette"), ("uvicorn", "uvicorn"),
                                    ("multipart", "python-multipart")) if importlib.util.find_spec(mod) is None]
    if missing:
        raise InputError(f"labelwise serve needs {', '.join(missing)}: pip install 'labelwise[serve]'")


def _spare_descriptors() -> int | None:
    """Open-file descriptors left for connections (the soft limit less 64 for the model, logs
    and the listening socket); None when unlimited or unknown."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, ValueError, OSError):
        return None
    if soft == getattr(resource, "RLIM_INFINITY", -1):
        return None
    return max(0, int(soft) - 64)


def default_max_connections() -> int:
    """Open connections allowed by default: 1000, or two thirds of the spare descriptors where
    the open-file limit is lower (at least 16)."""
    spare = _spare_descriptors()
    return 1000 if spare is None else max(16, min(1000, spare * 2 // 3))


def default_backlog() -> int:
    """Pending connections the kernel queues, which is also how many asyncio accepts at once
    before the protocol can close idle ones: 2048, or a third of the spare descriptors (at
    least 16), so that ``max_connections + backlog`` stays under the open-file limit."""
    spare = _spare_descriptors()
    return 2048 if spare is None else max(16, min(2048, spare // 3))


def protocol_class(header_timeout_s: float, max_connections: int):
    """uvicorn's h11 protocol with a header timeout and idle-first eviction past ``max_connections``."""
    import logging
    import time

    from uvicorn.protocols.http.h11_impl import H11Protocol

    log = logging.getLogger("labelwise.serve")

    class Protocol(H11Protocol):
        _header_timer = None
        _idle_since: float | None = None

        def _peer(self) -> str:
            return "%s:%d" % tuple(self.client[:2]) if self.client else "a client"

        def _arm(self) -> None:
            self._disarm()
            self._idle_since = time.monotonic()
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
                return
            log.info("closed the connection from %s: no complete request within %g s (--header-timeout-s)",
                     self._peer(), header_timeout_s)
            self.transport.close()

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()
            if len(self.connections) > max_connections:
                idle = [c for c in self.connections if c is not self and getattr(c, "_idle_since", None) is not None
                        and not c.transport.is_closing()]
                if idle:
                    oldest = min(idle, key=lambda c: c._idle_since)
                    log.info("closed the idle connection from %s: %d connections open, the limit is %d "
                             "(--max-connections)", oldest._peer(), len(self.connections), max_connections)
                    oldest._idle_since = None
                    oldest.transport.close()

        def connection_lost(self, exc) -> None:
            self._disarm()
            self._idle_since = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            cycle = self.cycle
            super().data_received(data)
            if self.cycle is not cycle:  # a request's headers are complete: it is working, not idle
                self._disarm()
                self._idle_since = None

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
                self._arm()

    return Protocol


def uvicorn_config(app, *, host: str = "127.0.0.1", port: int = 8080, log_level: str = "info",
                   header_timeout_s: float = 10.0, keep_alive_s: float = 5.0,
                   max_connections: int | None = None, **kwargs: Any):
    """The uvicorn ``Config`` :func:`serve` runs: h11 with :func:`protocol_class`, keep-alive
    ``keep_alive_s``, requests answered 503 by uvicorn once ``max_connections`` + 16 connections are
    open (possible only when none of them is idle), a listen backlog of :func:`default_backlog`,
    request headers of at most 64 KB."""
    import uvicorn

    limit = int(max_connections) if max_connections is not None else default_max_connections()
    kwargs.setdefault("backlog", default_backlog())
    return uvicorn.Config(app, host=host, port=int(port), log_level=log_level, lifespan="on",
                          http=protocol_class(float(header_timeout_s), limit), timeout_keep_alive=keep_alive_s,
                          limit_concurrency=limit + 16, h11_max_incomplete_event_size=64 * 1024, **kwargs)


def serve(model: str | os.PathLike, *, host: str = "127.0.0.1", port: int = 8080, max_batch: int = 32,
          max_delay_ms: float = 5.0, max_upload_mb: float = 20.0, name: str | None = None,
          log_level: str = "info", verbose: int = 1, max_pixels: int | None = None, max_queue: int | None = None,
          timeout_s: float = 30.0, decode_workers: int | None = None,
          input_range: tuple[float, float] = (0.0, 255.0), header_timeout_s: float = 10.0,
          keep_alive_s: float = 5.0, max_connections: int | None = None) -> None:
    """Open ``model`` (a ``model.keras`` artifact), build the app and serve it until interrupted.

    Binds ``host:port`` (loopback by default; any other host prints a warning, since the server
    has no authentication). Settings are checked before the model is loaded; the limits are
    :func:`~labelwise.serve.app.create_app`'s and :func:`uvicorn_config`'s.
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
    for flag, value in (("--max-pixels", max_pixels), ("--max-queue", max_queue), ("--decode-workers", decode_workers),
                        ("--max-connections", max_connections)):
        if value is not None and int(value) < 1:
            raise InputError(f"{flag} must be at least 1, got {value}")
    for flag, value in (("--timeout-s", timeout_s), ("--header-timeout-s", header_timeout_s),
                        ("--keep-alive-s", keep_alive_s)):
        if not float(value) > 0:
            raise InputError(f"{flag} must be more than 0, got {value}")
    lo, hi = (float(v) for v in input_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InputError(f"--input-range must be two finite numbers LOW,HIGH with LOW < HIGH, got {lo:g},{hi:g}")
    if not 0 <= int(port) <= 65535:
        raise InputError(f"--port must be 0-65535, got {port}")
    if host not in LOOPBACK:
        print(f"labelwise serve: warning: binding {host}, not loopback: anyone who can reach this machine "
              f"on port {port} can use the model (there is no authentication); use --host 127.0.0.1 to keep it "
              "local", file=sys.stderr, flush=True)
    import logging

    import uvicorn

    from .app import create_app
    from .model import ServedModel

    log = logging.getLogger("labelwise.serve")  # one line per event: disconnects, timeouts, closed connections
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("labelwise serve: %(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.INFO if log_level in ("info", "debug", "trace") else logging.WARNING)

    served = ServedModel.open(model, name=name)
    app = create_app(served, max_batch=max_batch, max_delay_ms=max_delay_ms, max_upload_mb=max_upload_mb,
                     max_pixels=max_pixels, max_queue=max_queue, timeout_s=timeout_s, decode_workers=decode_workers,
                     input_range=(lo, hi))
    if verbose:
        h, w, c = served.input_shape
        shown = f"[{host}]" if ":" in host else host
        print(f"labelwise serve: model {served.name!r} ({len(served.schema.labels)} labels, input {h}x{w}x{c}) "
              f"on http://{shown}:{port}/  (OIP v2 at /v2/models/{served.name}; batches of up to {max_batch} "
              f"within {max_delay_ms:g} ms; at most {app.max_pixels:,} pixels per request, {app.admission.max_queue} "
              f"images in flight, each request answered within {timeout_s:g} s)", flush=True)
    config: Any = uvicorn_config(app, host=host, port=port, log_level=log_level, header_timeout_s=header_timeout_s,
                                 keep_alive_s=keep_alive_s, max_connections=max_connections)
    uvicorn.Server(config).run()
