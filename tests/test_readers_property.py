"""Property tests of the table and score readers: random tables are written the ways real ones are
(any column order, the none column anywhere, list columns beside one-hot columns, True/1.0/1 cells,
ids with and without extensions, repeated identical rows, unknown cells, group and split columns),
read back, and compared by label name with the dict they were generated from."""

from __future__ import annotations

import csv
import io
import string
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelwise import LabelSchema
from labelwise.labels.scores import read_scores
from labelwise.labels.tables import read_table

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))
RESERVED = {"id", "image", "image index", "filename", "labels", "label", "tags", "finding labels", "patient id",
            "split", "fold", "subset", "partition", "set", "age", "note", "path", "name", "file", "no finding",
            "true", "false", "nan", "none", "null", "na", "n/a"}
name_st = st.text(string.ascii_letters + "_ -", min_size=1, max_size=8).map(str.strip).filter(
    lambda s: s and s.lower() not in RESERVED and not s[0] in "-_")
ONES = [("1", "0"), ("1.0", "0.0"), ("True", "False"), ("true", "false"), ("TRUE", "FALSE"), ("1.00", "0.00")]


@st.composite
def label_sets(draw, min_labels=1, max_labels=6):
    """``(labels, rows)``: distinct label names and, per row, ``(id, set of true labels)``; some rows
    repeat an earlier row exactly."""
    labels = draw(st.lists(name_st, min_size=min_labels, max_size=max_labels, unique_by=str.lower))
    n = draw(st.integers(1, 12))
    ext = draw(st.sampled_from(["", ".png", ".jpg"]))
    rows = [(f"x{i}{ext}", frozenset(draw(st.sets(st.sampled_from(labels))))) for i in range(n)]
    for _ in range(draw(st.integers(0, 2))):
        rows.append(draw(st.sampled_from(rows)))
    return labels, rows


def _csv(header, records):
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *records])
    return buf.getvalue()


def _read(text, name="t.csv", **kw):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        p.write_text(text)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return read_table(p, **kw)


def _read_back(table, none=None):
    """``{id: true labels}`` of a table read, the none label counted as no label."""
    return {str(i): frozenset(lbl for lbl, v in zip(table.labels, row) if v and lbl != none)
            for i, row in zip(table.ids, table.y)}


def _expected(rows):
    return {i: s for i, s in rows}


def _extras(draw, rows):
    """Information columns a real table carries: a patient, a split (sometimes 0/1-valued), an age, a note."""
    out = {}
    if draw(st.booleans()):
        out["Patient ID"] = [f"p{k % 3}" for k, _ in enumerate(rows)]
    if draw(st.booleans()):
        col = draw(st.sampled_from(["split", "fold", "Subset", "partition", "set"]))
        values = draw(st.sampled_from([("train", "val", "test"), ("0", "1"), ("1", "2", "3")]))
        by_id = {i: values[k % len(values)] for k, (i, _) in enumerate(dict.fromkeys(r[0] for r in rows).items())}
        out[col] = [by_id[i] for i, _ in rows]
    if draw(st.booleans()):
        out["age"] = [str(20 + 7 * k % 60) for k, _ in enumerate(rows)]
    if draw(st.booleans()):
        out["note"] = ["seen" for _ in rows]
    return out


@given(data=st.data(), drawn=label_sets())
@SETTINGS
def test_one_hot_tables_read_back_by_label_name(data, drawn):
    labels, rows = drawn
    none = data.draw(st.sampled_from([None, "No Finding", "N/A"]))
    columns = {lbl: [lbl in s for _, s in rows] for lbl in labels}
    if none is not None:
        columns[none] = [not s for _, s in rows]
    spelled = {}
    for lbl, values in columns.items():
        one, zero = data.draw(st.sampled_from(ONES))
        spelled[lbl] = [one if v else zero for v in values]
    id_col = data.draw(st.sampled_from(["id", "image", "Image Index", "filename"]))
    spelled.update(_extras(data.draw, rows))
    spelled[id_col] = [i for i, _ in rows]
    order = data.draw(st.permutations(list(spelled)))
    text = _csv(order, zip(*(spelled[c] for c in order)))
    t = _read(text)
    assert _read_back(t, none) == _expected(rows)
    assert t.id_column == id_col
    assert set(t.labels) - {none} == set(labels)


@given(data=st.data(), drawn=label_sets())
@SETTINGS
def test_one_hot_tables_beside_an_agreeing_list_column_read_back_by_label_name(data, drawn):
    labels, rows = drawn
    none = "No Finding"
    spelled = {lbl: ["1" if lbl in s else "0" for _, s in rows] for lbl in labels}
    spelled[none] = ["0" if s else "1" for _, s in rows]
    list_col = data.draw(st.sampled_from(["labels", "Tags", "label"]))
    literal = data.draw(st.booleans())
    spelled[list_col] = [repr(sorted(s or {none})) if literal else "|".join(sorted(s or {none})) for _, s in rows]
    spelled["id"] = [i for i, _ in rows]
    order = data.draw(st.permutations(list(spelled)))
    t = _read(_csv(order, zip(*(spelled[c] for c in order))))
    assert t.format == "onehot" and list_col in t.extra.columns
    assert _read_back(t, none) == _expected(rows)


