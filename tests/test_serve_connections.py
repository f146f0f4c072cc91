"""labelwise serve's connections: slow and idle clients lose their place, working clients keep theirs,
and a client that goes away is one log line."""

from __future__ import annotations

import logging
import socket
import time

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
keras = pytest.importorskip("keras")

from serve_helpers import make_artifact, running  # noqa: E402

from labelwise.serve.app import create_app  # noqa: E402
from labelwise.serve.model import ServedModel  # noqa: E402


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    return ServedModel.open(make_artifact(tmp_path_factory.mktemp("serve_conn")))


def _connect(url: str) -> socket.socket:
    host, port = url.rsplit("/", 1)[-1].split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def _closed_within(s: socket.socket, seconds: float) -> bool:
    """True when the server closes ``s`` (EOF or reset) within ``seconds``."""
    s.settimeout(seconds)
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def test_a_connection_that_never_completes_its_headers_is_closed(served):
    app = create_app(served, warm_up=False)
    with running(app, header_timeout_s=0.5, max_connections=50) as url:
        idle, slow = _connect(url), _connect(url)
        slow.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        t0 = time.monotonic()
        assert _closed_within(idle, 5) and _closed_within(slow, 5)
        assert time.monotonic() - t0 < 4
        # a request on a kept-alive connection is not cut by the header timeout of its connection
        with httpx.Client(base_url=url, timeout=10) as c:
            for _ in range(3):
                assert c.get("/v2/health/live").status_code == 200
                time.sleep(0.3)
        idle.close()
        slow.close()


def test_past_the_connection_limit_idle_connections_make_room_for_working_clients(served):
    app = create_app(served, warm_up=False)
    with running(app, header_timeout_s=60, max_connections=8) as url:
        idle = [_connect(url) for _ in range(20)]
        time.sleep(0.3)
        statuses = []
        for _ in range(5):  # a fresh connection each time
            with httpx.Client(base_url=url, timeout=10) as c:
                statuses.append(c.get("/v2/health/live").status_code)
        closed = sum(_closed_within(s, 0.2) for s in idle)
        for s in idle:
            s.close()
    assert statuses == [200] * 5
    assert closed >= 12  # at most 8 stay open; idle ones made room


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def test_a_client_that_goes_away_mid_upload_is_one_log_line_without_a_traceback(served):
    app = create_app(served, warm_up=False)
    records = _Records()
    loggers = [logging.getLogger(n) for n in ("labelwise.serve", "uvicorn.error", "uvicorn")]
    with running(app) as url:
        for log in loggers:
            log.addHandler(records)
        old_level = loggers[0].level
        loggers[0].setLevel(logging.INFO)
        try:
            for _ in range(2):
                s = _connect(url)
                s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=zz\r\n"
                          b"Content-Length: 1000000\r\n\r\n--zz\r\nContent-Disposition: form-data; name=\"image\"; "
                          b"filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n" + bytes(5000))
                time.sleep(0.2)
                s.close()
            t0 = time.monotonic()
            while sum("went away" in r.getMessage() for r in records.records) < 2 and time.monotonic() - t0 < 5:
                time.sleep(0.05)
            with httpx.Client(base_url=url, timeout=10) as c:  # and the server goes on
                assert c.get("/v2/health/ready").status_code == 200
        finally:
            for log in loggers:
                log.removeHandler(records)
            loggers[0].setLevel(old_level)
    gone = [r for r in records.records if "went away" in r.getMessage()]
    assert len(gone) == 2 and all("POST /predict" in r.getMessage() for r in gone), [r.getMessage() for r in gone]
    assert not [r for r in records.records if r.exc_info], [r.getMessage() for r in records.records]
    assert len(records.records) == 2, [r.getMessage() for r in records.records]


def test_cli_limits_reach_uvicorn_and_the_app_and_bad_values_are_refused(served, monkeypatch, capsys):
    import uvicorn

    from labelwise.commands.cli import main

    seen = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: seen.append(self.config))
    path = served.path
    assert main(["serve", path, "--port", "0", "--max-pixels", "5000", "--max-queue", "7", "--timeout-s", "3",
                 "--input-range", "0,1", "--header-timeout-s", "2", "--keep-alive-s", "4",
                 "--max-connections", "40", "--decode-workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "5,000 pixels per request" in out and "7 images in flight" in out and "within 3 s" in out
    config = seen[0]
    assert config.timeout_keep_alive == 4 and config.limit_concurrency == 40 + 16
    assert config.h11_max_incomplete_event_size == 64 * 1024 and issubclass(config.http, object)
    app = config.app
    assert app.max_pixels == 5000 and app.admission.max_queue == 7
    for bad, flag in ((["--max-pixels", "0"], "--max-pixels"), (["--timeout-s", "0"], "--timeout-s"),
                      (["--input-range", "5,1"], "--input-range"), (["--input-range", "x"], "--input-range"),
                      (["--max-connections", "0"], "--max-connections")):
        assert main(["serve", path, "--port", "0", *bad]) == 2
        assert flag in capsys.readouterr().err
    assert len(seen) == 1


@pytest.mark.slow
def test_the_hostile_benchmark_smoke_run_keeps_the_well_behaved_clients_free_of_errors():
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_serve.py"), "--smoke"], cwd=root,
                         capture_output=True, text=True, timeout=900,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout
    rows = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(alone|beside the attackers)\s+\d+\s+\S+\s+\S+\s+\S+\s+(\d+)$",
                                                              out, re.M)}
    assert rows == {"alone": 0, "beside the attackers": 0}, out
    assert re.search(r"\(a\) bombs\s+[1-9]\d* requests .* status 413;", out), out
    assert re.search(r"\(c\) malformed JSON\s+[1-9]\d* requests \(400: [1-9]\d*\)", out), out
    assert "server log                       0 tracebacks" in out, out


@pytest.mark.slow
def test_under_a_low_open_file_limit_idle_connections_do_not_lock_out_new_clients(served):
    import os
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    cmd = f"ulimit -n 256 && exec {sys.executable} -m labelwise serve {served.path} --port {port} --quiet"
    server = subprocess.Popen(["bash", "-c", cmd], env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    idle: list[socket.socket] = []
    try:
        t0 = time.monotonic()
        while True:
            try:
                if httpx.get(url + "/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() - t0 < 300, "the server did not start"
            time.sleep(0.5)
        for _ in range(300):  # more than the server's descriptors allow
            idle.append(_connect(url))
        time.sleep(1.0)
        with httpx.Client(base_url=url, timeout=10) as c:
            statuses = [c.get("/v2/health/live").status_code for _ in range(3)]
        closed = sum(_closed_within(s, 0.05) for s in idle)
    finally:
        for s in idle:
            s.close()
        server.terminate()
        err = server.communicate(timeout=60)[1].decode(errors="replace")
    assert statuses == [200, 200, 200]
    assert closed >= 300 - 128  # the default limit under 256 descriptors: (256 - 64) * 2 / 3 open connections
    assert "Traceback" not in err and "Too many open files" not in err
