"""What an input pipeline reads, without TensorFlow: augmentation settings, image sources and file checks.

Shared by the tf.data pipeline (:mod:`labelwise.data.pipeline`) and the backend-neutral
Python pipeline (:mod:`labelwise.data.pypipeline`), so both take the same settings and run
the same checks. ``check_images`` decodes every file with the decoder of the pipeline that
will read it (its ``decode_failures``, passed in: this module imports neither pipeline), so a
file that passes cannot stop an epoch. Which pipeline reads: :mod:`labelwise.data.choose`.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

# a pipeline's decode check: (paths, channels, verbose) -> {path: reason}
Failures = Callable[[Sequence[str], int, int], "dict[str, str]"]

import numpy as np

from ..errors import InputError

__all__ = ["Augment", "ImageSource", "check_images", "list_images", "IMAGE_SUFFIXES", "READABLE_FORMATS"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# The formats both pipelines read (TensorFlow's decode_image reads only these; Pillow opens
# many more, TIFF and WebP among them, which are refused so that both pipelines accept the same files).
READABLE_FORMATS = {"PNG", "JPEG", "MPO", "BMP", "DIB", "GIF"}


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
        """The fields as a plain dict (for config.json)."""
        return asdict(self)

    @property
    def active(self) -> bool:
        """True when any part of the augmentation is on."""
        return bool(self.flip or self.rotate or self.shift or self.brightness or self.contrast)


# ------------------------------------------------------------------ file checks
def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files (by suffix) under ``folder``, recursively, sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder of images")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and is_input_file(p))
    if not files:
        raise InputError(f"{folder} contains no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def is_input_file(path: str | os.PathLike) -> bool:
    """A file found in a folder or by a pattern that is an input: a regular file, or a symbolic
    link that cannot be followed (broken, or a loop) -- listed so that reading it names it, never
    left out unsaid."""
    return os.path.isfile(path) or (os.path.islink(path) and not os.path.exists(path))


def link_problem(path: str | os.PathLike) -> str:
    """Why a symbolic link cannot be read: it leads nowhere, or round in a loop."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return f"a broken symbolic link (to {os.readlink(path)}, which does not exist)"
    except OSError as e:
        return f"a symbolic link that cannot be followed ({e.strerror}: a loop of links)"
    return "a symbolic link"


def _check_one(path: str) -> str | None:
    from PIL import Image

    if os.path.islink(path) and not os.path.exists(path):
        return link_problem(path)
    try:
        with Image.open(path) as im:
            fmt = im.format
            im.verify()  # PNG: walks every chunk and checks its CRC, without decompressing
    except FileNotFoundError:
        return "file not found"
    except Exception as e:  # Pillow raises many types for bad files; the message is what matters
        return f"{type(e).__name__}: {e}".strip()
    if fmt not in READABLE_FORMATS:
        return (f"a {fmt} image (whatever its name says); labelwise reads only PNG, JPEG, BMP and GIF "
                "(what TensorFlow decodes): convert it to PNG")
    return None


def check_images(paths: Sequence[str | os.PathLike], *, channels: int = 3, decode: bool = True,
                 verbose: int = 0, failures: Failures | None = None) -> dict[str, str]:
    """Return ``{path: reason}`` for every file that cannot be read as an image (empty if all are fine).

    First Pillow reads each header and checks PNG checksums (cheap, and its messages are
    specific: truncated file, CRC error, not an image), then, with ``decode``, the pipeline's
    own decoder (``failures``: the pipeline module's ``decode_failures``) decodes each remaining
    file to ``channels`` channels exactly as the pipeline will: anything that passes here cannot
    stop an epoch. ``verbose`` shows a progress bar for the decode pass and a summary line.
    """
    if decode and failures is None:
        raise TypeError("check_images(decode=True) needs failures=<a pipeline's decode_failures>")
    from concurrent.futures import ThreadPoolExecutor

    paths = [str(p) for p in paths]
    t0 = time.perf_counter()
    if verbose:
        print(f"checking {len(paths):,} image file(s)" + (" (decoding each once)" if decode else ""), flush=True)
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 2) * 2)) as pool:
        reasons = list(pool.map(_check_one, paths, chunksize=64))
    bad = {p: r for p, r in zip(paths, reasons) if r is not None}
    if decode:
        bad.update(failures([p for p in paths if p not in bad], channels, verbose))
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
               check: bool = True, channels: int = 3, verbose: int = 0,
               failures: Failures | None = None) -> "ImageSource":
        """Build from a list of paths, a folder, or an array ``(n, h, w)`` / ``(n, h, w, c)``.

        ``check`` runs :func:`check_images` on the files (decoding each to ``channels`` with
        ``failures``, the reading pipeline's ``decode_failures``; without it only the headers are
        checked; ``verbose`` shows its progress); bad files raise :class:`InputError` naming
        them, or are left out with a warning when ``skip_unreadable``."""
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
        bad = check_images(paths, channels=channels, verbose=verbose, decode=failures is not None,
                           failures=failures) if check else {}
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


def _size(image_size: Sequence[int] | int) -> tuple[int, int]:
    if isinstance(image_size, int):
        return (image_size, image_size)
    size = tuple(int(s) for s in image_size)
    if len(size) != 2 or min(size) < 1:
        raise InputError(f"image_size must be (height, width) with positive values; got {image_size!r}")
    return size  # type: ignore[return-value]
