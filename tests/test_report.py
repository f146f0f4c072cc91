"""The report: plots as PNG, one self-contained HTML page, and that page opened in a real browser."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
from conftest import NIH_FINDINGS

from labelwise import LabelSchema
from labelwise.evaluation import evaluate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A 15-label evaluation (14 findings + derived No Finding) saved to a folder."""
    rng = np.random.default_rng(0)
    schema = LabelSchema(independent=NIH_FINDINGS, none="No Finding")
    prev = np.linspace(0.15, 0.01, len(NIH_FINDINGS))
    y = (rng.random((600, len(NIH_FINDINGS))) < prev).astype(np.uint8)
    logits = -2 + np.linspace(2.5, 0.5, len(NIH_FINDINGS)) * y + rng.normal(0, 1, y.shape)
    scores = 1 / (1 + np.exp(-logits))
    result = evaluate(schema.complete(y), scores, schema=schema, tune="f1", bootstrap=100)
    out = tmp_path_factory.mktemp("report")
    written = result.save(out)
    return result, out, written


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


class _Imgs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs, self.links = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.srcs.append(a.get("src", ""))
        for key in ("href", "src"):
            if key in a and tag != "img":
                self.links.append(a[key])


@pytest.mark.slow
def test_plots_are_pngs(saved):
    _, out, written = saved
    for name in ("roc", "pr", "calibration", "histograms", "error_cooccurrence"):
        w, h = png_size((out / f"{name}.png").read_bytes())
        assert w > 400 and h > 250, name


def test_error_cooccurrence_matches_brute_force():
    from labelwise.evaluation.report.plots import error_cooccurrence

    rng = np.random.default_rng(1)
    t = rng.random((200, 4)) < 0.3
    p = rng.random((200, 4)) < 0.3
    co = error_cooccurrence(t, p)
    err = t != p
    for a in range(4):
        fp = p[:, a] & ~t[:, a]
        fn = t[:, a] & ~p[:, a]
        assert co["n_fp"][a] == fp.sum() and co["n_fn"][a] == fn.sum()
        for b in range(4):
            if a == b:
                assert np.isnan(co["fp"][a, b])
                continue
            assert co["fp"][a, b] == pytest.approx(err[fp, b].mean())
            assert co["fn"][a, b] == pytest.approx(err[fn, b].mean())


def test_html_is_self_contained_and_complete(saved):
    result, out, _ = saved
    text = (out / "report.html").read_text()
    parser = _Imgs()
    parser.feed(text)
    assert len(parser.srcs) == 6  # roc, pr, calibration, histograms, error co-occurrence, labels per image
    for src in parser.srcs:
        assert src.startswith("data:image/png;base64,")
        w, h = png_size(base64.b64decode(src.split(",", 1)[1]))
        assert w > 0 and h > 0
    # Nothing is fetched from anywhere: only in-page anchors.
    assert all(link.startswith("#") for link in parser.links), parser.links
    assert not re.search(r"(https?:)?//[a-z]", re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text))
    for label in result.labels:
        assert f"<td>{label}</td>" in text
    for section in ("Per label", "Averages", "Decisions", "Classification report", "Diagnostics", "Plots",
                    "Threshold method"):
        assert section in text
    assert "optimistic" in text and "95% CI" in text


