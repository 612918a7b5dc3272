"""PatchTST: training speed and batch-1 latency, with NeuralForecast (torch) side by side.

    PatchTSTFit.time_fit                    fit STEPS steps on AirPassengers at NF's defaults
    PatchTSTFit.track_fit_steps_per_second  the same as a rate (higher is better)
    PatchTSTPredict.time_forward_batch1     one forward pass (eval, no grad) of one window of
                                            LATENCY_INPUT_SIZE steps (62 patches): the serving latency

Both backends get the same hyperparameters: h=12, input_size=24 for the fit and NF's defaults for
everything else (windows_batch_size=1024, hidden_size=128, 16 heads, 3 layers, res_attention).
The torch case raises NotImplementedError in setup (asv: skipped) when torch or neuralforecast
is missing.
"""
from __future__ import annotations

import logging
import time

from . import BACKENDS, limit_threads, require_torch

STEPS = 10                  # a PatchTST step at NF's defaults is 1024 windows x 3 patches x 3 layers
H, INPUT_SIZE, FREQ = 12, 24, "MS"
LATENCY_INPUT_SIZE = 500
NF_QUIET = dict(enable_progress_bar=False, enable_model_summary=False, logger=False, accelerator="cpu")


def _backend(backend: str):
    """(Forecaster class, PatchTST class, extra kwargs) for a backend, or NotImplementedError."""
    if backend == "torch":
        require_torch()
        try:
            from neuralforecast import NeuralForecast
            from neuralforecast.models import PatchTST
        except ImportError:
            raise NotImplementedError("neuralforecast is not installed") from None
        for name in ("pytorch_lightning", "lightning_fabric", "lightning"):
            logging.getLogger(name).setLevel(logging.ERROR)
        return NeuralForecast, PatchTST, NF_QUIET
    import ndiv
    from ndiv.models import PatchTST
    limit_threads()
    return ndiv.Forecaster, PatchTST, dict(enable_progress_bar=False)


class PatchTSTFit:
    param_names = ["backend"]
    params = (BACKENDS,)
    timeout = 900
    repeat = (1, 3, 180.0)
    rounds = 1
    warmup_time = 0

    def setup(self, backend):
        forecaster, model, extra = _backend(backend)
        from ndiv.datasets import load_air_passengers

        self.df = load_air_passengers(as_pandas=True if backend == "torch" else None)
        self.make = lambda: forecaster(models=[model(h=H, input_size=INPUT_SIZE, max_steps=STEPS, random_seed=1,
                                                     **extra)], freq=FREQ)
        self.make().fit(self.df)   # the first fit pays one-off costs (imports, kernel compiles)

    def time_fit(self, backend):
        self.make().fit(self.df)

    def track_fit_steps_per_second(self, backend):
        fc = self.make()
        start = time.perf_counter()
        fc.fit(self.df)
        return STEPS / (time.perf_counter() - start)

    track_fit_steps_per_second.unit = "steps/s"


class PatchTSTPredict:
    param_names = ["backend"]
    params = (BACKENDS,)
    timeout = 300
    number = 20
    repeat = (3, 10, 20.0)

    def setup(self, backend):
        _, model, extra = _backend(backend)
        net = model(h=H, input_size=LATENCY_INPUT_SIZE, max_steps=1, **extra)
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

    def time_forward_batch1(self, backend):
        self.forward()
