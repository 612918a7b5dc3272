"""Model benchmarks: training speed, predict latency and peak memory per model.

One row of CASES per model (same hyperparameters on both sides, each model's NeuralForecast
defaults otherwise), and the benchmarks below then run for it with no other change:

    CASES["NHITS"] = _case("NHITS", h=H, input_size=24)

A case skips (NotImplementedError in setup) when ndiv.models / ndiv.Forecaster do not import,
when the model is missing on that side, or, for 'torch', when neuralforecast is not installed.

    time_fit            a fit of STEPS training steps on AirPassengers, as a user's call costs
    track_fit_steps_per_second   the marginal training rate, STEPS / (fit(2 * STEPS) - fit(STEPS)):
                        both fits pay the same setup (data, windows, compiles, the first
                        validation), so the difference is STEPS steps and nothing else (a rate,
                        so that higher is better in asv's plots)
    time_predict        predict() of a fitted model for one series (the serving latency)
    peakmem_fit         the process's peak RSS after the fit
    time_forward_batch1 one forward pass in eval mode of a model built with input_size=500, on
                        one window (the model's own latency, without the data pipeline)

The M4 Hourly workload (ModelFitM4, ModelPredictM4: 414 series, h=48, input_size=96, every CASES
model with its other hyperparameters) measures what AirPassengers hides: with many series no
window repeats, so no deduplication helps. track_fit_steps_per_second and peakmem_fit as above;
time_predict there is predict() of all 414 series.

backend: 'ndiv' runs ndiv.Forecaster; 'torch' runs NeuralForecast (skipped when neuralforecast
is not installed), with the same hyperparameters and data, so ratio_table.py compares them.
"""
from __future__ import annotations

import logging
import time

from . import BACKENDS, limit_threads, require_torch

STEPS = 20           # training steps per fit: enough to leave the first-step compile behind
H, FREQ = 12, "MS"   # AirPassengers: monthly, hold out a year

# NeuralForecast's trainer chatter off: it costs time that is not the model's
NF_QUIET = dict(enable_progress_bar=False, enable_model_summary=False, logger=False)


def _case(name: str, **hparams):
    """{backend: factory(steps=STEPS, **override)}: each factory builds an unfitted `name` with
    hparams (override: options that replace them, e.g. the M4 workload's h and input_size)."""

    def make(backend, steps, **override):
        _, models = _frameworks(backend)
        if not hasattr(models, name):
            raise NotImplementedError(f"{backend} has no model {name!r}")
        extra = NF_QUIET if backend == "torch" else {}
        return getattr(models, name)(max_steps=steps, random_seed=1, **{**hparams, **override}, **extra)

    return {backend: (lambda steps=STEPS, b=backend, **kw: make(b, steps, **kw)) for backend in BACKENDS}


# model name -> {"ndiv": factory, "torch": factory}; each factory returns an unfitted model
MODEL_NAMES = ["MLP", "DLinear", "NLinear", "NBEATS", "NHITS", "RNN", "LSTM", "GRU", "TCN", "PatchTST",
               "TiDE", "BiTCN", "DeepNPTS", "NBEATSx"]
MODEL_NAMES.append("TimesNet")
# the transformers and the recurrent/probabilistic wave: full `asv run` only (CI's quick selection
# leaves them out: NF needs 1-2 s per step for these, minutes per benchmark)
SLOW_MODELS = ["VanillaTransformer", "Informer", "Autoformer", "FEDformer", "TFT", "DeepAR"]
MODEL_NAMES += SLOW_MODELS
CASES: dict[str, dict] = {name: _case(name, h=H, input_size=24) for name in MODEL_NAMES}
LATENCY_INPUT_SIZE = 500


def _frameworks(backend: str):
    """(Forecaster class, models module) for a backend, or NotImplementedError to skip."""
    if backend == "torch":
        require_torch()
        try:
            import neuralforecast
            import neuralforecast.models
        except ImportError:
            raise NotImplementedError("neuralforecast is not installed") from None
        for name in ("pytorch_lightning", "lightning_fabric", "lightning"):
            logging.getLogger(name).setLevel(logging.ERROR)
        return neuralforecast.NeuralForecast, neuralforecast.models
    try:
        import ndiv
        import ndiv.models
    except ImportError:
        raise NotImplementedError("ndiv.models does not exist yet") from None
    if not hasattr(ndiv, "Forecaster"):
        raise NotImplementedError("ndiv.Forecaster does not exist yet")
    limit_threads()
    return ndiv.Forecaster, ndiv.models


