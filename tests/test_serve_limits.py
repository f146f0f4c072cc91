"""labelwise serve under abuse: one client's bombs, slow decodes or stuck requests do not stall the others;
pixel values, JSON nesting and damaged files are refused in plain words."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
import time

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
keras = pytest.importorskip("keras")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from serve_helpers import bomb_png, digit_pixels, make_artifact, running, write_pngs  # noqa: E402

from labelwise.serve.app import create_app  # noqa: E402
from labelwise.serve.model import ServedModel  # noqa: E402

INFER = "/v2/models/digits/infer"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve_limits")
    served = ServedModel.open(make_artifact(folder))
    pixels = digit_pixels(4)
    pngs = [p.read_bytes() for p in write_pngs(folder / "images", pixels)]
    return served, pixels, pngs


def _fp32(pixels, **kw):
    t = {"name": "images", "datatype": "FP32", "shape": [len(pixels), 28, 28, 1],
         "data": np.asarray(pixels, dtype=float).reshape(-1).tolist()}
    t.update(kw)
    return {"inputs": [t]}


def _upload(*named):
    return [("image", (name, data, "image/png")) for name, data in named]


def _gate(served, monkeypatch, marked: bytes):
    """Make decoding ``marked`` wait for the returned ``release`` event (10 s at most); ``entered``
    is set once it waits. Every other decode goes through at once."""
    entered, release = threading.Event(), threading.Event()
    original = served.inputs

    def inputs(items):
        if any(isinstance(i, (bytes, bytearray)) and bytes(i) == marked for i in items):
            entered.set()
            release.wait(10)
        return original(items)

    monkeypatch.setattr(served, "inputs", inputs)
    return entered, release


async def _wait_for(event: threading.Event, seconds: float = 10.0) -> None:
    t0 = time.monotonic()
    while not event.is_set() and time.monotonic() - t0 < seconds:
        await asyncio.sleep(0.02)
    assert event.is_set()


def test_a_pixel_bomb_is_refused_from_its_headers_before_decoding_and_others_are_served(setup, monkeypatch):
    served, pixels, pngs = setup
    bomb = bomb_png()  # 258 KB that decode to 9400 x 9400 x 3
    assert len(bomb) < 300_000
    decoded = []
    original = served.inputs
    monkeypatch.setattr(served, "inputs", lambda items: decoded.extend(
        len(i) for i in items if isinstance(i, (bytes, bytearray))) or original(items))
    app = create_app(served, warm_up=False)

    async def attack(url):
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            async def bombs():
                t = time.perf_counter()
                r = await c.post("/predict", files=_upload(*((f"bomb{i}.png", bomb) for i in range(8))))
                return r, time.perf_counter() - t

            b64 = base64.b64encode(bomb).decode()
            return await asyncio.gather(
                bombs(),
                c.post(INFER, json={"inputs": [{"name": "images", "datatype": "BYTES", "shape": [2],
                                                "data": [b64, b64]}]}),
                *(c.post("/predict", files=_upload((f"d{i}.png", png))) for i, png in enumerate(pngs)))

    with running(app) as url:
        (r_bomb, seconds), r_b64, *good = asyncio.run(attack(url))
    assert r_bomb.status_code == 413, r_bomb.text
    error = r_bomb.json()["error"]
    assert "9400x9400" in error and "--max-pixels" in error and f"{8 * 9400 * 9400:,}" in error
    assert seconds < 5  # a header read per image, nothing decoded (the decode alone takes many seconds)
    assert r_b64.status_code == 413 and "BYTES element" in r_b64.json()["error"]
    assert all(r.status_code == 200 for r in good)
    assert decoded and max(decoded) < 10_000  # only the digits reached the decoder
    assert app.max_pixels == 1024 * 1024  # the default's floor: 64 inputs of 28 x 28 would be less


def test_a_slow_decode_delays_only_its_own_request(setup, monkeypatch):
    served, pixels, pngs = setup
    entered, release = _gate(served, monkeypatch, pngs[0])
    app = create_app(served, warm_up=False, decode_workers=2, max_delay_ms=1)

    async def scenario(url):
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            slow = asyncio.ensure_future(c.post("/predict", files=_upload(("slow.png", pngs[0]))))
            await _wait_for(entered)
            try:  # while that decode is stuck: pixels and another image are answered
                fp32, other = await asyncio.wait_for(asyncio.gather(
                    c.post(INFER, json=_fp32(pixels[1:2, ..., None])),
                    c.post("/predict", files=_upload(("other.png", pngs[2])))), 5)
                slow_done = slow.done()
            finally:
                release.set()
            return fp32, other, slow_done, await slow

    with running(app) as url:
        fp32, other, slow_done, slow = asyncio.run(scenario(url))
    assert fp32.status_code == 200 and other.status_code == 200
    assert not slow_done and slow.status_code == 200


def test_a_request_past_its_deadline_gets_504_while_others_are_answered(setup, monkeypatch):
    served, pixels, pngs = setup
    entered, release = _gate(served, monkeypatch, pngs[0])
    app = create_app(served, warm_up=False, timeout_s=0.5, decode_workers=2, max_delay_ms=1)

    async def scenario(url):
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            t = time.perf_counter()
            try:
                stuck, fine = await asyncio.gather(c.post("/predict", files=_upload(("stuck.png", pngs[0]))),
                                                   c.post("/predict", files=_upload(("fine.png", pngs[1]))))
            finally:
                release.set()
            seconds = time.perf_counter() - t
            after = await c.post("/predict", files=_upload(("again.png", pngs[0])))
            return stuck, fine, seconds, after

    with running(app) as url:
        stuck, fine, seconds, after = asyncio.run(scenario(url))
    assert entered.is_set()
    assert stuck.status_code == 504 and "--timeout-s" in stuck.json()["error"], stuck.text
    assert seconds < 5  # answered at the deadline, not when the decode was let go (10 s)
    assert fine.status_code == 200 and after.status_code == 200
    assert app.admission.in_flight == 0  # the timed-out request gave its places back


def test_ready_turns_not_ready_while_the_queue_is_full_and_ready_again_after(setup, monkeypatch):
    served, pixels, pngs = setup
    release = threading.Event()
    original = served.model.predict_on_batch

    def held(x):
        release.wait(10)
        return original(x)

    monkeypatch.setattr(served.model, "predict_on_batch", held)
    app = create_app(served, warm_up=False, max_queue=3, max_delay_ms=0)

    async def scenario(url):
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            assert (await c.get("/v2/health/ready")).status_code == 200
            held = [asyncio.ensure_future(c.post(INFER, json=_fp32(pixels[i:i + 1, ..., None]))) for i in range(3)]
            try:
                t0 = time.monotonic()
                while app.admission.in_flight < 3 and time.monotonic() - t0 < 10:
                    await asyncio.sleep(0.02)
                ready = await c.get("/v2/health/ready")
                model_ready = await c.get("/v2/models/digits/ready")
                extra = await c.post(INFER, json=_fp32(pixels[3:4, ..., None]))
            finally:
                release.set()
            answers = await asyncio.gather(*held)
            return ready, model_ready, extra, answers, await c.get("/v2/health/ready")

    with running(app) as url:
        ready, model_ready, extra, answers, ready_after = asyncio.run(scenario(url))
    assert ready.status_code == 503 and ready.json()["ready"] is False and "--max-queue" in ready.json()["reason"]
    assert model_ready.status_code == 503 and model_ready.json()["ready"] is False
    assert extra.status_code == 503 and "busy" in extra.json()["error"]
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert ready_after.status_code == 200 and ready_after.json() == {"ready": True}


def test_fp32_pixels_outside_the_input_range_or_not_finite_are_refused(setup):
    served, pixels, pngs = setup
    app = create_app(served, warm_up=False)
    unit = create_app(served, warm_up=False, input_range=(0.0, 1.0))
    one = pixels[:1, ..., None].astype(float)
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        for value in (1e30, -1e6, 255.5, -0.5):
            x = one.copy()
            x.flat[100] = value
            r = c.post(INFER, json=_fp32(x))
            assert r.status_code == 400 and "0-255" in r.json()["error"] and "index 100" in r.json()["error"], r.text
        x = one.copy()
        body = json.dumps(_fp32(x)).replace("[0.0,", "[NaN,", 1)
        r = c.post(INFER, content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400 and "NaN" in r.json()["error"]
        edge = np.zeros_like(one)
        edge.flat[:2] = (0.0, 255.0)
        assert c.post(INFER, json=_fp32(edge)).status_code == 200
        assert c.post(INFER, json=_fp32(one)).status_code == 200
    with running(unit) as url, httpx.Client(base_url=url, timeout=30) as c:
        assert "0-1 " in c.get("/v2/models/digits").json()["parameters"]["pixel_values"]
        assert c.post(INFER, json=_fp32(one / 255)).status_code == 200
        r = c.post(INFER, json=_fp32(one))
        assert r.status_code == 400 and "0-1" in r.json()["error"]


def test_deeply_nested_json_is_refused_before_parsing_and_brackets_in_strings_do_not_count(setup):
    served, pixels, pngs = setup
    app = create_app(served, warm_up=False)
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        for body in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000, b"[" * 100_000):
            r = c.post(INFER, content=body, headers={"content-type": "application/json"})
            assert r.status_code == 400 and "nested 100,000 levels" in r.json()["error"], r.text[:300]
        # an id full of brackets, quotes and backslashes is text, not nesting
        req = _fp32(pixels[:1, ..., None])
        req["id"] = '[[[[{{{{\\"[[[[' * 50 + '\\'
        r = c.post(INFER, json=req)
        assert r.status_code == 200 and r.json()["id"] == req["id"]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab,:'),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet='[]{}"\\a'), inner, max_size=3),
    max_leaves=25)


def _depth(v) -> int:
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(_json, st.booleans())
def test_json_depth_of_the_bytes_equals_the_depth_of_the_parsed_value(value, ascii_only):
    from labelwise.serve.limits import json_depth

    text = json.dumps(value, ensure_ascii=ascii_only, indent=None if ascii_only else 1)
    assert json_depth(text.encode()) == _depth(value)


def test_a_damaged_jpeg_among_several_files_is_named_without_decoder_text(setup):
    served, pixels, pngs = setup
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.kron(pixels[0], np.ones((8, 8), dtype=np.uint8))).save(buf, format="JPEG", quality=95)
    cut = buf.getvalue()[: len(buf.getvalue()) // 2]
    app = create_app(served, warm_up=False)
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        r = c.post("/predict", files=_upload(("good.png", pngs[1]), ("scan 7.jpg", cut), ("more.png", pngs[2])))
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error.startswith("scan 7.jpg cannot be decoded") or "scan 7.jpg is damaged" in error, error
    assert "node" not in error and "{{" not in error and "TensorFlow" not in error and "good.png" not in error


def test_the_multipart_png_scan_counts_the_pixels_pillow_reads_from_each_part():
    from PIL import Image

    from labelwise.serve.limits import check_multipart_png_budget, check_pixel_budget
    from labelwise.serve.model import RequestError

    def png(w, h, mode="L"):
        buf = io.BytesIO()
        Image.new(mode, (w, h)).save(buf, format="PNG")
        return buf.getvalue()

    rng = np.random.default_rng(3)
    for trial in range(20):
        files = [(f"img {trial}-{k}.png", png(int(rng.integers(1, 300)), int(rng.integers(1, 300)),
                                               "RGB" if k % 2 else "L")) for k in range(int(rng.integers(1, 6)))]
        body = httpx.Request("POST", "http://x/", files=[("image", (n, d, "image/png")) for n, d in files]).read()
        budget = int(rng.integers(1, 150_000))
        try:  # the reference: Pillow's sizes of the same files
            check_pixel_budget(files, budget)
            want = None
        except RequestError as e:
            want = str(e)
        try:
            check_multipart_png_budget(body, budget)
            got = None
        except RequestError as e:
            got = str(e)
        assert got == want
