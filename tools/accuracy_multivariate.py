"""Accuracy of the multivariate models against NeuralForecast, same settings, several seeds.

    python tools/accuracy_multivariate.py                                  # ETTh1, NF's defaults, seeds 1..3
    python tools/accuracy_multivariate.py --rows 4000 --h 24 --input-size 96 --steps 200 --small
    python tools/accuracy_multivariate.py --part air --models TSMixer iTransformer

etth1: ETTh1's 7 columns as 7 series (its first --rows hours), the last --h hours held out,
input_size --input-size (336 with h=96 as in the papers), max_steps --steps, scaler_type
'standard' on both sides, each model's NF defaults otherwise (dropout included; --small: the
narrower layers of SMALL on both sides, to fit a shared CPU); one fit + predict per seed and
library by each library's own Forecaster. MAE and MSE over all series and hours, per seed, then
mean +- sample std. The ndiv mean is "within NF's seed spread" when it lies in NF mean +- 2 std.
air: AirPassengers as one series (n_series=1), h=12, input_size=24, the last year held out.

One thread per library (torch.set_num_threads(1); OMP/OPENBLAS/NUMBA at 1).
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import warnings

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
os.environ.setdefault("PL_DISABLE_FORK", "1")
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

import numpy as np  # noqa: E402

MODELS = ("MLPMultivariate", "TSMixer", "TSMixerx", "StemGNN", "iTransformer")
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
SMALL = {"MLPMultivariate": dict(hidden_size=256), "TSMixer": {}, "TSMixerx": {},
         "StemGNN": dict(multi_layer=2), "iTransformer": dict(hidden_size=64, n_heads=4, d_ff=128)}


def etth1(rows: int, h: int):
    import pandas as pd
    raw = pd.read_csv(os.path.join(DATA, "ett", "ETTh1.csv"), parse_dates=["date"], nrows=rows)
    df = raw.melt(id_vars="date", var_name="unique_id", value_name="y").rename(columns={"date": "ds"})
    cut = df["ds"].max() - pd.Timedelta(hours=h)
    return df[df["ds"] <= cut].reset_index(drop=True), df[df["ds"] > cut].reset_index(drop=True), "h"


def air(h: int):
    import pandas as pd
    df = pd.read_csv(os.path.join(DATA, "air_passengers", "air_passengers.csv"), parse_dates=["ds"])
    return df.iloc[:-h].reset_index(drop=True), df.iloc[-h:].reset_index(drop=True), "MS"


def run(lib, name, train, test, freq, kw):
    if lib == "nf":
        import torch
        from neuralforecast import NeuralForecast
        import neuralforecast.models as M
        torch.set_num_threads(1)
        model = getattr(M, name)(accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                                 logger=False, **kw)
        nf = NeuralForecast([model], freq=freq)
        nf.fit(train)
        pred = nf.predict()
    else:
        import ndiv
        from ndiv.models import MODELS as ND
        fc = ndiv.Forecaster([ND[name](enable_progress_bar=False, **kw)], freq=freq)
        pred = fc.fit(train).predict()
    m = test.merge(pred, on=["unique_id", "ds"])
    err = m["y"].to_numpy() - m[name].to_numpy()
    return float(np.mean(np.abs(err))), float(np.mean(err ** 2))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--part", choices=("etth1", "air"), default="etth1")
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--rows", type=int, default=17420)
    p.add_argument("--h", type=int, default=96)
    p.add_argument("--input-size", type=int, default=336)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--small", action="store_true")
    a = p.parse_args()
    if a.part == "air":
        a.h, a.input_size = 12, 24
    train, test, freq = etth1(a.rows, a.h) if a.part == "etth1" else air(a.h)
    n_series = train["unique_id"].nunique()
    rows = []
    for name in a.models:
        res = {"nd": [], "nf": []}
        for seed in a.seeds:
            kw = dict(h=a.h, input_size=a.input_size, n_series=n_series, max_steps=a.steps, random_seed=seed,
                      scaler_type="standard", **(SMALL[name] if a.small else {}))
            for lib in ("nd", "nf"):
                res[lib].append(run(lib, name, train, test, freq, kw))
                print(f"{name} seed {seed} {lib}: MAE {res[lib][-1][0]:.4f} MSE {res[lib][-1][1]:.4f}", flush=True)
        rows.append((name, res))
    print(f"\n{a.part}: h={a.h} input_size={a.input_size} steps={a.steps} seeds={a.seeds}{' small' if a.small else ''}")
    print("| model | ndiv MAE | NF MAE | ndiv MSE | NF MSE | MAE within NF +- 2 std |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, res in rows:
        cells = []
        for j in (0, 1):
            for lib in ("nd", "nf"):
                v = [r[j] for r in res[lib]]
                sd = statistics.stdev(v) if len(v) > 1 else 0.0
                cells.append(f"{statistics.mean(v):.4f} +- {sd:.4f}")
        nd, nf = [r[0] for r in res["nd"]], [r[0] for r in res["nf"]]
        sd = statistics.stdev(nf) if len(nf) > 1 else 0.0
        ok = abs(statistics.mean(nd) - statistics.mean(nf)) <= 2 * sd
        print(f"| {name} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} | {'yes' if ok else 'no'} |")


if __name__ == "__main__":
    main()
