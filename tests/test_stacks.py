"""Stack readers on small synthetic .npy stacks in MRNet's layout and in a plain CSV layout."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.errors import InputError, TableError
from labelwise.data.stacks import pad_stack, read_cases, read_mrnet, read_stack_table

LENGTHS = {"0000": 3, "0001": 5, "0002": 2}


def _mrnet(root, labels=None):
    r = np.random.default_rng(0)
    folder = root / "train" / "axial"
    folder.mkdir(parents=True)
    stacks = {}
    for cid, n in LENGTHS.items():
        stacks[cid] = r.integers(0, 256, (n, 6, 6)).astype(np.uint8)
        np.save(folder / f"{cid}.npy", stacks[cid])
    labels = labels or {"abnormal": [1, 1, 0], "acl": [0, 1, 0], "meniscus": [1, 0, 0]}
    for name, vals in labels.items():
        # MRNet's files: no header; the meniscus file lists the cases in another order
        rows = [f"{cid},{v}" for cid, v in zip(LENGTHS, vals)]
        if name == "meniscus":
            rows = rows[::-1]
        (root / f"train-{name}.csv").write_text("\n".join(rows) + "\n")
    return stacks


def test_read_mrnet_merges_per_label_files(tmp_path):
    stacks = _mrnet(tmp_path)
    ds = read_mrnet(tmp_path, "train", "axial")
    assert ds.case_ids == ["0000", "0001", "0002"] and ds.labels == ("abnormal", "acl", "meniscus")
    assert ds.targets.tolist() == [[1, 0, 1], [1, 1, 0], [0, 0, 0]]
    arrays = list(ds.arrays())
    for cid, a in zip(ds.case_ids, arrays):
        np.testing.assert_array_equal(a, stacks[cid])
    batch, mask, y = next(ds.batches(2))
    assert batch.shape == (2, 5, 6, 6, 1) and mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert y.tolist() == [[1, 0, 1], [1, 1, 0]]


def test_mrnet_ids_without_zero_padding_find_their_files(tmp_path):
    _mrnet(tmp_path)
    for name in ("abnormal", "acl", "meniscus"):
        (tmp_path / f"train-{name}.csv").write_text("0,1\n1,0\n2,1\n")
    ds = read_mrnet(tmp_path)
    assert [p.name for p in ds.paths] == ["0000.npy", "0001.npy", "0002.npy"]


def test_mrnet_errors_name_the_file_and_case(tmp_path):
    _mrnet(tmp_path)
    (tmp_path / "train-acl.csv").write_text("0000,0\n0001,1\n")
    with pytest.raises(TableError, match=r"train-acl.csv: case '0002' is not listed"):
        read_mrnet(tmp_path)
    (tmp_path / "train-acl.csv").write_text("id,label\n0000,0\n")
    with pytest.raises(TableError, match="row 1.*header"):
        read_mrnet(tmp_path)
    (tmp_path / "train-acl.csv").write_text("0000,0\n0001,1\n0002,0\n")
    (tmp_path / "train" / "axial" / "0001.npy").unlink()
    with pytest.raises(InputError, match="no stack file for case '0001'"):
        read_mrnet(tmp_path)
    with pytest.raises(InputError, match="plane"):
        read_mrnet(tmp_path, plane="oblique")


def test_plain_csv_layout(tmp_path):
    folder = tmp_path / "stacks"
    folder.mkdir()
    for cid, n in (("knee_a", 4), ("knee_b", 1)):
        np.save(folder / f"{cid}.npy", np.full((n, 3, 3), n, dtype=np.int16))
    (tmp_path / "labels.csv").write_text("case,tear,effusion\nknee_a,1,0\nknee_b,0,1\n")
    ds = read_stack_table(tmp_path / "labels.csv", folder)
    assert ds.case_ids == ["knee_a", "knee_b"] and ds.labels == ("tear", "effusion")
    assert ds.targets.tolist() == [[1, 0], [0, 1]]
    assert [a.shape for a in ds.arrays()] == [(4, 3, 3), (1, 3, 3)]
    (tmp_path / "bad.csv").write_text("case,tear\nknee_a,yes\n")
    with pytest.raises(TableError, match=r"row 2: column 'tear' must be 0 or 1"):
        read_stack_table(tmp_path / "bad.csv", folder)


def test_read_cases_for_prediction(tmp_path):
    """Cases without labels: a folder, one file, a list, a table with a header or MRNet's headerless file."""
    stacks = _mrnet(tmp_path)
    folder = tmp_path / "train" / "axial"
    ds = read_cases(folder)
    assert ds.case_ids == ["0000", "0001", "0002"] and ds.targets.shape == (3, 0) and ds.labels == ()
    np.testing.assert_array_equal(ds.load(1), stacks["0001"])
    with pytest.raises(InputError, match=r"holds no \.npy stacks.*subfolder\(s\) axial do"):
        read_cases(tmp_path / "train")
    assert read_cases(folder / "0002.npy").case_ids == ["0002"]
    assert read_cases([folder / "0002.npy"]).paths == [folder / "0002.npy"]
    # MRNet's label file has no header; "1" finds 0001.npy; ids are kept as the table writes them
    (tmp_path / "valid.csv").write_text("0002,1\n1,0\n")
    ds = read_cases(tmp_path / "valid.csv", folder)
    assert ds.case_ids == ["0002", "1"] and ds.paths == [folder / "0002.npy", folder / "0001.npy"]
    # a header, an id column found by name, .npy paths relative to the table's folder
    (folder / "t.csv").write_text("label,exam\n1,0000.npy\n0,0001\n")
    assert read_cases(folder / "t.csv").paths == [folder / "0000.npy", folder / "0001.npy"]
    (folder / "dup.csv").write_text("case\n0000\n0\n0000\n")
    with pytest.raises(TableError, match=r"case '0000' appears twice \(rows 2 and 4\)"):
        read_cases(folder / "dup.csv")
    (folder / "empty_id.csv").write_text("case,x\n0000,1\n,0\n")
    with pytest.raises(TableError, match=r"row 3: the case id .* is empty"):
        read_cases(folder / "empty_id.csv")
    (folder / "a.png").write_bytes(b"png")
    (folder / "img.csv").write_text("case\na.png\n")
    with pytest.raises(InputError, match=r"img\.csv, row 2: .*a\.png is not a \.npy stack"):
        read_cases(folder / "img.csv")
    with pytest.raises(InputError, match="does not exist"):
        read_cases(tmp_path / "nowhere")
    (folder / "0003.npy").write_bytes(b"")
    with pytest.raises(InputError, match=r"0003\.npy: cannot read .*the file is empty"):
        read_cases(folder).load(3)


