"""``labelwise serve MODEL.keras [--host 127.0.0.1] [--port 8080]``: serve a model over HTTP.

Endpoints (Open Inference Protocol v2, as KServe, Triton and MLServer speak it):
GET /v2/health/live, GET /v2/health/ready, GET /v2/models/NAME (schema, thresholds and the
decision rule in "parameters"), POST /v2/models/NAME/infer (FP32 pixels of the model's input
shape, or BYTES holding base64 image files). Plus POST /predict (multipart image upload ->
JSON per image) and GET / (a page to drop images on). NAME is the model file's stem unless
--name says otherwise. Concurrent requests are batched into one model call (--max-batch images
within --max-delay-ms). Binds 127.0.0.1 unless told otherwise: there is no authentication.

Limits that keep one client from stalling the others: a request's images are measured from
their headers and refused (413) past --max-pixels in total, before anything is decoded;
decoding runs in --decode-workers threads beside the model; past --max-queue images in flight
requests get 503 and /v2/health/ready answers 503; a request not answered within --timeout-s
gets 504; a connection must send its request headers within --header-timeout-s; past
--max-connections the connection idle longest is closed. FP32 pixels must lie in --input-range.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("serve", help="serve a model.keras over HTTP (Open Inference Protocol v2 + a web page)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model.keras written by labelwise train / demo")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others print a warning)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--max-batch", type=int, default=32, help="most images in one model call (default 32)")
    p.add_argument("--max-delay-ms", type=float, default=5.0,
                   help="longest a request waits for others to share its model call (default 5)")
    p.add_argument("--max-upload-mb", type=float, default=20.0,
                   help="largest request body; bigger ones get 413 (default 20)")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="decoded pixels per request, summed over its images and read from their headers before "
                        "decoding; more gets 413 (default: 64 x the model's input, at least 1024 x 1024)")
    p.add_argument("--max-queue", type=int, default=None,
                   help="images in flight (decoding or waiting for the model); more gets 503 and /v2/health/ready "
                        "answers 503 (default: 4 x --max-batch, at least 64)")
    p.add_argument("--timeout-s", type=float, default=30.0,
                   help="a request not answered within this many seconds gets 504 (default 30)")
    p.add_argument("--decode-workers", type=int, default=None,
                   help="threads decoding images (default: the CPU count, at most 4)")
    p.add_argument("--input-range", default="0,255", metavar="LOW,HIGH",
                   help="the pixel values FP32 infer inputs may hold; others get 400 (default 0,255: raw pixels, "
                        "the model normalises them)")
    p.add_argument("--header-timeout-s", type=float, default=10.0,
                   help="a connection must send its request headers within this many seconds of opening "
                        "(or of the previous answer) or it is closed; the body counts in --timeout-s (default 10)")
    p.add_argument("--keep-alive-s", type=float, default=5.0,
                   help="an idle keep-alive connection is closed after this many seconds (default 5)")
    p.add_argument("--max-connections", type=int, default=None,
                   help="open connections; past it the one idle longest is closed (default 1000, or two thirds of "
                        "the open-file limit less 64 where that is lower)")
    p.add_argument("--name", default=None, help="model name in the URLs (default: the file's stem)")
    p.add_argument("--quiet", action="store_true", help="no access log")
    p.set_defaults(func=run)


def _input_range(text: str) -> tuple[float, float]:
    from ..errors import InputError

    parts = text.split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise InputError(f"--input-range must be LOW,HIGH (e.g. 0,255 or 0,1), got {text!r}") from None
    return lo, hi


def run(args: argparse.Namespace) -> int:
    from ..serve.server import serve

    serve(args.model, host=args.host, port=args.port, max_batch=args.max_batch, max_delay_ms=args.max_delay_ms,
          max_upload_mb=args.max_upload_mb, name=args.name, log_level="warning" if args.quiet else "info",
          max_pixels=args.max_pixels, max_queue=args.max_queue, timeout_s=args.timeout_s,
          decode_workers=args.decode_workers, input_range=_input_range(args.input_range),
          header_timeout_s=args.header_timeout_s, keep_alive_s=args.keep_alive_s,
          max_connections=args.max_connections)
    return 0
