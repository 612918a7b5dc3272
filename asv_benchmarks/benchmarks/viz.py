"""What ndiv.viz.GradientRecorder costs a fit (ndiv only: torch has no counterpart here).

    time_fit(recording)       a fit of STEPS steps of NHITS (NeuralForecast's default sizes) on
                              AirPassengers; 'off': no recorder (no hook exists, the loop is the
                              plain one), 'on': GradientRecorder attached with its default
                              every=10 (stats of every 10th step, as wandb.watch's log_freq),
                              'every-step': every=1 (a |grad| and an update/weight ratio per
                              parameter and step)
    track_overhead_ratio      time(fit on) / time(fit off), the best of REPEAT fits each, run
                              alternately so that both see the same machine load. Goal: < 1.05.
    track_overhead_ratio_every_step   the same with every=1 (about 5 passes over the weights per
                              step, fused in one kernel: 5-10% of an NHITS step, no goal)

'off' costs nothing by construction: without a recorder no hook is registered anywhere
(tests/viz/test_viz.py checks that every parameter's hook list is empty before and after).
"""
from __future__ import annotations

import time

from . import limit_threads

STEPS = 40
REPEAT = 3


def _fit(record, every: int = 10):
    import ndiv
    from ndiv.datasets import load_air_passengers
    from ndiv.models import NHITS
    from ndiv.viz import GradientRecorder
    model = NHITS(h=12, input_size=24, max_steps=STEPS, random_seed=1, enable_progress_bar=False)
    fc = ndiv.Forecaster([model], freq="MS")
    df = load_air_passengers()
    rec = GradientRecorder(model, every=every) if record else None
    t0 = time.perf_counter()
    fc.fit(df)
    elapsed = time.perf_counter() - t0
    if rec is not None:
        rec.remove()
    return elapsed


class RecorderOverhead:
    param_names = ["recording"]
    params = (["off", "on", "every-step"],)
    timeout = 600

    def setup(self, recording):
        try:
            import ndiv.viz  # noqa: F401
        except ImportError as e:
            raise NotImplementedError(f"ndiv.viz does not import: {e}") from None
        limit_threads()
        _fit(True, every=1)             # compile the kernels once, outside the timing

    def time_fit(self, recording):
        _fit(recording != "off", every=1 if recording == "every-step" else 10)


class RecorderOverheadRatio:
    timeout = 900

    def setup(self):
        limit_threads()
        _fit(True, every=1)

    @staticmethod
    def _ratio(every):
        off, on = [], []
        for _ in range(REPEAT):
            off.append(_fit(False))
            on.append(_fit(True, every=every))
        return min(on) / min(off)

    def track_overhead_ratio(self):
        return self._ratio(10)

    def track_overhead_ratio_every_step(self):
        return self._ratio(1)

    track_overhead_ratio.unit = track_overhead_ratio_every_step.unit = "ratio"
