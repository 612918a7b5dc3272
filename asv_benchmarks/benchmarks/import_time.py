"""Start-up costs, each in a fresh interpreter (asv `timeraw_`: one process per sample).

    ImportTime.timeraw_import             `import ndiv` against `import torch`. DESIGN's budget
                                          for ndiv: well under 0.5 s (no Numba, SciPy or CuPy at
                                          import; kernels compile on first use).
    FirstResult.timeraw_first_result      a fresh process's time to its first forecast, with the
                                          Numba on-disk cache cold (an empty NUMBA_CACHE_DIR: every
                                          kernel compiles) or warm (a cache filled in setup).

FIRST_RESULT is the code that "first result" means: what a new user's first forecast costs, a
Forecaster fit (one training step) and predict on AirPassengers with an MLP and an LSTM, so the
data pipeline runs and the fused LSTM kernels compile (cold) or load from the cache (warm).
"""
from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

from . import BACKENDS, require_torch

FIRST_RESULT = textwrap.dedent("""
    import ndiv
    from ndiv.datasets import load_air_passengers
    from ndiv.models import LSTM, MLP
    models = [MLP(h=12, input_size=24, max_steps=1), LSTM(h=12, input_size=24, max_steps=1)]
    fc = ndiv.Forecaster(models=models, freq="MS")
    fc.fit(load_air_passengers())
    forecast = fc.predict()
    assert len(forecast["LSTM"]) == 12
""")
FIRST_RESULT_NEEDS = "ndiv.Forecaster"  # module.attr; setup skips the case without it


def _has(dotted: str) -> bool:
    module, _, attr = dotted.rpartition(".")
    try:
        return hasattr(importlib.import_module(module), attr)
    except ImportError:
        return False


class ImportTime:
    param_names = ["backend"]
    params = (BACKENDS,)
    repeat = (3, 10, 20.0)
    warmup_time = 0  # every sample is already a fresh process

    def setup(self, backend):
        if backend == "torch":
            require_torch()

    def timeraw_import(self, backend):
        return f"import {backend}"


class FirstResult:
    """cold: every sample gets its own empty NUMBA_CACHE_DIR (made in the child, under self.root);
    warm: every sample reads the cache that setup filled by running FIRST_RESULT once."""

    param_names = ["numba_cache"]
    params = (["cold", "warm"],)
    repeat = (1, 5, 60.0)
    rounds = 1
    warmup_time = 0
    timeout = 600

    def setup(self, numba_cache):
        if not _has(FIRST_RESULT_NEEDS):
            raise NotImplementedError(f"{FIRST_RESULT_NEEDS} does not exist yet")
        self.root = tempfile.mkdtemp(prefix="ndiv-asv-numba-")
        if numba_cache == "warm":
            env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(self.root, "warm"))
            subprocess.run([sys.executable, "-c", FIRST_RESULT], env=env, check=True)

    def teardown(self, numba_cache):
        shutil.rmtree(self.root, ignore_errors=True)

    def timeraw_first_result(self, numba_cache):
        if numba_cache == "warm":
            cache_dir = repr(os.path.join(self.root, "warm"))
        else:
            cache_dir = f"tempfile.mkdtemp(dir={self.root!r})"
        # NUMBA_CACHE_DIR must be set before numba is imported, i.e. in the untimed setup.
        setup = f"import os, tempfile; os.environ['NUMBA_CACHE_DIR'] = {cache_dir}"
        return FIRST_RESULT, setup
