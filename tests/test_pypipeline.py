"""The backend-neutral Python pipeline: same pixels as tf.data (stated tolerance), deterministic
epochs and augmentation, the same file checks. TensorFlow is needed only for the comparisons."""

from __future__ import annotations

import io
import math
import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from labelwise.data import pypipeline as pp  # noqa: E402
from labelwise.errors import InputError  # noqa: E402

from conftest import NIH_IMAGES, require  # noqa: E402

PIXEL_TOL = 0.01  # of 255: PNG/BMP/GIF/arrays after resize, the module docstring's promise


def _tf():
    tf = pytest.importorskip("tensorflow")
    from labelwise.data import pipeline as tp

    return tf, tp


def _smooth(h=48, w=64):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([128 + 100 * np.sin(xx / 7), 128 + 100 * np.cos(yy / 9), (3 * xx + 2 * yy) % 256],
                    -1).astype(np.uint8)


def _save(tmp_path, name, array, fmt=None, **kw):
    from PIL import Image

    path = tmp_path / name
    Image.fromarray(array).save(path, format=fmt, **kw)
    return str(path)


# ------------------------------------------------------------------ resize, no TensorFlow
@pytest.mark.backend
def test_area_shrink_by_whole_factor_is_the_block_mean():
    x = np.random.default_rng(0).uniform(0, 255, (8, 6, 2)).astype(np.float32)
    expect = x.reshape(4, 2, 3, 2, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(pp.resize(x, (4, 3)), expect, rtol=0, atol=1e-4)


@pytest.mark.backend
def test_area_shrink_fractional_footprint_by_hand():
    # 3 -> 2: output 0 covers [0, 1.5): pixel 0 whole, half of pixel 1 -> (a + b/2) / 1.5
    x = np.array([3.0, 6.0, 12.0], np.float32).reshape(3, 1, 1)
    np.testing.assert_allclose(pp.resize(x, (2, 1))[:, 0, 0], [(3 + 3) / 1.5, (3 + 12) / 1.5], atol=1e-5)


@pytest.mark.backend
def test_bilinear_enlarge_by_hand():
    # 2 -> 4 px, half-pixel centres: samples at 0.25, 0.75, 1.25, 1.75 -> 0, 2.5, 7.5, 10
    x = np.array([0.0, 10.0], np.float32).reshape(1, 2, 1)
    np.testing.assert_allclose(pp.resize(x, (1, 4))[0, :, 0], [0, 2.5, 7.5, 10], atol=1e-5)


@pytest.mark.backend
def test_right_size_is_untouched_and_gray_repeats_after_resize():
    x = np.random.default_rng(1).uniform(0, 255, (10, 12, 1)).astype(np.float32)
    assert np.array_equal(pp.resize(x, (10, 12)), x)
    rgb = pp.prepare(x, (5, 6), 3)
    assert rgb.shape == (5, 6, 3)
    np.testing.assert_allclose(rgb[..., 0], pp.resize(x, (5, 6))[..., 0])
    assert np.array_equal(rgb[..., 0], rgb[..., 2])


# ------------------------------------------------------------------ against tf.data
@pytest.mark.parametrize("shape,size", [((1024, 1024), (224, 224)), ((100, 37), (64, 64)), ((50, 80), (64, 40)),
                                        ((30, 30), (224, 224)), ((300, 200), (224, 199)), ((7, 5), (3, 2))])
def test_resize_matches_tf(shape, size):
    tf, tp = _tf()
    x = np.random.default_rng(2).uniform(0, 255, (*shape, 3)).astype(np.float32)
    diff = np.abs(tp._resize(tf.constant(x), size).numpy() - pp.resize(x, size))
    assert diff.max() < PIXEL_TOL


def test_decoded_files_match_tf(tmp_path):
    tf, tp = _tf()
    rng = np.random.default_rng(3)
    files = {
        "rgb.png": _save(tmp_path, "rgb.png", _smooth()),
        "noise_rgb.png": _save(tmp_path, "noise_rgb.png", rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)),
        "rgba.png": _save(tmp_path, "rgba.png", rng.integers(0, 256, (40, 30, 4), dtype=np.uint8)),
        "gray.png": _save(tmp_path, "gray.png", _smooth()[..., 0]),
        "gray16.png": _save(tmp_path, "gray16.png", rng.integers(0, 65536, (30, 20)).astype(np.uint16)),
        "rgb.bmp": _save(tmp_path, "rgb.bmp", _smooth()),
        "rgb.gif": _save(tmp_path, "rgb.gif", _smooth()),
    }
    for name, path in files.items():
        for channels in (1, 3):
            for size in ((32, 40), (64, 96)):
                want = tp.decode_image_bytes(tf.io.read_file(path), image_size=size, channels=channels).numpy()
                got = pp.prepare(pp.decode_file(path, channels), size, channels)
                assert got.shape == want.shape, name
                assert np.abs(got - want).max() < PIXEL_TOL, (name, channels, size)


