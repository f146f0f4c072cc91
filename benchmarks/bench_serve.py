"""Load test of ``labelwise serve``: real HTTP on loopback against raw ``model.predict``, same images, same run.

The server runs as its own process (``python -m labelwise serve MODEL --port P``, as a user
starts it); the load generator is an async httpx client in this process with a fixed number of
concurrent clients, each sending one PNG per ``POST /predict`` and waiting for the answer before
the next (bounded: at most ``clients`` requests in flight), for ``--seconds`` per level.
Levels: 1, 4, 16 and 64 clients. Reported per level: requests/s (= images/s), p50 / p95 / p99
latency, errors (non-200 answers or failed requests; must be 0), the model calls the server made
and their mean batch size (``GET /stats``), and the server's RSS at the start (after warm-up) and
at the end. Also per level, the HTTP ceiling: ``GET /v2/health/live`` at the same concurrency for
half as long -- no image, no model -- so a low ratio to raw predict can be told apart from a
load generator that cannot send faster (a Python client on few cores often cannot).

The reference, measured in this process on the same decoded images before the server starts:
``model.predict(x, batch_size=--max-batch)`` images/s (raw throughput), and one-image latency
of ``model.predict`` and of ``model.predict_on_batch`` (the call the server makes). Goals from
targets: at 16 clients >= 0.7x raw images/s; single-client p50 <= 2x a raw one-image predict
+ 5 ms.

The model is ``--model PATH`` or, by default, an untrained small_cnn built here at
``--image-size`` (28: MNIST digits; a bigger size makes the model, not HTTP, the cost). The
machine is shared: client, server and other work compete for the same cores; read the ratios.

``--hostile``: fairness under abuse instead of the levels. 16 well-behaved clients (as above)
run for ``--seconds`` alone, then for ``--seconds`` beside three attackers in another process:
(a) a client posting bomb-like PNGs (``--bombs`` zlib-compressed 9400x9400 RGB PNGs of 258 KB
each in one request, again and again), (b) ``--idle`` slow or idle connections (half send a
header line every half second and never finish, half send nothing; reopened when the server
closes them), (c) malformed JSON at a high rate (invalid JSON, 100 000-deep nesting, pixels of
1e30). Reported: the well-behaved clients' p50 / p99 and errors alone and with the attackers,
the bomb requests' status and latency, what the other attackers got, and the tracebacks in the
server's log. Goals: p99 with attackers <= 3x p99 alone, 0 errors, every bomb request 413 in
< 1 s. ``--smoke``: the hostile run in seconds (2 s phases, 8 bombs, 50 idle connections).

Usage: python benchmarks/bench_serve.py [--quick] [--seconds 30] [--model M.keras] [--image-size 28]
       [--levels 1,4,16,64] [--max-batch 32] [--max-delay-ms 5]
       python benchmarks/bench_serve.py --hostile [--seconds 10] [--bombs 77] [--idle 200] | --smoke
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LABELWISE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _images(n: int, size: int, channels: int) -> list[bytes]:
    """``n`` PNGs: MNIST test digits (resized when ``size`` != 28) if the shared data is there, else noise."""
    import gzip

    from PIL import Image

    path = SHARED / "mnist_idx" / "t10k-images-idx3-ubyte.gz"
    if path.exists():
        with gzip.open(path, "rb") as f:
            f.read(16)
            pixels = np.frombuffer(f.read(784 * n), dtype=np.uint8).reshape(n, 28, 28)
    else:
        pixels = np.random.default_rng(0).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    out = []
    for arr in pixels:
        im = Image.fromarray(arr)
        if size != 28:
            im = im.resize((size, size), Image.BILINEAR)
        if channels == 3:
            im = im.convert("RGB")
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def _make_model(folder: Path, size: int) -> Path:
    import keras

    from labelwise import LabelSchema
    from labelwise.blocks.models import build_model
    from labelwise.decide.thresholds import Thresholds
    from labelwise.training import artifact

    schema = LabelSchema(independent=("greater_than_5", "even"), exclusive={"digit": tuple("0123456789")},
                         none="neither")
    keras.utils.set_random_seed(0)
    model = build_model(schema, backbone="small_cnn", input_shape=(size, size, 1), weights=None)
    thr = Thresholds(labels=schema.labels, values=[0.5, 0.5] + [np.nan] * 11, method="fixed")
    return artifact.save(model, folder / "bench.keras", schema, thr, artifact.Preprocessing((size, size), 1))


def _raw(model_path: Path, pngs: list[bytes], batch: int) -> dict:
    """Raw model speed on the same images, decoded as the server decodes them."""
    from labelwise.training import artifact
    from labelwise.training.predict import image_inputs

    model, schema, thr, pre = artifact.load(model_path)
    x = image_inputs(pngs, image_size=pre.image_size, channels=pre.channels)
    reps = max(1, 1024 // len(x))
    xx = np.concatenate([x] * reps)
    model.predict(xx[:batch], batch_size=batch, verbose=0)  # warm-up
    t = time.perf_counter()
    model.predict(xx, batch_size=batch, verbose=0)
    rate = len(xx) / (time.perf_counter() - t)
    one_predict, one_batch = [], []
    for i in range(30):
        t = time.perf_counter()
        model.predict(x[i % len(x)][None], verbose=0)
        one_predict.append(time.perf_counter() - t)
    model.predict_on_batch(x[:1])
    for i in range(100):
        t = time.perf_counter()
        model.predict_on_batch(x[i % len(x)][None])
        one_batch.append(time.perf_counter() - t)
    xb = np.concatenate([x] * (-(-batch // len(x))))[:batch]
    model.predict_on_batch(xb)
    t = time.perf_counter()
    for _ in range(max(1, len(xx) // batch)):
        model.predict_on_batch(xb)
    on_batch_rate = max(1, len(xx) // batch) * batch / (time.perf_counter() - t)
    return {"images_per_s": rate, "on_batch_per_s": on_batch_rate, "one_predict_ms": 1000 * float(np.median(one_predict)),
            "one_on_batch_ms": 1000 * float(np.median(one_batch)), "shape": x.shape[1:]}


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _level(url: str, pngs: list[bytes], clients: int, seconds: float, *, ceiling: bool = False) -> dict:
    import httpx

    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        async def one_client(k: int) -> None:
            nonlocal errors
            i = k
            while time.perf_counter() < stop:
                png = pngs[i % len(pngs)]
                i += clients
                t = time.perf_counter()
                try:
                    if ceiling:  # no image, no model: what this client and the HTTP stack manage at all
                        r = await client.get("/v2/health/live")
                    else:
                        r = await client.post("/predict", files={"image": ("digit.png", png, "image/png")})
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - t)
                errors += not ok

        t0 = time.perf_counter()
        await asyncio.gather(*(one_client(k) for k in range(clients)))
        wall = time.perf_counter() - t0
    lat = np.array(latencies) * 1000
    return {"clients": clients, "requests": len(lat), "rps": len(lat) / wall, "errors": errors,
            "p50": np.percentile(lat, 50), "p95": np.percentile(lat, 95), "p99": np.percentile(lat, 99)}


def _stats(url: str) -> tuple[int, int]:
    """Model calls and images so far, read from the server's own counter (GET /stats)."""
    import httpx

    s = httpx.get(url + "/stats", timeout=10).json()
    return int(s["calls"]), int(s["images"])


