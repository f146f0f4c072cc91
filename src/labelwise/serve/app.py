"""The ASGI application: Open Inference Protocol v2 endpoints, ``POST /predict`` and the page.

Routes (every error is JSON ``{"error": "..."}`` with a 4xx status, and the server keeps
serving):

* ``GET /v2/health/live``, ``GET /v2/health/ready``, ``GET /v2`` (server metadata);
* ``GET /v2/models/{name}`` (metadata: inputs, outputs; schema, thresholds, calibration and
  decision rule in ``parameters``), ``GET /v2/models/{name}/ready``;
* ``POST /v2/models/{name}/infer`` (:mod:`labelwise.serve.protocol`); an unknown name is 404;
* ``POST /predict``: multipart upload of one or more images (any field name), or one image as
  the raw body (``Content-Type: image/...``) -> per image: probability per label, decisions,
  decided labels, each exclusive group's winner, the none label's state. ``?explain=LABEL``
  adds that label's Grad-CAM overlay (a base64 PNG, :func:`labelwise.explain.grad_cam`);
* ``GET /stats``: model calls made so far, images in them, mean batch size;
* ``GET /``: the page (``static/``: plain HTML, JS and CSS, nothing from elsewhere).

Bodies over ``max_upload_mb`` are refused with 413 before they are read in full
(:class:`BodyLimit`). Images are checked by Pillow as they arrive, then queued encoded: one
:class:`~labelwise.serve.batching.Batcher` gathers concurrent requests, and each batch is
decoded and run through the model in one go.

Starlette rather than FastAPI: the app is ten routes whose inputs are raw bytes, multipart
files and OIP JSON that we check ourselves to word the errors; FastAPI's value (pydantic
models, generated OpenAPI) would add pydantic and answer bad input with its own 422 format
instead of the protocol's ``{"error": ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .batching import Batcher
from .model import RequestError, ServedModel
from .protocol import infer_response, parse_infer_request

__all__ = ["create_app", "BodyLimit", "STATIC"]

STATIC = Path(__file__).resolve().parent / "static"


class _TooLarge(RequestError):
    """Raised from inside the body read, so the app's RequestError handler answers 413."""


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with 413 JSON.

    A ``Content-Length`` over the limit is refused before anything is read; a body that
    streams past the limit (chunked, or a lying header) is cut off as soon as it does.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = int(max_bytes)

    def _message(self, size: str) -> str:
        mb = self.max_bytes / 2**20
        return (f"the request body is {size}, over this server's limit of {mb:g} MB (--max-upload-mb); "
                "send fewer or smaller images per request")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await _send_json(send, 413, {"error": self._message(f"{int(length) / 2**20:.1f} MB")})
            return
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(413, self._message(f"more than {self.max_bytes / 2**20:g} MB"))
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge as e:  # read outside the app's handlers (normally they answer it)
            if not started:
                await _send_json(send, 413, {"error": str(e)})


