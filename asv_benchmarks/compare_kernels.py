"""Run the cases of benchmarks/kernels.py without asv and print, per case, the median time of
forward + backward for ndiv's fused kernel, the composed ndiv ops and torch, with the ratios
torch / fused and composed / fused (> 1: the fused kernel is faster).

    python asv_benchmarks/compare_kernels.py [--suite LSTM,GRU,...] [--repeat 7]
"""
import argparse
import itertools
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmarks"))
import kernels  # noqa: E402


def interleaved_medians(cls, shape, backends, repeat, budget_s=4.0):
    """Median seconds per backend, running the backends in turn so that a noisy machine slows
    them alike; nan for a backend whose setup raises NotImplementedError (torch missing)."""
    cases = {}
    for b in backends:
        case = cls()
        try:
            case.setup(b, *shape)
            cases[b] = case
        except NotImplementedError:
            pass
    times = {b: [] for b in cases}
    start = time.perf_counter()
    for i in range(repeat):
        if i >= 3 and time.perf_counter() - start > budget_s:
            break
        for b, case in cases.items():
            t0 = time.perf_counter()
            case.time_fwd_bwd(b, *shape)
            times[b].append(time.perf_counter() - t0)
    return {b: statistics.median(times[b]) if b in times else float("nan") for b in backends}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", default="LSTM,GRU,Conv1d,Attention,Rows")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--no-composed", action="store_true", help="skip the (slow) composed backend")
    args = ap.parse_args()
    print(f"{'case':44s} {'fused ms':>9s} {'composed':>9s} {'torch ms':>9s} {'torch/fused':>11s} {'comp/fused':>10s}")
    for name in args.suite.split(","):
        cls = getattr(kernels, name)
        for shape in itertools.product(*cls.params[1:]):
            backends = ["ndiv", "torch"] + ([] if args.no_composed else ["composed"])
            t = {"composed": float("nan"), **interleaved_medians(cls, shape, backends, args.repeat)}
            label = name + " " + " ".join(f"{n}={v}" for n, v in zip(cls.param_names[1:], shape))
            print(f"{label:44s} {t['ndiv'] * 1e3:9.2f} {t['composed'] * 1e3:9.2f} {t['torch'] * 1e3:9.2f} "
                  f"{t['torch'] / t['ndiv']:11.2f} {t['composed'] / t['ndiv']:10.2f}", flush=True)
    mem = kernels.AttentionMemory()
    mem.setup("ndiv")
    print(f"attention L=4096 d=64 B=H=1 fwd+bwd peak extra memory: {mem.track_peak_extra_mib('ndiv'):.1f} MiB")


if __name__ == "__main__":
    main()
