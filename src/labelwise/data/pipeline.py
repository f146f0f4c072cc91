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
import sys
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf

from ..errors import InputError

# what both pipelines share lives in sources (no TensorFlow); names kept here for callers
from . import sources
from .orientation import apply_orientation, exif_orientation, orientation_of
from .sources import (  # noqa: F401
    IMAGE_SUFFIXES,
    Augment,
    ImageSource,
    _bad_files_message,
    _check_one,
    _size,
    list_images,
)

__all__ = [
    "Augment", "ImageSource", "check_images", "load_images", "make_dataset", "make_epoch_dataset",
    "list_images", "IMAGE_SUFFIXES", "exif_orientation", "apply_orientation",
]

AUTOTUNE = tf.data.AUTOTUNE


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


decode_failures = _tf_failures  # the file check's decode, as every pipeline module names it


def check_images(paths: Sequence[Any], *, channels: int = 3, decode: bool = True, verbose: int = 0) -> dict[str, str]:
    """:func:`labelwise.data.sources.check_images` with TensorFlow's decode (what this pipeline reads with)."""
    return sources.check_images(paths, channels=channels, decode=decode, verbose=verbose, failures=_tf_failures)


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
    src = ImageSource.create(source, y, skip_unreadable=skip_unreadable, check=check, channels=channels,
                             failures=_tf_failures)
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

