"""asv suites for ndiv, with PyTorch side by side (see asv_benchmarks/README.md).

Shared by every suite module:
    BACKENDS               the `backend` parameter's values: ['ndiv', 'torch']
    require_torch()        torch with 2 threads, or NotImplementedError (asv then skips the case)
    limit_threads()        Numba (and so ndiv's kernels) to the same thread count as torch
    seeded(shape, ...)     a float32 array from a fixed seed, the same for both backends

Thread counts: ndiv and torch both get THREADS (env NDIV_BENCH_THREADS, default 2), the core
count that DESIGN.md's figures were measured on, so a ratio compares the libraries and not their
thread pools. The BLAS/OpenMP variables are set here, before a suite imports NumPy.
"""
from __future__ import annotations

import os

THREADS = int(os.environ.get("NDIV_BENCH_THREADS", "2"))
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, str(THREADS))

BACKENDS = ["ndiv", "torch"]


def require_torch():
    """torch limited to THREADS threads; NotImplementedError (asv: skipped) when it is missing."""
    try:
        import torch
    except ImportError:
        raise NotImplementedError("torch is not installed: the torch side of this benchmark is skipped") from None
    torch.set_num_threads(THREADS)
    return torch


def limit_threads() -> None:
    """Numba's thread pool to THREADS (NUMBA_NUM_THREADS caps it when set before numba loads)."""
    try:
        import ndiv  # noqa: F401  (before Numba starts its threads: ndiv sets their wait policy)
        import numba
    except ImportError:
        return
    numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))


def seeded(*shape: int, seed: int = 0, scale: float = 1.0):
    """A standard-normal float32 array [*shape] from `seed` (the same data for both backends)."""
    import numpy as np

    return (np.random.default_rng(seed).standard_normal(shape, dtype=np.float32) * scale).astype(np.float32)
