"""GPU benchmarks (issue 9), side by side with torch CUDA in the same run; skips without a GPU.

    python asv_benchmarks/gpu_bench.py [--quick] [--out results.json]

Measures the two ceilings first (a large device-to-device copy: bytes read + written; a large
float32 and float16 matmul), then for each kernel the time of ndiv and of torch (median of CUDA-
event timings after a warm-up) next to the floor: max(FLOPs / matmul rate, bytes / bandwidth),
as the device tool's METHOD.md describes. Attention: B=32, H=4, D=64, L 512/2048/8192, causal and
not, float32 and float16, forward+backward, against torch's scaled_dot_product_attention; peak
memory of attention at L=16384. LSTM/GRU at the kernels issue's shape (B32 T96 I8 H128) and at
B=1024 against cuDNN; conv1d against cuDNN. Prints one table; --out writes it as JSON.
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np


def _gpu():
    try:
        import cupy as cp
        if cp.cuda.runtime.getDeviceCount() < 1:
            return None
        return cp
    except Exception:  # no CuPy, or no driver/GPU: nothing to measure here
        return None


def bench(cp, fn, reps=10, warmup=2):
    """Median milliseconds of fn() over reps, timed with CUDA events after warmup calls."""
    for _ in range(warmup):
        fn()
    cp.cuda.Device().synchronize()
    times = []
    for _ in range(reps):
        a, b = cp.cuda.Event(), cp.cuda.Event()
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(cp.cuda.get_elapsed_time(a, b))
    return float(np.median(times))


def torch_bench(torch, fn, reps=10, warmup=2):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return float(np.median(times))


def ceilings(cp):
    n = 1 << 28                                       # 1 GiB of float32
    x = cp.ones(n, cp.float32)
    y = cp.empty_like(x)
    ms = bench(cp, lambda: cp.copyto(y, x), reps=10)
    bw = 2 * x.nbytes / (ms * 1e-3)
    rates = {}
    for dt in ("float32", "float16"):
        a = cp.ones((8192, 8192), dt)
        ms = bench(cp, lambda: a @ a, reps=5)
        rates[dt] = 2 * 8192 ** 3 / (ms * 1e-3)
    del x, y
    return bw, rates


def floor_ms(flops, nbytes, rate, bw):
    return 1e3 * max(flops / rate, nbytes / bw)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer sizes and repetitions")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    cp = _gpu()
    if cp is None:
        print("gpu_bench: skipped (no CuPy or no CUDA GPU)")
        return 0
    try:
        import torch
        has_torch = torch.cuda.is_available()
    except ImportError:
        torch, has_torch = None, False
    import ndiv
    from ndiv.autograd.ops import fused

    reps = 3 if args.quick else 10
    bw, rates = ceilings(cp)
    print(f"device: {cp.cuda.runtime.getDeviceProperties(0)['name'].decode()}  copy {bw / 1e9:.0f} GB/s  "
          f"matmul f32 {rates['float32'] / 1e12:.1f} TFLOP/s  f16 {rates['float16'] / 1e12:.1f} TFLOP/s")
    rows = []

    def row(what, ndiv_ms, torch_ms, flops, nbytes, dt):
        fl = floor_ms(flops, nbytes, rates.get(dt, rates["float32"]), bw)
        r = dict(what=what, ndiv_ms=ndiv_ms, torch_ms=torch_ms, floor_ms=fl,
                 vs_torch=None if torch_ms is None else ndiv_ms / torch_ms, vs_floor=ndiv_ms / fl)
        rows.append(r)
        t = "-" if torch_ms is None else f"{torch_ms:9.3f}"
        print(f"{what:48s} ndiv {ndiv_ms:9.3f} ms  torch {t} ms  floor {fl:8.3f} ms  "
              f"ndiv/torch {'-' if torch_ms is None else f'{ndiv_ms / torch_ms:5.2f}'}  ndiv/floor {ndiv_ms / fl:6.1f}")
        sys.stdout.flush()

    # -- attention forward + backward ---------------------------------------------------------
    B, H, D = 32, 4, 64
    for dt in ("float32", "float16"):
        for L in ((512, 2048) if args.quick else (512, 2048, 8192)):
            for causal in (False, True):
                rng = np.random.default_rng(0)
                q, k, v = (ndiv.tensor(rng.standard_normal((B, H, L, D)).astype(dt), requires_grad=True, device="cuda")
                           for _ in range(3))
                go = cp.asarray(rng.standard_normal((B, H, L, D)).astype(dt))

                def run_ndiv():
                    out = fused.flash_attention(q, k, v, is_causal=causal)
                    out.backward(go)
                frac = 0.5 if causal else 1.0
                flops = frac * 4 * B * H * L * L * D * 3.5    # fwd 2 GEMMs, bwd 5 (FA2 counting)
                nbytes = 4 * B * H * L * D * np.dtype(dt).itemsize * 2
                t_nd = bench(cp, run_ndiv, reps=reps)
                t_t = None
                if has_torch:
                    tq, tk, tv = (torch.as_tensor(x.data, device="cuda").requires_grad_(True) for x in (q, k, v))
                    tgo = torch.as_tensor(go, device="cuda")

                    def run_torch():
                        torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=causal).backward(tgo)
                    t_t = torch_bench(torch, run_torch, reps=reps)
                row(f"attn fwd+bwd {dt} L={L} {'causal' if causal else 'full'}", t_nd, t_t, flops, nbytes, dt)
                del q, k, v, go
                cp.get_default_memory_pool().free_all_blocks()

    # peak GPU memory of the attention forward+backward at L=16384 (float16)
    L = 16384
    pool = cp.get_default_memory_pool()
    pool.free_all_blocks()
    rng = np.random.default_rng(0)
    q, k, v = (ndiv.tensor(rng.standard_normal((1, H, L, D)).astype("float16"), requires_grad=True, device="cuda")
               for _ in range(3))
    base = pool.used_bytes()
    fused.flash_attention(q, k, v, is_causal=True).backward(cp.ones((1, H, L, D), "float16"))
    cp.cuda.Device().synchronize()
    print(f"attention B=1 H=4 L=16384 D=64 f16 causal: pool total {pool.total_bytes() / 2**20:.1f} MiB "
          f"(inputs {base / 2**20:.1f} MiB; a score matrix would be {H * L * L * 4 / 2**20:.0f} MiB)")
    rows.append(dict(what="attn peak memory L=16384", pool_total_mib=pool.total_bytes() / 2**20,
                     inputs_mib=base / 2**20))
    del q, k, v
    pool.free_all_blocks()

    # -- LSTM / GRU forward + backward (one layer), against cuDNN --------------------------------
    Tn, I, Hd = 96, 8, 128
    for cell in ("lstm", "gru"):
        for Bn in (32, 1024):
            G = 4 if cell == "lstm" else 3
            rng = np.random.default_rng(0)
            mk = lambda *s: ndiv.tensor((rng.standard_normal(s) / math.sqrt(Hd)).astype("float32"),  # noqa: E731
                                        requires_grad=True, device="cuda")
            x, h0 = mk(Tn, Bn, I), mk(Bn, Hd)
            c0 = mk(Bn, Hd)
            w_ih, w_hh, b_ih, b_hh = mk(G * Hd, I), mk(G * Hd, Hd), mk(G * Hd), mk(G * Hd)

            def run_ndiv():
                if cell == "lstm":
                    y, _, _ = fused.lstm_seq(x, h0, c0, w_ih, w_hh, b_ih, b_hh)
                else:
                    y, _ = fused.gru_seq(x, h0, w_ih, w_hh, b_ih, b_hh)
                y.sum().backward()
            flops = 3 * 2 * Tn * Bn * G * Hd * (I + Hd)      # fwd GEMMs + 2x for backward
            nbytes = 4 * Tn * Bn * (I + 2 * G * Hd + 2 * Hd)
            t_nd = bench(cp, run_ndiv, reps=reps)
            t_t = None
            if has_torch:
                mod = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(I, Hd).cuda()
                tx = torch.randn(Tn, Bn, I, device="cuda", requires_grad=True)
                t_t = torch_bench(torch, lambda: mod(tx)[0].sum().backward(), reps=reps)
            row(f"{cell} fwd+bwd B={Bn} T={Tn} I={I} H={Hd}", t_nd, t_t, flops, nbytes, "float32")

    # -- dilated causal conv1d forward + backward, against cuDNN ---------------------------------
    for (Bn, C, L, K, d) in ((32, 64, 1024, 2, 1), (32, 64, 1024, 2, 8), (256, 128, 512, 3, 4)):
        rng = np.random.default_rng(0)
        x = ndiv.tensor(rng.standard_normal((Bn, C, L)).astype("float32"), requires_grad=True, device="cuda")
        w = ndiv.tensor((rng.standard_normal((C, C, K)) / C).astype("float32"), requires_grad=True, device="cuda")
        pad = d * (K - 1)
        t_nd = bench(cp, lambda: fused.conv1d_dilated(x, w, padding=(pad, 0), dilation=d).sum().backward(), reps=reps)
        t_t = None
        if has_torch:
            tx = torch.randn(Bn, C, L, device="cuda", requires_grad=True)
            tw = torch.randn(C, C, K, device="cuda", requires_grad=True)
            t_t = torch_bench(torch, lambda: torch.nn.functional.conv1d(
                torch.nn.functional.pad(tx, (pad, 0)), tw, dilation=d).sum().backward(), reps=reps)
        flops = 3 * 2 * Bn * C * C * K * L
        nbytes = 4 * (3 * Bn * C * L + 2 * C * C * K)
        row(f"conv1d fwd+bwd B={Bn} C={C} L={L} K={K} d={d}", t_nd, t_t, flops, nbytes, "float32")

    if args.out:
        with open(args.out, "w") as f:
            json.dump(dict(copy_gbs=bw / 1e9, matmul_tflops={k: v / 1e12 for k, v in rates.items()}, rows=rows), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
