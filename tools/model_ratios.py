"""Peak memory of a fit, predict() of one series and batch-1 latency: ndiv against NeuralForecast.

    python tools/model_ratios.py TiDE BiTCN DeepNPTS NBEATSx --steps 20

For each model and library, a fresh Python process (one thread) builds the model of the asv
models suite's CASES (AirPassengers, h=12, input_size=24, NF's defaults otherwise), fits it for
--steps steps and reports: the process's peak RSS after the fit (what asv's peakmem_fit
measures: imports, data and the fit together), the median of 5 predict() calls of the fitted
model (one series), and the median batch-1 forward latency at input_size=500 in eval mode
without a graph (asv's ModelLatency). Prints a markdown table with the ratios NF / ndiv.

The multivariate models (asv's MV_NAMES: ETTh1's 7 columns, its first 2000 hours, h=24,
input_size=96, n_series=7) report instead the marginal training step, (fit(2 * steps) -
fit(steps)) / steps, the peak RSS, and predict() of all 7 series.

With --data m4_hourly (asv's M4 workload: 414 series, h=48, input_size=96) each model reports
the peak RSS of a fit of --steps steps, its wall time, and the median of 3 predict() calls of all
414 series (no latency: it does not depend on the data).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, logging, resource, statistics, sys, time, warnings
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
sys.path.insert(0, ROOT)
sys.path.insert(0, ROOT + "/asv_benchmarks")
from benchmarks import models as M

def median_ms(fn, n):
    fn()                                  # the first call may compile: outside the timing
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


model, backend, steps, data = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if backend == "torch":
    import torch
    torch.set_num_threads(1)
def fit_case(case):
    # (fitted forecaster, fit seconds, peak RSS MB) of a benchmark case's model fitted for `steps`
    case.setup(model, backend)
    fc = case.make(steps)
    t0 = time.perf_counter()
    fc.fit(case.df)
    return fc, time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if data == "m4_hourly":
    M.STEPS = steps
    fc, fit_s, peak_mb = fit_case(M.ModelFitM4())
    print(json.dumps(dict(peak_mb=peak_mb, fit_s=fit_s, predict_ms=median_ms(fc.predict, 3))))
    sys.exit(0)
if model in M.MV_NAMES:
    case = M.MultivariateFit()
    fits = {}
    for s in (steps, 2 * steps, steps, 2 * steps):
        M.STEPS = s
        case.setup(model, backend)
        fc = case.make()
        t0 = time.perf_counter()
        fc.fit(case.df)
        fits.setdefault(s, []).append(time.perf_counter() - t0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    step_ms = 1e3 * (min(fits[2 * steps]) - min(fits[steps])) / steps
    print(json.dumps(dict(peak_mb=peak_mb, step_ms=step_ms, predict_ms=median_ms(fc.predict, 5))))
    sys.exit(0)
fc, fit_s, peak_mb = fit_case(M._ModelCase())
predict_ms = median_ms(fc.predict, 5)
lat = M.ModelLatency()
lat.setup(model, backend)
print(json.dumps(dict(peak_mb=peak_mb, fit_s=fit_s, predict_ms=predict_ms,
                      latency_ms=median_ms(lambda: lat.time_forward_batch1(model, backend), 20))))
""".replace("ROOT", repr(ROOT))


def run(model, backend, steps, data="air_passengers"):
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PL_DISABLE_FORK="1")
    out = subprocess.run([sys.executable, "-c", CHILD, model, backend, str(steps), data], capture_output=True,
                         text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        return dict(error=out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--data", default="air_passengers", choices=["air_passengers", "m4_hourly"])
    args = p.parse_args()
    if args.data == "m4_hourly":
        print(f"M4 Hourly (414 series, h=48, input_size=96), a fit of {args.steps} steps, predict() of all "
              "series (median of 3), one thread, a fresh process per model and library\n")
        print("| model | peak RSS MB ndiv | peak RSS MB NF | NF / ndiv | fit s ndiv | fit s NF | predict ms ndiv "
              "| predict ms NF | NF / ndiv |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name in args.models:
            nd, nf = run(name, "ndiv", args.steps, args.data), run(name, "torch", args.steps, args.data)
            if "error" in nd or "error" in nf:
                print(f"| {name} | {nd.get('error', '')} {nf.get('error', '')} |", flush=True)
                continue
            print(f"| {name} | {nd['peak_mb']:.0f} | {nf['peak_mb']:.0f} | {nf['peak_mb'] / nd['peak_mb']:.2f} | "
                  f"{nd['fit_s']:.1f} | {nf['fit_s']:.1f} | {nd['predict_ms']:.0f} | {nf['predict_ms']:.0f} | "
                  f"{nf['predict_ms'] / nd['predict_ms']:.2f} |", flush=True)
        return
    sys.path.insert(0, os.path.join(ROOT, "asv_benchmarks"))
    from benchmarks.models import MV_NAMES
    mv = [m for m in args.models if m in MV_NAMES]
    args.models = [m for m in args.models if m not in MV_NAMES]
    if mv:
        print(f"ETTh1 (7 series, first 2000 hours, h=24, input_size=96), marginal step over {args.steps} steps, "
              "one thread, a fresh process per model and library\n")
        print("| model | step ms ndiv | step ms NF | NF / ndiv | peak RSS MB ndiv | peak RSS MB NF | NF / ndiv "
              "| predict ms ndiv | predict ms NF |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name in mv:
            nd, nf = run(name, "ndiv", args.steps), run(name, "torch", args.steps)
            if "error" in nd or "error" in nf:
                print(f"| {name} | {nd.get('error', '')} {nf.get('error', '')} |", flush=True)
                continue
            print(f"| {name} | {nd['step_ms']:.1f} | {nf['step_ms']:.1f} | {nf['step_ms'] / nd['step_ms']:.2f} | "
                  f"{nd['peak_mb']:.0f} | {nf['peak_mb']:.0f} | {nf['peak_mb'] / nd['peak_mb']:.2f} | "
                  f"{nd['predict_ms']:.2f} | {nf['predict_ms']:.2f} |", flush=True)
        print()
    if not args.models:
        return
    print(f"AirPassengers, {args.steps} steps, one thread, a fresh process per model and library\n")
    print("| model | peak RSS MB ndiv | peak RSS MB NF | NF / ndiv | predict ms ndiv | predict ms NF | NF / ndiv "
          "| latency ms ndiv | latency ms torch | torch / ndiv |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        nd, nf = run(name, "ndiv", args.steps), run(name, "torch", args.steps)
        if "error" in nd or "error" in nf:
            print(f"| {name} | {nd.get('error', '')} {nf.get('error', '')} |", flush=True)
            continue
        print(f"| {name} | {nd['peak_mb']:.0f} | {nf['peak_mb']:.0f} | {nf['peak_mb'] / nd['peak_mb']:.2f} | "
              f"{nd['predict_ms']:.2f} | {nf['predict_ms']:.2f} | {nf['predict_ms'] / nd['predict_ms']:.1f} | "
              f"{nd['latency_ms']:.3f} | {nf['latency_ms']:.3f} | {nf['latency_ms'] / nd['latency_ms']:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
