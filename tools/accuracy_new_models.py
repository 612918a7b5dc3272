"""Accuracy of TiDE, BiTCN, DeepNPTS and NBEATSx against NeuralForecast, same settings.

    python tools/accuracy_new_models.py                       # both parts, seeds 1..5
    python tools/accuracy_new_models.py --part air --models TiDE NBEATSx --seeds 1 2
    python tools/accuracy_new_models.py --part epf --epf-days 28 --epf-steps 300
    python tools/accuracy_new_models.py --small --models NBEATSx TiDE BiTCN DeepNPTS   # bounded CPU

air: AirPassengers without its last 12 months, h=12, input_size=24, max_steps=200 (--steps),
each model's NF defaults otherwise (dropout included), fit and forecast by each library's own
Forecaster; MAE on the held-out year for every seed, then mean +- std (sample std) over seeds.
The ndiv mean is "within NF's seed spread" when it lies in NF mean +- 2 std.

epf: one EPF market (--market, default NP), h=24, input_size=5*24 (NF's EPF tutorial), the
market's two day-ahead forecasts as futr_exog_list, scaler_type='robust'; trained on every hour
before the usual test period (the last 728 days), then cross_validation with refit=False over
the first --epf-days days of the test period (one 24-hour forecast per day from each day's
midnight, using that day's exogenous forecasts). MAE per seed, NBEATSx and TiDE.

One thread per library (ndiv.set_num_threads(1), torch.set_num_threads(1)); prints each fit's
wall time (fit + forecast) as it goes, then markdown tables.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("PL_DISABLE_FORK", "1")
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

import numpy as np  # noqa: E402

MODELS = ("TiDE", "BiTCN", "DeepNPTS", "NBEATSx")
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
TEST_DAYS = 728          # the usual EPF test period (epftoolbox years_test=2)

# --small: the same smaller settings on both sides, so that 5 seeds x 4 models x 2 libraries fit
# a shared CPU (NF's defaults, e.g. TiDE's 512-wide layers on 1024 windows, take minutes a fit on one
# loaded core). AirPassengers has 97 training windows: 128 still draws them with replacement.
SMALL = {"TiDE": dict(hidden_size=128, temporal_decoder_dim=32), "NBEATSx": dict(mlp_units=[[128, 128]] * 3),
         "BiTCN": {}, "DeepNPTS": {}}
SMALL_COMMON = dict(windows_batch_size=128)
# TimesNet (issue 14): its NF defaults (64 channels, 5 periods, 2 layers) take minutes a fit here
MODELS += ("TimesNet",)
SMALL["TimesNet"] = dict(hidden_size=32, conv_hidden_size=32, windows_batch_size=64)


def small(name, on):
    return {**SMALL_COMMON, **SMALL[name]} if on else {}


def air_passengers():
    import pandas as pd
    path = os.path.join(DATA, "air_passengers", "air_passengers.csv")
    if os.path.exists(path):
        df = pd.read_csv(path, parse_dates=["ds"])
    else:
        from ndiv.datasets import load_air_passengers
        df = pd.DataFrame(load_air_passengers())
        df["ds"] = pd.to_datetime(df["ds"])
    return df.iloc[:-12].reset_index(drop=True), df.iloc[-12:].reset_index(drop=True)


def epf_market(market: str, days: int):
    """(df, n_windows): the market's hours up to `days` days into the test period (long format:
    unique_id, ds, y, exog1, exog2)."""
    import pandas as pd
    path = os.path.join(DATA, "epf", f"{market}.csv")
    raw = pd.read_csv(path, index_col=0, parse_dates=True)
    raw.columns = [c.strip() for c in raw.columns]
    y, e1, e2 = raw.columns[:3]
    df = pd.DataFrame({"unique_id": market, "ds": raw.index, "y": raw[y].to_numpy(np.float64),
                       "exog1": raw[e1].to_numpy(np.float64), "exog2": raw[e2].to_numpy(np.float64)})
    end = len(df) - TEST_DAYS * 24 + days * 24
    return df.iloc[:end].reset_index(drop=True), days


def _nf_model(name, **kw):
    import neuralforecast.models as M
    return getattr(M, name)(accelerator="cpu", enable_progress_bar=False, enable_model_summary=False, logger=False,
                            **kw)


def _nd_model(name, **kw):
    from ndiv.models import MODELS as ND
    return ND[name](enable_progress_bar=False, **kw)


def air_mae(lib, name, seed, steps, extra):
    train, test = air_passengers()
    kw = dict(h=12, input_size=24, max_steps=steps, random_seed=seed, **extra)
    if lib == "nf":
        from neuralforecast import NeuralForecast
        fc = NeuralForecast(models=[_nf_model(name, **kw)], freq="MS")
    else:
        import ndiv
        fc = ndiv.Forecaster(models=[_nd_model(name, **kw)], freq="MS")
    t0 = time.perf_counter()
    fc.fit(train)
    pred = fc.predict()[name].to_numpy()
    return float(np.mean(np.abs(test["y"].to_numpy() - pred))), time.perf_counter() - t0


def epf_mae(lib, name, seed, steps, market, days, extra):
    df, n_windows = epf_market(market, days)
    kw = dict(h=24, input_size=5 * 24, max_steps=steps, random_seed=seed, futr_exog_list=["exog1", "exog2"],
              scaler_type="robust", **extra)
    if lib == "nf":
        from neuralforecast import NeuralForecast
        fc = NeuralForecast(models=[_nf_model(name, **kw)], freq="h")
    else:
        import ndiv
        fc = ndiv.Forecaster(models=[_nd_model(name, **kw)], freq="h")
    t0 = time.perf_counter()
    cv = fc.cross_validation(df, n_windows=n_windows, step_size=24, refit=False)
    wall = time.perf_counter() - t0
    assert len(cv) == 24 * n_windows, (lib, len(cv))
    return float(np.mean(np.abs(cv["y"].to_numpy() - cv[name].to_numpy()))), wall


def _row(label, maes):
    m = statistics.mean(maes)
    s = statistics.stdev(maes) if len(maes) > 1 else float("nan")
    return m, s, f"{label} | {m:.2f} ± {s:.2f} | " + ", ".join(f"{v:.2f}" for v in maes)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--part", choices=["air", "epf", "both"], default="both")
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--market", default="NP", choices=["NP", "PJM", "DE"])
    p.add_argument("--epf-models", nargs="+", default=["NBEATSx", "TiDE"])
    p.add_argument("--epf-seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--epf-steps", type=int, default=300)
    p.add_argument("--epf-days", type=int, default=28)
    p.add_argument("--small", action="store_true", help="the SMALL settings (both libraries) instead of NF's defaults")
    args = p.parse_args()

    import torch

    import ndiv
    torch.set_num_threads(1)
    ndiv.set_num_threads(1)
    t_start = time.perf_counter()
    results = {}
    jobs = []
    if args.part in ("air", "both"):
        jobs += [("air", n, s) for n in args.models for s in args.seeds]
    if args.part in ("epf", "both"):
        jobs += [("epf", n, s) for n in args.epf_models for s in args.epf_seeds]
    for part, name, seed in jobs:
        for lib in ("nf", "ndiv"):
            if part == "air":
                mae, wall = air_mae(lib, name, seed, args.steps, small(name, args.small))
            else:
                mae, wall = epf_mae(lib, name, seed, args.epf_steps, args.market, args.epf_days,
                                    small(name, args.small))
            results.setdefault((part, name, lib), []).append(mae)
            print(f"{part} {name:9s} seed {seed} {lib:5s} MAE {mae:9.3f}  wall {wall:7.1f} s", flush=True)

    setting = "SMALL settings" if args.small else "NF defaults"
    for part, title in (("air", f"AirPassengers, h=12, input_size=24, {args.steps} steps, {setting}, seeds {args.seeds}"),
                        ("epf", f"EPF {args.market}, h=24, input_size=120, futr exog1+exog2, robust scaler, "
                                f"{args.epf_steps} steps, {setting}, first {args.epf_days} test days, "
                                f"seeds {args.epf_seeds}")):
        names = sorted({n for (pt, n, _) in results if pt == part}, key=list(MODELS).index)
        if not names:
            continue
        print(f"\n{title}\n\nmodel / library | MAE mean ± std | per seed\n--- | --- | ---")
        for name in names:
            nf_m, nf_s, nf_line = _row(f"{name} NF", results[(part, name, "nf")])
            nd_m, _, nd_line = _row(f"{name} ndiv", results[(part, name, "ndiv")])
            within = abs(nd_m - nf_m) <= 2 * nf_s if nf_s == nf_s else None
            print(nf_line)
            print(nd_line + ("" if within is None else f"  (within NF mean ± 2 std: {within})"))
    print(f"\ntotal wall time {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
