"""The backend-neutral input pipeline: Pillow decode, numpy resize/augment, a ``keras.utils.PyDataset``.

Used where TensorFlow is not installed (Keras on JAX or PyTorch), or asked for with
``pipeline = "python"``. It keeps the contract of the tf.data pipeline (:mod:`labelwise.data.pipeline`):

* **Pixels**: float32 in 0-255, ``(batch, h, w, channels)``. Decoding: PNG/JPEG/BMP/GIF, 8/16-bit,
  gray/RGB/RGBA/palette/CMYK; 16-bit values are scaled by 255/65535 as TensorFlow does; the EXIF
  orientation is applied; gray -> RGB repeats the gray, RGB -> gray is
  ``0.2989 R + 0.5870 G + 0.1140 B`` (``tf.image.rgb_to_grayscale``), alpha is dropped.
  Resizing is TensorFlow's math in numpy: shrinking is ``tf.image.resize(method="area")`` (box
  means over the exact fractional footprint), enlarging ``method="bilinear", antialias=True``
  (the triangle kernel of ``scale_and_translate``), the right size is left alone.
  Tolerance, tested against TensorFlow (tests/test_pypipeline.py): PNG (8/16-bit, gray, RGB,
  RGBA, colour to gray included), BMP and GIF files and arrays give the same pixels within 0.01
  (of 255) after resize -- float rounding only; JPEG differs by the IDCT (TensorFlow's
  decode_image uses libjpeg-turbo's fast integer IDCT, Pillow the accurate one; with
  ``dct_method="INTEGER_ACCURATE"`` TensorFlow decodes the same bytes): mean absolute difference
  about 1 gray level (tested: under 1.5), single pixels up to a few levels (tested: at most 5).
* **Order and augmentation**: epoch ``e``'s order is a permutation drawn from the seed sequence
  ``(seed, e)``, the augmentation of image ``i`` in epoch ``e`` from ``(seed, e, i)`` (numpy's
  ``SeedSequence``): an epoch's batches depend on nothing else, so ``--resume`` repeats an
  uninterrupted run exactly. The permutations and draws are numpy's, not TensorFlow's Philox:
  the same seed orders differently in the two pipelines (a resumed run refuses a pipeline change).
  The geometric augmentation is TensorFlow's inverse-mapped bilinear transform with edge
  clamping (``ImageProjectiveTransformV3``, fill mode NEAREST), the same numbers for the same angle and shift.
* **File checks**: the same (:func:`labelwise.data.sources.check_images` with :func:`python_failures`):
  unreadable files raise :class:`~labelwise.errors.InputError` listing them, or are skipped with a
  warning; TIFF, WebP and other formats TensorFlow does not read are refused here too.

Parallelism: worker threads (Pillow's decoders and numpy release the GIL) decode the images of
the next batches while the model runs on this one; the results depend only on the batch index.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError
from .sources import Augment, ImageSource, _size

__all__ = ["PyImageDataset", "make_dataset", "make_epoch_dataset", "load_images", "decode_file", "resize",
           "transform", "augment_image", "epoch_order", "python_failures", "decode_failures", "ImageSource"]

_GRAY = np.array([0.2989, 0.5870, 0.1140], dtype=np.float32)  # tf.image.rgb_to_grayscale


# ------------------------------------------------------------------ decoding
def _pil_to_array(im) -> np.ndarray:
    """A Pillow image -> float32 (h, w, 1 or 3) in 0-255 (alpha dropped, 16-bit scaled by 255/65535)."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im, dtype=np.float64)
        # Pillow opens 16-bit gray PNGs as I;16 (or I): TensorFlow scales by 1/65535, then we by 255
        return (a * (255.0 / 65535.0)).astype(np.float32)[..., None]
    if mode == "F":
        return np.asarray(im, dtype=np.float32)[..., None]
    if mode in ("1", "L", "LA", "La"):
        im = im.convert("L")
        return np.asarray(im, dtype=np.float32)[..., None]
    if mode in ("RGB", "RGBA", "RGBa", "RGBX"):
        return np.asarray(im, dtype=np.float32)[..., :3]
    if mode == "P":
        im = im.convert("RGBA")  # the palette's colours; transparency is dropped below, as TF does
        return np.asarray(im, dtype=np.float32)[..., :3]
    return np.asarray(im.convert("RGB"), dtype=np.float32)


