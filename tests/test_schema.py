"""LabelSchema: layout, encode/decode round trip, validation of every bad-row case, TOML I/O, inference."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise import LabelSchema, SchemaError, SchemaViolation

MIXED = LabelSchema(
    independent=["cat", "dog"],
    exclusive={"weather": ["sunny", "rainy", "snowy"], "view": ["PA", "AP"]},
    none="nothing",
)


def test_layout_orders_columns_independent_groups_none():
    assert MIXED.labels == ("cat", "dog", "sunny", "rainy", "snowy", "PA", "AP", "nothing")
    assert MIXED.output_labels == MIXED.labels[:-1]
    assert (MIXED.n_labels, MIXED.n_outputs, MIXED.none_index) == (8, 7, 7)
    blocks = [(b.kind, b.name, b.start, b.stop) for b in MIXED.layout]
    assert blocks == [("sigmoid", "independent", 0, 2), ("softmax", "weather", 2, 5), ("softmax", "view", 5, 7)]
    assert MIXED.group_of("rainy") == "weather" and MIXED.group_of("cat") is None


def test_encode_decode_round_trip_random_rows():
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(200):
        ind = [x for x in ("cat", "dog") if rng.random() < 0.4]
        row = ind + [str(rng.choice(["sunny", "rainy", "snowy"])), str(rng.choice(["PA", "AP"]))]
        if not ind and rng.random() < 0.5:
            row.append("nothing")  # naming the none label explicitly is allowed when no finding
        rng.shuffle(row)
        rows.append("|".join(row))
    y = MIXED.encode(rows)
    assert y.shape == (200, 8) and y.dtype == np.uint8
    decoded = MIXED.decode(y)
    for row, labels in zip(rows, decoded):
        expected = set(row.split("|"))
        if not expected & {"cat", "dog"}:
            expected.add("nothing")
        assert set(labels) == expected
    # decode of the head-output columns derives the none column
    assert MIXED.decode(y[:, :7]) == decoded
    # encode(decode(y)) is the identity
    np.testing.assert_array_equal(MIXED.encode(decoded), y)


def test_none_column_is_derived_not_free(nih_schema):
    y = nih_schema.encode(["No Finding", "Effusion|Mass", "Hernia"])
    assert y[:, nih_schema.none_index].tolist() == [1, 0, 0]
    out = np.zeros((2, 14), dtype=np.uint8)
    out[1, 3] = 1
    np.testing.assert_array_equal(nih_schema.complete(out)[:, -1], [1, 0])
    p = np.full((1, 14), 0.5)
    assert nih_schema.complete_scores(p)[0, -1] == pytest.approx(0.5**14)


@pytest.mark.parametrize(
    "row, message",
    [
        ("No Finding|Effusion", "'No Finding' is given together with 'Effusion'"),
        ("Effusion|Pneumonitis", "unknown label 'Pneumonitis'"),
        ("Efusion", "did you mean 'Effusion'"),
        ("", "empty label cell"),
    ],
)
def test_bad_rows_name_file_row_and_label(nih_schema, row, message):
    with pytest.raises(SchemaViolation) as err:
        nih_schema.encode(["Mass", row], row_names=["line 2", "line 3"], source="labels.csv")
    text = str(err.value)
    assert message in text
    assert text.startswith("labels.csv, row line 3: ")


@pytest.mark.parametrize(
    "row, message",
    [
        ("cat|sunny|rainy|PA", "2 members of exclusive group 'weather' are true (sunny, rainy)"),
        ("cat|PA", "no member of exclusive group 'weather' is true"),
    ],
)
def test_exclusive_group_violations(row, message):
    with pytest.raises(SchemaViolation, match=r"t\.csv, row 7: ") as err:
        MIXED.encode([row], row_names=[7], source="t.csv")
    assert message in str(err.value)


def test_validate_checks_matrices():
    y = MIXED.encode(["cat|sunny|PA", "rainy|AP"])
    MIXED.validate(y)
    bad = y.copy()
    bad[0, -1] = 1  # none beside cat
    with pytest.raises(SchemaViolation, match="'nothing' is true together with 'cat'"):
        MIXED.validate(bad)
    bad = y.copy()
    bad[1, -1] = 0  # nothing is true but none is 0
    with pytest.raises(SchemaViolation, match="no independent label is true"):
        MIXED.validate(bad)
    bad = y.copy()
    bad[0, 0] = 2
    with pytest.raises(SchemaViolation, match="must be 0 or 1"):
        MIXED.validate(bad)
    with pytest.raises(SchemaViolation, match="expected a matrix with 8 columns"):
        MIXED.validate(y[:, :3])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(independent=["a", "a"]), "declared twice"),
        (dict(independent=["a"], exclusive={"g": ["a", "b"]}), "declared twice"),
        (dict(independent=["a"], exclusive={"g": ["b"]}), "at least 2"),
        (dict(independent=[], none="none"), "no independent labels"),
        (dict(independent=[" a"]), "leading or trailing spaces"),
        (dict(independent=[]), "declares no labels"),
        (dict(independent=["a"], exclusive={"g": "bc"}), "must be a list"),
    ],
)
def test_invalid_schemas(kwargs, message):
    with pytest.raises(SchemaError, match=message):
        LabelSchema(**kwargs)


def test_toml_round_trip_and_dict(tmp_path):
    path = MIXED.save(tmp_path / "schema.toml")
    again = LabelSchema.from_toml(path)
    assert again == MIXED and again.labels == MIXED.labels
    assert LabelSchema.from_dict(MIXED.to_dict()) == MIXED
    assert LabelSchema.from_dict({"labels": MIXED.to_dict()}) == MIXED


def test_toml_errors_name_the_file(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text("[labels]\nindependent = ['a'\n")
    with pytest.raises(SchemaError, match=r"s\.toml: not valid TOML"):
        LabelSchema.from_toml(p)
    p.write_text("[labels]\nindependant = ['a']\n")
    with pytest.raises(SchemaError, match=r"s\.toml: unknown schema key"):
        LabelSchema.from_toml(p)
    with pytest.raises(SchemaError, match="does not exist"):
        LabelSchema.from_toml(tmp_path / "missing.toml")


def test_infer_proposes_none_label():
    names = ["A", "B", "Empty"]
    y = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 0], [0, 0, 1]])
    s = LabelSchema.infer(y, names)
    assert s.none == "Empty" and s.independent == ("A", "B")
    assert "never co-occurs" in s.notes[0]
    # a label that co-occurs is not proposed
    y2 = y.copy()
    y2[0, 2] = 1
    assert LabelSchema.infer(y2, names).none is None
    # nor one that misses some all-empty rows
    y3 = np.array([[1, 0, 0], [0, 0, 0], [0, 0, 1]])
    assert LabelSchema.infer(y3, names).none is None


def test_import_is_light():
    """The light core must not import Keras or TensorFlow (inspect/evaluate start fast)."""
    import subprocess
    import sys

    code = (
        "import sys, labelwise, labelwise.labels.schema, labelwise.commands.cli\n"
        "heavy = [m for m in ('keras', 'tensorflow', 'jax', 'torch', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
