"""bfloat16 rounding and the bf16 GEMM, in NumPy: the twins of ndiv/kernels/cpu/bf16.py.

bfloat16 is the top half of a float32 (sign, 8 exponent bits, 7 mantissa bits), stored here as
uint16 since NumPy has no bfloat16 dtype. Rounding is to nearest, ties to even, as torch's
`x.bfloat16()`; a NaN stays a NaN (its quiet bit is set, so truncating its payload cannot turn it
into an infinity) and an infinity stays an infinity.
"""
from __future__ import annotations

import numpy as np


def to_bf16(a):
    """float32 [...] (any strides) -> uint16 [...] C-contiguous: the bfloat16 bits of a."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    nan = (bits & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    out = np.where(nan, (bits >> np.uint32(16)) | np.uint32(0x0040), rounded)
    return out.astype(np.uint16)


def from_bf16(u):
    """uint16 [...] bfloat16 bits -> float32 [...] (exact)."""
    return (np.asarray(u, dtype=np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


def gemm_bf16(a, b, out=None):
    """a [M, K] @ b [K, N] float32 with both factors rounded to bfloat16 and the products summed
    exactly (float64 here; float32 accumulation in MKL) -> float32 [M, N] (into out if given)."""
    a64 = from_bf16(to_bf16(a)).astype(np.float64)
    b64 = from_bf16(to_bf16(b)).astype(np.float64)
    c = (a64 @ b64).astype(np.float32)
    if out is None:
        return c
    out[...] = c
    return out
