"""precision="bf16-mixed" against float32: the GEMMs at the models' shapes, the training step,
and the forecast's accuracy over seeds (one thread; run it on an otherwise idle machine).

    python tools/bf16_check.py gemms
    python tools/bf16_check.py steps MLP NHITS TiDE VanillaTransformer --data m4_hourly
    python tools/bf16_check.py nf MLP NHITS TiDE --data m4_hourly
    python tools/bf16_check.py accuracy MLP NHITS --data air_passengers --seeds 10 --steps 200

gemms: one thread, median ms of [M, K] @ [K, N] float32 with NumPy (OpenBLAS), with ndiv's bf16
path (both factors rounded by ndiv's kernel, then oneMKL's cblas_gemm_bf16bf16f32), and with
torch in float32 and in bfloat16 (oneDNN) where torch is installed.
steps: the median plain training step of each model (NF's defaults, the workload's h and
input_size) with precision 32 and 'bf16-mixed'; nf: NeuralForecast's marginal step with
Lightning's precision '32-true' and 'bf16-mixed' (torch's CPU autocast).
accuracy: the MAE of the forecast on the held-out horizon (AirPassengers' last 12 months; M4
Hourly's official 48-hour test) per seed for both precisions, their means, standard deviations
and the difference in combined standard errors.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

if __name__ == "__main__":
    for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(_v, "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SHAPES = [  # (M, K, N): rows = windows (x horizon or tokens), from the models' Linear layers
    (1024, 96, 1024), (1024, 1024, 1024), (1024, 1024, 48),   # MLP on M4 Hourly (L=96, hidden 1024)
    (1024, 512, 512), (1024, 24, 512),                         # NHITS / NBEATS blocks
    (12288, 128, 512), (12288, 512, 128),                      # VanillaTransformer FFN ([B*L, d] rows)
    (1024, 256, 256), (24576, 8, 128),                         # TiDE dense; a narrow projection
]


def median_ms(fn, repeat=15):
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return 1e3 * statistics.median(ts)


def gemms():
    import numpy as np
    from ndiv.kernels.cpu import bf16
    ok, why = bf16.mkl_status()
    if not ok:
        raise SystemExit(why)
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    print("| M x K x N | NumPy f32 ms | ndiv bf16 ms (GEMM + rounding) | torch f32 ms | torch bf16 ms | NumPy / ndiv bf16 |")
    print("|---|---|---|---|---|---|")
    for m, k, n in SHAPES:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        t_np = median_ms(lambda: a @ b)
        t_bf = median_ms(lambda: bf16.gemm_bf16(a, b))
        pa, pb = bf16.prepare(a), bf16.prepare(b)
        t_gemm = median_ms(lambda: bf16.gemm_bf16(pa, pb))
        t_t32 = t_t16 = float("nan")
        if torch is not None:
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            t_t32 = median_ms(lambda: ta @ tb)
            ta16, tb16 = ta.bfloat16(), tb.bfloat16()
            t_t16 = median_ms(lambda: ta16 @ tb16)
        print(f"| {m} x {k} x {n} | {t_np:.3f} | {t_bf:.3f} ({t_gemm:.3f} + {t_bf - t_gemm:.3f}) | {t_t32:.3f} | "
              f"{t_t16:.3f} | {t_np / t_bf:.2f} |", flush=True)


def step_ms(name, data, steps, precision):
    import profile_model as P
    df, h, input_size, freq = P.load_data(data)
    n = len(set(df["unique_id"].tolist()))
    hp = {"precision": precision}
    P._fit(name, df, h, input_size, freq, 2, n, hp)                # compiles and lazy imports
    marks = P._StepMarks(P._Clock())
    with marks:
        P._fit(name, df, h, input_size, freq, steps, n, hp, marks)
    return 1e3 * statistics.median([s for s, _ in marks.steps()])


def nf_step_ms(name, data, precision, k=5):
    """NeuralForecast's marginal step (fit(3 + k) - fit(3)) / k, torch with one thread, after a
    warm-up pair, with Lightning's precision (autocast to bfloat16 on the CPU for 'bf16-mixed')."""
    import logging
    import pandas as pd
    import profile_model as P
    import torch
    import neuralforecast.models as M
    from neuralforecast import NeuralForecast
    logging.disable(logging.WARNING)
    torch.set_num_threads(1)
    df, h, input_size, freq = P.load_data(data)
    df = pd.DataFrame(df)
    quiet = dict(enable_progress_bar=False, enable_model_summary=False, logger=False, enable_checkpointing=False,
                 accelerator="cpu", precision=precision)
    seconds = {}
    for steps in (3, 3 + k, 3, 3 + k):
        t = time.perf_counter()
        NeuralForecast(models=[getattr(M, name)(h=h, input_size=input_size, max_steps=steps, random_seed=1,
                                                **quiet)], freq=freq).fit(df)
        seconds[steps] = time.perf_counter() - t
    return 1e3 * (seconds[3 + k] - seconds[3]) / k


