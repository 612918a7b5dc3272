"""DeepAR on AirPassengers against NeuralForecast: MAE of the point forecast and how often the 80%
and 90% intervals cover the held-out year, per seed, then mean +- std.

    python tools/deepar_coverage.py --seeds 1 2 3 4 5 --steps 200

h=12, input_size=24, NF's DeepAR defaults otherwise (StudentT, level [80, 90], trajectory
samples 100); each library fits and predicts through its own API. One thread each.
--scaler standard (or robust) sets scaler_type on both sides: with NF's default ('identity')
at 200 steps both libraries forecast near zero on AirPassengers (MAE ~460, no coverage).
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
import warnings

if __name__ == "__main__":
    for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(_v, "1")
    os.environ.setdefault("PL_DISABLE_FORK", "1")

H, L = 12, 24


def scores(pred: dict, y) -> dict:
    import numpy as np
    y = np.asarray(y, dtype=float)
    out = {"mae": float(np.mean(np.abs(pred["DeepAR"] - y)))}
    for lv in (80, 90):
        lo, hi = pred[f"DeepAR-lo-{lv}"], pred[f"DeepAR-hi-{lv}"]
        out[f"cover{lv}"] = float(np.mean((y >= lo) & (y <= hi)))
    return out


def run(lib: str, train, test, seed: int, steps: int, scaler=None) -> dict:
    extra = {} if scaler is None else {"scaler_type": scaler}
    t0 = time.perf_counter()
    if lib == "nf":
        import torch
        torch.set_num_threads(1)
        from neuralforecast import NeuralForecast
        from neuralforecast.models import DeepAR
        m = DeepAR(h=H, input_size=L, max_steps=steps, random_seed=seed, accelerator="cpu",
                   enable_progress_bar=False, enable_model_summary=False, logger=False, **extra)
        nf = NeuralForecast(models=[m], freq="MS")
        nf.fit(train)
        f = nf.predict()
    else:
        import ndiv
        from ndiv.models import DeepAR
        f = ndiv.Forecaster(models=[DeepAR(h=H, input_size=L, max_steps=steps, random_seed=seed, **extra)],
                            freq="MS").fit(train).predict()
    cols = {c: f[c].to_numpy() for c in f.columns if str(c).startswith("DeepAR")}
    return {**scores(cols, test["y"].to_numpy()), "seconds": time.perf_counter() - t0}


def main(argv=None):
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import pandas as pd
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--scaler", default=None, help="scaler_type for both (default: NF's DeepAR default)")
    a = p.parse_args(argv)
    here = os.path.dirname(os.path.abspath(__file__))
    df = pd.read_csv(os.path.join(here, "..", "..", "shared", "data", "air_passengers", "air_passengers.csv"),
                     parse_dates=["ds"])
    train, test = df.iloc[:-H].reset_index(drop=True), df.iloc[-H:].reset_index(drop=True)
    rows = {"nf": [], "ndiv": []}
    for seed in a.seeds:
        for lib in ("nf", "ndiv"):
            r = run(lib, train, test, seed, a.steps, a.scaler)
            rows[lib].append(r)
            print(f"seed {seed} {lib:5s} MAE {r['mae']:7.2f} cover80 {r['cover80']:.2f} cover90 {r['cover90']:.2f} "
                  f"{r['seconds']:6.1f} s", flush=True)
    print(f"\nAirPassengers, DeepAR, h={H}, input_size={L}, {a.steps} steps, scaler_type={a.scaler or 'default'}, "
          f"seeds {a.seeds}\n")
    print("| library | MAE | 80% coverage | 90% coverage | fit + predict s |")
    print("|---|---|---|---|---|")
    for lib, rs in rows.items():
        def ms(k):
            v = [r[k] for r in rs]
            return f"{statistics.mean(v):.2f} ± {statistics.stdev(v) if len(v) > 1 else float('nan'):.2f}"
        print(f"| {lib} | {ms('mae')} | {ms('cover80')} | {ms('cover90')} | {ms('seconds')} |")


if __name__ == "__main__":
    main()