def test_html_highlights_a_collapsed_model(tmp_path):
    from labelwise.evaluation.report.html import write_report

    rng = np.random.default_rng(0)
    y = (rng.random((300, 3)) < 0.3).astype(np.uint8)
    result = evaluate(y, rng.uniform(0.49, 0.51, y.shape), labels=["a", "b", "c"], bootstrap=0)
    text = write_report(result, tmp_path / "r.html").read_text()
    assert 'class="finding error"' in text and "the model has collapsed" in text
    assert "BatchNorm" in text  # the causes to check


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.browser
def test_report_renders_in_headless_chromium(saved, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium on PATH (apt-get install chromium); the HTML checks above still ran")
    result, out, _ = saved
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    url = (out / "report.html").resolve().as_uri()
    proc = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    # The inline script ran after load and found every image decoded with a nonzero size.
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-images-ok="true"' in body, body
    assert 'data-image-count="6"' in body, body  # 5 plots + the Decisions section's labels-per-image
    for label in result.labels:
        assert f"<td>{label}</td>" in dom, label
    shot = tmp_path / "report.png"
    proc = subprocess.run([*flags, "--hide-scrollbars", "--window-size=1280,1600", f"--screenshot={shot}", url],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    w, h = png_size(shot.read_bytes())
    assert (w, h) == (1280, 1600)
    # Not a blank page: the rendered screenshot has real content (text, tables, plots).
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.std() > 10 and (pixels < 100).mean() > 0.005


# ------------------------------------------------------------------ 25 labels at 1,400 px
GENRES = ["Action", "Adventure", "Animation", "Biography", "Comedy", "Crime", "Documentary", "Drama", "Family",
          "Fantasy", "Film-Noir", "History", "Horror", "Music", "Musical", "Mystery", "News", "Reality-TV",
          "Romance", "Sci-Fi", "Short", "Sport", "Thriller", "War", "Western"]

# Measured by the test itself, not by the page: which blocks of <main> stick out of its content box,
# the page's scroll width, and how much the heatmap is scaled down on the page.
_MEASURE = """<script>window.addEventListener('load',function(){var m=document.querySelector('main'),
r=m.getBoundingClientRect().right-parseFloat(getComputedStyle(m).paddingRight)+1,wide=[];
for(var c=m.firstElementChild;c;c=c.nextElementSibling){if(c.getBoundingClientRect().right>r){wide.push(c.tagName+'#'+(c.id||''));}}
var h=document.querySelector('#plot-error_cooccurrence img');
document.body.setAttribute('data-test-overflow',wide.join(' ')||'none');
document.body.setAttribute('data-test-scroll',String(document.documentElement.scrollWidth));
document.body.setAttribute('data-test-heatmap-scale',(h.clientWidth/h.naturalWidth).toFixed(3));});</script>"""


@pytest.mark.slow
def test_error_heatmap_with_25_labels_fits_the_page_unscaled():
    from labelwise.evaluation.report.plots import error_cooccurrence_plot

    rng = np.random.default_rng(0)
    y, p = rng.random((400, 25)) < 0.2, rng.random((400, 25)) < 0.25
    w, h = png_size(error_cooccurrence_plot(y, p, GENRES))
    # The report's content column is 1,124 px: a wider PNG is scaled down (the old one: 2,240 px, to half).
    assert w <= 1124 and h < 2600


@pytest.mark.browser
def test_report_with_25_labels_fits_1400px_in_chromium(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    rng = np.random.default_rng(0)
    prev = np.linspace(0.3, 0.03, len(GENRES))
    y = (rng.random((800, len(GENRES))) < prev).astype(np.uint8)
    s = 1 / (1 + np.exp(-(-1.5 + 1.2 * y + rng.normal(0, 1, y.shape))))
    res = evaluate(y, s, labels=GENRES, tune="f1", bootstrap=20,
                   summary={"truth": "/home/user/data/movies/genres_table_with_a_long_name.csv",
                            "scores": "/home/user/runs/2026-11-27/efficientnet_b0/test_scores.csv"})
    out = tmp_path / "r"
    res.save(out)
    page = out / "measured.html"
    page.write_text((out / "report.html").read_text().replace("</body>", _MEASURE + "</body>"))
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--hide-scrollbars",
             "--window-size=1400,1000"]
    proc = subprocess.run([*flags, "--dump-dom", page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    body = re.search(r"<body[^>]*>", proc.stdout).group(0)
    assert 'data-test-overflow="none"' in body, body  # the Data table used to stick out by ~200 px
    assert int(re.search(r'data-test-scroll="(\d+)"', body).group(1)) <= 1400, body
    assert float(re.search(r'data-test-heatmap-scale="([\d.]+)"', body).group(1)) >= 0.99, body
