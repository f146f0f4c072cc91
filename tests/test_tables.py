"""Label-table readers on the real shared data, and every bad-input case with its message."""

from __future__ import annotations

import gzip
import shutil
import struct

import numpy as np
import pandas as pd
import pytest

from conftest import CHEXNET_SPLIT, MNIST_IDX, NIH_FINDINGS, NIH_IMAGES, NIH_TABLE, require
from labelwise import LabelSchema, SchemaViolation, TableError
from labelwise.labels.tables import MNIST_SCHEMA, load_mnist_idx, read_mnist_idx, read_table

# From nih_chestxray14_metadata/MANIFEST.txt (an independent count, not computed by our code).
NIH_COUNTS = {"No Finding": 60361, "Infiltration": 19894, "Effusion": 13317, "Atelectasis": 11559, "Nodule": 6331,
              "Mass": 5782, "Pneumothorax": 5302, "Consolidation": 4667, "Pleural_Thickening": 3385,
              "Cardiomegaly": 2776, "Emphysema": 2516, "Edema": 2303, "Fibrosis": 1686, "Pneumonia": 1431,
              "Hernia": 227}
# From nih_chestxray14_chexnet_split/MANIFEST.txt: positives per label (NIH_FINDINGS order) and all-zero rows.
CHEXNET = {
    "train": (78468, 42405, [7996, 1950, 9261, 13914, 3988, 4375, 978, 3705, 3263, 1690, 1799, 1158, 2279, 144]),
    "val": (11219, 6079, [1119, 240, 1292, 2018, 625, 613, 133, 504, 447, 200, 208, 166, 372, 41]),
    "test": (22433, 11928, [2420, 582, 2754, 3938, 1133, 1335, 242, 1089, 957, 413, 509, 362, 734, 42]),
}


# ------------------------------------------------------------------ real data
def test_nih_table_with_declared_schema(nih_schema):
    t = read_table(require(NIH_TABLE), schema=nih_schema)
    assert t.format == "nih" and len(t) == 112120 and t.y.shape == (112120, 15) and t.y.dtype == np.uint8
    assert dict(zip(t.labels, t.y.sum(axis=0).tolist())) == NIH_COUNTS
    assert t.ids[0] == "00000001_000.png" and t.lines[0] == 2 and t.lines[-1] == 112121
    assert t.groups("Patient ID").size == 112120 and len(np.unique(t.groups("Patient ID"))) == 30805
    # the trailing comma in the header gives no empty column; the split header names are repaired
    assert not any(str(c).startswith("Unnamed") for c in t.extra.columns)
    assert "OriginalImage Width" in t.extra.columns
    # row 2 of the file: "Cardiomegaly|Emphysema"
    assert set(np.array(t.labels)[t.y[1] == 1]) == {"Cardiomegaly", "Emphysema"}


def test_nih_table_inferred_schema_proposes_no_finding():
    t = read_table(require(NIH_TABLE))
    assert t.schema.none == "No Finding" and sorted(t.schema.independent) == sorted(NIH_FINDINGS)
    assert any("No Finding" in n for n in t.schema.notes)
    assert t.y[:, t.schema.none_index].sum() == 60361


@pytest.mark.parametrize("part", ["train", "val", "test"])
def test_chexnet_lists_match_manifest(part, nih_schema):
    rows, all_zero, positives = CHEXNET[part]
    t = read_table(require(CHEXNET_SPLIT / f"{part}_list.txt"), schema=nih_schema)
    assert t.format == "onehot" and len(t) == rows
    assert t.y[:, : len(NIH_FINDINGS)].sum(axis=0).tolist() == positives
    assert t.y[:, nih_schema.none_index].sum() == all_zero  # all-zero row = "No Finding"
    assert t.lines[0] == 1  # no header line


def test_chexnet_list_with_label_names_and_no_schema():
    t = read_table(require(CHEXNET_SPLIT / "val_list.txt"), labels=NIH_FINDINGS)
    assert t.labels == tuple(NIH_FINDINGS) and t.y.sum() == sum(CHEXNET["val"][2])
    with pytest.raises(TableError, match="no label names"):
        read_table(CHEXNET_SPLIT / "val_list.txt")


