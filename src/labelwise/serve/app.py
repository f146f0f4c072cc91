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
* ``GET /stats``: model calls made so far, images in them, mean batch size, images in flight
  and requests refused as busy;
* ``GET /``: the page (``static/``: plain HTML, JS and CSS, nothing from elsewhere).

No client can stall the others (:mod:`labelwise.serve.limits`): bodies over ``max_upload_mb``
are refused with 413 before they are read in full (:class:`BodyLimit`); JSON nested deeper
than :data:`~labelwise.serve.limits.MAX_JSON_DEPTH` is refused before parsing; the images of a
request are measured from their headers and refused with 413 past ``max_pixels`` in total
before anything is decoded; at most ``max_queue`` images are in flight (503 past that, and
``/v2/health/ready`` answers 503 while full); a request not answered within ``timeout_s`` gets
504. Images are checked by Pillow and decoded in a bounded pool of threads (never on the
event loop, never on the model's thread); the decoded rows queue on one
:class:`~labelwise.serve.batching.Batcher`, which gathers concurrent requests into one model
call. A client that goes away mid-request is one log line.

Starlette rather than FastAPI: the app is ten routes whose inputs are raw bytes, multipart
files and OIP JSON that we check ourselves to word the errors; FastAPI's value (pydantic
models, generated OpenAPI) would add pydantic and answer bad input with its own 422 format
instead of the protocol's ``{"error": ...}``.
"""

from __future__ import annotations

import contextlib
import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .batching import Batcher
from .limits import (LOG, Admission, Deadline, DecodePool, TrackedSend, check_multipart_png_budget,
                     check_pixel_budget, default_max_pixels)
from .limits import send_json as _send_json
from .model import RequestError, ServedModel
from .protocol import DEFAULT_INPUT_RANGE, infer_response, parse_infer_request

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
        tracked = TrackedSend(send)

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(413, self._message(f"more than {self.max_bytes / 2**20:g} MB"))
            return message

        try:
            await self.app(scope, limited_receive, tracked)
        except _TooLarge as e:  # read outside the app's handlers (normally they answer it)
            if not tracked.started:
                await _send_json(send, 413, {"error": str(e)})


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(served: ServedModel, *, max_batch: int = 32, max_delay_ms: float = 5.0,
               max_upload_mb: float = 20.0, warm_up: bool = True, max_pixels: int | None = None,
               max_queue: int | None = None, timeout_s: float = 30.0, decode_workers: int | None = None,
               input_range: tuple[float, float] = DEFAULT_INPUT_RANGE) -> Any:
    """Build the ASGI app serving ``served``: :class:`BodyLimit` around a
    :class:`~labelwise.serve.limits.Deadline` around the Starlette app (``.starlette``);
    ``.batcher.stats`` counts model calls, ``.admission`` the images in flight. ``warm_up`` runs
    a blank image and a full batch through the model first (:meth:`ServedModel.warm_up`).

    ``max_pixels``: decoded pixels per request (default
    :func:`~labelwise.serve.limits.default_max_pixels`); ``max_queue``: images in flight
    (default ``4 * max_batch``, at least 64); ``timeout_s``: the deadline per request;
    ``decode_workers``: decode threads (default ``min(4, cpus)``); ``input_range``: the pixel
    values FP32 inputs may hold.
    """
    if warm_up:
        served.warm_up(max_batch)
    batcher = Batcher(served.run, max_batch=max_batch, max_delay_ms=max_delay_ms)
    max_pixels = int(max_pixels) if max_pixels is not None else default_max_pixels(served.input_shape)
    admission = Admission(max_queue if max_queue is not None else max(64, 4 * int(max_batch)))
    pool = DecodePool(decode_workers)
    max_files = 1000

    def check_name(request: Request) -> None:
        name = request.path_params["name"]
        if name != served.name:
            raise RequestError(404, f"no model named {name!r}; this server serves {served.name!r} "
                               f"(GET /v2/models/{served.name})")

    def decode(items: list[tuple[str, bytes]]) -> np.ndarray:
        # in a pool thread: Pillow's check per image, then one decode call for the request
        for name, data in items:
            served.check(data, name=name)
        try:
            return served.inputs([data for _, data in items])
        except RequestError:
            if len(items) == 1:
                raise RequestError(400, f"{items[0][0]} cannot be decoded ({_damage(items[0][1])}); send an "
                                   "undamaged PNG, JPEG, BMP or GIF file") from None
        for name, data in items:  # find and name the image that failed, in labelwise's words
            try:
                served.inputs([data])
            except RequestError:
                raise RequestError(400, f"{name} cannot be decoded ({_damage(data)}); send an undamaged "
                                   "PNG, JPEG, BMP or GIF file") from None
        raise RequestError(400, "the images decode one by one but not together; send them in separate requests")

    async def model_outputs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = await batcher.submit_many(list(x))
        return served.finish(np.stack(rows))

    async def images_outputs(items: list[tuple[str, bytes]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        check_pixel_budget(items, max_pixels)  # headers only: a bomb costs nothing
        with admission.admit(len(items)):
            x = await pool.run(decode, items)
            return (x, *await model_outputs(x))

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    def busy() -> dict | None:
        if not admission.saturated:
            return None
        return {"ready": False, "reason": f"the queue is full ({admission.in_flight} images in flight, "
                f"--max-queue {admission.max_queue})"}

    async def ready(request: Request) -> Response:
        refused = busy()
        return JSONResponse(refused, status_code=503) if refused else JSONResponse({"ready": True})

    async def server_metadata(request: Request) -> Response:
        from .. import __version__

        return JSONResponse({"name": "labelwise", "version": __version__, "extensions": [],
                             "models": [served.name]})

    async def stats(request: Request) -> Response:
        return JSONResponse({**batcher.stats.to_dict(), "in_flight": admission.in_flight,
                             "refused_busy": admission.refused})

    async def model_metadata(request: Request) -> Response:
        check_name(request)
        meta = served.metadata()
        lo, hi = input_range
        meta["parameters"]["pixel_values"] = (f"FP32 inputs are pixels in {lo:g}-{hi:g} (others are refused), "
                                              "already resized; the model normalises them")
        return JSONResponse(meta)

    async def model_ready(request: Request) -> Response:
        check_name(request)
        refused = busy()
        if refused is not None:
            return JSONResponse({"name": served.name, **refused}, status_code=503)
        return JSONResponse({"name": served.name, "ready": True})

    async def infer(request: Request) -> Response:
        check_name(request)
        body = await request.body()
        if len(body) > 2**18:  # parsing megabytes of JSON numbers would hold up every other request
            kind, payload, req = await pool.run(parse_infer_request, body, served, input_range)
        else:
            kind, payload, req = parse_infer_request(body, served, input_range)
        if kind == "BYTES":
            _, scores, decisions = await images_outputs([(f"BYTES element {i}", b) for i, b in enumerate(payload)])
        else:
            with admission.admit(len(payload)):
                scores, decisions = await model_outputs(payload)
        return JSONResponse(infer_response(served, scores, decisions, req))

    async def predict(request: Request) -> Response:
        explain = request.query_params.get("explain")
        if explain is not None and explain not in served.schema.labels:
            raise RequestError(400, f"explain={explain!r} is not a label of this model; its labels are "
                               f"{list(served.schema.labels)}")
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            check_multipart_png_budget(await request.body(), max_pixels)  # PNG bombs: before the parse
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
        x, scores, decisions = await images_outputs(items)
        results = served.image_results(scores, decisions, [n for n, _ in items])
        if explain is not None:  # Grad-CAM off the batcher: one backward pass, in a pool thread
            overlays = await pool.run(served.explain, x, explain, scores, decisions)
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

    async def on_disconnect(request: Request, exc: ClientDisconnect) -> Response:
        client = request.client
        LOG.warning("client %s went away before its %s %s was read; dropped",
                    f"{client.host}:{client.port}" if client else "?", request.method, request.url.path)
        return Response(status_code=400)  # nobody is listening; uvicorn drops it

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        from ..errors import LabelwiseError

        if isinstance(exc, LabelwiseError):  # a labelwise check deeper down refused the input
            return _error(400, str(exc))
        return _error(500, f"internal error ({type(exc).__name__}: {exc}); the server goes on serving")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await batcher.close()
        pool.close()

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
        RequestError: on_request_error, HTTPException: on_http_error, ClientDisconnect: on_disconnect,
        Exception: on_unexpected})
    app.state.batcher = batcher
    app.state.served = served
    outer = BodyLimit(Deadline(app, timeout_s), int(math.ceil(float(max_upload_mb) * 2**20)))
    outer.batcher, outer.served, outer.starlette, outer.admission = batcher, served, app, admission
    outer.max_pixels = max_pixels
    return outer


def _damage(data: bytes) -> str:
    """Why an image does not decode, in Pillow's words (never the decoder's graph text)."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except Exception as e:  # Pillow raises many types for damaged data; its message says what is wrong
        return f"{type(e).__name__}: {e}"
    return "its image data is damaged"
