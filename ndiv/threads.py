"""CPU threads: how many threads BLAS (matmul) and the Numba kernels use.

    ndiv.set_num_threads(1)     # like torch.set_num_threads

Why it matters: ndiv's models are small, so their matrix products are small, and a 2-thread
BLAS call on a machine where another process holds a core can wait milliseconds for its second
thread (measured here: [32x128]@[128x128] 44 ms with 2 threads against 0.09 ms with 1 while one
other process ran). One thread is the safe choice on a shared machine; more pay off only for
large GEMMs on idle cores. ndiv leaves the process's setting alone until you call this.
"""
from __future__ import annotations

_N_THREADS = None


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
