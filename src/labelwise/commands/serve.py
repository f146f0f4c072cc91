"""``labelwise serve MODEL.keras [--host 127.0.0.1] [--port 8080]``: serve a model over HTTP.

Endpoints (Open Inference Protocol v2, as KServe, Triton and MLServer speak it):
GET /v2/health/live, GET /v2/health/ready, GET /v2/models/NAME (schema, thresholds and the
decision rule in "parameters"), POST /v2/models/NAME/infer (FP32 pixels of the model's input
shape, or BYTES holding base64 image files). Plus POST /predict (multipart image upload ->
JSON per image) and GET / (a page to drop images on). NAME is the model file's stem unless
--name says otherwise. Concurrent requests are batched into one model call (--max-batch images
within --max-delay-ms). Binds 127.0.0.1 unless told otherwise: there is no authentication.
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
    p.add_argument("--name", default=None, help="model name in the URLs (default: the file's stem)")
    p.add_argument("--quiet", action="store_true", help="no access log")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..serve.server import serve

    serve(args.model, host=args.host, port=args.port, max_batch=args.max_batch, max_delay_ms=args.max_delay_ms,
          max_upload_mb=args.max_upload_mb, name=args.name, log_level="warning" if args.quiet else "info")
    return 0
