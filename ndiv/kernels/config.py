"""Compile flags shared by every Numba kernel in ndiv.kernels.cpu (one place to change them).

FASTMATH allows reassociation, contraction (FMA) and fast reciprocals so that reductions and
polynomials vectorize; it leaves out `nnan` and `ninf` because a kernel must keep NaN/inf
visible (DESIGN: nothing returns NaN silently). ERROR_MODEL 'numpy' drops Numba's
division-by-zero check, which otherwise keeps every loop holding a division scalar.
"""
from __future__ import annotations

FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})
ERROR_MODEL = "numpy"
CACHE = True

# Tile sizes of the flash-attention kernels: a [BLOCK_Q, BLOCK_K] score tile (64 KiB float32 at
# 128x128) stays in L2 while its two GEMMs run through BLAS.
ATTN_BLOCK_Q = 128
ATTN_BLOCK_K = 128


# Inputs with fewer elements run a parallel kernel's serial twin (one chunk, no thread launch).
PARALLEL_MIN_SIZE = 1 << 17


def njit(**kwargs):
    """numba.njit with ndiv's flags; compiles on first call (never at import), cached on disk.

    With parallel=True the result is a _Twins: the parallel kernel and a serial compilation of
    the same body (prange runs as range there); a call whose last argument (n_chunks) is 1 runs
    the serial one.
    """
    import numba

    options = dict(cache=CACHE, fastmath=set(FASTMATH), error_model=ERROR_MODEL)
    options.update(kwargs)
    if options.pop("parallel", False):
        return lambda fn: _Twins(fn, options)
    return numba.njit(**options)


class _Twins:
    def __init__(self, fn, options):
        import types

        import numba

        self.parallel = numba.njit(parallel=True, **options)(fn)
        # a distinct function object (and qualname): its own entry in Numba's on-disk cache
        serial = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__, fn.__closure__)
        serial.__qualname__ = fn.__qualname__ + "_serial"
        self.serial = numba.njit(**options)(serial)
        self.__doc__, self.__name__ = fn.__doc__, fn.__name__

    def __call__(self, *args):
        return (self.serial if args[-1] == 1 else self.parallel)(*args)
