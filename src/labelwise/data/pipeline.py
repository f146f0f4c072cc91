"""tf.data input pipelines: image files or in-memory arrays -> batches of (pixels, targets).

Pixels come out as float32 in 0-255 with shape ``(batch, height, width, channels)``: the
models built by :func:`labelwise.blocks.models.build_model` apply their backbone's
``preprocess_input`` themselves, so the pipeline does no normalisation.

Decoding handles PNG and JPEG (also BMP/GIF first frame), 8- and 16-bit, grayscale, RGB,
RGBA and CMYK: ``tf.io.decode_image(..., dtype=float32)`` scales any bit depth to [0, 1] (we
multiply by 255), and asking for ``channels`` converts gray <-> RGB and drops an alpha channel.
TensorFlow's BMP and GIF decoders and its CMYK JPEG path refuse ``channels=1``, so those are
decoded as RGB and converted to gray here (:func:`decode_image_bytes`).

Determinism: the order of epoch ``e`` is ``stateless_shuffle(range(n), seed=[seed, e])`` and
augmentation of image ``i`` in epoch ``e`` uses the stateless seed ``(seed, e, i)``, so an epoch's
batches do not depend on how many epochs ran before in this process -- a resumed run sees the
same batches as an uninterrupted one.

Unreadable files are found up front (:func:`check_images`: Pillow reads each header and
checks PNG chunk CRCs, then TensorFlow decodes every file exactly as the pipeline will, which
catches what Pillow's check lets through -- a TIFF named ``.png``, corrupt compressed data):
a :class:`~labelwise.errors.InputError` lists them by path, or, with
``skip_unreadable=True``, they are dropped with a warning naming them. An epoch never dies
half-way on a bad file, and nothing is skipped silently.

This module imports TensorFlow at the top: import it only where tf.data is wanted.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf

from ..errors import InputError
from .orientation import apply_orientation, exif_orientation, orientation_of

__all__ = [
    "Augment", "ImageSource", "check_images", "load_images", "make_dataset", "make_epoch_dataset",
    "list_images", "IMAGE_SUFFIXES", "exif_orientation", "apply_orientation",
]

AUTOTUNE = tf.data.AUTOTUNE
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclass(frozen=True)
class Augment:
    """Seeded training-time augmentation; every field 0/False turns that part off.

    flip: random left-right flip (off by default: it changes meaning for digits and for the
    heart side in chest X-rays). rotate: max rotation in degrees. shift: max translation as a
    fraction of the image size. brightness: max additive change in 0-255 units (as a fraction
    of 255). contrast: max relative change of contrast around the image mean.
    """

    flip: bool = False
    rotate: float = 0.0
    shift: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0

    @classmethod
    def from_any(cls, spec: "Augment | Mapping[str, Any] | bool | str | None") -> "Augment | None":
        """Accept an Augment, a dict of its fields, True/"default" (mild defaults), or None/False."""
        if spec is None or spec is False or spec == "none":
            return None
        if isinstance(spec, Augment):
            return spec
        if spec is True or spec == "default":
            return cls(flip=False, rotate=5.0, shift=0.05, brightness=0.05, contrast=0.1)
        if isinstance(spec, Mapping):
            unknown = set(spec) - set(cls.__dataclass_fields__)
            if unknown:
                raise InputError(f"unknown augmentation setting(s) {sorted(unknown)}; the settings are "
                                 f"{sorted(cls.__dataclass_fields__)}")
            return cls(**spec)
        raise InputError(f"augment must be a table of settings, true/false or 'default'; got {spec!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def active(self) -> bool:
        return bool(self.flip or self.rotate or self.shift or self.brightness or self.contrast)


# ------------------------------------------------------------------ file checks
def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files (by suffix) under ``folder``, recursively, sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder of images")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{folder} contains no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


# Formats TensorFlow's decode_image reads; Pillow opens many more (TIFF, WebP, ...).
_TF_FORMATS = {"PNG", "JPEG", "MPO", "BMP", "DIB", "GIF"}


def _check_one(path: str) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            fmt = im.format
            im.verify()  # PNG: walks every chunk and checks its CRC, without decompressing
    except FileNotFoundError:
        return "file not found"
    except Exception as e:  # Pillow raises many types for bad files; the message is what matters
        return f"{type(e).__name__}: {e}".strip()
    if fmt not in _TF_FORMATS:
        return (f"a {fmt} image (whatever its name says); TensorFlow reads only PNG, JPEG, BMP and GIF: "
                "convert it to PNG")
    return None


def _tf_failures(paths: Sequence[str], channels: int, verbose: int) -> dict[str, str]:
    """``{path: reason}`` for the files TensorFlow's decode (the one the pipeline uses) rejects.

    Decodes every file once in a parallel tf.data pass; ``ignore_errors`` drops the failures,
    so the indices that do not come back are the bad files, which are then decoded one by one
    to get TensorFlow's message.
    """
    if not paths:
        return {}
    import keras

    ds = tf.data.Dataset.from_tensor_slices((tf.range(len(paths), dtype=tf.int64), tf.constant(list(paths))))
    # Returning the decoded shape keeps the decode from being optimised away.
    ds = ds.map(lambda i, p: (i, tf.shape(_decode_pixels(tf.io.read_file(p), channels))),
                num_parallel_calls=AUTOTUNE, deterministic=False)
    ds = ds.ignore_errors(log_warning=False).batch(256).prefetch(AUTOTUNE)
    # Not a terminal (a log file): Keras' bar would write a line of escape codes per update;
    # verbose 2 prints one summary line when done.
    interactive = bool(getattr(sys.stdout, "isatty", lambda: False)())
    bar = keras.utils.Progbar(len(paths), unit_name="file", verbose=1 if interactive else 2) if verbose else None
    ok = np.zeros(len(paths), dtype=bool)
    done = 0
    for idx, _ in ds.as_numpy_iterator():
        ok[idx] = True
        done += len(idx)
        if bar is not None:
            bar.update(done)
    if bar is not None and done < len(paths):
        bar.update(len(paths), finalize=True)  # the failed files never reported themselves
    bad = {}
    for i in np.flatnonzero(~ok):
        try:
            _decode_pixels(tf.io.read_file(paths[i]), channels)
            reason = "TensorFlow could not decode it in the pipeline, but could on its own; try again"
        except (tf.errors.OpError, ValueError) as e:
            msg = getattr(e, "message", str(e)).strip().splitlines()
            reason = f"TensorFlow cannot decode it ({msg[-1] if msg else type(e).__name__})"
        bad[paths[i]] = reason
    return bad


def check_images(paths: Sequence[str | os.PathLike], *, channels: int = 3, decode: bool = True,
                 verbose: int = 0) -> dict[str, str]:
    """Return ``{path: reason}`` for every file that cannot be read as an image (empty if all are fine).

    First Pillow reads each header and checks PNG checksums (cheap, and its messages are
    specific: truncated file, CRC error, not an image), then, with ``decode``, TensorFlow decodes
    each remaining file to ``channels`` channels exactly as the pipeline will: anything that
    passes here cannot stop an epoch. ``verbose`` shows a progress bar for the decode pass and
    a summary line.
    """
    from concurrent.futures import ThreadPoolExecutor

    paths = [str(p) for p in paths]
    t0 = time.perf_counter()
    if verbose:
        print(f"checking {len(paths):,} image file(s)" + (" (decoding each once)" if decode else ""), flush=True)
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 2) * 2)) as pool:
        reasons = list(pool.map(_check_one, paths, chunksize=64))
    bad = {p: r for p, r in zip(paths, reasons) if r is not None}
    if decode:
        bad.update(_tf_failures([p for p in paths if p not in bad], channels, verbose))
        bad = {p: bad[p] for p in paths if p in bad}  # input order
    if verbose:
        print(f"checked {len(paths):,} image file(s) in {time.perf_counter() - t0:.1f} s: "
              + (f"{len(bad):,} unreadable" if bad else "all readable"), flush=True)
    return bad


def _bad_files_message(bad: Mapping[str, str], limit: int = 10) -> str:
    lines = [f"  {p}: {r}" for p, r in list(bad.items())[:limit]]
    if len(bad) > limit:
        lines.append(f"  ... and {len(bad) - limit} more")
    return "\n".join(lines)


# ------------------------------------------------------------------ sources
@dataclass
class ImageSource:
    """What a dataset reads: either file paths or an in-memory uint8/float array, plus targets.

    Built by :func:`ImageSource.create`, which checks the files and applies ``skip_unreadable``.
    ``keep`` gives, for each kept item, its index in the caller's original list.
    """

    paths: np.ndarray | None
    arrays: np.ndarray | None
    y: np.ndarray | None
    keep: np.ndarray
    skipped: dict[str, str]

    def __len__(self) -> int:
        return len(self.keep)

    @classmethod
    def create(cls, source: Any, y: np.ndarray | None = None, *, skip_unreadable: bool = False,
               check: bool = True, channels: int = 3, verbose: int = 0) -> "ImageSource":
        """Build from a list of paths, a folder, or an array ``(n, h, w)`` / ``(n, h, w, c)``.

        ``check`` runs :func:`check_images` on the files (decoding to ``channels``; ``verbose``
        shows its progress); bad files raise :class:`InputError` naming them, or are left out
        with a warning when ``skip_unreadable``."""
        if isinstance(source, ImageSource):
            return source
        if y is not None:
            y = np.asarray(y)
        if isinstance(source, np.ndarray) and source.dtype.kind in "uif":
            arrays = source if source.ndim == 4 else source[..., None] if source.ndim == 3 else None
            if arrays is None:
                raise InputError(f"an image array must have shape (n, h, w) or (n, h, w, c); got {source.shape}")
            _check_y(y, len(arrays))
            return cls(None, arrays, y, np.arange(len(arrays)), {})
        if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
            source = list_images(source)
        paths = [str(p) for p in source]
        if not paths:
            raise InputError("no images given")
        _check_y(y, len(paths))
        bad = check_images(paths, channels=channels, verbose=verbose) if check else {}
        keep = np.arange(len(paths))
        if bad:
            if not skip_unreadable:
                raise InputError(
                    f"{len(bad)} of {len(paths)} image file(s) cannot be read:\n{_bad_files_message(bad)}\n"
                    "Fix or remove them, or pass skip_unreadable=True (--skip-unreadable) to leave them out."
                )
            warnings.warn(
                f"skipping {len(bad)} unreadable image file(s) of {len(paths)}:\n{_bad_files_message(bad)}",
                stacklevel=3,
            )
            keep = np.array([i for i, p in enumerate(paths) if p not in bad], dtype=np.int64)
            if keep.size == 0:
                raise InputError("every image file is unreadable; nothing left to read")
        return cls(np.asarray(paths, dtype=object)[keep].astype(str), None,
                   None if y is None else y[keep], keep, bad)


def _check_y(y: np.ndarray | None, n: int) -> None:
    if y is not None and len(y) != n:
        raise InputError(f"{n} images but {len(y)} rows of targets; they must match one to one")


# ------------------------------------------------------------------ decoding
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _decode_pixels(data: tf.Tensor, channels: int) -> tf.Tensor:
    """Encoded bytes -> float32 in 0-1, shape (h, w, channels), for any format and channel count.

    With ``channels=3`` TensorFlow converts every format itself. With ``channels=1`` its PNG
    and plain JPEG decoders convert natively (kept: the numbers stay those of earlier
    versions), but BMP, GIF and CMYK JPEG refuse it, so those are decoded as RGB and converted
    with ``rgb_to_grayscale``.
    """
    def native():
        return tf.io.decode_image(data, channels=channels, dtype=tf.float32, expand_animations=False)

    if channels != 1:
        img = native()
    else:
        def via_rgb():
            rgb = tf.io.decode_image(data, channels=3, dtype=tf.float32, expand_animations=False)
            return tf.image.rgb_to_grayscale(rgb)

        is_png = tf.equal(tf.strings.substr(data, 0, len(_PNG_MAGIC)), _PNG_MAGIC)
        img = tf.cond(
            is_png, native,
            lambda: tf.cond(tf.io.is_jpeg(data),
                            # extract_jpeg_shape reads the header only; 4 components = CMYK
                            lambda: tf.cond(tf.equal(tf.io.extract_jpeg_shape(data)[2], 4), via_rgb, native),
                            via_rgb))
    img.set_shape([None, None, channels])
    return img


def decode_image_bytes(data: tf.Tensor, *, image_size: Sequence[int] | int, channels: int) -> tf.Tensor:
    """Encoded image bytes (PNG/JPEG/BMP/GIF) -> float32 pixels in 0-255, shape (h, w, channels),
    resized as :func:`_resize` and upright by the JPEG's EXIF orientation (:func:`apply_orientation`).
    The one decode shared by loose files and TFRecord shards."""
    h, w = _size(image_size)
    img = _decode_pixels(data, channels) * 255.0
    orientation = orientation_of(data)
    # Resize first, then turn the small image: resizing commutes with flips and transposes, and
    # turning a 224 px image costs a fraction of turning the decoded photo. Orientations 5-8
    # swap height and width, so those are resized to (w, h).
    if h == w:
        small = _resize(img, (h, w))
    else:
        small = tf.cond(orientation >= 5, lambda: _resize(img, (w, h)), lambda: _resize(img, (h, w)))
    out = apply_orientation(small, orientation)
    out.set_shape([None, None, channels])
    return out


def _decode_file(path: tf.Tensor, image_size: tuple[int, int], channels: int) -> tf.Tensor:
    return decode_image_bytes(tf.io.read_file(path), image_size=image_size, channels=channels)


def _resize(img: tf.Tensor, image_size: tuple[int, int]) -> tf.Tensor:
    """Shrink by area averaging (exact box means; a 1024 px X-ray shrunk to 224 px without it
    aliases fine texture into noise), enlarge bilinearly, leave the right size untouched."""
    img = tf.cast(img, tf.float32)
    shape = tf.shape(img)
    h, w = image_size
    same = tf.logical_and(tf.equal(shape[0], h), tf.equal(shape[1], w))
    shrink = tf.logical_and(tf.greater_equal(shape[0], h), tf.greater_equal(shape[1], w))
    return tf.case([(same, lambda: img),
                    (shrink, lambda: tf.image.resize(img, image_size, method="area"))],
                   default=lambda: tf.image.resize(img, image_size, method="bilinear", antialias=True))


def _array_to_image(x: tf.Tensor, image_size: tuple[int, int], channels: int) -> tf.Tensor:
    x = tf.cast(x, tf.float32)
    c = x.shape[-1]
    if c != channels:
        if c == 1 and channels == 3:
            x = tf.image.grayscale_to_rgb(x)
        elif c in (3, 4) and channels == 1:
            x = tf.image.rgb_to_grayscale(x[..., :3])
        elif c == 4 and channels == 3:
            x = x[..., :3]
        else:
            raise InputError(f"cannot convert arrays with {c} channels to {channels}")
    return _resize(x, image_size)


def _augment(img: tf.Tensor, aug: Augment, seed: tf.Tensor) -> tf.Tensor:
    """Apply ``aug`` to one image with stateless seeds derived from ``seed`` (shape (2,), int32)."""
    seeds = tf.random.experimental.stateless_split(seed, num=6)
    h = tf.cast(tf.shape(img)[0], tf.float32)
    w = tf.cast(tf.shape(img)[1], tf.float32)
    if aug.flip:
        img = tf.image.stateless_random_flip_left_right(img, seed=seeds[0])
    if aug.rotate or aug.shift:
        angle = tf.random.stateless_uniform([], seeds[1], -1.0, 1.0) * (aug.rotate * math.pi / 180.0)
        dx = tf.random.stateless_uniform([], seeds[2], -1.0, 1.0) * aug.shift * w
        dy = tf.random.stateless_uniform([], seeds[3], -1.0, 1.0) * aug.shift * h
        # inverse map output -> input: rotate about the centre, then shift
        cos, sin = tf.cos(angle), tf.sin(angle)
        cx, cy = (w - 1) / 2, (h - 1) / 2
        a0, a1 = cos, -sin
        b0, b1 = sin, cos
        a2 = cx - a0 * cx - a1 * cy - dx
        b2 = cy - b0 * cx - b1 * cy - dy
        transform = tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0])[None]
        img = tf.raw_ops.ImageProjectiveTransformV3(
            images=img[None], transforms=transform, output_shape=tf.shape(img)[:2],
            fill_value=0.0, interpolation="BILINEAR", fill_mode="NEAREST")[0]
    if aug.brightness:
        delta = tf.random.stateless_uniform([], seeds[4], -1.0, 1.0) * aug.brightness * 255.0
        img = img + delta
    if aug.contrast:
        factor = 1.0 + tf.random.stateless_uniform([], seeds[5], -1.0, 1.0) * aug.contrast
        mean = tf.reduce_mean(img, axis=[0, 1], keepdims=True)
        img = (img - mean) * factor + mean
    return tf.clip_by_value(img, 0.0, 255.0)


# ------------------------------------------------------------------ datasets
def _loader(src: ImageSource, image_size: tuple[int, int], channels: int):
    """A function index -> image tensor for ``src`` (file decode or array gather)."""
    if src.arrays is not None:
        arrays = tf.constant(src.arrays)
        return lambda i: _array_to_image(tf.gather(arrays, i), image_size, channels)
    paths = tf.constant(src.paths)
    return lambda i: _decode_file(tf.gather(paths, i), image_size, channels)


def make_epoch_dataset(
    source: Any,
    y: np.ndarray | None = None,
    *,
    image_size: Sequence[int],
    channels: int,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    augment: Augment | Mapping[str, Any] | bool | None = None,
    cache: bool = False,
    skip_unreadable: bool = False,
    epochs: tuple[int, int] | None = None,
    check: bool = True,
    process_shard: tuple[int, int, int] | None = None,
) -> tf.data.Dataset:
    """Like :func:`make_dataset`; ``epochs=(first, stop)`` makes one dataset that runs epochs
    ``first .. stop-1`` back to back, each with its own order ``(seed, epoch)`` and its own
    last partial batch, for ``model.fit(..., steps_per_epoch=ceil(n / batch_size))``.

    ``process_shard=(count, index, replicas)`` (multi-process JAX DataParallel, from
    ``Distribution.process_shard``): ``batch_size`` is the global batch; this process yields
    only its contiguous ``1 / count`` slice of every global batch (``batch_size / count``
    images), the last partial batch first padded to a multiple of ``replicas`` by repeating
    its last image (as ``Distribution.even_batches`` does). The slices are taken from the
    epoch's index order before decoding, so each process reads and decodes only its own images,
    and Keras, joining the processes' slices in process order, trains on exactly the global
    batches of one process.
    """
    size = _size(image_size)
    aug = Augment.from_any(augment)
    src = ImageSource.create(source, y, skip_unreadable=skip_unreadable, check=check, channels=channels)
    if cache and src.arrays is None:
        # decode once, keep the resized float32 pixels in memory: n * h * w * c * 4 bytes
        src = ImageSource(None, load_images(src, image_size=size, channels=channels, batch_size=256),
                          src.y, src.keep, src.skipped)
    n = len(src)
    load = _loader(src, size, channels)
    targets = None if src.y is None else tf.constant(src.y, dtype=tf.float32)
    seed = int(seed)

    def element(i, epoch):
        img = load(i)
        if aug is not None and aug.active:
            img = _augment(img, aug, tf.stack([tf.cast(seed, tf.int64) * 1_000_003 + epoch, tf.cast(i, tf.int64)]))
        if targets is None:
            return img
        return img, tf.gather(targets, i)

    def one_epoch(epoch):
        epoch = tf.cast(epoch, tf.int64)
        order = tf.range(n, dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        if process_shard is not None:
            order = _process_rows(order)
        ds = tf.data.Dataset.from_tensor_slices(order)
        ds = ds.map(lambda i: element(i, epoch), num_parallel_calls=AUTOTUNE, deterministic=True)
        return ds.batch(local_batch)

    local_batch = batch_size
    if process_shard is not None:
        count, index, replicas = (int(v) for v in process_shard)
        if batch_size % count or replicas % count or not 0 <= index < count:
            raise InputError(f"batch size {batch_size} cannot be split over {count} processes with {replicas} "
                             f"replicas (process {index}); use a multiple of {replicas}")
        local_batch = batch_size // count
        n_full, rem = n // batch_size * batch_size, n % batch_size
        padded = -(-rem // replicas) * replicas  # the last batch, divisible by the devices

        def _process_rows(order):
            # full global batches: rows [index * local_batch, (index + 1) * local_batch) of each
            mine = tf.reshape(tf.reshape(order[:n_full], [-1, count, local_batch])[:, index], [-1])
            if rem:
                last = tf.gather(order[n_full:], tf.minimum(tf.range(padded), rem - 1))
                mine = tf.concat([mine, tf.reshape(last, [count, padded // count])[index]], 0)
            return mine

    first, stop = epochs if epochs is not None else (0, 1)
    if stop - first == 1:
        ds = one_epoch(first)
    else:
        ds = tf.data.Dataset.range(first, stop).flat_map(one_epoch)
        # flat_map hides the length; Keras needs it to tell epochs apart without running dry
        ds = ds.apply(tf.data.experimental.assert_cardinality((stop - first) * math.ceil(n / batch_size)))
    ds = ds.prefetch(AUTOTUNE)
    ds.labelwise_source = src  # the caller needs the kept indices when files were skipped
    return ds


def make_dataset(
    source: Any,
    y: np.ndarray | None = None,
    *,
    image_size: Sequence[int],
    channels: int,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    augment: Augment | Mapping[str, Any] | bool | None = None,
    cache: bool = False,
    skip_unreadable: bool = False,
    epoch: int = 0,
    check: bool = True,
) -> tf.data.Dataset:
    """One epoch of batches from image files (paths or a folder) or an image array.

    Yields ``pixels`` (float32, 0-255, ``(b, h, w, channels)``) or ``(pixels, y)`` when ``y``
    is given. ``shuffle`` orders by ``stateless_shuffle(seed=[seed, epoch])``; ``augment``
    (an :class:`Augment`, a dict, or True for mild defaults) is seeded by ``(seed, epoch, index)``.
    ``cache`` decodes files once and keeps the pixels in memory. Unreadable files raise
    :class:`InputError` listing them, unless ``skip_unreadable`` (then a warning lists them);
    ``dataset.labelwise_source.keep`` tells which inputs were kept. ``check=False`` skips the
    up-front file check (then a bad file fails inside TensorFlow, without its path: callers
    that do this catch the failure and run :func:`check_images`, as ``predict`` does).
    """
    return make_epoch_dataset(source, y, image_size=image_size, channels=channels, batch_size=batch_size,
                              shuffle=shuffle, seed=seed, augment=augment, cache=cache,
                              skip_unreadable=skip_unreadable, epochs=(epoch, epoch + 1), check=check)


def load_images(source: Any, *, image_size: Sequence[int], channels: int, batch_size: int = 64) -> np.ndarray:
    """Decode and resize images to one float32 array ``(n, h, w, channels)`` (0-255), in input order.

    ``source`` is anything :meth:`ImageSource.create` takes; an :class:`ImageSource` that carries
    targets gives its pixels only (files of any size come out at ``image_size``).
    """
    if isinstance(source, ImageSource) and source.y is not None:
        # With targets the dataset yields (pixels, y) pairs, which do not stack into one array.
        source = ImageSource(source.paths, source.arrays, None, source.keep, source.skipped)
    batches = list(make_dataset(source, image_size=image_size, channels=channels,
                                batch_size=batch_size).as_numpy_iterator())
    return np.concatenate(batches) if batches else np.zeros((0, *_size(image_size), channels), np.float32)


def _size(image_size: Sequence[int] | int) -> tuple[int, int]:
    if isinstance(image_size, int):
        return (image_size, image_size)
    size = tuple(int(s) for s in image_size)
    if len(size) != 2 or min(size) < 1:
        raise InputError(f"image_size must be (height, width) with positive values; got {image_size!r}")
    return size  # type: ignore[return-value]