def decode_file(path: str | os.PathLike, channels: int) -> np.ndarray:
    """One image file -> float32 (h, w, 1 or ``channels``) in 0-255, EXIF orientation applied.

    Gray stays one channel until :func:`prepare` repeats it (after resizing: the same numbers,
    a third of the work). Colour -> gray as TensorFlow's decoders do it: a colour PNG through
    libpng's fixed-point ``(9797 R + 19234 G + 3737 B) >> 15``, a JPEG as its luma plane
    (libjpeg's grayscale output), BMP and GIF by ``tf.image.rgb_to_grayscale``'s weighted sum.
    """
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        fmt = im.format
        if getattr(im, "is_animated", False):
            im.seek(0)  # TensorFlow's decode_image(expand_animations=False) reads the first frame
        if channels == 1 and fmt == "JPEG" and im.mode in ("RGB", "YCbCr"):
            im.draft("L", None)  # libjpeg's own luma output, as TensorFlow asks for channels=1
        im = ImageOps.exif_transpose(im)
        png_colour = fmt == "PNG" and im.mode in ("RGB", "RGBA", "P", "PA")
        a = _pil_to_array(im)
    if channels == 1 and a.shape[-1] == 3:
        if png_colour:
            r, g, b = (a[..., k].astype(np.int64) for k in range(3))
            a = ((9797 * r + 19234 * g + 3737 * b) >> 15).astype(np.float32)[..., None]
        else:
            a = (a @ _GRAY)[..., None]
    return a


# ------------------------------------------------------------------ resize
@lru_cache(maxsize=64)
def _area_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """``(index (n_out, span), weight (n_out, span))``: TensorFlow's area resize of one axis.

    Output ``y`` covers input ``[y s, (y+1) s)``, ``s = n_in / n_out`` (float32, as TF computes
    it); input pixel ``i`` weighs its overlap with that interval divided by ``s``; an index past
    the end (float rounding) reads the last pixel, as TF's ``BoundIfNeeded`` does.
    """
    s = float(np.float32(n_in) / np.float32(n_out))
    y = np.arange(n_out, dtype=np.float64)
    lo, hi = y * s, (y + 1) * s
    starts = np.floor(lo).astype(np.int64)
    span = int(np.max(np.ceil(hi).astype(np.int64) - starts))
    i = starts[:, None] + np.arange(span)[None]
    w = np.clip(np.minimum(i + 1, hi[:, None]) - np.maximum(i, lo[:, None]), 0.0, None) / s
    return np.minimum(i, n_in - 1), w.astype(np.float32)


@lru_cache(maxsize=64)
def _triangle_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """``(index, weight)``: ``scale_and_translate``'s antialiased triangle kernel for one axis
    (what ``tf.image.resize(method="bilinear", antialias=True)`` runs): sample
    ``x = (y + 0.5) n_in / n_out`` in pixel-centre coordinates, kernel radius
    ``k = max(n_in / n_out, 1)``, weight ``max(0, 1 - |i + 0.5 - x| / k)`` over the input
    pixels in reach, renormalised to sum 1 (at the edges fewer pixels are in reach)."""
    inv = float(np.float32(1.0) / (np.float32(n_out) / np.float32(n_in)))
    ks = max(inv, 1.0)
    sample = (np.arange(n_out) + 0.5) * inv
    first = np.clip(np.ceil(sample - ks - 0.5).astype(np.int64), 0, n_in - 1)
    last = np.clip(np.floor(sample + ks - 0.5).astype(np.int64), 0, n_in - 1) + 1
    span = int(np.max(last - first))
    i = first[:, None] + np.arange(span)[None]
    w = np.maximum(0.0, 1.0 - np.abs((i + 0.5 - sample[:, None]) / ks))
    w = np.where(i < last[:, None], w, 0.0)
    w = w / w.sum(axis=1, keepdims=True)
    return np.minimum(i, n_in - 1), w.astype(np.float32)


def _resize_axis(img: np.ndarray, weights: tuple[np.ndarray, np.ndarray], axis: int) -> np.ndarray:
    idx, w = weights
    out = None
    for k in range(w.shape[1]):  # the span is a few pixels: a few gathers, no big temporary
        wk = w[:, k].reshape((-1, 1, 1) if axis == 0 else (1, -1, 1))
        part = np.take(img, idx[:, k], axis=axis) * wk
        out = part if out is None else out + part
    return out


