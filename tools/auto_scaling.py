"""Scaling of an AutoNHITS search on M4 Hourly (issue 20): wall time with 1 and 2 workers, the
same search with NeuralForecast's AutoNHITS (optuna in one process, and Ray with 1 and 2 CPUs),
and the time projected on N machines from the per-trial figures.

    python tools/auto_scaling.py                       # the full measurement: 414 series, 16 trials
    python tools/auto_scaling.py --series 8 --trials 2 --max-steps 5 --no-ray   # a smoke run
    python tools/auto_scaling.py --partitions 4 --no-search --max-steps 500     # fits over partitions

Run it on an otherwise idle machine (every figure is a wall time); say how many cores it had.
Both libraries search the same space (below: NF's AutoNHITS keys, with fewer steps so that 16
trials fit in minutes) with one BLAS/torch thread per worker. The projection: a search of T trials
on N machines of W workers takes about start + ceil(T / (N * W)) * (mean trial time) + refit,
since trials are independent (the sampler sees results in batches of concurrent_trials).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data", "m4",
                    "m4_hourly_train.csv.gz")
H = 48


def load(n_series: int):
    import pandas as pd
    df = pd.read_csv(DATA)
    keep = df["unique_id"].drop_duplicates().iloc[:n_series]
    return df[df["unique_id"].isin(keep)].reset_index(drop=True)


def space(max_steps: int) -> dict:
    """The searched keys (NF's AutoNHITS default_config) with a fixed, small max_steps."""
    return dict(input_size=("choice", [H, 2 * H, 3 * H]),
                n_pool_kernel_size=("choice", [[2, 2, 1], [1, 1, 1], [2, 2, 2], [4, 4, 4]]),
                n_freq_downsample=("choice", [[24, 12, 1], [1, 1, 1], [60, 8, 1]]),
                learning_rate=("loguniform", 1e-4, 1e-2), scaler_type=("choice", ["robust", "standard"]),
                batch_size=("choice", [32, 64]), windows_batch_size=("choice", [128, 256]),
                random_seed=("randint", 1, 20), max_steps=max_steps, val_check_steps=max(1, max_steps // 2))


def ndiv_config(sp: dict) -> dict:
    from ndiv.auto import spaces
    make = {"choice": lambda v: spaces.choice(v), "loguniform": lambda a, b: spaces.loguniform(a, b),
            "randint": lambda a, b: spaces.randint(a, b)}
    return {k: make[v[0]](*v[1:]) if isinstance(v, tuple) else v for k, v in sp.items()}


def optuna_config(sp: dict):
    def config(trial):
        out = {}
        for k, v in sp.items():
            if not isinstance(v, tuple):
                out[k] = v
            elif v[0] == "choice":
                i = trial.suggest_categorical(k, list(range(len(v[1]))))
                out[k] = v[1][i] if isinstance(i, int) else v[1][0]   # NF probes with a MockTrial
            elif v[0] == "loguniform":
                out[k] = trial.suggest_float(k, v[1], v[2], log=True)
            else:
                out[k] = trial.suggest_int(k, v[1], v[2])
        return out
    return config


def run_ndiv(df, sp, trials: int, workers: int, concurrent: int) -> dict:
    from ndiv import Forecaster
    from ndiv.auto import AutoNHITS, LocalBackend
    backend = LocalBackend(n_workers=workers, threads=1)   # one thread each: the same search for any workers
    t0 = time.perf_counter()
    model = AutoNHITS(h=H, config=ndiv_config(sp), num_samples=trials, concurrent_trials=concurrent,
                      backend=backend, pruner=False)
    Forecaster(models=[model], freq=1).fit(df, val_size=H)
    wall = time.perf_counter() - t0
    backend.close()
    res = model.results
    return {"library": "ndiv", "engine": f"local x{workers}", "workers": workers, "trials": trials,
            "wall_s": wall, "mean_trial_s": float(res["seconds"].mean()),
            "failed": int((res["state"] == "FAIL").sum()), "best_loss": float(res["loss"].min())}


def run_nf(df, sp, trials: int, workers: int, engine: str) -> dict:
    import torch
    torch.set_num_threads(1)
    from neuralforecast import NeuralForecast
    from neuralforecast.auto import AutoNHITS
    from neuralforecast.losses.pytorch import MAE
    quiet = dict(enable_progress_bar=False, enable_model_summary=False, logger=False, enable_checkpointing=False)
    t0 = time.perf_counter()
    if engine == "optuna":
        import optuna
        base = optuna_config(sp)
        model = AutoNHITS(h=H, loss=MAE(), config=lambda t: {**base(t), **quiet}, num_samples=trials,
                          backend="optuna", search_alg=optuna.samplers.TPESampler(seed=1))
    else:
        import ray
        from ray import tune
        from neuralforecast.common._base_auto import RayOptions
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        make = {"choice": tune.choice, "loguniform": tune.loguniform, "randint": tune.randint}
        config = {k: make[v[0]](*v[1:]) if isinstance(v, tuple) else v for k, v in sp.items()}
        model = AutoNHITS(h=H, loss=MAE(), config={**config, **quiet}, num_samples=trials, backend="ray",
                          ray_options=RayOptions(cpus=1, gpus=0))
    nf = NeuralForecast(models=[model], freq=1)
    nf.fit(df, val_size=H)
    wall = time.perf_counter() - t0
    res = nf.models[0].results
    if engine == "optuna":
        secs = [(t.datetime_complete - t.datetime_start).total_seconds() for t in res.trials if t.datetime_complete]
    else:
        secs = list(res.get_dataframe()["time_total_s"])
    mean_trial = sum(secs) / len(secs) if secs else None
    if engine == "ray":
        import ray
        ray.shutdown()
    return {"library": "neuralforecast", "engine": f"{engine} x{workers}", "workers": workers, "trials": trials,
            "wall_s": wall, "mean_trial_s": mean_trial, "failed": None, "best_loss": None}


def run_partitioned(df, test, partitions: int, workers: int | None, max_steps: int) -> dict:
    """NHITS (NF's defaults, max_steps) fitted on all series (workers=None: one global fit here)
    or as Partitioned(partitions) with its partitions' fits on `workers` local processes; the
    wall time of fit + predict and the MAE on M4's test year."""
    import numpy as np
    from ndiv import Forecaster
    from ndiv.auto import LocalBackend, Partitioned
    from ndiv.models import NHITS
    model = NHITS(h=H, input_size=2 * H, max_steps=max_steps, random_seed=1)
    backend = None if workers is None else LocalBackend(n_workers=workers, threads=1)
    if backend is not None:
        backend.map(_warm, None, list(range(workers)))        # start the workers (imports, Numba cache)
    t0 = time.perf_counter()
    fc = Forecaster(models=[model if workers is None else Partitioned(model, partitions)], freq=1)
    y = fc.fit(df, backend=backend).predict()
    wall = time.perf_counter() - t0
    if backend is not None:
        backend.close()
    mae = float(np.mean(np.abs(y["NHITS"].to_numpy() - test.set_index(["unique_id", "ds"]).loc[
        list(zip(y["unique_id"], y["ds"])), "y"].to_numpy())))
    return {"library": "ndiv", "engine": "global fit" if workers is None else f"{partitions} partitions, local x{workers}",
            "workers": workers or 1, "partitions": 1 if workers is None else partitions, "steps_per_model": max_steps,
            "wall_s": wall, "mae": mae}


def _warm(data, task):
    import ndiv.models  # noqa: F401
    return task


def projection(row: dict, machines=(1, 2, 4, 8, 16)) -> dict:
    """Wall time on N machines of the same kind (row['workers'] workers each), from the mean trial."""
    t = row["mean_trial_s"]
    serial = math.ceil(row["trials"] / row["workers"]) * t
    overhead = max(row["wall_s"] - serial, 0.0)         # start, scatter, refit
    return {n: overhead + math.ceil(row["trials"] / (n * row["workers"])) * t for n in machines}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--series", type=int, default=414)
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--max-steps", type=int, default=100)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--concurrent", type=int, default=2, help="trials drawn at once (the search depends on it)")
    p.add_argument("--no-nf", action="store_true", help="skip NeuralForecast")
    p.add_argument("--no-ray", action="store_true", help="skip NeuralForecast's Ray backend (slow to start)")
    p.add_argument("--partitions", type=int, default=0,
                   help="also time Partitioned(NHITS) fits with this many partitions (0: skip)")
    p.add_argument("--no-search", action="store_true", help="skip the searches (with --partitions)")
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    a = p.parse_args(argv)
    df = load(a.series)
    sp = space(a.max_steps)
    rows = []
    if a.partitions:
        import pandas as pd
        test = pd.read_csv(DATA.replace("_train", "_test"))
        test = test[test["unique_id"].isin(df["unique_id"].unique())]
        parts = [run_partitioned(df, test, a.partitions, w, a.max_steps)
                 for w in [None] + [int(x) for x in a.workers.split(",")]]
        for r in parts:
            print(json.dumps(r), flush=True)
        print(f"\nM4 Hourly, {a.series} series, NHITS, {a.max_steps} steps per model, {os.cpu_count()} cores")
        print(f"{'fit':32s} {'wall s':>8s} {'MAE':>8s}")
        for r in parts:
            print(f"{r['engine']:32s} {r['wall_s']:8.1f} {r['mae']:8.1f}")
        if a.no_search:
            return
    for w in [int(x) for x in a.workers.split(",")]:
        rows.append(run_ndiv(df, sp, a.trials, w, a.concurrent))
        print(json.dumps(rows[-1]), flush=True)
    if not a.no_nf:
        rows.append(run_nf(df, sp, a.trials, 1, "optuna"))
        print(json.dumps(rows[-1]), flush=True)
        if not a.no_ray:
            for w in [int(x) for x in a.workers.split(",")]:
                rows.append(run_nf(df, sp, a.trials, w, "ray"))
                print(json.dumps(rows[-1]), flush=True)
    print(f"\nM4 Hourly, {a.series} series, {a.trials} trials of {a.max_steps} steps, {os.cpu_count()} cores")
    print(f"{'library':15s} {'engine':12s} {'wall s':>8s} {'trial s':>8s}")
    for r in rows:
        trial = "" if r["mean_trial_s"] is None else f"{r['mean_trial_s']:8.2f}"
        print(f"{r['library']:15s} {r['engine']:12s} {r['wall_s']:8.1f} {trial}")
    for r in rows:
        if r["mean_trial_s"] is not None:
            proj = projection(r)
            print(f"{r['library']} {r['engine']}: projected wall s on N machines " +
                  ", ".join(f"N={n}: {v:.1f}" for n, v in proj.items()))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
