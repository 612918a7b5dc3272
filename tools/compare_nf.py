"""ndiv against NeuralForecast (torch) on AirPassengers, side by side in one process.

    python tools/compare_nf.py MLP DLinear NHITS --seeds 1 2 3 --max-steps 200

For each model: parameters, fit wall time (max_steps steps, same hyperparameters), MAE on the
last 12 months averaged over seeds, and batch-1 predict latency (median of repeated
forward passes in eval mode on one window of input_size, or 500 where the model allows).
Prints a markdown table. Both libraries use 2 threads.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
import warnings

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("NUMBA_NUM_THREADS", "2")
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

H, L = 12, 24


def load():
    import pandas as pd
    here = os.path.dirname(os.path.abspath(__file__))
    df = pd.read_csv(os.path.join(here, "..", "..", "shared", "data", "air_passengers", "air_passengers.csv"),
                     parse_dates=["ds"])
    return df.iloc[:-H].reset_index(drop=True), df.iloc[-H:].reset_index(drop=True)


def fit_nf(name, train, seed, max_steps, extra):
    import neuralforecast.models as M
    from neuralforecast import NeuralForecast
    model = getattr(M, name)(h=H, input_size=L, max_steps=max_steps, random_seed=seed, accelerator="cpu",
                             enable_progress_bar=False, enable_model_summary=False, logger=False, **extra)
    nf = NeuralForecast(models=[model], freq="MS")
    t0 = time.perf_counter()
    nf.fit(train)
    fit_s = time.perf_counter() - t0
    pred = nf.predict()[name].to_numpy()
    return model, fit_s, pred


def fit_nd(name, train, seed, max_steps, extra):
    import ndiv
    from ndiv.models import MODELS
    model = MODELS[name](h=H, input_size=L, max_steps=max_steps, random_seed=seed, enable_progress_bar=False, **extra)
    fc = ndiv.Forecaster(models=[model], freq="MS")
    t0 = time.perf_counter()
    fc.fit(train)
    fit_s = time.perf_counter() - t0
    pred = fc.predict()[name].to_numpy()
    return model, fit_s, pred


def latency_nf(model, input_size):
    import torch
    model.eval()
    batch = dict(insample_y=torch.randn(1, input_size, 1), insample_mask=torch.ones(1, input_size, 1),
                 futr_exog=None, hist_exog=None, stat_exog=None)
    with torch.no_grad():
        return _median(lambda: model(batch))


def latency_nd(model, input_size):
    import ndiv
    model.eval()
    batch = dict(insample_y=ndiv.randn(1, input_size, 1), insample_mask=ndiv.ones(1, input_size, 1),
                 futr_exog=None, hist_exog=None, stat_exog=None)
    with ndiv.no_grad():
        return _median(lambda: model(batch))


def _median(fn, repeat=50):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    import torch

    import ndiv
    p = argparse.ArgumentParser()
    p.add_argument("models", nargs="+")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--threads", type=int, default=2, help="threads for both libraries (1 on a shared machine)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ndiv.set_num_threads(args.threads)
    train, test = load()
    y = test["y"].to_numpy()
    naive = float(np.mean(np.abs(y - train["y"].to_numpy()[-12:])))
    print(f"seasonal naive MAE {naive:.2f}")
    rows = []
    print("| model | params | fit s ndiv | fit s NF | NF/ndiv | MAE ndiv | MAE NF | latency ms ndiv | latency ms torch | torch/ndiv |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        fits = {"nd": [], "nf": []}
        maes = {"nd": [], "nf": []}
        for seed in args.seeds:
            nd_model, t_nd, p_nd = fit_nd(name, train, seed, args.max_steps, {})
            nf_model, t_nf, p_nf = fit_nf(name, train, seed, args.max_steps, {})
            fits["nd"].append(t_nd)
            fits["nf"].append(t_nf)
            maes["nd"].append(float(np.mean(np.abs(y - p_nd))))
            maes["nf"].append(float(np.mean(np.abs(y - p_nf))))
            print(f"  {name} seed {seed}: MAE ndiv {maes['nd'][-1]:.3f} ({t_nd:.1f} s), "
                  f"NF {maes['nf'][-1]:.3f} ({t_nf:.1f} s)", flush=True)
        n_params = sum(p.data.size for p in nd_model.parameters())
        lat_nd = latency_nd(nd_model, L) * 1e3
        lat_nf = latency_nf(nf_model, L) * 1e3
        f_nd, f_nf = statistics.median(fits["nd"]), statistics.median(fits["nf"])
        print(f"| {name} | {n_params} | {f_nd:.2f} | {f_nf:.2f} | {f_nf / f_nd:.1f} | "
              f"{np.mean(maes['nd']):.2f} ± {np.std(maes['nd']):.2f} | {np.mean(maes['nf']):.2f} ± {np.std(maes['nf']):.2f} | "
              f"{lat_nd:.3f} | {lat_nf:.3f} | {lat_nf / lat_nd:.1f} |", flush=True)
        rows.append((name, maes))
    # the two means against their standard errors (sample std / sqrt(n)); +- above is the population std
    for name, maes in rows:
        n = len(args.seeds)
        if n > 1:
            se = {k: statistics.stdev(v) / n ** 0.5 for k, v in maes.items()}
            diff = np.mean(maes["nd"]) - np.mean(maes["nf"])
            print(f"{name}: {n} seeds, mean MAE ndiv {np.mean(maes['nd']):.2f} (se {se['nd']:.2f}), NF "
                  f"{np.mean(maes['nf']):.2f} (se {se['nf']:.2f}); difference {diff:+.2f} = "
                  f"{diff / (se['nd'] ** 2 + se['nf'] ** 2) ** 0.5:+.2f} combined standard errors")


if __name__ == "__main__":
    main()
