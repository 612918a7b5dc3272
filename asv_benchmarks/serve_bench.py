"""Latency, throughput and memory of `ndiv serve`, on the loopback address (a script, not an asv suite).

For each model (MLP, NHITS, LSTM: small configurations trained for a few steps on
AirPassengers-like series) and each batching mode (micro-batching on: --max-batch 32; off:
--max-batch 1), start `ndiv serve` in a subprocess, wait for /ready, then let 1, 8 and 32
client threads (one keep-alive connection each) send one-series requests for a bounded time
and count. Reports p50/p99 latency, throughput, the server's resident memory at rest and under
load (VmRSS, and VmHWM, the peak, from /proc/<pid>/status) and, when neuralforecast is
installed, NeuralForecast's predict() per call on the same configuration, in its own process.

    python asv_benchmarks/serve_bench.py                       # everything, ~5 minutes
    python asv_benchmarks/serve_bench.py --models MLP --seconds 3 --json out.json

The clients run on the same machine as the server and take CPU from it: on a small machine
the figures are lower bounds of what the server does alone.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
H, INPUT = 12, 24
CONFIGS = {   # the same hyperparameters for ndiv and NeuralForecast
    "MLP": dict(h=H, input_size=INPUT, hidden_size=64, num_layers=2),
    "NHITS": dict(h=H, input_size=INPUT, mlp_units=[[128, 128]] * 3),
    "LSTM": dict(h=H, input_size=INPUT, encoder_hidden_size=64, decoder_hidden_size=64),
}


def air_like(n_series: int, seed: int = 0) -> dict:
    """n_series AirPassengers copies, each scaled and shifted, with noise: long-format columns."""
    sys.path.insert(0, str(ROOT))
    from ndiv.datasets import load_air_passengers
    air = load_air_passengers(as_pandas=False)
    rng = np.random.default_rng(seed)
    uid, ds, y = [], [], []
    for k in range(n_series):
        uid += [f"s{k}"] * len(air["y"])
        ds += np.datetime_as_string(air["ds"], unit="D").tolist()
        y += (air["y"] * rng.uniform(0.5, 1.5) + rng.normal(0, 5, len(air["y"])) + rng.uniform(-50, 50)).tolist()
    return {"unique_id": uid, "ds": ds, "y": y}


def one_series(data: dict, k: int, n: int = 48) -> dict:
    """Request body: the last n months of training series k % 20, under a new id."""
    s = k % 20
    lo = 144 * s + 144 - n
    return {"unique_id": [f"r{k}"] * n, "ds": data["ds"][lo:lo + n], "y": data["y"][lo:lo + n]}


def train_and_save(name: str, steps: int, data: dict, path: str) -> None:
    import ndiv
    from ndiv.models import MODELS
    model = MODELS[name](max_steps=steps, random_seed=1, **CONFIGS[name])
    fc = ndiv.Forecaster([model], freq="MS").fit(data)
    fc.save(path, overwrite=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mem(pid: int) -> dict:
    """VmRSS and VmHWM of a process in MB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                key, kb = line.split()[:2]
                out[key.rstrip(":")] = int(kb) / 1024
    return out


class Server:
    def __init__(self, path: str, max_batch: int, threads: int):
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": str(threads),
               "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads)}
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "ndiv.cli", "serve", path, "--port", str(self.port),
                                      "--max-batch", str(max_batch), "--max-wait-ms", "2", "--log-level", "warning"],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/ready")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        self.ready_s = time.perf_counter() - t0

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(timeout=30)


