"""labelwise serve: OIP v2 endpoints, /predict equal to labelwise predict, batching, bad input."""

from __future__ import annotations

import asyncio
import base64
import io

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
keras = pytest.importorskip("keras")

from serve_helpers import digit_pixels, make_artifact, running, schema, write_pngs  # noqa: E402

from labelwise.serve.app import create_app  # noqa: E402
from labelwise.serve.batching import Batcher  # noqa: E402
from labelwise.serve.model import ServedModel  # noqa: E402
from labelwise.training.predict import predict  # noqa: E402

N_IMAGES = 6


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    path = make_artifact(folder)
    pixels = digit_pixels(N_IMAGES)
    pngs = write_pngs(folder / "images", pixels)
    served = ServedModel.open(path)
    app = create_app(served, max_upload_mb=1)
    with running(app) as url:
        yield folder, path, served, app, pixels, pngs, url


def _files(pngs):
    return [("image", (p.name, p.read_bytes(), "image/png")) for p in pngs]


@pytest.mark.slow
def test_health_and_metadata(setup):
    folder, path, served, app, pixels, pngs, url = setup
    with httpx.Client(base_url=url) as c:
        assert c.get("/v2/health/live").status_code == 200
        assert c.get("/v2/health/ready").status_code == 200
        assert c.get("/v2/models/digits/ready").json() == {"name": "digits", "ready": True}
        meta = c.get("/v2/models/digits").json()
    s = schema()
    assert meta["name"] == "digits"
    assert meta["inputs"] == [{"name": "images", "datatype": "FP32", "shape": [-1, 28, 28, 1]}]
    assert [o["name"] for o in meta["outputs"]] == ["probabilities", "decisions"]
    assert all(o["shape"] == [-1, len(s.labels)] for o in meta["outputs"])
    params = meta["parameters"]
    assert params["labels"] == list(s.labels)
    assert params["schema"] == s.to_dict()
    assert params["thresholds"]["values"][:2] == [0.48, 0.52] and params["thresholds"]["values"][2] is None
    assert "calibration" in params and "highest-probability member" in params["decision_rule"]
    rules = {r["name"]: r for r in params["label_rules"]}
    assert rules["even"]["threshold"] == 0.52 and rules["3"]["role"] == "group" and rules["neither"]["role"] == "none"


@pytest.mark.slow
def test_served_scores_and_decisions_equal_predict(setup):
    """/predict, infer with BYTES and infer with FP32 pixels all give predict's numbers on the same files."""
    folder, path, served, app, pixels, pngs, url = setup
    frame = predict(path, folder / "images", verbose=0)  # the CLI's path: tf.data over the files
    labels = list(schema().labels)
    by_file = frame.set_index("id")
    ref_p = by_file.loc[[p.name for p in pngs], [f"p_{x}" for x in labels]].to_numpy()
    ref_d = by_file.loc[[p.name for p in pngs], labels].to_numpy()
    # predict rounds its CSV columns to 6 decimals; compare against unrounded scores as well
    raw = served.model.predict(pixels[..., None].astype("float32"), verbose=0)
    raw_scores = schema().complete_scores(raw)
    with httpx.Client(base_url=url, timeout=60) as c:
        r = c.post("/predict", files=_files(pngs))
        assert r.status_code == 200, r.text
        preds = r.json()["predictions"]
        b = c.post("/v2/models/digits/infer", json={"id": "q1", "inputs": [{
            "name": "images", "datatype": "BYTES", "shape": [len(pngs)],
            "data": [base64.b64encode(p.read_bytes()).decode() for p in pngs]}]}).json()
        f = c.post("/v2/models/digits/infer", json={"inputs": [{
            "name": "images", "datatype": "FP32", "shape": [len(pngs), 28, 28, 1],
            "data": pixels.astype(float).reshape(-1).tolist()}], "outputs": [{"name": "probabilities"}]}).json()
    got = np.array([[pr["probabilities"][x] for x in labels] for pr in preds])
    np.testing.assert_allclose(got, ref_p, atol=1e-6)
    np.testing.assert_allclose(got, raw_scores, atol=1e-6)
    np.testing.assert_array_equal(np.array([[pr["decisions"][x] for x in labels] for pr in preds]), ref_d)
    assert [pr["file"] for pr in preds] == [p.name for p in pngs]
    assert ["|".join(pr["labels"]) for pr in preds] == by_file.loc[[p.name for p in pngs], "labels"].tolist()
    for pr in preds:
        digit = max((x for x in labels if x.isdigit()), key=lambda x: pr["probabilities"][x])
        assert pr["groups"] == {"digit": digit}
        assert pr["none"] == (pr["decisions"]["greater_than_5"] == 0 and pr["decisions"]["even"] == 0)
    assert b["id"] == "q1" and b["model_name"] == "digits" and b["parameters"]["labels"] == labels
    out = {o["name"]: o for o in b["outputs"]}
    assert out["probabilities"]["shape"] == [len(pngs), len(labels)] and out["decisions"]["datatype"] == "BOOL"
    np.testing.assert_allclose(np.reshape(out["probabilities"]["data"], (len(pngs), -1)), ref_p, atol=1e-6)
    np.testing.assert_array_equal(np.reshape(out["decisions"]["data"], (len(pngs), -1)), ref_d.astype(bool))
    assert [o["name"] for o in f["outputs"]] == ["probabilities"]
    np.testing.assert_allclose(np.reshape(f["outputs"][0]["data"], (len(pngs), -1)), raw_scores, atol=1e-6)