def test_tiny_images_table_resolves_paths():
    t = read_table(require(NIH_IMAGES / "labels.csv"), images=NIH_IMAGES / "images")
    assert len(t) == 24 and all(p.endswith(i) for p, i in zip(t.paths, t.ids))
    assert "official_split" in t.extra.columns and t.schema.none == "No Finding"


def test_images_dir_reports_missing_files(tmp_path):
    img = tmp_path / "img"
    img.mkdir()
    for name in ("00000001_000.png", "00000001_001.png"):
        shutil.copy(require(NIH_IMAGES / "images" / name), img / name)
    with pytest.raises(TableError, match=r"22 of 24 images have no file in .* 00000001_002.png at line 4"):
        read_table(NIH_IMAGES / "labels.csv", images=img)
    t = read_table(NIH_IMAGES / "labels.csv", images=img, on_missing="drop")
    assert list(t.ids) == ["00000001_000.png", "00000001_001.png"] and "22 row(s) dropped" in t.notes[0]


def test_image_tree_from_real_pngs(tmp_path, nih_schema):
    src = pd.read_csv(require(NIH_IMAGES / "labels.csv"))
    for name, labels in zip(src["Image Index"], src["Finding Labels"]):
        folder = tmp_path / "+".join(sorted(labels.split("|")))
        folder.mkdir(exist_ok=True)
        shutil.copy(NIH_IMAGES / "images" / name, folder / name)
    t = read_table(tmp_path, schema=nih_schema)
    assert t.format == "tree" and len(t) == 24
    expected = read_table(NIH_IMAGES / "labels.csv", schema=nih_schema)
    order = {i: k for k, i in enumerate(expected.ids)}
    np.testing.assert_array_equal(t.y, expected.y[[order[i] for i in t.ids]])
    assert all(p.endswith("/" + i) for p, i in zip(t.paths, t.ids))
    # a stray image at the top level, and an image name in two folders, are errors
    # an image name in two folders is an error (00000002_000.png is "No Finding")
    (tmp_path / "Pneumonia").mkdir()
    shutil.copy(NIH_IMAGES / "images" / "00000002_000.png", tmp_path / "Pneumonia" / "00000002_000.png")
    with pytest.raises(TableError, match=r"00000002_000.png.*several folders.*No Finding/00000002_000.png"):
        read_table(tmp_path, schema=nih_schema)
    (tmp_path / "Pneumonia" / "00000002_000.png").unlink()
    # an image at the top level has no labels
    shutil.copy(NIH_IMAGES / "images" / "00000002_000.png", tmp_path / "loose.png")
    with pytest.raises(TableError, match=r"'loose.png' is not inside a label folder"):
        read_table(tmp_path, schema=nih_schema)


def test_image_tree_bad_folder_name(tmp_path, nih_schema):
    (tmp_path / "Effusion+Tumour").mkdir()
    shutil.copy(require(NIH_IMAGES / "images" / "00000001_000.png"), tmp_path / "Effusion+Tumour" / "a.png")
    with pytest.raises(SchemaViolation, match=r"Effusion\+Tumour/a.png.*unknown label 'Tumour'"):
        read_table(tmp_path, schema=nih_schema)


def test_mnist_idx_counts():
    imgs = load_mnist_idx(require(MNIST_IDX / "t10k-images-idx3-ubyte.gz"))
    assert imgs.shape == (10000, 28, 28) and imgs.dtype == np.uint8
    t = read_mnist_idx(MNIST_IDX / "t10k-images-idx3-ubyte.gz", MNIST_IDX / "t10k-labels-idx1-ubyte.gz")
    assert t.schema == MNIST_SCHEMA and t.images.shape == (10000, 28, 28)
    digit_cols = [t.schema.index(str(d)) for d in range(10)]
    assert t.y[:, digit_cols].sum(axis=0).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert t.y[:, t.schema.index("greater_than_5")].sum() == 3969
    assert t.y[:, t.schema.index("even")].sum() == 980 + 1032 + 982 + 958 + 974
    # through read_table: the folder or the labels file; train labels come without images
    assert read_table(MNIST_IDX).images.shape == (10000, 28, 28)
    train = read_table(MNIST_IDX / "train-labels-idx1-ubyte.gz")
    assert train.images is None and len(train) == 60000