def load_split(data):
    """(train df, test df, h, input_size, freq) with pandas."""
    import pandas as pd
    import profile_model as P
    if data == "air_passengers":
        from ndiv.datasets import load_air_passengers
        df = load_air_passengers(as_pandas=True)
        return df.iloc[:-12], df.iloc[-12:], 12, 24, "MS"
    h, input_size, freq = P.WORKLOADS[data]
    train = pd.DataFrame(P.load_data(data)[0])
    test = pd.read_csv(os.path.join(P.DATA_DIR, "m4", "m4_hourly_test.csv.gz"))
    return train, test, h, input_size, freq


def accuracy(names, data, seeds, steps, kw=None):
    import numpy as np
    import ndiv
    import ndiv.models
    train, test, h, input_size, freq = load_split(data)
    print(f"{data}: h={h} input_size={input_size} {steps} steps, seeds 1..{seeds}, one thread, options {kw or {}}")
    for name in names:
        maes = {}
        for precision in (32, "bf16-mixed"):
            maes[precision] = []
            for seed in range(1, seeds + 1):
                model = ndiv.models.MODELS[name](h=h, input_size=input_size, max_steps=steps, random_seed=seed,
                                                 precision=precision, enable_progress_bar=False, **(kw or {}))
                fc = ndiv.Forecaster([model], freq=freq)
                t = time.perf_counter()
                fc.fit(train)
                fit_s = time.perf_counter() - t
                p = fc.predict()
                merged = test.merge(p, on=["unique_id", "ds"]) if data != "air_passengers" else None
                if merged is None:
                    mae = float(np.abs(p[name].to_numpy() - test["y"].to_numpy()).mean())
                else:
                    mae = float(np.abs(merged[name] - merged["y"]).mean())
                maes[precision].append(mae)
                print(f"  {name} precision={precision} seed={seed}: MAE {mae:.3f} fit {fit_s:.1f} s", flush=True)
        a, b = np.array(maes[32]), np.array(maes["bf16-mixed"])
        se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)) if len(a) > 1 else float("nan")
        print(f"{name}: float32 {a.mean():.3f} +- {a.std(ddof=1) if len(a) > 1 else 0:.3f}, bf16-mixed "
              f"{b.mean():.3f} +- {b.std(ddof=1) if len(b) > 1 else 0:.3f}; difference {b.mean() - a.mean():+.3f} = "
              f"{(b.mean() - a.mean()) / se:+.2f} combined SE", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["gemms", "steps", "nf", "accuracy"])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--data", default="air_passengers", choices=["air_passengers", "m4_hourly"])
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--kw", default="{}", help="model options as JSON, e.g. '{\"scaler_type\": \"robust\"}'")
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    import ndiv
    ndiv.set_num_threads(1)
    if a.what == "gemms":
        gemms()
    elif a.what == "steps":
        print("| model | data | float32 step ms | bf16-mixed step ms | float32 / bf16 |")
        print("|---|---|---|---|---|")
        for name in a.models:
            t32 = step_ms(name, a.data, a.steps or 6, 32)
            t16 = step_ms(name, a.data, a.steps or 6, "bf16-mixed")
            print(f"| {name} | {a.data} | {t32:.1f} | {t16:.1f} | {t32 / t16:.2f} |", flush=True)
    elif a.what == "nf":
        print("| model | data | NF float32 step ms | NF bf16-mixed step ms | float32 / bf16 |")
        print("|---|---|---|---|---|")
        for name in a.models:
            t32, t16 = nf_step_ms(name, a.data, "32-true"), nf_step_ms(name, a.data, "bf16-mixed")
            print(f"| {name} | {a.data} | {t32:.1f} | {t16:.1f} | {t32 / t16:.2f} |", flush=True)
    else:
        import json
        accuracy(a.models, a.data, a.seeds, a.steps or 200, json.loads(a.kw))


if __name__ == "__main__":
    main()