def load(port: int, data: dict, clients: int, seconds: float, max_requests: int) -> dict:
    """clients threads, each on one keep-alive connection, send one-series requests until
    `seconds` pass or max_requests are sent. Latencies in ms."""
    bodies = [json.dumps(one_series(data, k)).encode() for k in range(64)]
    lat: list[float] = []
    lock = threading.Lock()
    sent = [0]
    errors = []
    stop_at = time.perf_counter() + seconds
    barrier = threading.Barrier(clients)

    def client(i):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        barrier.wait()
        k = i
        while time.perf_counter() < stop_at:
            with lock:
                if sent[0] >= max_requests:
                    return
                sent[0] += 1
            t0 = time.perf_counter()
            conn.request("POST", "/predict", bodies[k % len(bodies)], {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            dt = (time.perf_counter() - t0) * 1e3
            if r.status != 200:
                errors.append(r.status)
            with lock:
                lat.append(dt)
            k += clients

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    a = np.array(lat)
    return {"clients": clients, "requests": len(a), "errors": len(errors), "p50_ms": float(np.percentile(a, 50)),
            "p99_ms": float(np.percentile(a, 99)), "throughput_rps": len(a) / wall}


NF_SCRIPT = r"""
import json, os, sys, time, resource
import numpy as np
def rss():
    d = {}
    for line in open('/proc/self/status'):
        if line.startswith(('VmRSS', 'VmHWM')):
            k, kb = line.split()[:2]; d[k.rstrip(':')] = int(kb) / 1024
    return d
import torch
torch.set_num_threads(int(sys.argv[2]))
import pandas as pd
import logging; logging.disable(logging.WARNING)
from neuralforecast import NeuralForecast
from neuralforecast import models as M
mem_import = rss()
cfg = json.loads(sys.argv[1]); data = json.loads(sys.stdin.read())
df = pd.DataFrame(data['train']); df['ds'] = pd.to_datetime(df['ds'])
req = pd.DataFrame(data['request']); req['ds'] = pd.to_datetime(req['ds'])
model = getattr(M, cfg.pop('name'))(max_steps=cfg.pop('steps'), random_seed=1, enable_progress_bar=False,
                                   logger=False, enable_model_summary=False, **cfg)
nf = NeuralForecast(models=[model], freq='MS'); nf.fit(df)
for _ in range(3): nf.predict(df=req)
lat = []
t_end = time.perf_counter() + float(sys.argv[3])
while len(lat) < 50 and time.perf_counter() < t_end:
    t0 = time.perf_counter(); nf.predict(df=req); lat.append((time.perf_counter() - t0) * 1e3)
print(json.dumps({'p50_ms': float(np.percentile(lat, 50)), 'p99_ms': float(np.percentile(lat, 99)),
                  'calls': len(lat), 'rss_after_import_mb': mem_import['VmRSS'], 'rss_with_model_mb': rss()['VmRSS']}))
"""


def nf_predict(name: str, steps: int, data: dict, threads: int, seconds: float) -> dict | None:
    try:
        import importlib.util
        if importlib.util.find_spec("neuralforecast") is None:
            return None
    except ImportError:
        return None
    cfg = {"name": name, "steps": steps, **CONFIGS[name]}
    payload = json.dumps({"train": data, "request": one_series(data, 0)})
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTORCH_ENABLE_MPS_FALLBACK": "1"}
    r = subprocess.run([sys.executable, "-c", NF_SCRIPT, json.dumps(cfg), str(threads), str(seconds)],
                       input=payload, capture_output=True, text=True, env=env, timeout=600)
    if r.returncode != 0:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--clients", nargs="+", type=int, default=[1, 8, 32])
    p.add_argument("--seconds", type=float, default=5.0, help="time bound per load level (default 5)")
    p.add_argument("--max-requests", type=int, default=400, help="request bound per load level (default 400)")
    p.add_argument("--steps", type=int, default=20, help="training steps (default 20)")
    p.add_argument("--threads", type=int, default=1, help="BLAS/Numba/torch threads of the servers (default 1)")
    p.add_argument("--no-nf", action="store_true", help="skip NeuralForecast's side")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)

    data = air_like(20)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            path = os.path.join(tmp, name)
            train_and_save(name, args.steps, data, path)
            row = {"model": name, "modes": {}}
            for mode, max_batch in (("batched", 32), ("unbatched", 1)):
                srv = Server(path, max_batch, args.threads)
                rest = mem(srv.proc.pid)
                levels = [load(srv.port, data, c, args.seconds, args.max_requests) for c in args.clients]
                loaded = mem(srv.proc.pid)
                rc = srv.stop()
                row["modes"][mode] = {"ready_s": srv.ready_s, "rss_rest_mb": rest["VmRSS"],
                                      "rss_load_mb": loaded["VmRSS"], "hwm_mb": loaded["VmHWM"],
                                      "levels": levels, "sigterm_rc": rc}
                print(f"{name} {mode}: ready in {srv.ready_s:.1f} s, RSS {rest['VmRSS']:.0f} MB at rest, "
                      f"{loaded['VmRSS']:.0f} MB after load (peak {loaded['VmHWM']:.0f})", flush=True)
                for lv in levels:
                    print(f"  {lv['clients']:3d} clients: p50 {lv['p50_ms']:7.1f} ms  p99 {lv['p99_ms']:7.1f} ms  "
                          f"{lv['throughput_rps']:6.1f} req/s  ({lv['requests']} requests, {lv['errors']} errors)",
                          flush=True)
            if not args.no_nf:
                row["nf"] = nf_predict(name, args.steps, data, args.threads, args.seconds)
                print(f"  NeuralForecast predict() per call: {row['nf']}", flush=True)
            results.append(row)

    print("\n| model | clients | batched p50 / p99 ms | req/s | unbatched p50 / p99 ms | req/s | NF predict p50 / p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for row in results:
        nf = row.get("nf") or {}
        nf_s = f"{nf['p50_ms']:.1f} / {nf['p99_ms']:.1f}" if "p50_ms" in nf else "n/a"
        for b, u in zip(row["modes"]["batched"]["levels"], row["modes"]["unbatched"]["levels"]):
            print(f"| {row['model']} | {b['clients']} | {b['p50_ms']:.1f} / {b['p99_ms']:.1f} | {b['throughput_rps']:.0f} "
                  f"| {u['p50_ms']:.1f} / {u['p99_ms']:.1f} | {u['throughput_rps']:.0f} | {nf_s} |")
    print("\n| model | RSS at rest MB | RSS after load MB | peak MB | NF RSS after import / with model MB |")
    print("|---|---|---|---|---|")
    for row in results:
        m = row["modes"]["batched"]
        nf = row.get("nf") or {}
        nf_m = f"{nf['rss_after_import_mb']:.0f} / {nf['rss_with_model_mb']:.0f}" if "p50_ms" in nf else "n/a"
        print(f"| {row['model']} | {m['rss_rest_mb']:.0f} | {m['rss_load_mb']:.0f} | {m['hwm_mb']:.0f} | {nf_m} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