class _ModelCase:
    param_names = ["model", "backend"]
    params = (sorted(CASES) or ["(none yet)"], BACKENDS)
    timeout = 600
    repeat = (1, 3, 120.0)
    rounds = 1
    warmup_time = 0

    def setup(self, model, backend):
        forecaster, _ = _frameworks(backend)
        if model not in CASES:
            raise NotImplementedError(f"no benchmark case for model {model!r} yet")
        from ndiv.datasets import load_air_passengers

        self.df = load_air_passengers(as_pandas=True if backend == "torch" else None)
        CASES[model][backend]()  # a model missing on this side skips here, not in the timing
        self.make = lambda steps=STEPS: forecaster(models=[CASES[model][backend](steps)], freq=FREQ)


class ModelFit(_ModelCase):
    def time_fit(self, model, backend):
        self.make().fit(self.df)

    def track_fit_steps_per_second(self, model, backend):
        self.make().fit(self.df)  # a first fit pays the process's lazy imports and compiles
        seconds = {STEPS: [], 2 * STEPS: []}
        for steps in (STEPS, 2 * STEPS) * 2:  # interleaved, the faster of two: less noise
            fc = self.make(steps)
            start = time.perf_counter()
            fc.fit(self.df)
            seconds[steps].append(time.perf_counter() - start)
        marginal = min(seconds[2 * STEPS]) - min(seconds[STEPS])
        # noise larger than STEPS steps leaves no rate to read: nan (asv shows n/a), not a made-up figure
        return STEPS / marginal if marginal > 0 else float("nan")

    track_fit_steps_per_second.unit = "steps/s"

    def peakmem_fit(self, model, backend):
        self.make().fit(self.df)


class ModelPredict(_ModelCase):
    def setup(self, model, backend):
        super().setup(model, backend)
        self.fitted = self.make()
        self.fitted.fit(self.df)
        self.fitted.predict()  # the first predict may compile kernels: outside the timing

    def time_predict(self, model, backend):
        self.fitted.predict()


class ModelLatency:
    """Batch-1 forward latency at input_size=500 (eval mode, no graph), ndiv against torch."""
    param_names = ["model", "backend"]
    params = (MODEL_NAMES, BACKENDS)
    timeout = 300
    number = 20
    repeat = (3, 10, 20.0)

    def setup(self, model, backend):
        _, models = _frameworks(backend)
        if not hasattr(models, model):
            raise NotImplementedError(f"{backend} has no model {model!r}")
        extra = NF_QUIET if backend == "torch" else {}
        net = getattr(models, model)(h=H, input_size=LATENCY_INPUT_SIZE, max_steps=1, **extra)
        net.eval()
        if backend == "torch":
            import torch
            lib, guard = torch, torch.no_grad
        else:
            import ndiv
            lib, guard = ndiv, ndiv.no_grad
        x = lib.randn(1, LATENCY_INPUT_SIZE, 1)
        batch = dict(insample_y=x, insample_mask=lib.ones(1, LATENCY_INPUT_SIZE, 1), futr_exog=None,
                     hist_exog=None, stat_exog=None)

        def forward():
            with guard():
                return net(batch)

        self.forward = forward
        self.forward()  # the first call (kernel compiles, lazy imports) outside the timing

    def time_forward_batch1(self, model, backend):
        self.forward()


# -- multivariate models: ETTh1's 7 columns as 7 series (a batch holds all of them) -----------------
MV_NAMES = ["MLPMultivariate", "TSMixer", "TSMixerx", "StemGNN", "iTransformer"]
MV_H, MV_INPUT, MV_ROWS = 24, 96, 2000     # the first MV_ROWS hours of ETTh1 (../shared/data)


