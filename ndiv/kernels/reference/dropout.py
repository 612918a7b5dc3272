"""Dropout with a counter-based generator (plain NumPy, the reference).

Element i (flat, C order) of a call with seed s is kept when the top 24 bits of
splitmix64(s + (i + 1) * golden) are >= round(p * 2**24): a hash of (seed, counter), so any
element's draw is computed on its own, in any order or thread, with no generator state and no
full-size random array. The kept elements are scaled by 1 / (1 - p); the mask is bit-packed,
element i at bit i % 8 of byte i // 8 (NumPy's bitorder='little'), n/8 bytes per call.
`keep_mask`, `pack` and `unpack` take the array module, so the CUDA twin runs the same code on CuPy.
"""
from __future__ import annotations

import numpy as np

GOLDEN, MIX1, MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
BITS = 24   # uniform draws of 24 bits: the keep probability is 1 - round(p * 2**24) / 2**24


def threshold(p: float) -> int:
    """The integer that a 24-bit draw must reach for its element to be kept."""
    return int(round(p * (1 << BITS)))


def scale_of(p: float, dtype):
    return np.dtype(dtype).type(1.0 / (1.0 - p))


def keep_mask(xp, seed: int, n: int, p: float):
    """bool [n]: the elements kept by the call with this seed (seed: an int in [0, 2**63))."""
    u64 = xp.uint64
    z = xp.arange(1, n + 1, dtype=u64) * u64(GOLDEN) + u64(seed)
    z = (z ^ (z >> u64(30))) * u64(MIX1)
    z = (z ^ (z >> u64(27))) * u64(MIX2)
    z = z ^ (z >> u64(31))
    return (z >> u64(64 - BITS)) >= u64(threshold(p))


def pack(xp, keep):
    """bool [n] -> uint8 [ceil(n / 8)], element i at bit i % 8 of byte i // 8."""
    n = keep.shape[0]
    padded = xp.zeros(-(-n // 8) * 8, dtype=xp.uint8)
    padded[:n] = keep
    return (padded.reshape(-1, 8) << xp.arange(8, dtype=xp.uint8)).sum(axis=1, dtype=xp.uint8)


def unpack(xp, mask, n: int):
    """uint8 [ceil(n / 8)] -> bool [n]."""
    return ((mask[:, None] >> xp.arange(8, dtype=xp.uint8)) & 1).reshape(-1)[:n].astype(bool)


def dropout_fwd(x, p, seed):
    """x any shape; 0 < p < 1; seed an int in [0, 2**63) -> y (x's shape and dtype: x / (1 - p)
    where kept, x * 0 elsewhere, so nan and inf stay nan), mask uint8 [ceil(x.size / 8)]."""
    keep = keep_mask(np, seed, x.size, p)
    factor = np.where(keep, scale_of(p, x.dtype), x.dtype.type(0)).reshape(x.shape)
    with np.errstate(invalid="ignore"):     # inf * 0: nan expected, as in the kernels
        return x * factor, pack(np, keep)


def dropout_bwd(gy, mask, p):
    """gy any shape; mask from dropout_fwd; p -> gx = gy / (1 - p) where kept, gy * 0 elsewhere."""
    keep = unpack(np, mask, gy.size)
    with np.errstate(invalid="ignore"):
        return gy * np.where(keep, scale_of(p, gy.dtype), gy.dtype.type(0)).reshape(gy.shape)
