"""CPU threads: how many threads BLAS (matmul) and the Numba kernels use.

    ndiv.set_num_threads(1)     # like torch.set_num_threads

Why it matters: ndiv's models are small, so their matrix products are small, and a 2-thread
BLAS call on a machine where another process holds a core can wait milliseconds for its second
thread (measured here: [32x128]@[128x128] 44 ms with 2 threads against 0.09 ms with 1 while one
other process ran). One thread is the safe choice on a shared machine; more pay off only for
large GEMMs on idle cores. ndiv leaves the process's setting alone until you call this.
"""
from __future__ import annotations

import os

_N_THREADS = None

# Idle OpenMP threads sleep instead of spinning. Numba's parallel kernels (its 'omp' threading
# layer) and MKL's bf16 GEMMs run on GNU OpenMP, whose default keeps idle threads spinning for a
# while; on a 2-core machine a spinning kernel thread then takes the core from the next BLAS
# GEMM's second thread, and OpenBLAS's spinning threads from the next kernel. Measured with 2
# threads, M4 Hourly step: TiDE 175.6 -> 131.2 ms (its layer_norm_bwd 24.2 -> 5.2 ms), PatchTST
# 474 -> 434, NHITS 101.6 -> 98.9, LSTM 144.9 -> 141.2; one thread is unaffected. libgomp reads
# the variable when it loads (at Numba's first parallel kernel), so it applies when ndiv is
# imported before that and before torch; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def set_num_threads(n: int) -> None:
    """Use n threads for BLAS (through threadpoolctl) and for the Numba kernels."""
    global _N_THREADS
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive integer, got {n!r}")
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=n)  # applies now, to every BLAS/OpenMP library loaded in the process
    import numba
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    _N_THREADS = n


def get_num_threads() -> int:
    """The number set by set_num_threads, else the BLAS libraries' current maximum."""
    if _N_THREADS is not None:
        return _N_THREADS
    from threadpoolctl import threadpool_info
    return max([lib.get("num_threads", 1) for lib in threadpool_info()] or [1])