def test_concurrent_requests_share_one_model_call(setup, monkeypatch):
    """Counted at the model itself: 8 concurrent infer requests -> one predict_on_batch call of 8."""
    folder, path, served, app_main, pixels, pngs, url_main = setup
    calls = []
    original = served.model.predict_on_batch

    def counting(x):
        calls.append(len(x))
        return original(x)

    monkeypatch.setattr(served.model, "predict_on_batch", counting)
    # the delay is long so that every request surely arrives inside it; a full batch goes at once
    app = create_app(served, max_batch=8, max_delay_ms=3000, warm_up=False)

    def body(i):
        return {"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 28, 28, 1],
                            "data": pixels[i % N_IMAGES].astype(float).reshape(-1).tolist()}]}

    async def burst(url, n):
        async with httpx.AsyncClient(base_url=url, timeout=60) as c:
            return await asyncio.gather(*(c.post("/v2/models/digits/infer", json=body(i)) for i in range(n)))

    with running(app) as url:
        responses = asyncio.run(burst(url, 8))
        assert calls == [8]
        responses += asyncio.run(burst(url, 11))  # 8 go at once, the other 3 after the delay
        assert calls == [8, 8, 3]
    assert all(r.status_code == 200 for r in responses)
    assert app.batcher.stats.calls == 3 and app.batcher.stats.images == 19
    # every request got its own row back, whatever batch it was in
    ref = schema().complete_scores(served.model.predict(pixels[..., None].astype("float32"), verbose=0))
    for i, r in enumerate(responses):
        got = r.json()["outputs"][0]["data"]
        np.testing.assert_allclose(got, ref[(i if i < 8 else i - 8) % N_IMAGES], atol=1e-6)


def test_batcher_routes_rows_and_survives_a_failing_call():
    """Without HTTP: 5 concurrent submits -> one call; each gets its own row; a bad input fails only itself."""
    seen = []

    def run_model(items):
        x = np.stack(items)
        seen.append(x.shape[0])
        if (x < 0).any():
            raise RuntimeError("boom")
        return x * 2

    async def main():
        b = Batcher(run_model, max_batch=16, max_delay_ms=200)
        outs = await asyncio.gather(*(b.submit(np.full(3, i, dtype=float)) for i in range(5)))
        bad = await asyncio.gather(b.submit(np.full(3, -1.0)), b.submit(np.full(3, 7.0)), return_exceptions=True)
        after = await b.submit(np.full(3, 4.0))
        await b.close()
        return outs, bad, after

    outs, bad, after = asyncio.run(main())
    assert seen == [5, 2, 1, 1, 1]  # the failed pair is run again one by one
    for i, o in enumerate(outs):
        np.testing.assert_array_equal(o, np.full(3, 2.0 * i))
    assert isinstance(bad[0], RuntimeError)
    np.testing.assert_array_equal(bad[1], np.full(3, 14.0))  # its batch-mate's failure is not its own
    np.testing.assert_array_equal(after, np.full(3, 8.0))


def _corrupt_deflate(png: bytes) -> bytes:
    """The PNG with its compressed pixel data garbled but every chunk CRC correct: Pillow's
    header check passes it, only the decode fails."""
    import struct
    import zlib

    out, i = bytearray(png[:8]), 8
    while i < len(png):
        n, kind = struct.unpack(">I4s", png[i:i + 8])
        data = png[i + 8:i + 8 + n]
        if kind == b"IDAT":
            data = data[:2] + bytes(b ^ 0x5A for b in data[2:])
        out += struct.pack(">I4s", n, kind) + data + struct.pack(">I", zlib.crc32(kind + data))
        i += 12 + n
    return bytes(out)


