"""EXIF orientation: a JPEG from a phone or camera is often stored sideways with an Orientation tag
(1-8) saying how to turn it; viewers obey the tag, and so must the model's input.

:func:`orientation_of` reads the tag in the TensorFlow graph (the decode in
:func:`labelwise.data.pipeline.decode_image_bytes`, used by train, predict, shards and serve);
:func:`exif_orientation` reads it in Python; :func:`apply_orientation` turns a decoded image
upright with the transforms of Pillow's ``ImageOps.exif_transpose``.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["exif_orientation", "orientation_of", "apply_orientation"]


def exif_orientation(data: bytes) -> int:
    """The EXIF Orientation tag (1-8) of JPEG bytes; 1 (as stored) when absent or unreadable.

    Walks the JPEG markers up to the start of scan, finds the APP1 ``Exif`` segment and reads
    tag 0x0112 from its first TIFF directory (either byte order). Only the header is read.
    """
    import struct

    data = bytes(data)
    if data[:2] != b"\xff\xd8":
        return 1
    i = 2
    try:
        while i + 4 <= len(data):
            if data[i] != 0xFF:
                return 1
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if marker in (0xDA, 0xD9):  # start of scan / end of image: no EXIF before the pixels
                return 1
            length = struct.unpack(">H", data[i + 2 : i + 4])[0]
            if marker == 0xE1 and data[i + 4 : i + 10] == b"Exif\x00\x00":
                tiff = data[i + 10 : i + 2 + length]
                order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
                if order is None:
                    return 1
                ifd = struct.unpack(order + "I", tiff[4:8])[0]
                count = struct.unpack(order + "H", tiff[ifd : ifd + 2])[0]
                for k in range(count):
                    entry = tiff[ifd + 2 + 12 * k : ifd + 14 + 12 * k]
                    if struct.unpack(order + "H", entry[:2])[0] == 0x0112:
                        value = struct.unpack(order + "H", entry[8:10])[0]
                        return value if 1 <= value <= 8 else 1
                return 1
            i += 2 + length
    except struct.error:  # a cut-short header reads as "no orientation"; the decode check judges the file
        return 1
    return 1


_EXIF_SIGNATURE = (0x45, 0x78, 0x69, 0x66, 0, 0)  # "Exif\0\0", the start of the APP1 segment's data
# EXIF's APP1 segment comes right after the start marker (or after a JFIF APP0 segment), and its
# first TIFF directory, which holds the Orientation tag, right after the TIFF header: the first
# 4 KiB hold both. Reading no more keeps the parse a small fraction of the decode.
_EXIF_SEARCH = 1024  # where "Exif\0\0" may start
_EXIF_HEAD = 4096  # bytes read
_MAX_TAGS = 64  # entries read from the first TIFF directory (Orientation is among the first few)


def orientation_of(data: tf.Tensor) -> tf.Tensor:
    """EXIF orientation of encoded bytes as an int32 scalar (1 for anything but JPEG), read in the
    graph as :func:`exif_orientation` reads it in Python (a ``numpy_function`` here held the GIL
    and slowed the decoding of JPEGs down by a third or more).

    Finds ``Exif\0\0`` in the first 1 KiB, reads the TIFF byte order, the first directory's
    offset and entry count, and the value of tag 0x0112; anything out of range reads as 1.
    """
    def parse() -> tf.Tensor:
        raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, 0, _EXIF_HEAD), tf.uint8), tf.int64)
        n = tf.size(raw, out_type=tf.int64)
        b = tf.concat([raw, tf.zeros([16], tf.int64)], 0)
        span = tf.clip_by_value(n - len(_EXIF_SIGNATURE) + 1, 0, _EXIF_SEARCH)
        match = tf.ones([span], tf.bool)
        for k, v in enumerate(_EXIF_SIGNATURE):
            match = tf.logical_and(match, tf.equal(b[k : k + span], v))
        found = tf.reduce_any(match)
        tiff = tf.argmax(tf.cast(match, tf.int32), output_type=tf.int64) + len(_EXIF_SIGNATURE)

        def byte(i):
            return tf.gather(b, tf.clip_by_value(i, 0, n + 15))

        little = tf.equal(byte(tiff), 0x49)  # "II" little-endian, "MM" big-endian
        order_ok = tf.logical_and(tf.equal(byte(tiff), byte(tiff + 1)),
                                  tf.logical_or(little, tf.equal(byte(tiff), 0x4D)))

        def u16(i):
            return tf.where(little, byte(i) + 256 * byte(i + 1), 256 * byte(i) + byte(i + 1))

        def u32(i):
            lo, hi = u16(i), u16(i + 2)
            return tf.where(little, lo + 65536 * hi, 65536 * lo + hi)

        ifd = tiff + u32(tiff + 4)
        count = u16(ifd)
        pos = ifd + 2 + 12 * tf.range(_MAX_TAGS, dtype=tf.int64)
        hit = tf.logical_and(tf.logical_and(tf.range(_MAX_TAGS, dtype=tf.int64) < count, pos + 10 <= n),
                             tf.equal(u16(pos), 0x0112))
        value = u16(tf.gather(pos, tf.argmax(tf.cast(hit, tf.int32))) + 8)
        ok = found & order_ok & tf.reduce_any(hit) & (value >= 1) & (value <= 8)
        return tf.cast(tf.where(ok, value, 1), tf.int32)

    return tf.cond(tf.io.is_jpeg(data), parse, lambda: tf.constant(1, tf.int32))


def apply_orientation(img: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """Turn a decoded ``(h, w, c)`` image upright for EXIF ``orientation`` 1-8, as a viewer shows it
    (the transforms of Pillow's ``ImageOps.exif_transpose``: 6 = rotate 90 degrees clockwise, ...)."""
    branches = [
        lambda: img,                                                  # 1 as stored
        lambda: tf.image.flip_left_right(img),                        # 2 mirrored
        lambda: tf.image.rot90(img, 2),                               # 3 upside down
        lambda: tf.image.flip_up_down(img),                           # 4 mirrored vertically
        lambda: tf.image.transpose(img),                              # 5 transposed
        lambda: tf.image.rot90(img, 3),                               # 6 stored 90 degrees anticlockwise
        lambda: tf.image.rot90(tf.image.transpose(img), 2),           # 7 transverse
        lambda: tf.image.rot90(img, 1),                               # 8 stored 90 degrees clockwise
    ]
    out = tf.switch_case(tf.clip_by_value(tf.cast(orientation, tf.int32) - 1, 0, 7), branches)
    out.set_shape([None, None, img.shape[-1]])
    return out