def test_mnist_bad_idx(tmp_path):
    bad = tmp_path / "x-labels-idx1-ubyte"
    bad.write_bytes(struct.pack(">HBBI", 0, 8, 1, 5) + bytes([1, 2, 3]))
    with pytest.raises(TableError, match="header says"):
        read_table(bad)
    gz = tmp_path / "y-labels-idx1-ubyte.gz"
    gz.write_bytes(gzip.compress(b"hello world"))
    with pytest.raises(TableError, match="not an IDX file"):
        read_table(gz)


def test_label_table_methods(nih_schema, tmp_path):
    t = read_table(require(NIH_IMAGES / "labels.csv"), schema=nih_schema)
    s = t.subset(t.y[:, t.schema.index("Cardiomegaly")] == 1)
    assert len(s) == t.y[:, 1].sum() and s.lines.min() >= 2 and (s.y[:, 1] == 1).all()
    assert list(t.subset([3, 0]).ids) == [t.ids[3], t.ids[0]]
    f = t.to_frame()
    assert list(f.columns[:16]) == ["Image Index", *nih_schema.labels] and "Patient ID" in f.columns
    with pytest.raises(TableError, match=r"no column 'patient'.*'Patient ID'"):
        t.groups("patient")


def test_generic_label_list_and_onehot_csv(tmp_path):
    p = tmp_path / "pets.csv"
    p.write_text("file,tags,owner\na.jpg,\"cat;dog\",1\nb.jpg,dog,2\nc.jpg,none,2\n")
    t = read_table(p, label_column="tags", sep=";")
    assert t.schema.none == "none" and t.labels == ("cat", "dog", "none")
    assert t.y.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]] and list(t.extra.columns) == ["owner"]
    q = tmp_path / "onehot.csv"
    q.write_text("id,cat,dog,site\na,1,0,x\nb,1.0,1,y\nc,0,1,z\n")
    t = read_table(q)
    assert t.labels == ("cat", "dog") and t.y.tolist() == [[1, 0], [1, 1], [0, 1]]
    assert list(t.extra.columns) == ["site"]
    # a schema with a none label and no none column: the column is derived
    t = read_table(q, schema=LabelSchema(["cat", "dog"], none="nothing"))
    assert t.y[:, 2].tolist() == [0, 0, 0]


# ------------------------------------------------------------------ bad input
def _nih_like(tmp_path, rows, header="Image Index,Finding Labels,Patient ID,"):
    p = tmp_path / "bad.csv"
    p.write_text(header + "\n" + "\n".join(rows) + "\n")
    return p


GOOD = ["a.png,Effusion,1", "b.png,No Finding,1"]


@pytest.mark.parametrize("rows,pattern", [
    (GOOD + ["c.png,Effusion|Tumor,2"], r"bad.csv, row c.png at line 4: unknown label 'Tumor'"),
    (GOOD + ["c.png,Efusion,2"], r"row c.png at line 4: unknown label 'Efusion'; did you mean 'Effusion'"),
    (GOOD + ["c.png,No Finding|Effusion,2"], r"row c.png at line 4: 'No Finding' is given together with 'Effusion'"),
    (GOOD + ["c.png,,2"], r"row c.png at line 4: empty label cell in 'Finding Labels'.*write 'No Finding'"),
    (GOOD + ["a.png,Mass,3"], r"bad.csv: duplicate id 'a.png' with different labels: line 2 says .*, line 4 says 'Mass'"),
])
def test_bad_rows_name_file_row_and_label(tmp_path, nih_schema, rows, pattern):
    with pytest.raises((TableError, SchemaViolation), match=pattern):
        read_table(_nih_like(tmp_path, rows), schema=nih_schema)