def test_an_undecodable_image_fails_only_its_own_request_and_is_named_in_plain_words(setup, monkeypatch):
    folder, path, served, app_main, pixels, pngs, url_main = setup
    from labelwise.serve.model import check_image_bytes

    bad = _corrupt_deflate(pngs[0].read_bytes())
    check_image_bytes(bad)  # passes the cheap check: only the decode finds it
    calls = []
    original = served.model.predict_on_batch
    monkeypatch.setattr(served.model, "predict_on_batch", lambda x: calls.append(len(x)) or original(x))
    app = create_app(served, max_batch=3, max_delay_ms=3000, warm_up=False)

    async def burst(url):
        async with httpx.AsyncClient(base_url=url, timeout=60) as c:
            return await asyncio.gather(
                c.post("/predict", files=[("image", ("bad.png", bad, "image/png"))]),
                *(c.post("/predict", files=_files([p])) for p in pngs[1:3]),
                c.post("/predict", files=[("image", ("fine.png", pngs[3].read_bytes(), "image/png")),
                                          ("image", ("broken.png", bad, "image/png"))]))

    with running(app) as url:
        r_bad, *r_good, r_mixed = asyncio.run(burst(url))
    assert calls == [2]  # the bad image never reaches the model; the good requests share one call
    for r, name in ((r_bad, "bad.png"), (r_mixed, "broken.png")):
        error = r.json()["error"]
        assert r.status_code == 400 and f"{name} cannot be decoded" in error, error
        assert "node" not in error and "{{" not in error and "TensorFlow" not in error, error
    assert "fine.png" not in r_mixed.json()["error"]
    ref = schema().complete_scores(served.model.predict(pixels[1:3, ..., None].astype("float32"), verbose=0))
    for r, want in zip(r_good, ref):
        assert r.status_code == 200
        np.testing.assert_allclose(list(r.json()["predictions"][0]["probabilities"].values()), want, atol=1e-6)


def _tiff_bytes(arr):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="TIFF")
    return buf.getvalue()


