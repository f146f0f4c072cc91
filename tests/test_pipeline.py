"""tf.data input pipeline: decoding (8/16-bit, gray/RGB/RGBA), unreadable files, seeded order."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import NIH_IMAGES, require

tf = pytest.importorskip("tensorflow")

from labelwise.errors import InputError  # noqa: E402
from labelwise.data.pipeline import Augment, check_images, make_dataset, make_epoch_dataset  # noqa: E402


@pytest.mark.slow
def test_real_nih_pngs_decode_including_rgba():
    folder = require(NIH_IMAGES / "images")
    paths = sorted(folder.glob("*.png"))
    assert len(paths) == 24
    modes = {p.name: Image.open(p).mode for p in paths}
    assert modes["00000004_000.png"] == "RGBA"
    y = np.arange(24)[:, None].astype(np.uint8)
    for channels in (1, 3):
        batches = list(make_dataset(paths, y, image_size=(32, 32), channels=channels, batch_size=10))
        assert [b[0].shape[0] for b in batches] == [10, 10, 4]
        x = np.concatenate([b[0].numpy() for b in batches])
        assert x.shape == (24, 32, 32, channels) and x.dtype == np.float32
        assert x.min() >= 0 and x.max() <= 255 and x.max() > 200
        # order and targets are kept when not shuffling
        np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches])[:, 0], np.arange(24))
    # full resolution: the RGBA file decodes to the same pixels as Pillow's own conversion
    rgba = folder / "00000004_000.png"
    full = next(iter(make_dataset([rgba], image_size=(1024, 1024), channels=1, batch_size=1))).numpy()[0, ..., 0]
    ref = np.asarray(Image.open(rgba).convert("L"), dtype=np.float32)
    assert np.abs(full - ref).max() <= 1.0
    rgb = next(iter(make_dataset([rgba], image_size=(1024, 1024), channels=3, batch_size=1))).numpy()[0]
    ref3 = np.asarray(Image.open(rgba).convert("RGB"), dtype=np.float32)
    assert np.abs(rgb - ref3).max() <= 1.0


def test_16bit_and_8bit_png_and_jpeg(tmp_path):
    rng = np.random.default_rng(0)
    a16 = rng.integers(0, 65536, size=(40, 48), dtype=np.uint16)
    Image.fromarray(a16).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    a8 = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
    Image.fromarray(a8).save(tmp_path / "rgb.png")
    Image.fromarray(a8).save(tmp_path / "rgb.jpg", quality=95)
    files = [tmp_path / "deep.png", tmp_path / "rgb.png", tmp_path / "rgb.jpg"]
    x = next(iter(make_dataset(files, image_size=(40, 48), channels=3, batch_size=3))).numpy()
    # 16-bit scaled to 0-255 (not clipped at 255, not divided by 256 twice); gray -> 3 equal channels
    np.testing.assert_allclose(x[0, ..., 0], a16 / 65535.0 * 255.0, atol=1e-3)
    np.testing.assert_array_equal(x[0, ..., 0], x[0, ..., 2])
    np.testing.assert_allclose(x[1], a8, atol=1e-3)
    jpeg_ref = np.asarray(Image.open(tmp_path / "rgb.jpg").convert("RGB"), dtype=np.float32)
    assert np.abs(x[2] - jpeg_ref).mean() < 3.0  # same JPEG decoded by Pillow (chroma upsampling differs)
    # RGB -> gray uses the ITU-R 601 luma weights, like Pillow's convert("L")
    g = next(iter(make_dataset([tmp_path / "rgb.png"], image_size=(40, 48), channels=1, batch_size=1))).numpy()
    ref = np.asarray(Image.fromarray(a8).convert("L"), dtype=np.float32)
    assert np.abs(g[0, ..., 0] - ref).max() <= 1.001  # libpng and Pillow round the luma differently


def test_resize_matches_area_average(tmp_path):
    a = np.kron(np.arange(16, dtype=np.uint8).reshape(4, 4) * 16, np.ones((8, 8), dtype=np.uint8))
    Image.fromarray(a).save(tmp_path / "blocks.png")
    x = next(iter(make_dataset([tmp_path / "blocks.png"], image_size=(4, 4), channels=1, batch_size=1))).numpy()
    np.testing.assert_allclose(x[0, ..., 0], np.arange(16).reshape(4, 4) * 16, atol=0.5)


def test_unreadable_file_is_named_and_skipped_only_on_request(tmp_path):
    good = require(NIH_IMAGES / "images") / "00000001_000.png"
    bad = tmp_path / "broken.png"
    bad.write_bytes(good.read_bytes()[:5000])  # truncated PNG: header fine, chunks cut
    junk = tmp_path / "notes.png"
    junk.write_text("this is not an image")
    paths = [good, bad, junk]
    y = np.eye(3, dtype=np.uint8)
    found = check_images(paths)
    assert set(found) == {str(bad), str(junk)}
    with pytest.raises(InputError) as e:
        make_dataset(paths, y, image_size=(16, 16), channels=1, batch_size=2)
    assert str(bad) in str(e.value) and str(junk) in str(e.value) and "skip" in str(e.value)
    with pytest.warns(UserWarning, match="skipping 2 unreadable") as w:
        ds = make_dataset(paths, y, image_size=(16, 16), channels=1, batch_size=2, skip_unreadable=True)
    assert str(bad) in str(w[0].message)
    xs, ys = zip(*[(a.numpy(), b.numpy()) for a, b in ds])
    assert np.concatenate(xs).shape == (1, 16, 16, 1)
    np.testing.assert_array_equal(np.concatenate(ys), y[:1])  # the targets stay aligned with the kept files
    np.testing.assert_array_equal(ds.labelwise_source.keep, [0])


def test_arrays_shuffle_is_seeded_per_epoch_and_resumable():
    x = np.arange(10, dtype=np.uint8)[:, None, None].repeat(4, 1).repeat(4, 2)
    y = np.arange(10)[:, None]
    kw = dict(image_size=(4, 4), channels=1, batch_size=4, shuffle=True, seed=3)

    def order(ds):
        return [int(v) for b in ds for v in b[1].numpy().ravel()]

    all3 = order(make_epoch_dataset(x, y, epochs=(0, 3), **kw))
    assert len(all3) == 30
    epochs = [all3[:10], all3[10:20], all3[20:]]
    assert all(sorted(e) == list(range(10)) for e in epochs)
    assert epochs[0] != epochs[1] != epochs[2]
    # an epoch's order depends on (seed, epoch) only: a run resumed at epoch 2 sees the same batches
    assert order(make_epoch_dataset(x, y, epochs=(2, 3), **kw)) == epochs[2]
    assert order(make_dataset(x, y, epoch=1, **kw)) == epochs[1]
    assert order(make_dataset(x, y, epoch=1, **{**kw, "seed": 4})) != epochs[1]
    # pixel values pass through unchanged, and x matches y after shuffling
    for a, b in make_dataset(x, y, **kw):
        np.testing.assert_array_equal(a.numpy()[:, 0, 0, 0], b.numpy()[:, 0])


def test_augmentation_is_seeded_and_bounded():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(6, 24, 24), dtype=np.uint8)
    aug = Augment(flip=True, rotate=10, shift=0.1, brightness=0.1, contrast=0.2)
    kw = dict(image_size=(24, 24), channels=1, batch_size=6, augment=aug, seed=5)
    a = next(iter(make_dataset(x, **kw))).numpy()
    b = next(iter(make_dataset(x, **kw))).numpy()
    c = next(iter(make_dataset(x, **kw, epoch=1))).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.allclose(a[..., 0], x)
    assert a.min() >= 0 and a.max() <= 255
    with pytest.raises(InputError, match="unknown augmentation"):
        Augment.from_any({"zoom": 0.1})


@pytest.mark.slow
def test_cache_gives_the_same_batches(tmp_path):
    rng = np.random.default_rng(2)
    files = []
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, size=(20, 20), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        files.append(tmp_path / f"{i}.png")
    kw = dict(image_size=(10, 10), channels=1, batch_size=2, shuffle=True, seed=0)
    plain = np.concatenate(list(make_dataset(files, **kw).as_numpy_iterator()))
    cached = np.concatenate(list(make_dataset(files, cache=True, **kw).as_numpy_iterator()))
    np.testing.assert_array_equal(plain, cached)


def test_bad_arguments_are_clear(tmp_path):
    with pytest.raises(InputError, match="match one to one"):
        make_dataset(np.zeros((3, 4, 4), np.uint8), np.zeros((2, 1)), image_size=(4, 4), channels=1, batch_size=1)
    with pytest.raises(InputError, match="no image files"):
        make_dataset(tmp_path, image_size=(4, 4), channels=1, batch_size=1)


def _formats(tmp_path):
    """One 20x24 RGB picture written as BMP, RGBA BMP, GIF and CMYK JPEG, plus a gray BMP."""
    rng = np.random.default_rng(0)
    rgb = np.kron(rng.integers(0, 256, (5, 6, 3)), np.ones((4, 4, 1))).astype(np.uint8)  # blocks: JPEG-friendly
    files = {}
    for name, img, kw in [("rgb.bmp", Image.fromarray(rgb), {}),
                          ("rgba.bmp", Image.fromarray(rgb).convert("RGBA"), {}),
                          ("gray.bmp", Image.fromarray(rgb[..., 0]), {}),
                          ("rgb.gif", Image.fromarray(rgb).quantize(256), {}),
                          ("cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), {"quality": 100})]:
        img.save(tmp_path / name, **kw)
        files[name] = tmp_path / name
    return rgb, files


@pytest.mark.slow
@pytest.mark.parametrize("channels", [1, 3])
def test_bmp_gif_and_cmyk_jpeg_decode_for_gray_and_rgb_models(tmp_path, channels):
    rgb, files = _formats(tmp_path)
    paths = list(files.values())
    assert check_images(paths, channels=channels) == {}
    x = np.concatenate([b.numpy() for b in make_dataset(paths, image_size=(20, 24), channels=channels,
                                                        batch_size=8)])
    assert x.shape == (len(paths), 20, 24, channels)
    for name, img in zip(files, x):
        ref = Image.open(files[name]).convert("RGB")
        ref = np.asarray(ref.convert("L") if channels == 1 else ref, dtype=np.float32).reshape(img.shape)
        diff = np.abs(img - ref)
        if name == "cmyk.jpg":  # lossy, and libjpeg's and Pillow's CMYK -> RGB differ a little
            assert diff.mean() <= 4.0 and diff.max() <= 24.0, (name, diff.mean(), diff.max())
        else:  # lossless formats: the same pixels as Pillow's own conversion
            assert diff.max() <= 1.0, name


def test_files_pillow_accepts_but_tensorflow_cannot_decode_are_named(tmp_path):
    rng = np.random.default_rng(1)
    good = tmp_path / "good.png"
    Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(good)
    tiff = tmp_path / "tiff.png"  # a TIFF under a .png name
    Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(tiff, format="TIFF")
    # A PNG whose deflate stream is damaged but whose chunk CRCs are right: verify() passes
    import struct
    import zlib

    raw = good.read_bytes()
    start = raw.index(b"IDAT") - 4
    length = struct.unpack(">I", raw[start:start + 4])[0]
    payload = bytearray(raw[start + 8:start + 8 + length])
    payload[2:12] = b"\xff" * 10
    chunk = b"IDAT" + bytes(payload)
    deflate = tmp_path / "deflate.png"
    deflate.write_bytes(raw[:start + 8] + bytes(payload) + struct.pack(">I", zlib.crc32(chunk))
                        + raw[start + 12 + length:])
    with Image.open(deflate) as im:
        im.verify()  # the old check let this through
    for channels in (1, 3):
        bad = check_images([good, tiff, deflate], channels=channels)
        assert list(bad) == [str(tiff), str(deflate)]
        assert "TIFF" in bad[str(tiff)] and "convert" in bad[str(tiff)]
        assert "TensorFlow cannot decode" in bad[str(deflate)]
    with pytest.raises(InputError, match=r"(?s)2 of 3 image file\(s\).*tiff\.png.*deflate\.png.*--skip-unreadable"):
        make_dataset([good, tiff, deflate], image_size=(16, 16), channels=1, batch_size=2)
    with pytest.warns(UserWarning, match="tiff.png"):
        ds = make_dataset([good, tiff, deflate], image_size=(16, 16), channels=1, batch_size=2, skip_unreadable=True)
    assert list(ds.labelwise_source.keep) == [0]
    assert sum(b.shape[0] for b in ds) == 1


def test_check_images_reports_progress(tmp_path, capsys):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.full((8, 8), i * 40, dtype=np.uint8)).save(paths[-1])
    assert check_images(paths, channels=1, verbose=1) == {}
    out = capsys.readouterr().out
    assert "checking 3 image file(s)" in out and "checked 3 image file(s)" in out and "all readable" in out
