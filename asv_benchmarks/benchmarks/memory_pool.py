"""ndiv's CPU memory pool on and off, on an MLP training step whose buffers it serves.

Batch 256, 24 -> 1024 -> 1024 -> 12: the [256, 1024] activations and their gradients (1 MiB)
and the [1024, 1024] weight gradient (4 MiB) are above the pool's 64 KiB threshold, so with the
pool off NumPy mmaps and page-faults them again every step (ndiv/memory.py says why).

    time_step                     one step (zero_grad, forward, MSE, backward, SGD)
    track_pool_allocations        fresh buffers the pool made per steady-state step (pool on only)
    track_pool_reuses             requests the pool served from its cache per step (pool on only)
    track_page_faults             minor page faults per step (both): the cost the pool removes
    peakmem_steps                 the process's peak RSS after STEPS steps

No torch side: torch has no pool switch; ops.MLPStep compares the two libraries on a step.
"""
from __future__ import annotations

import resource

try:
    from asv_runner.benchmarks.mark import SkipNotImplemented  # asv: "n/a", not a failure
except ImportError:  # outside asv (tests/test_asv_suites.py without asv installed)
    SkipNotImplemented = NotImplementedError

from .ops import build_mlp_step

STEPS = 5  # steps per track_/peakmem_ measurement, after WARMUP steps that fill the pool
WARMUP = 2


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class MLPStepPool:
    param_names = ["pool"]
    params = (["off", "on"],)
    sizes = dict(batch=256, n_in=24, hidden=1024, n_out=12)
    timeout = 300

    def setup(self, pool):
        from ndiv.memory import pool as mem_pool

        self.pool = mem_pool
        self.pool.enable(pool == "on")
        self.step = build_mlp_step("ndiv", **self.sizes)
        for _ in range(WARMUP):
            self.step()
        self.pool.reset_stats()

    def teardown(self, pool):
        self.pool.disable()

    def time_step(self, pool):
        self.step()

    def _per_step(self, stat: str) -> float:
        if not self.pool.enabled:
            raise SkipNotImplemented("the pool is off: it serves no buffers")
        before = self.pool.stats()[stat]
        for _ in range(STEPS):
            self.step()
        return (self.pool.stats()[stat] - before) / STEPS

    def track_pool_allocations(self, pool):
        return self._per_step("allocations")

    track_pool_allocations.unit = "buffers/step"

    def track_pool_reuses(self, pool):
        return self._per_step("reuses")

    track_pool_reuses.unit = "buffers/step"

    def track_page_faults(self, pool):
        before = _minor_faults()
        for _ in range(STEPS):
            self.step()
        return (_minor_faults() - before) / STEPS

    track_page_faults.unit = "faults/step"

    def peakmem_steps(self, pool):
        for _ in range(STEPS):
            self.step()