def _bomb_png(width: int = 9400, height: int = 9400) -> bytes:
    """A valid RGB PNG of black pixels, zlib-compressed: 9400 x 9400 is 258 KB that decodes to 265 MB."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp, row = zlib.compressobj(9), bytes(1 + 3 * width)
    parts = [comp.compress(row * min(64, height - i)) for i in range(0, height, 64)] + [comp.flush()]
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


async def _attack(kind: str, url: str, seconds: float, bombs: int, idle: int, model_name: str) -> dict:
    """One attacker (``kind``: bomb, idle or garbage) for ``seconds``; returns what it got. Each
    runs in its own process, so one attacker's client work does not slow another's clock."""
    import httpx

    host, port = url.rsplit("/", 1)[-1].split(":")
    out: dict = {"bomb": [], "bomb_bytes": 0, "idle_opened": 0, "idle_closed_by_server": 0, "malformed": {}}
    if kind == "bomb":  # the multipart body is built once: the latency is the server's, not the encoder's
        bomb = _bomb_png()
        files = [("image", (f"bomb{i}.png", bomb, "image/png")) for i in range(bombs)]
        request = httpx.Request("POST", url + "/predict", files=files)
        body, headers = request.read(), {"content-type": request.headers["content-type"]}
        out["bomb_bytes"] = len(body)
    print("ready", flush=True)
    stop = time.perf_counter() + seconds

    async def bomber() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=120) as c:
            while time.perf_counter() < stop:
                t = time.perf_counter()
                try:
                    status = (await c.post("/predict", content=body, headers=headers)).status_code
                except httpx.HTTPError as e:
                    status = type(e).__name__
                out["bomb"].append((status, time.perf_counter() - t))

    async def lingerer(k: int) -> None:
        while time.perf_counter() < stop:
            try:
                reader, writer = await asyncio.open_connection(host, int(port))
            except OSError:
                await asyncio.sleep(0.2)
                continue
            out["idle_opened"] += 1
            try:
                if k % 2:
                    writer.write(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
                while time.perf_counter() < stop:
                    try:
                        data = await asyncio.wait_for(reader.read(1), 0.5)
                    except asyncio.TimeoutError:
                        if k % 2:
                            writer.write(b"X-Slow: 1\r\n")
                        continue
                    if not data:
                        out["idle_closed_by_server"] += 1
                        break
            except (ConnectionError, OSError):
                out["idle_closed_by_server"] += 1
            finally:
                writer.close()

    bad_bodies = [b"{oops", b"[" * 100_000 + b"]" * 100_000, b'{"inputs": 7}',
                  b'{"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 1, 1, 1], "data": [1e30]}]}',
                  bytes(range(256)) * 4]

    async def garbage(k: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            i = k
            while time.perf_counter() < stop:
                try:
                    status = (await c.post(f"/v2/models/{model_name}/infer", content=bad_bodies[i % len(bad_bodies)],
                                           headers={"content-type": "application/json"})).status_code
                except httpx.HTTPError as e:
                    status = type(e).__name__
                out["malformed"][str(status)] = out["malformed"].get(str(status), 0) + 1
                i += 1

    if kind == "bomb":
        await bomber()
    elif kind == "idle":
        await asyncio.gather(*(lingerer(k) for k in range(idle)))
    else:
        await asyncio.gather(*(garbage(k) for k in range(2)))
    return out


def _hostile(args, url: str, server_log: Path, model_name: str) -> None:
    import json

    alone = asyncio.run(_level(url, args.pngs, 16, args.seconds))
    attackers = [subprocess.Popen([sys.executable, __file__, "--attack", kind, "--url", url, "--seconds",
                                   str(args.seconds + 1), "--bombs", str(args.bombs), "--idle", str(args.idle),
                                   "--model-name", model_name], stdout=subprocess.PIPE, text=True)
                 for kind in ("bomb", "idle", "garbage")]
    got: dict = {}
    try:
        for a in attackers:
            assert a.stdout is not None
            if a.stdout.readline().strip() != "ready":
                raise SystemExit("the attackers did not start")
        time.sleep(0.5)  # let them open their connections and send the first bombs
        under = asyncio.run(_level(url, args.pngs, 16, args.seconds))
        for a in attackers:
            for key, value in json.loads(a.stdout.read()).items():  # each attacker fills its own fields
                if isinstance(value, dict):
                    got.setdefault(key, {}).update(value)
                else:
                    got[key] = got.get(key, type(value)()) + value
    finally:
        for a in attackers:
            a.wait(120)
    bombs = got["bomb"]
    statuses = sorted({str(s) for s, _ in bombs})
    lat = np.array([t for _, t in bombs]) * 1000 if bombs else np.array([np.nan])
    log = server_log.read_text(errors="replace")
    print()
    print(f"{'well-behaved clients (16)':<32} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for name, r in (("alone", alone), ("beside the attackers", under)):
        print(f"{name:<32} {r['requests']:>9} {r['rps']:>8.1f} {r['p50']:>8.1f} {r['p99']:>8.1f} {r['errors']:>6}")
    ratio = under["p99"] / alone["p99"]
    print()
    print(f"{'attacker':<32} what it got")
    under_1s = int(np.sum(lat < 1000))
    print(f"{'(a) bombs':<32} {len(bombs)} requests of {args.bombs} x 9400x9400 PNG ({got['bomb_bytes'] / 2**20:.1f} MiB):"
          f" status {', '.join(statuses)}; latency median {np.median(lat):.0f} ms, p90 {np.percentile(lat, 90):.0f} ms, "
          f"max {np.max(lat):.0f} ms; {under_1s} of {len(bombs)} under 1 s")
    print(f"{'(b) slow / idle connections':<32} {args.idle} at a time, {got['idle_opened']} opened, "
          f"{got['idle_closed_by_server']} closed by the server")
    mal = ", ".join(f"{k}: {v}" for k, v in sorted(got["malformed"].items()))
    print(f"{'(c) malformed JSON':<32} {sum(got['malformed'].values())} requests ({mal})")
    print(f"{'server log':<32} {log.count('Traceback')} tracebacks, {len(log.splitlines())} lines")
    print()
    all_413 = bool(bombs) and statuses == ["413"]
    print(f"p99 beside the attackers / alone: {ratio:.2f}x (goal <= 3x: {'met' if ratio <= 3 else 'NOT met'}); "
          f"errors {under['errors']} (goal 0: {'met' if under['errors'] == 0 else 'NOT met'}); "
          f"every bomb request 413: {'met' if all_413 else 'NOT met'}; in < 1 s: "
          f"{'met' if all_413 and under_1s == len(bombs) else f'{under_1s} of {len(bombs)}'} "
          "(the latency includes uploading the body; read it beside the load of the machine)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="a model.keras artifact (default: a small_cnn built here)")
    ap.add_argument("--image-size", type=int, default=28, help="input size of the built model (default 28)")
    ap.add_argument("--seconds", type=float, default=30.0, help="seconds per level (default 30)")
    ap.add_argument("--quick", action="store_true", help="5 s per level")
    ap.add_argument("--levels", default="1,4,16,64", help="concurrent clients per level (default 1,4,16,64)")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-delay-ms", type=float, default=5.0)
    ap.add_argument("--n-images", type=int, default=64)
    ap.add_argument("--no-ceiling", dest="ceiling", action="store_false",
                    help="skip the HTTP ceiling (GET /v2/health/live at the same concurrency, half as long)")
    ap.add_argument("--hostile", action="store_true", help="fairness under abuse (see the module docstring)")
    ap.add_argument("--smoke", action="store_true", help="--hostile in seconds: 2 s phases, 8 bombs, 50 idle")
    ap.add_argument("--bombs", type=int, default=77, help="bomb PNGs per request in --hostile (default 77)")
    ap.add_argument("--idle", type=int, default=200, help="slow / idle connections in --hostile (default 200)")
    ap.add_argument("--attack", default=None, help=argparse.SUPPRESS)  # an attacker's process: bomb, idle, garbage
    ap.add_argument("--url", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--model-name", default="bench", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.attack:
        import json

        print(json.dumps(asyncio.run(_attack(args.attack, args.url, args.seconds, args.bombs, args.idle,
                                             args.model_name))))
        return
    if args.smoke:
        args.hostile, args.seconds, args.bombs, args.idle = True, 2.0, 8, 50
    elif args.hostile and args.seconds == 30.0:
        args.seconds = 10.0
    seconds = 5.0 if args.quick else args.seconds
    levels = [int(v) for v in args.levels.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="bench_serve_"))
    model_path = args.model or _make_model(tmp, args.image_size)
    from labelwise.training import artifact

    pre = artifact.load(model_path)[3]
    pngs = _images(args.n_images, int(pre.image_size[0]), int(pre.channels))
    if args.hostile:
        print(f"model {model_path.name}; {len(pngs)} PNGs of {np.mean([len(b) for b in pngs]):.0f} bytes; hostile run: "
              f"{args.seconds:g} s alone, then {args.seconds:g} s beside the attackers")
    raw = None if args.hostile else _raw(model_path, pngs, args.max_batch)
    if raw is not None:
        print(f"model {model_path.name}, input {raw['shape']}, {len(pngs)} PNGs of {np.mean([len(b) for b in pngs]):.0f} "
              f"bytes; {seconds:g} s per level; max batch {args.max_batch}, max delay {args.max_delay_ms:g} ms")
        print(f"raw model.predict (batch {args.max_batch}): {raw['images_per_s']:.0f} images/s "
              f"(model.predict_on_batch of {args.max_batch}, the server's call: {raw['on_batch_per_s']:.0f} images/s); "
              f"one image: model.predict {raw['one_predict_ms']:.2f} ms, model.predict_on_batch "
              f"{raw['one_on_batch_ms']:.2f} ms")

    port = _free_port()
    server_log = tmp / "server.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    server = subprocess.Popen([sys.executable, "-m", "labelwise", "serve", str(model_path), "--port", str(port),
                               "--max-batch", str(args.max_batch), "--max-delay-ms", str(args.max_delay_ms),
                               "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=server_log.open("wb"))
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        t0 = time.perf_counter()
        while True:
            try:
                if httpx.get(url + "/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.perf_counter() - t0 > 180:
                raise SystemExit("the server did not start")
            time.sleep(0.3)
        asyncio.run(_level(url, pngs, 4, 1.0))  # warm-up: connections, the batch shapes' traces
        if args.hostile:
            args.pngs = pngs
            _hostile(args, url, server_log, model_path.stem)
            return
        rss0 = _rss_mb(server.pid)
        rows = []
        for clients in levels:
            c0, i0 = _stats(url)
            row = asyncio.run(_level(url, pngs, clients, seconds))
            c1, i1 = _stats(url)
            row["ceiling"] = asyncio.run(_level(url, pngs, clients, seconds / 2, ceiling=True))["rps"] if args.ceiling else 0
            row["calls"], row["mean_batch"] = c1 - c0, (i1 - i0) / max(1, c1 - c0)
            row["rss"] = _rss_mb(server.pid)
            rows.append(row)
        rss1 = _rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(30)

    print()
    print(f"{'clients':>7} {'requests':>9} {'req/s':>8} {'x raw':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'errors':>6} {'calls':>7} {'batch':>6} {'RSS MB':>7} {'ceil/s':>7} {'x ceil':>7}")
    for r in rows:
        ceil = f"{r['ceiling']:>7.1f} {r['rps'] / r['ceiling']:>7.2f}" if r["ceiling"] else f"{'-':>7} {'-':>7}"
        print(f"{r['clients']:>7} {r['requests']:>9} {r['rps']:>8.1f} {r['rps'] / raw['images_per_s']:>7.3f} "
              f"{r['p50']:>8.1f} {r['p95']:>8.1f} {r['p99']:>8.1f} {r['errors']:>6} {r['calls']:>7} "
              f"{r['mean_batch']:>6.1f} {r['rss']:>7.0f} {ceil}")
    print("x raw: req/s over raw model.predict images/s; ceil/s: GET /v2/health/live req/s at the same concurrency "
          "(the load generator and HTTP stack alone); x ceil: req/s over that")
    print(f"\nserver RSS: {rss0:.0f} MB after warm-up -> {rss1:.0f} MB at the end ({100 * (rss1 / rss0 - 1):+.1f} %; "
          "goal < +5 %)")
    by = {r["clients"]: r for r in rows}
    if 16 in by:
        ratio = by[16]["rps"] / raw["images_per_s"]
        print(f"16 clients: {by[16]['rps']:.0f} images/s = {ratio:.3f}x raw model.predict "
              f"({raw['images_per_s']:.0f} images/s); goal >= 0.7x: {'met' if ratio >= 0.7 else 'NOT met'}; "
              f"{by[16]['rps'] / raw['on_batch_per_s']:.3f}x raw predict_on_batch")
    if 1 in by:
        for name, ref in (("model.predict", raw["one_predict_ms"]), ("model.predict_on_batch", raw["one_on_batch_ms"])):
            goal = 2 * ref + 5
            print(f"1 client p50 {by[1]['p50']:.1f} ms vs 2 x one-image {name} ({ref:.2f} ms) + 5 ms = {goal:.1f} ms: "
                  f"{'met' if by[1]['p50'] <= goal else 'NOT met'}")
    print(f"errors in all levels: {sum(r['errors'] for r in rows)}")


if __name__ == "__main__":
    main()