def test_jpeg_differs_only_by_the_idct(tmp_path):
    tf, tp = _tf()
    path = _save(tmp_path, "x.jpg", _smooth(64, 80), "JPEG", quality=90)
    for channels in (1, 3):
        want = tp.decode_image_bytes(tf.io.read_file(path), image_size=(64, 80), channels=channels).numpy()
        got = pp.prepare(pp.decode_file(path, channels), (64, 80), channels)
        assert np.abs(got - want).mean() < 1.5 and np.abs(got - want).max() <= 5.0
    # TensorFlow with the accurate IDCT decodes the very same bytes
    exact = tf.io.decode_jpeg(tf.io.read_file(path), channels=3, dct_method="INTEGER_ACCURATE").numpy()
    assert np.array_equal(pp.decode_file(path, 3), exact.astype(np.float32))


@pytest.mark.slow
def test_nih_pngs_same_batches_as_tf_pipeline():
    tf, tp = _tf()
    files = sorted(str(p) for p in (require(NIH_IMAGES) / "images").glob("*.png"))[11:14]  # one is RGBA
    y = np.eye(3, dtype=np.float32)
    for channels in (1, 3):
        kw = dict(image_size=(96, 80), channels=channels, batch_size=2)
        want = list(tp.make_dataset(files, y, **kw).as_numpy_iterator())
        got = list(pp.make_dataset(files, y, **kw).as_numpy_iterator())
        assert len(got) == len(want) == 2
        for (gx, gy), (wx, wy) in zip(got, want):
            assert gx.shape == wx.shape and np.abs(gx - wx).max() < PIXEL_TOL
            assert np.array_equal(gy, wy)


def test_transform_matches_tf_projective_transform():
    tf, _ = _tf()
    x = np.random.default_rng(4).uniform(0, 255, (40, 50, 3)).astype(np.float32)
    h, w = x.shape[:2]
    for angle, dx, dy in [(0.1, 2.5, -1.3), (-0.3, 0.0, 0.0), (0.0, 3.7, 4.1)]:
        cos, sin = math.cos(angle), math.sin(angle)
        cx, cy = (w - 1) / 2, (h - 1) / 2
        t = tf.constant([[cos, -sin, cx - cos * cx + sin * cy - dx, sin, cos, cy - sin * cx - cos * cy - dy, 0, 0]],
                        tf.float32)
        want = tf.raw_ops.ImageProjectiveTransformV3(images=x[None], transforms=t, output_shape=[h, w],
                                                     fill_value=0.0, interpolation="BILINEAR",
                                                     fill_mode="NEAREST")[0].numpy()
        assert np.abs(pp.transform(x, angle, dx, dy) - want).max() < PIXEL_TOL


# ------------------------------------------------------------------ decode details, no TensorFlow
@pytest.mark.backend
def test_exif_orientation_is_applied(tmp_path):
    from PIL import Image

    a = _smooth(30, 50)
    plain = _save(tmp_path, "plain.png", a)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    path = tmp_path / "rot.png"
    Image.fromarray(a).save(path, exif=exif.tobytes())
    got = pp.decode_file(path, 3)
    assert got.shape == (50, 30, 3)
    assert np.array_equal(got, np.rot90(pp.decode_file(plain, 3), k=-1))


@pytest.mark.backend
def test_transform_integer_shift_is_a_clamped_roll():
    x = np.arange(5 * 6, dtype=np.float32).reshape(5, 6, 1)
    got = pp.transform(x, 0.0, 2.0, 0.0)  # content moves right by 2, left edge repeats column 0
    cols = np.clip(np.arange(6) - 2, 0, 5)
    np.testing.assert_allclose(got, x[:, cols], atol=1e-4)


# ------------------------------------------------------------------ order, augmentation, resume
@pytest.mark.backend
def test_epochs_are_permutations_seeded_by_seed_and_epoch_and_resume_exactly():
    n, b = 11, 4
    x = np.random.default_rng(5).uniform(0, 255, (n, 12, 10, 1)).astype(np.float32)
    y = np.arange(n, dtype=np.float32)[:, None]
    kw = dict(image_size=(8, 8), channels=1, batch_size=b, shuffle=True, seed=7,
              augment={"rotate": 10.0, "shift": 0.1, "brightness": 0.1, "contrast": 0.2, "flip": True})
    full = list(pp.make_epoch_dataset(x, y, epochs=(0, 3), **kw).as_numpy_iterator())
    steps = math.ceil(n / b)
    assert len(full) == 3 * steps
    orders = [np.concatenate([full[e * steps + s][1][:, 0] for s in range(steps)]).astype(int) for e in range(3)]
    for o in orders:
        assert sorted(o) == list(range(n))
        assert not np.array_equal(o, np.arange(n))
    assert not np.array_equal(orders[0], orders[1])
    assert np.array_equal(orders[1], pp.epoch_order(n, 7, 1, True))
    resumed = list(pp.make_epoch_dataset(x, y, epochs=(2, 3), **kw).as_numpy_iterator())
    for (rx, ry), (fx, fy) in zip(resumed, full[2 * steps:]):
        assert np.array_equal(rx, fx) and np.array_equal(ry, fy)
    # the augmentation of image i in epoch e is augment_image(prepare(x[i]), seed, e, i)
    i = int(orders[2][0])
    want = pp.augment_image(pp.prepare(x[i], (8, 8), 1), pp.Augment.from_any(kw["augment"]), 7, 2, i)
    assert np.array_equal(full[2 * steps][0][0], want)
    # another seed, another order
    other = pp.make_epoch_dataset(x, y, epochs=(0, 1), **{**kw, "seed": 8})
    assert not np.array_equal(np.concatenate([other[s][1][:, 0] for s in range(steps)]), orders[0])


