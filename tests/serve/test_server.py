"""`ndiv serve` as a user runs it: a real server on the loopback address in a subprocess, called
over HTTP; forecasts equal Forecaster.predict, concurrent clients get their own forecasts (merged
into shared predict calls), bad requests get their 4xx and the library's message, /metrics counts
them, and SIGTERM stops the process cleanly."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

for _mod in ("starlette", "uvicorn", "prometheus_client"):
    pytest.importorskip(_mod, reason=f"the serve tests need the 'serve' extra ({_mod}): pip install -e '.[serve]'")

import ndiv  # noqa: E402
from ndiv.models import MLP  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
H = 6


def series(uid, n=30, off=0.0, start=0):
    t = np.arange(n)
    return {"unique_id": [uid] * n, "ds": list(range(start, start + n)),
            "y": [float(v) for v in 100 + 10 * np.sin(t / 2 + off) + 3 * off]}


def concat(*tables):
    return {k: sum((t[k] for t in tables), []) for k in tables[0]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, path, *args):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, "-m", "ndiv.cli", "serve", str(path), "--port", str(self.port),
                                      *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait_ready(self, timeout=90.0):
        deadline = time.monotonic() + timeout
        seen_503 = False
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited with {self.proc.returncode}:\n{self.proc.stdout.read()}")
            try:
                status, _ = self.get("/ready")
            except OSError:
                time.sleep(0.2)
                continue
            if status == 200:
                return seen_503
            assert status == 503
            seen_503 = True
            time.sleep(0.2)
        raise AssertionError("the server was not ready in time")

    def request(self, method, route, data: bytes | None = None):
        req = urllib.request.Request(self.url + route, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def get(self, route):
        return self.request("GET", route)

    def predict(self, body) -> tuple[int, dict]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        status, text = self.request("POST", "/predict", raw)
        return status, json.loads(text)

    def metric(self, name, **labels) -> float:
        _, text = self.get("/metrics")
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
            if m and m.group(1) == name:
                got = ",".join(sorted((m.group(2) or "").split(","))) if m.group(2) else ""
                if got == want:
                    return float(m.group(3))
        return 0.0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "mlp"
    train = concat(*(series(f"s{i}", n=40, off=i) for i in range(3)))
    fc = ndiv.Forecaster([MLP(h=H, input_size=12, hidden_size=16, num_layers=2, max_steps=3, scaler_type="standard",
                              random_seed=1)], freq=1).fit(train)
    fc.save(str(path))
    return path


@pytest.fixture(scope="module")
def server(model_path):
    srv = Server(model_path, "--max-batch", "16", "--max-wait-ms", "50", "--max-rows", "500",
                 "--max-body-mb", "0.05")
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def local(model_path):
    return ndiv.Forecaster.load(str(model_path))


def assert_same_forecast(got_rows, want: dict, rtol=0.0):
    """Server rows == a local predict's dict of arrays: ids, dates and column names exactly;
    forecasts exactly (float32 values travel as JSON floats) or, for a request merged with others
    into one predict call, within float32 rounding (BLAS may round a row differently when the
    matrix has more rows: see ndiv/serve/engine.py)."""
    cols = {k: [r[k] for r in got_rows] for k in want}
    assert list(got_rows[0]) == list(want)
    assert cols["unique_id"] == np.asarray(want["unique_id"]).tolist()
    assert cols["ds"] == np.asarray(want["ds"]).tolist()
    got = np.asarray(cols["MLP"], dtype=np.float32)
    if rtol == 0:
        np.testing.assert_array_equal(got, want["MLP"])
    else:
        np.testing.assert_allclose(got, want["MLP"], rtol=rtol, atol=0)


def test_health_ready_and_a_forecast_equal_to_predict(server, local):
    assert server.get("/health")[0] == 200
    assert server.get("/ready")[0] == 200
    df = concat(series("b", n=25, off=0.5), series("a", n=31, off=1.5))
    status, body = server.predict(df)                                     # columns
    assert status == 200
    want = local.predict(df=df)
    assert_same_forecast(body["forecast"], want)
    assert len(body["forecast"]) == 2 * H and body["forecast"][0]["unique_id"] == "a"
    rows = [dict(zip(df, r)) for r in zip(*df.values())]
    status, body2 = server.predict({"rows": rows})                       # rows
    assert status == 200 and body2 == body


def test_concurrent_clients_get_their_own_forecasts_merged(server, local):
    batches_before = server.metric("ndiv_batch_size_count")
    singles_before = server.metric("ndiv_batch_size_bucket", le="1.0")
    # even clients send one series with an integer id, odd ones two series with string ids
    bodies = [series(i, n=22 + i, off=0.3 * i) if i % 2 == 0 else
              concat(series(f"c{i}", n=20 + i, off=0.2 * i), series(f"b{i}", n=18, off=-i, start=3))
              for i in range(8)]
    wants = [local.predict(df=b) for b in bodies]
    results = [None] * 8
    barrier = threading.Barrier(8)
    errors = []

    def client(i):
        try:
            barrier.wait()
            for _ in range(3):
                status, body = server.predict(bodies[i])
                assert status == 200, body
                assert_same_forecast(body["forecast"], wants[i], rtol=1e-6)
                results[i] = body["forecast"]
        except BaseException as e:  # noqa: BLE001 - reported by the main thread below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for r, w in zip(results, wants):
        assert_same_forecast(r, w, rtol=1e-6)
    batches = server.metric("ndiv_batch_size_count") - batches_before
    merged = batches - (server.metric("ndiv_batch_size_bucket", le="1.0") - singles_before)
    assert 0 < batches < 24               # 24 requests in fewer predict calls
    assert merged > 0                     # some calls served more than one request


def test_bad_requests_get_4xx_with_the_library_message_and_are_counted(server, local):
    before_422 = server.metric("ndiv_requests_total", route="/predict", status="422")
    before_json = server.metric("ndiv_errors_total", kind="malformed_json")

    status, body = server.predict(b'{"rows": [')
    assert status == 400 and "not valid JSON" in body["error"]

    no_y = {"unique_id": ["a"] * 20, "ds": list(range(20))}
    with pytest.raises(ValueError) as lib:
        local.predict(df=no_y)
    status, body = server.predict(no_y)
    assert status == 422 and body["error"] == str(lib.value) and "'y'" in body["error"]

    nan = series("a", n=20)
    nan["y"][5] = None
    status, body = server.predict(nan)
    assert status == 422 and "y" in body["error"] and "NaN" in body["error"]

    status, body = server.predict({**series("a", n=20), "level": [80]})   # a point loss has no intervals
    with pytest.raises(ValueError) as lib:
        local.predict(df=series("a", n=20), level=[80])
    assert status == 422 and body["error"] == str(lib.value)

    status, body = server.predict([1, 2, 3])
    assert status == 422 and "JSON object" in body["error"]

    status, body = server.predict(concat(*(series(f"r{i}", n=100) for i in range(6))))  # 600 rows > --max-rows
    assert status == 413 and "at most 500" in body["error"]
    status, body = server.predict(b" " * 60_000 + b"{}")                  # over --max-body-mb 0.05
    assert status == 413 and "bytes" in body["error"]

    assert server.metric("ndiv_requests_total", route="/predict", status="422") - before_422 == 4
    assert server.metric("ndiv_requests_total", route="/predict", status="413") >= 2
    assert server.metric("ndiv_errors_total", kind="malformed_json") - before_json == 1
    assert server.metric("ndiv_errors_total", kind="too_large") >= 2
    assert server.metric("ndiv_requests_total", route="/predict", status="500") == 0
    assert server.get("/health")[0] == 200                                # still serving


def test_sigterm_shuts_down_cleanly(server):
    server.proc.send_signal(signal.SIGTERM)
    try:
        rc = server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("the server did not exit within 15 s of SIGTERM")
    out = server.proc.stdout.read()
    assert rc == 0, out
    assert "Traceback" not in out and "Finished server process" in out


def test_import_ndiv_does_not_import_the_web_stack():
    code = "import sys, ndiv, ndiv.cli; assert not {'starlette', 'uvicorn', 'prometheus_client'} & set(sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