def resize(img: np.ndarray, image_size: Sequence[int] | int) -> np.ndarray:
    """float32 (h, w, c) -> (H, W, c) by the tf.data pipeline's rule: the right size is kept,
    an image at least as large on both sides is shrunk by area averaging, any other is resized
    bilinearly with antialiasing (on a side being shrunk the triangle kernel is widened)."""
    h, w = _size(image_size)
    img = np.asarray(img, dtype=np.float32)
    H, W = img.shape[:2]
    if (H, W) == (h, w):
        return img
    weights = _area_weights if H >= h and W >= w else _triangle_weights
    return _resize_axis(_resize_axis(img, weights(H, h), 0), weights(W, w), 1)


def prepare(img: np.ndarray, image_size: Sequence[int] | int, channels: int) -> np.ndarray:
    """float32 (h, w, c) -> (H, W, ``channels``): channel conversion as the tf.data pipeline does
    (1 -> 3 repeats, 3/4 -> 1 is the luma of RGB, 4 -> 3 drops alpha), then :func:`resize`."""
    img = np.asarray(img, dtype=np.float32)
    c = img.shape[-1]
    if c != channels:
        if c in (3, 4) and channels == 1:
            img = (img[..., :3] @ _GRAY)[..., None]
        elif c == 4 and channels == 3:
            img = img[..., :3]
        elif not (c == 1 and channels == 3):
            raise InputError(f"cannot convert images with {c} channels to {channels}")
    img = resize(img, image_size)
    if img.shape[-1] == 1 and channels == 3:
        img = np.repeat(img, 3, axis=-1)  # after resizing: identical numbers, a third of the work
    return np.ascontiguousarray(img, dtype=np.float32)


