"""Dropout (Numba), twin of reference/dropout.py: the same counter-based draws, bit for bit.

One pass: each element's 24-bit draw is a splitmix64 hash of (seed, its index), computed where
it is used; y and the bit-packed mask (n/8 bytes) are written together, and the backward reads
only that mask. No random array and no float mask of x's size is ever made.
"""
from __future__ import annotations

import numpy as np

from ndiv.kernels.config import njit
from ndiv.kernels.reference.dropout import BITS, GOLDEN, MIX1, MIX2, scale_of, threshold

_GOLDEN, _MIX1, _MIX2 = np.uint64(GOLDEN), np.uint64(MIX1), np.uint64(MIX2)
_S30, _S27, _S31, _SDRAW = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(64 - BITS)


def dropout_fwd(x, p, seed):
    """x any shape; 0 < p < 1; seed an int in [0, 2**63) -> y (x's shape), mask uint8 [ceil(x.size / 8)]."""
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    mask = np.empty(-(-x.size // 8), np.uint8)
    _dropout_fwd(x.reshape(-1), y.reshape(-1), mask, np.uint64(seed), np.uint64(threshold(p)), scale_of(p, x.dtype))
    return y, mask


def dropout_bwd(gy, mask, p):
    """gy any shape; mask from dropout_fwd -> gx = gy / (1 - p) where kept, gy * 0 elsewhere."""
    gy = np.ascontiguousarray(gy)
    gx = np.empty_like(gy)
    _dropout_bwd(gy.reshape(-1), gx.reshape(-1), mask, scale_of(p, gy.dtype))
    return gx


@njit()
def _draw(seed, i):
    z = np.uint64(i + 1) * _GOLDEN + seed
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return (z ^ (z >> _S31)) >> _SDRAW


@njit()
def _dropout_fwd(x, y, mask, seed, thresh, scale):
    n = x.shape[0]
    zero = scale * 0
    for j in range(mask.shape[0]):
        bits = 0
        for k in range(min(8, n - 8 * j)):
            i = 8 * j + k
            keep = _draw(seed, i) >= thresh
            y[i] = x[i] * (scale if keep else zero)     # x * 0 where dropped: nan and inf give nan
            bits |= np.int64(keep) << k
        mask[j] = bits


@njit()
def _dropout_bwd(gy, gx, mask, scale):
    n = gy.shape[0]
    zero = scale * 0
    for j in range(mask.shape[0]):
        bits = mask[j]
        for k in range(min(8, n - 8 * j)):
            i = 8 * j + k
            gx[i] = gy[i] * (scale if (bits >> k) & 1 else zero)
