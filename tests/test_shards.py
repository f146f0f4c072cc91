"""labelwise.data.shards and `labelwise shard`: TFRecord shards of the 24 real NIH PNGs read back
exactly as the loose files are read (ids, labels, pixels), split per worker, written atomically."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import NIH_IMAGES, require

pytest.importorskip("tensorflow")

from labelwise.errors import InputError  # noqa: E402

TABLE = NIH_IMAGES / "labels.csv"
IMAGES = NIH_IMAGES / "images"
RGBA = "00000004_000.png"


@pytest.fixture(scope="module")
def table():
    from labelwise.labels.tables import read_table

    return read_table(require(TABLE), images=require(IMAGES))


@pytest.fixture(scope="module")
def shard_dir(table, tmp_path_factory):
    from labelwise.data.shards import write_shards

    out = tmp_path_factory.mktemp("shards")
    messages = []
    index = write_shards(table, IMAGES, out, shard_size=10, group_column="Patient ID", progress=messages.append)
    assert len(messages) == 3 and "24/24" in messages[-1]
    assert index["n_examples"] == 24
    return out


def _read_all(ds):
    images, ys, ids = [], [], []
    for batch in ds.as_numpy_iterator():
        images.append(batch[0])
        ys.append(batch[1])
        if len(batch) > 2:
            ids += [i.decode() for i in batch[2]]
    return np.concatenate(images), np.concatenate(ys), ids


def test_index_and_files(shard_dir, table):
    index = json.loads((shard_dir / "index.json").read_text())
    assert [s["file"] for s in index["shards"]] == [f"shard-0000{k}-of-00003.tfrecord" for k in range(3)]
    assert [s["count"] for s in index["shards"]] == [10, 10, 4]
    assert index["labels"] == list(table.schema.labels)
    assert index["label_counts"] == {lab: int(c) for lab, c in zip(table.schema.labels, table.y.sum(axis=0))}
    assert index["label_counts"]["Hernia"] == 8 and index["label_counts"]["No Finding"] == 9
    assert sum(s["image_bytes"] for s in index["shards"]) == sum(p.stat().st_size for p in IMAGES.glob("*.png"))
    assert not [p.name for p in shard_dir.iterdir() if p.name.startswith(".")]  # no temp files left


@pytest.mark.slow
@pytest.mark.parametrize("channels", [1, 3])
def test_round_trip_equals_loose_files(shard_dir, table, channels):
    from labelwise.data import pipeline
    from labelwise.data.shards import read_shards

    ds = read_shards(shard_dir, image_size=(64, 64), channels=channels, batch_size=7, with_ids=True)
    x, y, ids = _read_all(ds)
    assert ids == [str(i) for i in table.ids]
    np.testing.assert_array_equal(y, table.y.astype(np.float32))
    loose = pipeline.load_images(list(table.paths), image_size=(64, 64), channels=channels)
    assert x.shape == (24, 64, 64, channels) and x.dtype == np.float32
    np.testing.assert_array_equal(x, loose)
    assert x.std() > 10  # real pixels, not a constant


@pytest.mark.slow
def test_native_size_pixels_equal_pillow(shard_dir, table):
    """Independent of TF's decoder on the loose-file side: Pillow's pixels, gray and the RGBA one."""
    from PIL import Image

    from labelwise.data.shards import read_shards

    ds = read_shards(shard_dir, image_size=1024, channels=3, batch_size=1, with_ids=True)
    rgba = [str(i) for i in table.ids].index(RGBA)
    checked = 0
    for x, _, ids in ds.take(3).concatenate(ds.skip(rgba).take(1)).as_numpy_iterator():
        name = ids[0].decode()
        with Image.open(IMAGES / name) as im:
            ref = np.asarray(im.convert("RGB"), dtype=np.float32)  # RGBA -> RGB drops alpha, as TF does
        # pipeline decodes to [0, 1] floats and multiplies by 255: 8 comes back as 7.9999995
        np.testing.assert_allclose(x[0], ref, rtol=0, atol=1e-3, err_msg=name)
        checked += name == RGBA
    assert checked == 1  # the RGBA image was among them


@pytest.mark.slow
def test_outputs_columns_drop_the_none_label(shard_dir, table):
    from labelwise.data.shards import read_shards

    ds = read_shards(shard_dir, image_size=8, channels=1, batch_size=24, y_columns="outputs")
    _, y, _ = _read_all(ds)
    np.testing.assert_array_equal(y, table.y[:, : table.schema.n_outputs])
    with pytest.raises(InputError, match="y_columns"):
        read_shards(shard_dir, image_size=8, channels=1, batch_size=4, y_columns="some")


@pytest.mark.slow
def test_workers_get_disjoint_files_covering_all(shard_dir, table):
    import tensorflow as tf

    from labelwise.data.shards import read_shards

    seen = []
    for w in range(2):
        ds = read_shards(shard_dir, image_size=8, channels=1, batch_size=5, with_ids=True, num_workers=2, worker_index=w)
        seen.append(_read_all(ds)[2])
    assert seen[0] == [str(i) for i in table.ids[:10]] + [str(i) for i in table.ids[20:]]
    assert seen[1] == [str(i) for i in table.ids[10:20]]
    with pytest.raises(InputError, match="cannot be split over 4 workers"):
        read_shards(shard_dir, image_size=8, channels=1, batch_size=5, num_workers=4, worker_index=0)
    auto = read_shards(shard_dir, image_size=8, channels=1, batch_size=5)
    assert auto.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.FILE


@pytest.mark.slow
def test_shuffle_is_seeded_permutation(shard_dir, table):
    from labelwise.data.shards import read_shards

    def order(seed):
        ds = read_shards(shard_dir, image_size=8, channels=1, batch_size=24, with_ids=True, shuffle=True, seed=seed)
        return _read_all(ds)[2]

    a, b = order(3), order(3)
    assert a == b and sorted(a) == sorted(str(i) for i in table.ids) and a != [str(i) for i in table.ids]


def test_refuses_to_mix_runs_and_overwrites_on_request(shard_dir, table, tmp_path):
    from labelwise.data.shards import read_shards, write_shards

    with pytest.raises(InputError, match="already holds shards.*--overwrite"):
        write_shards(table, IMAGES, shard_dir, shard_size=10, progress=False)
    out = tmp_path / "s"
    write_shards(table, IMAGES, out, shard_size=10, progress=False)
    write_shards(table.subset(np.arange(5)), IMAGES, out, shard_size=2, progress=False, overwrite=True)
    assert sorted(p.name for p in out.glob("*.tfrecord")) == [f"shard-0000{k}-of-00003.tfrecord" for k in range(3)]
    _, y, ids = _read_all(read_shards(out, image_size=8, channels=1, batch_size=8, with_ids=True))
    assert ids == [str(i) for i in table.ids[:5]]


@pytest.mark.slow
def test_unreadable_image_is_named(table, tmp_path):
    from labelwise.data.shards import read_shards, write_shards
    from labelwise.labels.tables import read_table

    images = tmp_path / "images"
    shutil.copytree(IMAGES, images)
    bad = images / "00000002_000.png"
    bad.write_bytes(bad.read_bytes()[:3000])  # truncated PNG
    t = read_table(TABLE, images=images)
    with pytest.raises(InputError, match=r"1 of 24 image file\(s\) cannot be read:\n.*00000002_000.png"):
        write_shards(t, images, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "index.json").exists()
    with pytest.warns(UserWarning, match="skipping 1 unreadable"):
        index = write_shards(t, images, tmp_path / "out", progress=False, skip_unreadable=True)
    assert index["n_examples"] == 23 and list(index["skipped"]) == [str(bad)]
    _, _, ids = _read_all(read_shards(tmp_path / "out", image_size=8, channels=1, batch_size=8, with_ids=True))
    assert "00000002_000.png" not in ids and len(ids) == 23


def test_missing_index_is_a_clear_error(tmp_path):
    from labelwise.data.shards import read_shards

    (tmp_path / "shard-00000-of-00001.tfrecord").write_bytes(b"")
    with pytest.raises(InputError, match="no index.json: not a finished shard folder"):
        read_shards(tmp_path, image_size=8, channels=1, batch_size=1)
    with pytest.raises(InputError, match="no such shard folder"):
        read_shards(tmp_path / "nope", image_size=8, channels=1, batch_size=1)


@pytest.mark.slow
def test_cli_shard(tmp_path, capsys):
    from labelwise.commands.cli import main
    from labelwise.data.shards import read_shards

    out = tmp_path / "cli"
    rc = main(["shard", str(require(TABLE)), "--images", str(IMAGES), "--out", str(out), "--shard-size", "8"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "24 images" in captured.out and "3 shard(s)" in captured.out and "(24/24 images)" in captured.err
    index = json.loads((out / "index.json").read_text())
    assert index["group_column"] == "Patient ID"
    rc = main(["shard", str(TABLE), "--images", str(IMAGES), "--out", str(out)])
    assert rc == 2 and "already holds shards" in capsys.readouterr().err
    ds = read_shards(out, image_size=8, channels=1, batch_size=24)
    assert next(iter(ds))[0].shape == (24, 8, 8, 1)


def test_schema_remaps_columns_by_name_or_names_both_label_lists(shard_dir, table):
    from labelwise import LabelSchema
    from labelwise.data.shards import read_shards

    s = table.schema
    reordered = LabelSchema(independent=tuple(reversed(s.independent)), exclusive=s.exclusive, none=s.none)
    assert reordered.labels != s.labels
    _, y, _ = _read_all(read_shards(shard_dir, image_size=8, channels=1, batch_size=24, schema=reordered))
    cols = [list(s.labels).index(lab) for lab in reordered.labels]
    np.testing.assert_array_equal(y, table.y[:, cols])
    other = LabelSchema(independent=("Hernia", "Mass"))
    with pytest.raises(InputError, match=r"(?s)shards hold labels \[.*'Cardiomegaly'.*but this run's schema has "
                                         r"labels \['Hernia', 'Mass'\].*--schema"):
        read_shards(shard_dir, image_size=8, channels=1, batch_size=4, schema=other)


def test_check_train_shards_refuses_holdout_ids_and_too_few_files(shard_dir, table, tmp_path):
    from labelwise.data.shards import check_train_shards, shard_ids

    ids = [str(i) for i in table.ids]
    assert check_train_shards(shard_dir, table.schema, holdout={"val": ["nope.png"], "test": None},
                              num_workers=3)["n_examples"] == 24
    with pytest.raises(InputError, match=r"2 of the shards' 24 images are in this run's test split.*--split train"):
        check_train_shards(shard_dir, table.schema, holdout={"val": [], "test": ids[5:7]})
    with pytest.raises(InputError, match=r"3 shard file\(s\) cannot be split over 4 workers.*--shard-size 6"):
        check_train_shards(shard_dir, table.schema, num_workers=4)
    # an index written before ids were recorded: the ids come from the records
    old = tmp_path / "old"
    shutil.copytree(shard_dir, old)
    index = json.loads((old / "index.json").read_text())
    del index["ids"]
    (old / "index.json").write_text(json.dumps(index))
    assert shard_ids(old) == ids == shard_ids(shard_dir)
    assert shard_ids(old / "shard-00001-of-00003.tfrecord".replace("00001", "0000[1]")) == ids[10:20]
