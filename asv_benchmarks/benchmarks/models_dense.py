"""The dense models (DLinear, NLinear, NBEATS, NHITS): training speed and batch-1 latency, with
NeuralForecast (torch) side by side.

    DenseFit.time_fit                    fit STEPS steps on AirPassengers at NF's default batch sizes
    DenseFit.track_fit_steps_per_second  the same as a rate (higher is better)
    DensePredict.time_forward_batch1     one forward pass (eval, no grad) of one window of
                                         LATENCY_INPUT_SIZE steps: the serving latency

Both backends get the same hyperparameters (h=12, input_size=24 for the fit; NF's defaults for
everything else, so windows_batch_size=1024 and batch_size=32). The torch case raises
NotImplementedError in setup (asv: skipped) when torch or neuralforecast is missing.
"""
from __future__ import annotations

import logging

from . import BACKENDS, limit_threads, require_torch

MODELS = ["DLinear", "NLinear", "NBEATS", "NHITS"]
STEPS = 20                  # training steps per fit
H, INPUT_SIZE, FREQ = 12, 24, "MS"
LATENCY_INPUT_SIZE = 500    # every dense model takes any input_size
NF_QUIET = dict(enable_progress_bar=False, enable_model_summary=False, logger=False, accelerator="cpu")


def _backend(backend: str):
    """(Forecaster class, models module, extra kwargs) for a backend, or NotImplementedError."""
    if backend == "torch":
        require_torch()
        try:
            import neuralforecast
            import neuralforecast.models
        except ImportError:
            raise NotImplementedError("neuralforecast is not installed") from None
        for name in ("pytorch_lightning", "lightning_fabric", "lightning"):
            logging.getLogger(name).setLevel(logging.ERROR)
        return neuralforecast.NeuralForecast, neuralforecast.models, NF_QUIET
    import ndiv
    import ndiv.models
    limit_threads()
    return ndiv.Forecaster, ndiv.models, dict(enable_progress_bar=False)


class DenseFit:
    param_names = ["model", "backend"]
    params = (MODELS, BACKENDS)
    timeout = 600
    repeat = (1, 3, 120.0)
    rounds = 1
    warmup_time = 0

    def setup(self, model, backend):
        forecaster, models, extra = _backend(backend)
        from ndiv.datasets import load_air_passengers

        df = load_air_passengers(as_pandas=True if backend == "torch" else None)
        cls = getattr(models, model)
        self.make = lambda: forecaster(models=[cls(h=H, input_size=INPUT_SIZE, max_steps=STEPS, random_seed=1,
                                                   **extra)], freq=FREQ)
        self.df = df
        self.make().fit(self.df)   # the first fit pays one-off costs (imports, kernel compiles)

    def time_fit(self, model, backend):
        self.make().fit(self.df)

    def track_fit_steps_per_second(self, model, backend):
        import time

        fc = self.make()
        start = time.perf_counter()
        fc.fit(self.df)
        return STEPS / (time.perf_counter() - start)

    track_fit_steps_per_second.unit = "steps/s"


class DensePredict:
    param_names = ["model", "backend"]
    params = (MODELS, BACKENDS)
    timeout = 300
    number = 50
    repeat = (3, 10, 20.0)

    def setup(self, model, backend):
        _, models, extra = _backend(backend)
        net = getattr(models, model)(h=H, input_size=LATENCY_INPUT_SIZE, max_steps=1, **extra)
        net.eval()
        if backend == "torch":
            import torch

            x = torch.randn(1, LATENCY_INPUT_SIZE, 1)
            batch = dict(insample_y=x, insample_mask=torch.ones_like(x), futr_exog=None, hist_exog=None, stat_exog=None)
            guard = torch.no_grad
        else:
            import ndiv

            batch = dict(insample_y=ndiv.randn(1, LATENCY_INPUT_SIZE, 1), insample_mask=ndiv.ones(1, LATENCY_INPUT_SIZE, 1),
                         futr_exog=None, hist_exog=None, stat_exog=None)
            guard = ndiv.no_grad

        def forward():
            with guard():
                return net(batch)

        self.forward = forward
        self.forward()             # first call outside the timing

    def time_forward_batch1(self, model, backend):
        self.forward()
