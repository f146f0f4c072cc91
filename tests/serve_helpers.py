"""Helpers for the serve tests: a tiny digits artifact, digit PNGs, and a real uvicorn server in a thread."""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
from pathlib import Path

import numpy as np
from conftest import MNIST_IDX

DIGIT_GROUP = tuple(str(d) for d in range(10))


def schema():
    from labelwise import LabelSchema

    return LabelSchema(independent=("greater_than_5", "even"), exclusive={"digit": DIGIT_GROUP}, none="neither")


def make_artifact(folder: Path, *, seed: int = 0) -> Path:
    """An untrained small_cnn on 28x28x1 digits with stored thresholds, saved as folder/digits.keras."""
    import keras

    from labelwise.blocks.models import build_model
    from labelwise.decide.thresholds import Thresholds
    from labelwise.training import artifact

    s = schema()
    keras.utils.set_random_seed(seed)
    model = build_model(s, backbone="small_cnn", input_shape=(28, 28, 1), weights=None)
    values = [0.48, 0.52] + [np.nan] * (len(s.labels) - 2)
    thr = Thresholds(labels=s.labels, values=values, method="fixed")
    return artifact.save(model, folder / "digits.keras", s, thr, artifact.Preprocessing((28, 28), 1))


def digit_pixels(n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` uint8 28x28 digits: real MNIST test digits when the shared data is there, else noise blobs."""
    path = MNIST_IDX / "t10k-images-idx3-ubyte.gz"
    if path.exists():
        with gzip.open(path, "rb") as f:
            f.read(16)
            data = np.frombuffer(f.read(28 * 28 * n), dtype=np.uint8)
        return data.reshape(n, 28, 28).copy()
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def write_pngs(folder: Path, pixels: np.ndarray) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, arr in enumerate(pixels):
        p = folder / f"digit{i}.png"
        Image.fromarray(arr).save(p)
        paths.append(p)
    return paths


def bomb_png(width: int = 9400, height: int = 9400) -> bytes:
    """A valid RGB PNG of ``width`` x ``height`` black pixels, zlib-compressed to almost nothing
    (9400 x 9400: 258 KB that decode to 265 MB)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp, row = zlib.compressobj(9), bytes(1 + 3 * width)
    parts = [comp.compress(row * min(64, height - i)) for i in range(0, height, 64)] + [comp.flush()]
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


@contextlib.contextmanager
def running(app, *, timeout: float = 30.0, **hygiene):
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields the base URL.
    ``hygiene`` (header_timeout_s, max_connections, ...) runs it with labelwise serve's own
    uvicorn settings (:func:`labelwise.serve.server.uvicorn_config`)."""
    import uvicorn

    if hygiene:
        from labelwise.serve.server import uvicorn_config

        config = uvicorn_config(app, host="127.0.0.1", port=0, log_level="warning", **hygiene)
    else:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    t0 = time.monotonic()
    while not server.started:
        if not thread.is_alive() or time.monotonic() - t0 > timeout:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
