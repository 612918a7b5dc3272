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


def njit(**kwargs):
    """numba.njit with ndiv's flags; compiles on first call (never at import), cached on disk."""
    import numba

    options = dict(cache=CACHE, fastmath=set(FASTMATH), error_model=ERROR_MODEL)
    options.update(kwargs)
    return numba.njit(**options)
