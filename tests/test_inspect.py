"""labelwise.labels.stats.summarize and `labelwise inspect` on the real NIH table and small hand-made ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import NIH_TABLE, require
from labelwise import LabelSchema
from labelwise.commands.cli import main
from labelwise.labels.stats import cooccurrence, render_text, summarize
from labelwise.labels.tables import read_table

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def nih_summary():
    return summarize(read_table(require(NIH_TABLE)))


def test_nih_numbers_match_the_manifest(nih_summary):
    s = nih_summary
    assert s["rows"] == 112120 and s["n_labels"] == 15
    assert s["prevalence"]["Hernia"]["count"] == 227
    assert s["prevalence"]["No Finding"]["count"] == 60361
    assert s["prevalence"]["Hernia"]["neg_pos_ratio"] == pytest.approx((112120 - 227) / 227)
    # MANIFEST: Labels per image: 1:91324 2:14306 3:4856 4:1247 5:301 6:67 7:16 8:1 9:2
    assert s["labels_per_image"] == {"1": 91324, "2": 14306, "3": 4856, "4": 1247, "5": 301, "6": 67, "7": 16,
                                     "8": 1, "9": 2}
    assert s["none_label"] == {"label": "No Finding", "source": "inferred", "count": 60361, "cooccurs": False,
                               "rows_with_other_labels": 0}
    assert s["all_negative_share"] == pytest.approx(60361 / 112120)
    g = s["groups"]
    assert (g["column"], g["n_groups"], g["min_rows"], g["median_rows"], g["max_rows"]) == ("Patient ID", 30805, 1, 1, 184)
    assert s["warnings"] == []  # Hernia has 227 >= 50 positives


def test_cooccurrence_against_brute_force():
    rng = np.random.default_rng(0)
    y = (rng.random((300, 5)) < 0.3).astype(np.uint8)
    counts, cond = cooccurrence(y)
    for a in range(5):
        for b in range(5):
            both = int(sum(1 for r in y if r[a] and r[b]))
            assert counts[a, b] == both
            assert cond[a, b] == pytest.approx(both / y[:, a].sum())


def test_top_pairs_on_nih(nih_summary):
    top = nih_summary["top_pairs"][0]
    # Effusion + Infiltration is the most frequent pair in ChestX-ray14
    assert {top["a"], top["b"]} == {"Effusion", "Infiltration"} and top["count"] == 4000
    labels = nih_summary["labels"]
    counts = np.array(nih_summary["cooccurrence"]["counts"])
    nf = labels.index("No Finding")
    assert counts[nf].sum() - counts[nf, nf] == 0


def test_warnings_for_rare_labels_and_a_hidden_none_label(tmp_path):
    p = tmp_path / "t.csv"
    rows = ["id,labels"] + [f"i{k},cat" for k in range(60)] + [f"j{k},dog|cat" for k in range(10)] + \
           [f"k{k},empty" for k in range(30)]
    p.write_text("\n".join(rows) + "\n")
    t = read_table(p, schema=LabelSchema(["cat", "dog", "empty"]))
    s = summarize(t)
    assert any("dog 10" in w and "fewer than 50" in w for w in s["warnings"])
    assert any("'empty' never co-occur" in w for w in s["warnings"])
    assert s["groups"] is None
    text = render_text(s)
    assert "dog" in text and "<- rare" in text


def test_cli_inspect_text_and_json(capsys):
    assert main(["inspect", str(require(NIH_TABLE))]) == 0
    out = capsys.readouterr().out
    assert "112,120 rows" in out and "Hernia" in out and "227" in out and "60,361" in out
    assert "never co-occurs" in out and "'Patient ID'): 30,805" in out
    assert main(["inspect", str(NIH_TABLE), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["prevalence"]["No Finding"]["count"] == 60361
    assert len(data["cooccurrence"]["counts"]) == 15


def test_cli_inspect_bundled_example_with_plot(tmp_path, capsys):
    png = tmp_path / "plots" / "cooc.png"
    assert main(["inspect", str(EXAMPLES / "nih_sample.csv"), "--schema", str(EXAMPLES / "chestxray14.toml"),
                 "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "none label 'No Finding' (declared in the schema)" in out and "Hernia" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(png.parent.glob(".*tmp*"))  # atomic write leaves no temporary file


def test_cli_inspect_bad_input_exit_2(tmp_path, capsys):
    p = tmp_path / "bad.csv"
    p.write_text("Image Index,Finding Labels\na.png,Effusion|Tumor\n")
    assert main(["inspect", str(p), "--schema", str(EXAMPLES / "chestxray14.toml")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv, row a.png at line 2: unknown label 'Tumor'" in err and "Traceback" not in err


def test_inspect_imports_no_framework_and_no_matplotlib():
    import subprocess
    import sys

    code = ("import sys, io, contextlib\nfrom labelwise.commands.cli import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()): rc = main(['inspect', {str(EXAMPLES / 'nih_sample.csv')!r}])\n"
            "heavy = [m for m in ('keras', 'tensorflow', 'jax', 'matplotlib', 'sklearn') if m in sys.modules]\n"
            "print(rc, heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "0 []", out.stderr
