"""Images as real datasets hold them: files of different sizes, EXIF-rotated JPEGs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

tf = pytest.importorskip("tensorflow")

from labelwise.data.pipeline import (  # noqa: E402
    ImageSource, exif_orientation, load_images, make_dataset,
)


def _photos(tmp_path, sizes):
    rng = np.random.default_rng(0)
    files = []
    for i, (w, h) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(tmp_path / f"p{i}.png")
        files.append(str(tmp_path / f"p{i}.png"))
    return files


@pytest.mark.slow
def test_cache_with_targets_and_files_of_different_sizes(tmp_path):
    # Portrait, landscape, square, smaller and larger than the model size: train --cache used to
    # stack (pixels, y) pairs into one array and crash with "inhomogeneous shape".
    files = _photos(tmp_path, [(40, 30), (30, 50), (64, 64), (20, 20), (33, 17)])
    y = np.eye(5, 3, dtype=np.uint8)
    src = ImageSource.create(files, y)
    pixels = load_images(src, image_size=(16, 24), channels=3)
    assert pixels.shape == (5, 16, 24, 3)
    # the same pixels as decoding each file on its own, without a cache
    one_by_one = np.concatenate([load_images([f], image_size=(16, 24), channels=3) for f in files])
    np.testing.assert_array_equal(pixels, one_by_one)
    kw = dict(image_size=(16, 24), channels=3, batch_size=2, shuffle=True, seed=1)
    plain = list(make_dataset(files, y, **kw).as_numpy_iterator())
    cached = list(make_dataset(files, y, cache=True, **kw).as_numpy_iterator())
    for (xa, ya), (xb, yb) in zip(plain, cached):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def _quadrants(h=24, w=40):
    # four flat colours, so JPEG noise stays small and any wrong turn is large
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = (255, 0, 0)
    a[: h // 2, w // 2 :] = (0, 255, 0)
    a[h // 2 :, : w // 2] = (0, 0, 255)
    a[h // 2 :, w // 2 :] = (255, 255, 0)
    return a


@pytest.mark.slow
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow(tmp_path, orientation):
    path = tmp_path / f"o{orientation}.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(_quadrants()).save(path, quality=100, exif=exif.tobytes())
    assert exif_orientation(path.read_bytes()) == orientation
    with Image.open(path) as im:
        upright = np.asarray(ImageOps.exif_transpose(im).convert("RGB"), dtype=np.float32)
    h, w = upright.shape[:2]
    got = load_images([str(path)], image_size=(h, w), channels=3)[0]
    assert got.shape == upright.shape
    assert np.abs(got - upright).mean() < 4.0
    if orientation != 1:  # the stored (sideways) pixels are far from what the model now gets
        stored = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
        if stored.shape == upright.shape:
            assert np.abs(stored - got).mean() > 40


def test_orientation_reader_ignores_non_jpeg_and_cut_headers(tmp_path):
    png = tmp_path / "a.png"
    Image.fromarray(_quadrants()).save(png)
    assert exif_orientation(png.read_bytes()) == 1
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_quadrants()).save(tmp_path / "b.jpg", exif=exif.tobytes())
    data = (tmp_path / "b.jpg").read_bytes()
    assert exif_orientation(data[:30]) == 1  # truncated inside the EXIF segment
    Image.fromarray(_quadrants()).save(tmp_path / "c.jpg")
    assert exif_orientation((tmp_path / "c.jpg").read_bytes()) == 1


@pytest.mark.slow
def test_served_bytes_are_turned_upright_too(tmp_path):
    from labelwise.training.predict import image_inputs

    path = tmp_path / "six.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_quadrants()).save(path, quality=100, exif=exif.tobytes())
    with Image.open(path) as im:
        upright = np.asarray(ImageOps.exif_transpose(im).convert("RGB"), dtype=np.float32)
    got = image_inputs([path.read_bytes()], image_size=upright.shape[:2], channels=3)[0]
    assert np.abs(got - upright).mean() < 4.0