def test_bad_inputs_get_4xx_json_and_the_server_keeps_serving(setup):
    folder, path, served, app, pixels, pngs, url = setup
    png = pngs[0].read_bytes()
    infer = "/v2/models/digits/infer"

    def tensor(**kw):
        t = {"name": "images", "datatype": "FP32", "shape": [1, 28, 28, 1], "data": [0.0] * 784}
        t.update(kw)
        return {"inputs": [t]}

    cases = [
        ("not an image", "post", "/predict", dict(files=[("image", ("a.png", b"hello, not a picture", "image/png"))]),
         400, "not an image"),
        ("truncated PNG", "post", "/predict", dict(files=[("image", ("t.png", png[: len(png) // 2], "image/png"))]),
         400, "truncated"),
        ("TIFF", "post", "/predict", dict(files=[("image", ("x.tif", _tiff_bytes(pixels[0]), "image/tiff"))]),
         415, "TIFF"),
        ("over the limit", "post", "/predict",
         dict(files=[("image", ("big.png", b"\x89PNG" + bytes(2 * 2**20), "image/png"))]), 413, "limit"),
        ("over the limit, streamed without a length", "post", infer,
         dict(content=(bytes(2**16) for _ in range(40)), headers={"content-type": "application/json"}), 413, "limit"),
        ("wrong shape", "post", infer, dict(json=tensor(shape=[1, 32, 32, 1], data=[0.0] * 1024)), 400, "[n, 28, 28, 1]"),
        ("wrong datatype", "post", infer, dict(json=tensor(datatype="INT32")), 400, "FP32"),
        ("data size", "post", infer, dict(json=tensor(data=[0.0] * 10)), 400, "784"),
        ("bad base64", "post", infer, dict(json=tensor(datatype="BYTES", shape=[1], data=["%%%"])), 400, "base64"),
        ("bytes not an image", "post", infer,
         dict(json=tensor(datatype="BYTES", shape=[1], data=[base64.b64encode(b"nope").decode()])), 400, "not an image"),
        ("unknown model", "post", "/v2/models/cats/infer", dict(json=tensor()), 404, "digits"),
        ("unknown model metadata", "get", "/v2/models/cats", {}, 404, "digits"),
        ("empty infer body", "post", infer, dict(content=b""), 400, "empty body"),
        ("not JSON", "post", infer, dict(content=b"{oops"), 400, "JSON"),
        ("form without a file", "post", "/predict", dict(files=[("note", (None, b"hello"))]), 400, "no file"),
        ("urlencoded form", "post", "/predict", dict(data={"x": "1"}), 400, "no file"),
        ("empty upload", "post", "/predict", dict(files=[("image", ("e.png", b"", "image/png"))]), 400, "empty"),
        ("no content type", "post", "/predict", dict(content=b""), 400, "multipart"),
        ("unknown explain label", "post", "/predict?explain=cat", dict(files=_files(pngs[:1])), 400, "not a label"),
        ("wrong method", "get", "/predict", {}, 405, "not allowed"),
        ("no endpoint", "get", "/v1/models", {}, 404, "no such endpoint"),
    ]
    with httpx.Client(base_url=url, timeout=60) as c:
        for what, method, route, kwargs, status, words in cases:
            r = getattr(c, method)(route, **kwargs)
            assert r.status_code == status, (what, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/json"), what
            error = r.json()["error"]
            assert isinstance(error, str) and words in error, (what, error)
        # the bad requests did not hurt: a good one still works, with predict's numbers
        good = c.post("/predict", files=_files(pngs[:2]))
        assert good.status_code == 200 and len(good.json()["predictions"]) == 2
        assert c.get("/v2/health/ready").status_code == 200


def test_explain_adds_the_labels_grad_cam_overlay(setup):
    folder, path, served, app, pixels, pngs, url = setup
    import base64
    import io

    from PIL import Image

    from labelwise.explain import grad_cam

    with httpx.Client(base_url=url, timeout=120) as c:
        plain = c.post("/predict", files=_files(pngs[:2])).json()["predictions"]
        r = c.post("/predict?explain=even", files=_files(pngs[:2]))
        derived = c.post("/predict?explain=neither", files=_files(pngs[:1]))
    assert r.status_code == 200, r.text
    got = r.json()["predictions"]
    assert len(got) == 2
    for before, after in zip(plain, got):
        assert after["probabilities"] == before["probabilities"]  # explaining changes no number
        png = base64.b64decode(after["explain"]["png"])
        assert after["explain"]["label"] == "even" and Image.open(io.BytesIO(png)).format == "PNG"
    # the heatmap is labelwise.explain's, on the inputs predict reads: it varies over the image
    maps = grad_cam(served.model, served.inputs([p.read_bytes() for p in pngs[:2]]), labels=["even"])
    assert maps.shape[:2] == (2, 1) and 0 <= float(maps.min()) and float(maps.max()) <= 1 and float(maps.std()) > 0
    # the derived none label has no logit to explain: a 400 that says so, not a 500
    assert derived.status_code == 400 and "neither" in derived.json()["error"]


def test_page_is_served_without_outside_resources(setup):
    folder, path, served, app, pixels, pngs, url = setup
    with httpx.Client(base_url=url) as c:
        page = c.get("/")
        assert page.status_code == 200 and 'content="digits"' in page.text
        for asset in ("static/app.js", "static/style.css"):
            r = c.get("/" + asset)
            assert r.status_code == 200 and len(r.text) > 100
            assert asset in page.text
    import re

    from labelwise.serve.app import STATIC

    # nothing fetched from elsewhere: no absolute or protocol-relative URL in the page or its script
    for text in (page.text, (STATIC / "app.js").read_text(), (STATIC / "style.css").read_text()):
        assert not re.search(r"(src|href)=\"(https?:)?//", text) and not re.search(r"https?://(?!HOST)", text)


def test_cli_warns_off_loopback_and_checks_settings(setup, monkeypatch, capsys):
    folder, path, served, app, pixels, pngs, url = setup
    import uvicorn

    from labelwise.commands.cli import main

    started = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: started.append(self.config.host))
    assert main(["serve", str(path), "--port", "0"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["serve", str(path), "--host", "0.0.0.0", "--port", "0", "--name", "mnist"]) == 0
    captured = capsys.readouterr()
    assert "warning: binding 0.0.0.0" in captured.err and "/v2/models/mnist" in captured.out
    assert started == ["127.0.0.1", "0.0.0.0"]
    assert main(["serve", str(path), "--max-batch", "0"]) == 2
    assert "--max-batch" in capsys.readouterr().err
    assert main(["serve", str(folder / "missing.keras")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert len(started) == 2


@pytest.mark.parametrize("rule", ["hamming", "subset", "instance-f1", "top-k=1"])
def test_label_rules_state_the_threshold_the_decisions_use(rule):
    """Where a label's rule is a threshold, the policy's decisions are exactly ``p >= threshold``; a rule
    that decides without per-label thresholds is named instead of a threshold that does not apply."""
    from labelwise.decide.policy import DecisionPolicy

    s = schema()
    served = ServedModel("m", None, s, None, None, (28, 28, 1), policy=DecisionPolicy(s, rule))
    p = s.complete_scores(np.random.default_rng(0).random((400, s.n_outputs)))
    decided = served.policy.apply(p)[1]
    for r in served.label_rules():
        if r["role"] != "independent":
            continue
        j = s.labels.index(r["name"])
        if r["threshold"] is None:
            assert r["rule"] == rule and "per-label thresholds do not apply" in served.decision_rule()
            assert not np.array_equal(decided[:, j], (p[:, j] >= 0.5).astype(decided.dtype))
        else:
            np.testing.assert_array_equal(decided[:, j], (p[:, j] >= r["threshold"]).astype(decided.dtype))
