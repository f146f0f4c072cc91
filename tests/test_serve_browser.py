"""The serve page in a real browser: Playwright drives Debian's headless Chromium.

Skipped only when Playwright or Chromium is not installed (CI installs both)."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
keras = pytest.importorskip("keras")

from serve_helpers import digit_pixels, make_artifact, running, write_pngs  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]


def _chromium() -> str | None:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.browser
def test_page_uploads_a_digit_and_shows_the_decisions(tmp_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no chromium (apt-get install chromium)")

    from labelwise.serve.app import create_app
    from labelwise.serve.model import ServedModel
    from labelwise.training.predict import predict

    path = make_artifact(tmp_path)
    png = write_pngs(tmp_path / "images", digit_pixels(1))[0]
    expected = predict(path, [str(png)], verbose=0)  # the reference: labelwise predict on the same file
    want = expected["labels"].iloc[0].split("|")
    served = ServedModel.open(path)
    shot = tmp_path / "serve_page.png"
    with running(create_app(served)) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            outside = []
            page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((url, "blob:", "data:"))
                    else None)
            page.goto(url + "/")
            page.wait_for_function("document.getElementById('model-info').textContent.includes('labels')")
            page.set_input_files("#file-input", str(png))
            page.wait_for_selector("[data-testid=decided]")
            decided = page.locator("[data-testid=decided] li").all_inner_texts()
            rows = page.locator("tr.label-row")
            shown_labels = rows.evaluate_all("rs => rs.map(r => r.dataset.label)")
            on = page.locator("tr.label-row.on").evaluate_all("rs => rs.map(r => r.dataset.label)")
            markers = page.locator("tr.label-row .thr").count()
            group = page.locator("[data-testid=groups]").inner_text()
            none = page.locator("[data-testid=none]").inner_text()
            shown_p = float(rows.filter(has_text="even").locator("td.value").inner_text().rstrip("%")) / 100
            # clicking a label asks for its Grad-CAM heatmap: the page shows the overlay image
            rows.filter(has_text="even").first.click()
            page.wait_for_function("document.querySelector('.heat img') !== null && "
                                   "document.querySelector('.heat img').naturalWidth > 0")
            heat = page.locator(".heat").inner_text()
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert decided == want  # what the page shows is what labelwise predict decides
    assert sorted(on) == sorted(want)
    assert shown_labels == list(served.schema.labels)
    assert markers == len(served.schema.independent)  # a threshold mark on each independent label's bar
    digit = next(x for x in want if x.isdigit())
    assert group.startswith(f"digit: {digit}")
    assert none.startswith("neither: " + ("yes" if "neither" in want else "no"))
    assert abs(shown_p - expected["p_even"].iloc[0]) < 0.0006  # shown to 0.1 %
    assert "Grad-CAM for even" in heat
    assert outside == []  # nothing loaded from anywhere but this server
    assert shot.stat().st_size > 10_000