@pytest.mark.backend
def test_process_shards_join_into_the_global_batches():
    n, b = 10, 4
    x = np.random.default_rng(6).uniform(0, 255, (n, 6, 6, 1)).astype(np.float32)
    y = np.arange(n, dtype=np.float32)[:, None]
    kw = dict(image_size=(6, 6), channels=1, batch_size=b, shuffle=True, seed=3)
    whole = [yb[:, 0] for _, yb in pp.make_epoch_dataset(x, y, **kw).as_numpy_iterator()]
    parts = [[yb[:, 0] for _, yb in pp.make_epoch_dataset(x, y, process_shard=(2, k, 2), **kw).as_numpy_iterator()]
             for k in range(2)]
    for s, batch in enumerate(whole[:-1]):
        assert np.array_equal(np.concatenate([parts[0][s], parts[1][s]]), batch)
    assert np.array_equal(np.concatenate([parts[0][-1], parts[1][-1]]), whole[-1])  # 2 left: one each


# ------------------------------------------------------------------ file checks
@pytest.mark.backend
def test_bad_files_are_named_or_skipped(tmp_path):
    from PIL import Image

    good = _save(tmp_path, "good.png", _smooth())
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(open(good, "rb").read()[:200])
    tiff = tmp_path / "really_tiff.png"
    Image.fromarray(_smooth()).save(tiff, format="TIFF")
    missing = tmp_path / "missing.png"
    paths = [good, str(truncated), str(tiff), str(missing)]
    with pytest.raises(InputError) as e:
        pp.make_dataset(paths, image_size=8, channels=3, batch_size=2)
    for p in paths[1:]:
        assert str(p) in str(e.value)
    assert "TIFF" in str(e.value) and "--skip-unreadable" in str(e.value)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ds = pp.make_dataset(paths, image_size=8, channels=3, batch_size=2, skip_unreadable=True)
    assert any("skipping 3 unreadable" in str(m.message) for m in w)
    assert list(ds.labelwise_source.keep) == [0]
    assert ds[0].shape == (1, 8, 8, 3)


@pytest.mark.backend
def test_a_cut_jpeg_is_caught_by_the_decode(tmp_path):
    good = _save(tmp_path, "good.png", _smooth())
    raw = open(_save(tmp_path, "x.jpg", _smooth(64, 64), "JPEG"), "rb").read()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(raw[: len(raw) // 3])  # a JPEG has no checksum: only decoding finds this
    bad = pp.python_failures([str(cut), good], 3, 0)
    assert list(bad) == [str(cut)] and "cannot be decoded" in bad[str(cut)]


@pytest.mark.backend
def test_keras_fit_reads_the_dataset_epoch_by_epoch():
    import keras

    n, b = 9, 4
    x = np.random.default_rng(8).uniform(0, 255, (n, 8, 8, 1)).astype(np.float32)
    y = (np.arange(n) % 2).astype(np.float32)[:, None]
    ds = pp.make_epoch_dataset(x, y, image_size=(8, 8), channels=1, batch_size=b, shuffle=True, epochs=(0, 2))
    seen = []
    orig = ds.__class__.__getitem__

    class Spy(ds.__class__):
        def __getitem__(self, k):
            seen.append(k)
            return orig(self, k)

    ds.__class__ = Spy
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(1, "sigmoid")])
    model.compile("sgd", "binary_crossentropy")
    model.fit(ds, epochs=2, steps_per_epoch=math.ceil(n / b), verbose=0, shuffle=False)  # as train() calls it
    assert [k for k in seen if k >= 0][-2 * 3:] == list(range(6))


def test_served_image_bytes_decode_the_same_without_tensorflow(tmp_path):
    _tf()
    from labelwise.training import predict as p

    data = [open(_save(tmp_path, "a.png", _smooth()), "rb").read(),
            open(_save(tmp_path, "b.png", _smooth(30, 20)[..., 0]), "rb").read()]
    for channels in (1, 3):
        want = p.image_inputs(data, image_size=(24, 16), channels=channels)
        got = p._python_image_inputs(data, (24, 16), channels)  # what image_inputs runs without TensorFlow
        assert got.shape == want.shape and np.abs(got - want).max() < PIXEL_TOL
    with pytest.raises(InputError, match="cannot decode"):
        p._python_image_inputs([b"not an image"], (8, 8), 3)
