"""What keeps one client from stalling the others: budgets checked before work, a bounded decode
pool, admission to the queue, and a deadline per request. Nothing here touches the model.

* :func:`json_depth` / :func:`check_json` -- nesting of a JSON body measured on its bytes
  before ``json.loads`` sees it (a 100 000-deep list would raise ``RecursionError`` inside it);
* :func:`image_size` / :func:`check_pixel_budget` -- width x height read from each image's
  header (Pillow opens lazily: nothing is decompressed), summed over the request and refused
  with 413 above ``max_pixels``, so a zlib "bomb" (a 258 KB PNG of 9400x9400) costs a header read
  (:func:`check_multipart_png_budget` finds PNG headers in a multipart body before it is parsed);
* :class:`DecodePool` -- decoding runs in ``workers`` threads, never on the event loop nor on
  the model's batcher, so a slow decode delays only its own request;
* :class:`Admission` -- images in flight (decoding or waiting for the model) are counted; past
  ``max_queue`` a request is refused with 503 and ``/v2/health/ready`` says not ready;
* :class:`Deadline` -- ASGI middleware: a request not answered within ``timeout_s`` gets 504
  and its work is cancelled (queued model rows are dropped, queued decodes never start).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import re
import struct
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np

from .model import RequestError

__all__ = ["MAX_JSON_DEPTH", "json_depth", "check_json", "image_size", "check_pixel_budget", "default_max_pixels",
           "check_multipart_png_budget", "DecodePool", "Admission", "Deadline", "LOG"]

LOG = logging.getLogger("labelwise.serve")

# An OIP request nests object > inputs > tensor > data (up to 4 more for [n][h][w][c]): 8 levels.
MAX_JSON_DEPTH = 32
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(body: bytes) -> int:
    """Deepest nesting of ``[`` / ``{`` outside strings in a JSON text (0 for a scalar).

    Escapes are removed first (``\\\\`` pairs, then ``\\"``), so every ``"`` left opens or
    closes a string; the text between them alternates outside / inside. Depth is the running
    sum of +1 per opening and -1 per closing bracket outside strings, maximised -- C-speed
    bytes operations and one numpy cumulative sum, no parse.
    """
    body = bytes(body)
    if body.count(b"[") + body.count(b"{") == 0:
        return 0
    text = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(text.split(b'"')[::2]).translate(None, _NOT_BRACKETS)
    if not outside:
        return 0
    steps = np.frombuffer(outside, dtype=np.uint8)
    delta = np.where((steps == ord("[")) | (steps == ord("{")), 1, -1).astype(np.int32)
    return int(max(0, np.cumsum(delta).max()))


def check_json(body: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads(body)`` after refusing, with a 400 that says so, nesting over ``max_depth``;
    invalid JSON -> 400 naming the parser's reason."""
    depth = json_depth(body)
    if depth > max_depth:
        raise RequestError(400, f"the JSON body is nested {depth:,} levels deep; this server reads at most "
                           f"{max_depth} (an inference request needs about 8)")
    try:
        return json.loads(body)
    except RecursionError:  # the byte scan is the guard; this only backs it up
        raise RequestError(400, f"the JSON body is nested too deeply; this server reads at most {max_depth} "
                           "levels") from None


def image_size(data: bytes, *, name: str = "the image") -> tuple[int, int]:
    """``(width, height)`` from the image's header alone (Pillow decodes nothing on open).
    Bytes Pillow cannot identify -> 400; another format is left to the full check (415)."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise RequestError(400, f"{name} is empty (0 bytes); send a PNG, JPEG, BMP or GIF file")
    try:
        with Image.open(io.BytesIO(data)) as im:
            return int(im.size[0]), int(im.size[1])
    except UnidentifiedImageError:
        raise RequestError(400, f"{name} is not an image ({len(data):,} bytes Pillow cannot identify); "
                           "send a PNG, JPEG, BMP or GIF file") from None
    except Image.DecompressionBombError:
        return (2**31, 1)  # past any budget: refused below
    except Exception as e:  # a damaged header; its message is what matters
        raise RequestError(400, f"{name} is damaged ({type(e).__name__}: {e}); send the whole file") from None


def default_max_pixels(input_shape: Sequence[int]) -> int:
    """The default pixel budget per request: 64 model inputs' worth, and at least one 1024x1024 image."""
    return max(64 * int(input_shape[0]) * int(input_shape[1]), 1024 * 1024)


def check_pixel_budget(items: Sequence[tuple[str, bytes]], max_pixels: int) -> list[tuple[int, int]]:
    """Sizes of ``items`` (``(name, bytes)``) from their headers; 413 when their total pixel
    count ``sum(w * h)`` is over ``max_pixels`` -- before anything is decoded."""
    sizes = [image_size(data, name=name) for name, data in items]
    _refuse_over_budget([name for name, _ in items], sizes, max_pixels)
    return sizes


# A multipart file part whose content is a PNG: the blank line ending the part's headers, the
# PNG signature, then IHDR, which always comes first and holds width and height.
_PART_PNG = b"\r\n\r\n\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
_FILENAME = re.compile(rb'filename="([^"\r\n]{0,200})"')


def check_multipart_png_budget(body: bytes, max_pixels: int) -> None:
    """413 when the PNG files in a raw multipart ``body`` hold more than ``max_pixels`` in total,
    read from their IHDR chunks by a byte search -- before the form is parsed. Other formats
    are measured after parsing (:func:`check_pixel_budget`); this only saves a bomb's parse."""
    names, sizes = [], []
    i = body.find(_PART_PNG)
    while i >= 0:
        j = i + len(_PART_PNG)
        if j + 8 > len(body):
            break
        w, h = struct.unpack(">II", body[j:j + 8])
        found = _FILENAME.findall(body[max(0, i - 1024):i])
        names.append(found[-1].decode("utf-8", "replace") if found else f"file {len(names) + 1}")
        sizes.append((w, h))
        i = body.find(_PART_PNG, j)
    if sizes:
        _refuse_over_budget(names, sizes, max_pixels)


def _refuse_over_budget(names: Sequence[str], sizes: Sequence[tuple[int, int]], max_pixels: int) -> None:
    total = sum(w * h for w, h in sizes)
    if total <= max_pixels:
        return
    big = max(range(len(sizes)), key=lambda i: sizes[i][0] * sizes[i][1])
    w, h = sizes[big]
    what = (f"{names[0]} is {w}x{h} = {total:,} pixels" if len(names) == 1 else
            f"the {len(names)} images hold {total:,} pixels (the largest, {names[big]}, is {w}x{h})")
    raise RequestError(413, f"{what}, over this server's budget of {max_pixels:,} pixels per request "
                       "(--max-pixels); send fewer or smaller images")


class DecodePool:
    """Decode encoded images in a bounded pool of ``workers`` threads.

    ``await pool.run(fn, *args)`` runs ``fn`` in the pool; a caller cancelled while its job
    is still queued takes the job out of the queue (a started job runs to its end, bounded by
    the pixel budget). The model has its own thread (:class:`~labelwise.serve.batching.Batcher`),
    so decodes never wait behind model calls, nor model calls behind decodes.
    """

    def __init__(self, workers: int | None = None):
        workers = int(workers or min(4, os.cpu_count() or 1))
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="labelwise-decode")

    async def run(self, fn: Callable, *args: Any) -> Any:
        """``fn(*args)`` in a pool thread."""
        return await asyncio.wrap_future(self._executor.submit(fn, *args))

    def close(self) -> None:
        """Stop the threads (queued jobs are dropped)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


class Admission:
    """Images in flight (from admission until the answer), at most ``max_queue``.

    ``with admission.admit(n):`` takes ``n`` places or refuses: 413 when ``n`` alone is over
    ``max_queue``, 503 with a retry hint when the queue is full. ``saturated`` is True while
    no place is free (``/v2/health/ready`` reports it).
    """

    def __init__(self, max_queue: int):
        if int(max_queue) < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        self.max_queue = int(max_queue)
        self.in_flight = 0
        self.refused = 0

    @property
    def saturated(self) -> bool:
        """True while every place is taken."""
        return self.in_flight >= self.max_queue

    @contextlib.contextmanager
    def admit(self, n: int):
        """Hold ``n`` places for the block; refuse as the class docstring says."""
        n = int(n)
        if n > self.max_queue:
            raise RequestError(413, f"the request holds {n} images; this server takes at most {self.max_queue} "
                               "at once (--max-queue); send them in smaller requests")
        if self.in_flight + n > self.max_queue:
            self.refused += 1
            raise RequestError(503, f"the server is busy ({self.in_flight} images queued, limit {self.max_queue}, "
                               "--max-queue); retry in a moment")
        self.in_flight += n
        try:
            yield
        finally:
            self.in_flight -= n


class TrackedSend:
    """An ASGI ``send`` that remembers whether the response has started (``started``): a middleware
    may still answer on the app's behalf only while it has not."""

    def __init__(self, send):
        self.send = send
        self.started = False

    async def __call__(self, message):
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)


async def send_json(send, status: int, payload: dict) -> None:
    """Answer ``status`` with the JSON ``payload`` through the raw ASGI ``send``."""
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Deadline:
    """ASGI middleware: answer 504 when the app has not started its response within ``timeout_s``.

    The app's task is cancelled: its rows still queued for the model are dropped, its queued
    decodes never start. Other requests are not touched; ``/v2/health/*`` is exempt.
    """

    def __init__(self, app, timeout_s: float):
        self.app = app
        self.timeout_s = float(timeout_s)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path", "").startswith("/v2/health"):
            await self.app(scope, receive, send)
            return
        tracked = TrackedSend(send)
        try:
            await asyncio.wait_for(self.app(scope, receive, tracked), self.timeout_s)
        except asyncio.TimeoutError:
            if tracked.started:
                return
            LOG.warning("%s %s from %s: no answer within %g s (--timeout-s); answered 504", scope.get("method"),
                        scope.get("path"), _client(scope), self.timeout_s)
            await send_json(send, 504, {"error": f"the request was not answered within this server's limit of "
                                                 f"{self.timeout_s:g} s (--timeout-s); retry, or send fewer images"})


def _client(scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "a client"