async def _send_json(send, status: int, payload: dict) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(served: ServedModel, *, max_batch: int = 32, max_delay_ms: float = 5.0,
               max_upload_mb: float = 20.0, warm_up: bool = True) -> Any:
    """Build the ASGI app serving ``served``: a :class:`BodyLimit` around the Starlette app
    (``.starlette``); ``.batcher.stats`` counts model calls. ``warm_up`` runs a blank image and
    a full batch through the model first (:meth:`ServedModel.warm_up`)."""
    if warm_up:
        served.warm_up(max_batch)
    batcher = Batcher(served.run, max_batch=max_batch, max_delay_ms=max_delay_ms)
    max_files = 1000

    def check_name(request: Request) -> None:
        name = request.path_params["name"]
        if name != served.name:
            raise RequestError(404, f"no model named {name!r}; this server serves {served.name!r} "
                               f"(GET /v2/models/{served.name})")

    async def check_all(items: list[tuple[str, bytes]]) -> list[bytes]:
        # Pillow reads headers and PNG checksums; cheap for small files, so only big ones go to a thread
        for name, data in items:
            if len(data) > 2**18:
                await asyncio.to_thread(served.check, data, name=name)
            else:
                served.check(data, name=name)
        return [data for _, data in items]

    async def model_outputs(items: list) -> tuple[np.ndarray, np.ndarray]:
        rows = await batcher.submit_many(items)
        return served.finish(np.stack(rows))

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        return JSONResponse({"ready": True})

    async def server_metadata(request: Request) -> Response:
        from .. import __version__

        return JSONResponse({"name": "labelwise", "version": __version__, "extensions": [],
                             "models": [served.name]})

    async def stats(request: Request) -> Response:
        return JSONResponse(batcher.stats.to_dict())

    async def model_metadata(request: Request) -> Response:
        check_name(request)
        return JSONResponse(served.metadata())

    async def model_ready(request: Request) -> Response:
        check_name(request)
        return JSONResponse({"name": served.name, "ready": True})

    async def infer(request: Request) -> Response:
        check_name(request)
        body = await request.body()
        if len(body) > 2**18:  # parsing megabytes of JSON numbers would hold up every other request
            kind, payload, req = await asyncio.to_thread(parse_infer_request, body, served)
        else:
            kind, payload, req = parse_infer_request(body, served)
        if kind == "BYTES":
            payload = await check_all([(f"BYTES element {i}", b) for i, b in enumerate(payload)])
        scores, decisions = await model_outputs(list(payload))
        return JSONResponse(infer_response(served, scores, decisions, req))

    async def predict(request: Request) -> Response:
        explain = request.query_params.get("explain")
        if explain is not None and explain not in served.schema.labels:
            raise RequestError(400, f"explain={explain!r} is not a label of this model; its labels are "
                               f"{list(served.schema.labels)}")
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            async with request.form(max_files=max_files, max_fields=max_files) as form:
                items = []
                for key, value in form.multi_items():
                    if hasattr(value, "read"):
                        items.append((value.filename or key, await value.read()))
            if not items:
                raise RequestError(400, "the form holds no file; upload one or more images "
                                   "(e.g. curl -F image=@digit.png http://HOST:PORT/predict)")
        elif ctype.startswith("image/") or ctype.startswith("application/octet-stream"):
            items = [("body", await request.body())]
        else:
            raise RequestError(400, "send the images as multipart/form-data (curl -F image=@digit.png "
                               "http://HOST:PORT/predict), or one image as the body with Content-Type image/png; "
                               f"got Content-Type {ctype or 'none'!r}")
        checked = await check_all(items)
        scores, decisions = await model_outputs(checked)
        results = served.image_results(scores, decisions, [n for n, _ in items])
        if explain is not None:  # Grad-CAM off the batcher: one backward pass, in a thread
            overlays = await asyncio.to_thread(served.explain, checked, explain, scores, decisions)
            for result, png in zip(results, overlays):
                result["explain"] = {"label": explain, "png": png}
        return JSONResponse({"model": served.name, "labels": list(served.schema.labels), "predictions": results})

    async def page(request: Request) -> Response:
        text = (STATIC / "index.html").read_text(encoding="utf-8")
        return HTMLResponse(text.replace("__MODEL_NAME__", html.escape(served.name, quote=True)))

    async def on_request_error(request: Request, exc: RequestError) -> Response:
        return _error(exc.status, str(exc))

    async def on_http_error(request: Request, exc: HTTPException) -> Response:
        detail = exc.detail
        if exc.status_code == 404:
            detail = f"no such endpoint {request.url.path}; see GET /v2 and GET /v2/models/{served.name}"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        return _error(exc.status_code, str(detail))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        from ..errors import LabelwiseError

        if isinstance(exc, LabelwiseError):  # a labelwise check deeper down refused the input
            return _error(400, str(exc))
        return _error(500, f"internal error ({type(exc).__name__}: {exc}); the server goes on serving")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await batcher.close()

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2/models/{name}", model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/predict", predict, methods=["POST"]),
        Route("/stats", stats, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={
        RequestError: on_request_error, HTTPException: on_http_error, Exception: on_unexpected})
    app.state.batcher = batcher
    app.state.served = served
    outer = BodyLimit(app, int(math.ceil(float(max_upload_mb) * 2**20)))
    outer.batcher, outer.served, outer.starlette = batcher, served, app
    return outer