def test_pad_stack_pads_crops_and_checks_shapes():
    a = np.arange(3 * 2 * 2).reshape(3, 2, 2)
    b = np.arange(5 * 2 * 2).reshape(5, 2, 2) + 100
    batch, mask = pad_stack([a, b])
    assert batch.shape == (2, 5, 2, 2, 1)
    np.testing.assert_array_equal(batch[0, :3, ..., 0], a)
    assert np.all(batch[0, 3:] == 0)
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1] * 5]
    batch, mask = pad_stack([a, b], max_len=3, channel_axis=False)
    np.testing.assert_array_equal(batch[1], b[1:4])  # the central 3 of 5 slices
    assert batch.shape == (2, 3, 2, 2) and mask.sum() == 6
    with pytest.raises(InputError, match="more than max_len"):
        pad_stack([a, b], max_len=3, long="error")
    with pytest.raises(InputError, match=r"stack 'k2' has slices of shape \(3, 3\)"):
        pad_stack([a, np.zeros((2, 3, 3))], names=["k1", "k2"])


@pytest.mark.slow
def test_mrnet_stacks_feed_a_case_model(tmp_path):
    pytest.importorskip("keras")
    from labelwise import LabelSchema
    from labelwise.blocks.models import build_case_model

    _mrnet(tmp_path)
    ds = read_mrnet(tmp_path)
    schema = LabelSchema(list(ds.labels))
    model = build_case_model(schema, "small_cnn", image_shape=(6, 6, 1), weights=None, case_pooling="attention",
                             attention_units=4)
    batch, mask = pad_stack(list(ds.arrays()))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit([batch, mask], ds.targets.astype("float32"), epochs=1, verbose=0)
    out = model.predict([batch, mask], verbose=0)
    assert out.shape == (3, 3) and np.all((out > 0) & (out < 1))