# ------------------------------------------------------------------ augmentation
def transform(img: np.ndarray, angle: float, dx: float, dy: float) -> np.ndarray:
    """Rotate by ``angle`` (radians) about the centre, then shift by ``(dx, dy)`` pixels:
    TensorFlow's ``ImageProjectiveTransformV3`` (inverse map output -> input, bilinear, input
    coordinates clamped to the image: fill mode NEAREST), as the tf.data pipeline calls it."""
    h, w = img.shape[:2]
    cos, sin = math.cos(angle), math.sin(angle)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    a0, a1, b0, b1 = cos, -sin, sin, cos
    a2 = cx - a0 * cx - a1 * cy - dx
    b2 = cy - b0 * cx - b1 * cy - dy
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    x_in = np.clip(np.float32(a0) * xx + np.float32(a1) * yy + np.float32(a2), 0, w - 1)
    y_in = np.clip(np.float32(b0) * xx + np.float32(b1) * yy + np.float32(b2), 0, h - 1)
    x0, y0 = np.floor(x_in), np.floor(y_in)
    fx, fy = (x_in - x0)[..., None], (y_in - y0)[..., None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def augment_image(img: np.ndarray, aug: Augment, seed: int, epoch: int, index: int) -> np.ndarray:
    """Apply ``aug`` to one image with draws from ``SeedSequence((seed, epoch, index))``:
    flip, rotation and shift (:func:`transform`), brightness ``+ u * brightness * 255``,
    contrast ``(x - mean) * (1 + u * contrast) + mean`` (per-channel mean), then clip to 0-255."""
    u = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(epoch), int(index)]))
                            ).uniform(-1.0, 1.0, size=6)
    h, w = img.shape[:2]
    if aug.flip and u[0] > 0:
        img = img[:, ::-1]
    if aug.rotate or aug.shift:
        img = transform(img, u[1] * aug.rotate * math.pi / 180.0, u[2] * aug.shift * w, u[3] * aug.shift * h)
    if aug.brightness:
        img = img + np.float32(u[4] * aug.brightness * 255.0)
    if aug.contrast:
        mean = img.mean(axis=(0, 1), keepdims=True)
        img = (img - mean) * np.float32(1.0 + u[5] * aug.contrast) + mean
    return np.clip(img, 0.0, 255.0).astype(np.float32, copy=False)


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The index order of epoch ``epoch``: ``range(n)``, or a permutation drawn from ``(seed, epoch)``."""
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(epoch)])))
    return rng.permutation(n).astype(np.int64)


# ------------------------------------------------------------------ file check
def python_failures(paths: Sequence[str], channels: int, verbose: int) -> dict[str, str]:
    """``{path: reason}`` for the files this pipeline's decode (Pillow) rejects; every file is
    decoded once, in worker threads, with a progress bar when ``verbose``."""
    if not paths:
        return {}

    def one(p: str) -> str | None:
        try:
            decode_file(p, channels)
        except Exception as e:  # Pillow raises many types; the message names the problem
            return f"cannot be decoded ({type(e).__name__}: {e})".strip()
        return None

    bar = None
    if verbose:
        import keras

        # not a terminal (a log file): one summary line instead of a line of escape codes per update
        interactive = bool(getattr(sys.stdout, "isatty", lambda: False)())
        bar = keras.utils.Progbar(len(paths), unit_name="file", verbose=1 if interactive else 2)
    bad = {}
    with ThreadPoolExecutor(max_workers=_default_workers()) as pool:
        for k, (p, r) in enumerate(zip(paths, pool.map(one, paths))):
            if r is not None:
                bad[p] = r
            if bar is not None and ((k + 1) % 64 == 0 or k + 1 == len(paths)):
                bar.update(k + 1)
    return bad


decode_failures = python_failures  # the file check's decode, as every pipeline module names it


def _default_workers() -> int:
    return max(1, min(32, os.cpu_count() or 2))


# ------------------------------------------------------------------ the dataset
def _py_dataset_base():
    import keras

    return keras.utils.PyDataset


class PyImageDataset(_py_dataset_base()):
    """Batches ``(pixels, y)`` (or ``pixels``) of epochs ``first .. stop-1`` back to back.

    Batch ``k`` is batch ``k % steps`` of epoch ``first + k // steps`` (``steps = ceil(n / batch)``,
    the last one partial), as the tf.data pipeline's multi-epoch dataset: ``model.fit(ds,
    steps_per_epoch=steps)`` reads it straight through. ``workers`` threads decode the images of
    the next ``lookahead`` batches ahead of the one asked for; what batch ``k`` holds depends only on ``k``.
    """

    def __init__(self, src: ImageSource, *, image_size: Sequence[int], channels: int, batch_size: int,
                 shuffle: bool = False, seed: int = 0, augment: Augment | None = None,
                 epochs: tuple[int, int] = (0, 1), workers: int | None = None, lookahead: int = 2,
                 process_shard: tuple[int, int, int] | None = None):
        super().__init__(workers=1, use_multiprocessing=False)  # Keras reads in order; our threads decode
        self.src = src
        self.labelwise_source = src
        self.image_size = _size(image_size)
        self.channels = int(channels)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.aug = augment if augment is not None and augment.active else None
        self.first, self.stop = (int(e) for e in epochs)
        self.n = len(src)
        self.local_batch = self.batch_size
        self.process_shard = None
        if process_shard is not None:
            count, index, replicas = (int(v) for v in process_shard)
            if self.batch_size % count or replicas % count or not 0 <= index < count:
                raise InputError(f"batch size {batch_size} cannot be split over {count} processes with {replicas} "
                                 f"replicas (process {index}); use a multiple of {replicas}")
            self.process_shard = (count, index, replicas)
            self.local_batch = self.batch_size // count
        self.steps = math.ceil(self.n / self.batch_size)
        self._n_workers = int(workers or _default_workers())
        self._pool: ThreadPoolExecutor | None = None
        self.lookahead = max(1, int(lookahead), -(-2 * self._n_workers // max(1, self.local_batch)))
        self._pending: dict[int, list[Future]] = {}
        self._orders: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        self._targets = None if src.y is None else np.asarray(src.y, dtype=np.float32)

    # -- what each batch holds
    def _rows(self, epoch: int) -> np.ndarray:
        order = self._orders.get(epoch)
        if order is None:
            order = epoch_order(self.n, self.seed, epoch, self.shuffle)
            if self.process_shard is not None:
                order = self._process_rows(order)
            self._orders = {e: o for e, o in self._orders.items() if e >= epoch - 1}
            self._orders[epoch] = order
        return order

    def _process_rows(self, order: np.ndarray) -> np.ndarray:
        """This process's rows of every global batch (as the tf.data pipeline's ``process_shard``)."""
        count, index, replicas = self.process_shard
        b, n = self.batch_size, self.n
        n_full, rem = n // b * b, n % b
        mine = order[:n_full].reshape(-1, count, self.local_batch)[:, index].reshape(-1)
        if rem:
            padded = -(-rem // replicas) * replicas
            last = order[n_full:][np.minimum(np.arange(padded), rem - 1)]
            mine = np.concatenate([mine, last.reshape(count, padded // count)[index]])
        return mine

    def _batch_rows(self, k: int) -> tuple[int, np.ndarray]:
        epoch, step = self.first + k // self.steps, k % self.steps
        rows = self._rows(epoch)
        return epoch, rows[step * self.local_batch:(step + 1) * self.local_batch]

    def _load(self, i: int, epoch: int) -> np.ndarray:
        if self.src.arrays is not None:
            img = prepare(self.src.arrays[i], self.image_size, self.channels)
        else:
            img = prepare(decode_file(self.src.paths[i], self.channels), self.image_size, self.channels)
        if self.aug is not None:
            img = augment_image(img, self.aug, self.seed, epoch, int(i))
        return img

    def _submit(self, k: int) -> None:
        if k in self._pending or not 0 <= k < self.num_batches:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._n_workers, thread_name_prefix="labelwise-decode")
        epoch, rows = self._batch_rows(k)
        self._pending[k] = [self._pool.submit(self._load, int(i), epoch) for i in rows]

    # -- the PyDataset interface
    @property
    def num_batches(self) -> int:
        """Batches over all epochs: ``(stop - first) * steps``."""
        return (self.stop - self.first) * self.steps

    def __len__(self) -> int:
        return self.num_batches

    def __getitem__(self, k: int):
        if not 0 <= k < self.num_batches:
            raise IndexError(f"batch {k} of {self.num_batches}")
        with self._lock:
            for j in range(k, k + 1 + self.lookahead):
                self._submit(j)
            futures = self._pending.pop(k)
            for j in [j for j in self._pending if j < k]:  # skipped batches: never asked for again
                for f in self._pending.pop(j):
                    f.cancel()
        pixels = np.stack([f.result() for f in futures])
        if self._targets is None:
            return pixels
        _, rows = self._batch_rows(k)
        return pixels, self._targets[rows]

    def close(self) -> None:
        """Stop the decode threads (they also stop with the process)."""
        with self._lock:
            for fs in self._pending.values():
                for f in fs:
                    f.cancel()
            self._pending.clear()
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing left to stop
            pass

    def as_numpy_iterator(self):
        """Yield every batch in order (what tf.data's ``as_numpy_iterator`` gives)."""
        for k in range(self.num_batches):
            yield self[k]


def make_epoch_dataset(source: Any, y: np.ndarray | None = None, *, image_size: Sequence[int], channels: int,
                       batch_size: int, shuffle: bool = False, seed: int = 0,
                       augment: Augment | Mapping[str, Any] | bool | None = None, cache: bool = False,
                       skip_unreadable: bool = False, epochs: tuple[int, int] | None = None, check: bool = True,
                       process_shard: tuple[int, int, int] | None = None,
                       workers: int | None = None) -> PyImageDataset:
    """The Python twin of :func:`labelwise.data.pipeline.make_epoch_dataset` (same arguments,
    same batches up to the stated tolerance; see the module docstring): epochs ``first .. stop-1``
    back to back for ``model.fit(..., steps_per_epoch=ceil(n / batch_size))``."""
    size = _size(image_size)
    aug = Augment.from_any(augment)
    src = ImageSource.create(source, y, skip_unreadable=skip_unreadable, check=check, channels=channels,
                             failures=python_failures)
    if cache and src.arrays is None:
        pixels = load_images(src, image_size=size, channels=channels, workers=workers)
        src = ImageSource(None, pixels, src.y, src.keep, src.skipped)
    return PyImageDataset(src, image_size=size, channels=channels, batch_size=batch_size, shuffle=shuffle,
                          seed=seed, augment=aug, epochs=epochs or (0, 1), workers=workers,
                          process_shard=process_shard)


def make_dataset(source: Any, y: np.ndarray | None = None, *, image_size: Sequence[int], channels: int,
                 batch_size: int, shuffle: bool = False, seed: int = 0,
                 augment: Augment | Mapping[str, Any] | bool | None = None, cache: bool = False,
                 skip_unreadable: bool = False, epoch: int = 0, check: bool = True,
                 workers: int | None = None) -> PyImageDataset:
    """One epoch of batches (the Python twin of :func:`labelwise.data.pipeline.make_dataset`)."""
    return make_epoch_dataset(source, y, image_size=image_size, channels=channels, batch_size=batch_size,
                              shuffle=shuffle, seed=seed, augment=augment, cache=cache,
                              skip_unreadable=skip_unreadable, epochs=(epoch, epoch + 1), check=check,
                              workers=workers)


def load_images(source: Any, *, image_size: Sequence[int], channels: int, batch_size: int = 64,
                workers: int | None = None) -> np.ndarray:
    """Decode and resize images to one float32 array (0-255), in input order."""
    ds = make_dataset(source, image_size=image_size, channels=channels, batch_size=batch_size, workers=workers)
    try:
        return np.concatenate(list(ds.as_numpy_iterator()))
    finally:
        ds.close()
