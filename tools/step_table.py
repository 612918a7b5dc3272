"""A training step of ndiv against NeuralForecast's, and both against ndiv's GEMM floor.

    python tools/step_table.py TFT TiDE BiTCN --data air_passengers
    python tools/step_table.py NHITS MLP --data m4_hourly --steps 6

For each model (NF's defaults, h and input_size of the workload): NeuralForecast's marginal step
(fit of 3 + k steps minus fit of 3 steps, over k; torch with one thread), ndiv's step (the median
of tools/profile_model.py's plain steps) and ndiv's GEMM floor (the step's matrix products, each
timed alone). One thread each; run it on an otherwise idle machine. "NF / floor" is the most a
fit of the same work can gain over NF with the same BLAS: where it is below 5, a 5x faster fit
would need fewer FLOPs, not a faster implementation.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings

if __name__ == "__main__":
    for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(_v, "1")
    os.environ.setdefault("PL_DISABLE_FORK", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def nf_step(name: str, df, h: int, input_size: int, freq, k: int = 5) -> float:
    """NeuralForecast's seconds per training step: (fit(3 + k) - fit(3)) / k."""
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import torch
    torch.set_num_threads(1)
    import neuralforecast.models as M
    from neuralforecast import NeuralForecast
    quiet = dict(enable_progress_bar=False, enable_model_summary=False, logger=False, enable_checkpointing=False,
                 accelerator="cpu")
    seconds = {}
    for steps in (3, 3 + k, 3, 3 + k):           # the second pair: after the first fit's warm-up
        t = time.perf_counter()
        NeuralForecast(models=[getattr(M, name)(h=h, input_size=input_size, max_steps=steps, random_seed=1,
                                                **quiet)], freq=freq).fit(df)
        seconds[steps] = time.perf_counter() - t
    return (seconds[3 + k] - seconds[3]) / k


def main(argv=None) -> None:
    import profile_model as P
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--data", default="air_passengers", choices=sorted(P.WORKLOADS))
    ap.add_argument("--steps", type=int, default=4, help="ndiv steps profiled")
    a = ap.parse_args(argv)
    import pandas as pd
    data, h, input_size, freq = P.load_data(a.data)
    df = pd.DataFrame(data)
    rows = []
    for name in a.models:
        p = P.profile(name, data=a.data, steps=a.steps)
        nf = nf_step(name, df, h, input_size, freq)
        rows.append((name, nf, p.step, p.floor))
        print(f"{name}: NF {nf * 1e3:.0f} ms, ndiv {p.step * 1e3:.0f} ms, floor {p.floor * 1e3:.0f} ms", flush=True)
    print(f"\n{a.data}, one thread each\n")
    print("| model | NF step ms | ndiv step ms | NF / ndiv | ndiv GEMM floor ms | ndiv / floor | NF / floor |")
    print("|---|---|---|---|---|---|---|")
    for name, nf, step, floor in rows:
        print(f"| {name} | {nf * 1e3:.0f} | {step * 1e3:.0f} | {nf / step:.2f} | {floor * 1e3:.0f} | "
              f"{step / floor:.2f} | {nf / floor:.2f} |")


if __name__ == "__main__":
    main()