class MultivariateFit:
    """fit (STEPS steps), predict of all 7 series, and peak RSS of each multivariate model on ETTh1,
    ndiv against NeuralForecast with the same hyperparameters (each model's NF defaults otherwise).
    Skips when ../shared/data/ett/ETTh1.csv is not beside the repository."""
    param_names = ["model", "backend"]
    params = (MV_NAMES, BACKENDS)
    timeout = 600
    repeat = (1, 3, 120.0)
    rounds = 1
    warmup_time = 0

    def setup(self, model, backend):
        import os
        forecaster, models = _frameworks(backend)
        if not hasattr(models, model):
            raise NotImplementedError(f"{backend} has no model {model!r}")
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.path.join(here, "..", "..", "..", "shared", "data", "ett", "ETTh1.csv")
        if not os.path.exists(path):
            raise NotImplementedError("../shared/data/ett/ETTh1.csv is absent")
        try:
            import pandas as pd
        except ImportError:
            raise NotImplementedError("the ETTh1 workload needs pandas") from None
        raw = pd.read_csv(path, parse_dates=["date"], nrows=MV_ROWS)
        self.df = raw.melt(id_vars="date", var_name="unique_id", value_name="y").rename(columns={"date": "ds"})
        extra = NF_QUIET if backend == "torch" else {}
        self.make = lambda: forecaster(models=[getattr(models, model)(
            h=MV_H, input_size=MV_INPUT, n_series=7, max_steps=STEPS, random_seed=1, **extra)], freq="h")
        if hasattr(self, "time_predict"):
            self.fitted = self.make()
            self.fitted.fit(self.df)
            self.fitted.predict()       # the first predict may compile kernels: outside the timing

    def time_fit(self, model, backend):
        self.make().fit(self.df)

    def peakmem_fit(self, model, backend):
        self.make().fit(self.df)


# -- M4 Hourly: 414 series, h=48, input_size=96 (no repeated windows to skip) -------------------
M4_H, M4_INPUT_SIZE, M4_FREQ = 48, 96, 1    # integer time index: freq 1
M4_SERIES = None     # None: all 414; tests/test_asv_suites.py takes a few


def _m4_hourly(as_pandas: bool, n_series: int | None = None):
    """M4 Hourly's training part in long format (unique_id, ds as int, y) from the shared data
    folder (NDIV_DATA_DIR, default ../shared/data beside the repository); NotImplementedError
    (asv: skipped) when it is not there."""
    import csv
    import gzip
    import os

    import numpy as np

    root = os.environ.get("NDIV_DATA_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data")
    path = os.path.join(root, "m4", "m4_hourly_train.csv.gz")
    if not os.path.exists(path):
        raise NotImplementedError(f"M4 Hourly is not at {path}; set NDIV_DATA_DIR to the folder holding m4/")
    ids, ds, y = [], [], []
    with gzip.open(path, "rt", newline="") as f:
        rows = csv.reader(f)
        header = next(rows)
        iu, it, iy = header.index("unique_id"), header.index("ds"), header.index("y")
        seen: list = []
        for row in rows:
            if not seen or seen[-1] != row[iu]:
                if n_series is not None and len(seen) == n_series:
                    break
                seen.append(row[iu])
            ids.append(row[iu])
            ds.append(int(row[it]))
            y.append(float(row[iy]))
    cols = {"unique_id": np.array(ids), "ds": np.array(ds, dtype=np.int64), "y": np.array(y)}
    if as_pandas:
        import pandas as pd
        return pd.DataFrame(cols)
    return cols


class _M4Case(_ModelCase):
    # MLP first: the cheapest model is the one that tests/test_asv_suites.py runs (first values)
    params = (sorted(CASES, key=lambda name: (name != "MLP", name)) or ["(none yet)"], BACKENDS)
    timeout = 1800   # the recurrent and attention models take minutes per fit on 414 series

    def setup(self, model, backend):
        forecaster, models = _frameworks(backend)
        if model not in CASES:
            raise NotImplementedError(f"no benchmark case for model {model!r} yet")
        self.df = _m4_hourly(backend == "torch", M4_SERIES)
        override = dict(h=M4_H, input_size=M4_INPUT_SIZE)
        if getattr(getattr(models, model, None), "MULTIVARIATE", False):   # a batch holds every series
            override["n_series"] = len(set(self.df["unique_id"].tolist()))
        CASES[model][backend](STEPS, **override)  # a model missing on this side skips here
        self.make = lambda steps=STEPS: forecaster(models=[CASES[model][backend](steps, **override)], freq=M4_FREQ)


class ModelFitM4(_M4Case):
    track_fit_steps_per_second = ModelFit.track_fit_steps_per_second
    peakmem_fit = ModelFit.peakmem_fit


class ModelPredictM4(_M4Case):
    def setup(self, model, backend):
        super().setup(model, backend)
        self.fitted = self.make()
        self.fitted.fit(self.df)
        self.fitted.predict()

    def time_predict(self, model, backend):
        self.fitted.predict()