@given(data=st.data(), drawn=label_sets())
@SETTINGS
def test_label_list_tables_read_back_by_label_name(data, drawn):
    labels, rows = drawn
    none = "No Finding"
    literal = data.draw(st.booleans())
    sep = "|" if literal else data.draw(st.sampled_from(["|", ";"]))
    cells = [repr(sorted(s or {none})) if literal else sep.join(data.draw(st.permutations(sorted(s or {none}))))
             for _, s in rows]
    cols = {data.draw(st.sampled_from(["labels", "Tags"])): cells, "id": [i for i, _ in rows]}
    cols.update(_extras(data.draw, rows))
    order = data.draw(st.permutations(list(cols)))
    t = _read(_csv(order, zip(*(cols[c] for c in order))), sep=sep)
    assert _read_back(t, none) == _expected(rows)


@given(data=st.data(), drawn=label_sets())
@SETTINGS
def test_nih_style_tables_read_back_by_label_name(data, drawn):
    labels, rows = drawn
    cols = {"Image Index": [i for i, _ in rows],
            "Finding Labels": ["|".join(sorted(s)) or "No Finding" for _, s in rows],
            "Patient ID": [str(k % 4) for k in range(len(rows))], "Patient Age": ["057"] * len(rows)}
    order = data.draw(st.permutations(list(cols)))
    t = _read(_csv(order, zip(*(cols[c] for c in order))))
    assert t.format == "nih" and _read_back(t, "No Finding") == _expected(rows)


@given(data=st.data(), drawn=label_sets(min_labels=2))
@SETTINGS
def test_unknown_cells_with_a_schema_read_back_by_label_name(data, drawn):
    labels, rows = drawn
    schema_order = data.draw(st.permutations(labels))
    schema = LabelSchema(independent=tuple(schema_order), unknown_values=("-1", ""))
    unknown = {(k, lbl) for k in range(len(rows)) for lbl in labels if data.draw(st.integers(0, 4)) == 0}
    # a repeated row repeats its unknown cells too
    first = {}
    for k, (i, _) in enumerate(rows):
        first.setdefault(i, k)
    unknown = {(k, lbl) for k, lbl in unknown if first[rows[k][0]] == k}
    unknown |= {(k, lbl) for k, (i, _) in enumerate(rows) for lbl in labels if (first[i], lbl) in unknown}
    spelled = {lbl: [data.draw(st.sampled_from(["-1", ""])) if (k, lbl) in unknown else ("1" if lbl in s else "0")
                     for k, (_, s) in enumerate(rows)] for lbl in labels}
    spelled["id"] = [i for i, _ in rows]
    order = data.draw(st.permutations(list(spelled)))
    t = _read(_csv(order, zip(*(spelled[c] for c in order))), schema=schema)
    want_known = {i: frozenset(lbl for lbl in labels if (k, lbl) not in unknown) for k, (i, _) in enumerate(rows)}
    got_known = {str(i): frozenset(lbl for lbl, v in zip(t.labels, row) if v) for i, row in zip(t.ids, t.known)}
    assert got_known == want_known
    got = _read_back(t)
    assert all(got[i] & want_known[i] == s & want_known[i] for i, s in rows)


@given(data=st.data(), drawn=label_sets())
@SETTINGS
def test_headerless_lists_with_named_labels_read_back_by_label_name(data, drawn):
    labels, rows = drawn
    text = "".join(f"{i} " + " ".join("1" if lbl in s else "0" for lbl in labels) + "\n" for i, s in rows)
    t = _read(text, name="list.txt", format="onehot", labels=labels)
    assert _read_back(t) == _expected(rows)


@given(data=st.data(), drawn=label_sets())
@SETTINGS
def test_score_files_read_back_by_label_name_and_id(data, drawn):
    labels, rows = drawn
    rows = list(dict(rows).items())
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    scores = {i: dict(zip(labels, map(float, rng.random(len(labels)).round(6)))) for i, _ in rows}
    id_col = data.draw(st.sampled_from(["id", "image", "Image Index", "filename"]))
    prefixed = data.draw(st.booleans())
    cols = {id_col: [i for i, _ in rows]}
    for lbl in labels:
        cols[("p_" if prefixed else "") + lbl] = [repr(scores[i][lbl]) for i, _ in rows]
        if prefixed:
            cols[lbl] = ["1" if scores[i][lbl] > .5 else "0" for i, _ in rows]
    order = data.draw(st.permutations(list(cols)))
    file_rows = data.draw(st.permutations(range(len(rows))))
    text = _csv(order, [[cols[c][r] for c in order] for r in file_rows])
    truth_ids = [i for i, _ in data.draw(st.permutations(rows))]
    truth_labels = data.draw(st.permutations(labels))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "scores.csv"
        p.write_text(text)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ids, m = read_scores(p, ids=truth_ids, labels=truth_labels)
    assert list(ids) == truth_ids
    want = np.array([[scores[i][lbl] for lbl in truth_labels] for i in truth_ids])
    np.testing.assert_allclose(m, want, rtol=0, atol=1e-12)


@given(data=st.data(), drawn=label_sets())
@SETTINGS
def test_folder_trees_read_back_by_label_name(data, drawn):
    labels, rows = drawn
    rows = list(dict(rows).items())  # a file sits in one folder
    with tempfile.TemporaryDirectory() as d:
        for i, s in rows:
            folder = Path(d) / ("+".join(data.draw(st.permutations(sorted(s)))) or "No Finding")
            folder.mkdir(exist_ok=True)
            (folder / (i if Path(i).suffix else f"{i}.png")).write_bytes(b"")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = read_table(d)
    assert {Path(i).stem: s for i, s in _read_back(t, "No Finding").items()} == {Path(i).stem: s for i, s in rows}