def test_exclusive_group_violations_name_the_row(tmp_path):
    schema = LabelSchema(["Effusion"], exclusive={"view": ["PA", "AP"]})
    p = tmp_path / "v.csv"
    p.write_text("id,labels\na,PA\nb,Effusion|PA|AP\n")
    with pytest.raises(SchemaViolation, match=r"v.csv, row b at line 3: 2 members of exclusive group 'view'"):
        read_table(p, schema=schema)
    p.write_text("id,labels\na,PA\nb,Effusion|AP\nc,Effusion\n")
    with pytest.raises(SchemaViolation, match=r"row c at line 4: no member of exclusive group 'view'"):
        read_table(p, schema=schema)


def test_missing_column_names_existing_columns(tmp_path, nih_schema):
    p = _nih_like(tmp_path, ["a.png,1"], header="Image Index,Patient ID")
    with pytest.raises(TableError, match=r"no labels column 'Finding Labels'; the columns are \['Image Index', 'Patient ID'\]"):
        read_table(p, schema=nih_schema, format="nih")
    q = tmp_path / "oh.csv"
    q.write_text("id,Effusion\na,1\n")
    with pytest.raises(TableError, match=r"label column\(s\) \['Atelectasis'.*not found; the columns are \['id', 'Effusion'\]"):
        read_table(q, schema=nih_schema)


def test_non_binary_onehot_value_names_row_and_label(tmp_path):
    q = tmp_path / "oh.csv"
    q.write_text("id,cat,dog\na,1,0\nb,1,yes\n")
    with pytest.raises(TableError, match=r"oh.csv, row b at line 3: label 'dog' has 'yes'"):
        read_table(q, labels=["cat", "dog"], format="onehot")
    q.write_text("id,cat,dog\na,1,0\nb,2,0\n")
    with pytest.raises(TableError, match=r"row b at line 3: label 'cat' has '2'"):
        read_table(q, schema=LabelSchema(["cat", "dog"]))
    q.write_text("id,cat,dog\na,1,0\nb,,0\n")
    with pytest.raises(TableError, match=r"row b at line 3: label 'cat' has an empty cell"):
        read_table(q, schema=LabelSchema(["cat", "dog"]))


def test_chexnet_style_bad_value_and_width(tmp_path):
    p = tmp_path / "list.txt"
    p.write_text("x.png 0 1\ny.png 0 3\n")
    with pytest.raises(TableError, match=r"list.txt, row y.png at line 2: label 'b' has '3'"):
        read_table(p, labels=["a", "b"])
    with pytest.raises(TableError, match="rows have 2 label values but the schema has 3"):
        read_table(p, schema=LabelSchema(["a", "b", "c"]))


@pytest.mark.parametrize("content,pattern", [
    ("", "the file is empty"),
    ("Image Index,Finding Labels,Patient ID\n", "has a header but no rows"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "binary file .*not a UTF-8 CSV"),
    ('id,labels\n"a,cat\n', "not a readable CSV"),
    (b"id,labels\n\xff\xfe,cat\n", "not UTF-8"),
])
def test_unreadable_files(tmp_path, content, pattern):
    p = tmp_path / "t.csv"
    (p.write_bytes if isinstance(content, bytes) else p.write_text)(content)
    with pytest.raises(TableError, match=pattern) as e:
        read_table(p)
    assert "t.csv" in str(e.value)


def test_missing_file_and_bad_format(tmp_path):
    with pytest.raises(TableError, match=r"nope.csv: no such file"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(TableError, match="unknown table format 'xml'"):
        read_table(tmp_path, format="xml")


def test_excel_csv_with_byte_order_mark_and_crlf(tmp_path, nih_schema):
    p = tmp_path / "excel.csv"
    p.write_bytes("\ufeffImage Index,Finding Labels,Patient ID\r\na.png,Effusion|Mass,1\r\nb.png,No Finding,2\r\n"
                  .encode("utf-8"))
    t = read_table(p, schema=nih_schema)
    assert t.format == "nih" and list(t.ids) == ["a.png", "b.png"] and t.y[0].sum() == 2


def test_blank_lines_keep_line_numbers(tmp_path, nih_schema):
    p = _nih_like(tmp_path, ["a.png,Effusion,1", "", "c.png,Tumor,2"])
    with pytest.raises(SchemaViolation, match="row c.png at line 4"):
        read_table(p, schema=nih_schema)
