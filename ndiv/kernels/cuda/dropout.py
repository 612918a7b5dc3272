"""Dropout (CuPy), twin of reference/dropout.py: the reference's counter-based draws and bit
packing, run as CuPy array expressions (the same bits as the CPU kernels). Composed, not a
RawKernel: not yet measured on a GPU (none was available when it was written)."""
from __future__ import annotations

from ndiv.kernels.reference.dropout import keep_mask, pack, scale_of, unpack


def dropout_fwd(x, p, seed):
    """x any shape; 0 < p < 1; seed an int in [0, 2**63) -> y (x's shape), mask uint8 [ceil(x.size / 8)]."""
    import cupy as cp

    keep = keep_mask(cp, seed, x.size, p)
    factor = cp.where(keep, scale_of(p, x.dtype), x.dtype.type(0)).reshape(x.shape)
    return x * factor, pack(cp, keep)


def dropout_bwd(gy, mask, p):
    """gy any shape; mask from dropout_fwd -> gx = gy / (1 - p) where kept, gy * 0 elsewhere."""
    import cupy as cp

    keep = unpack(cp, mask, gy.size)
    return gy * cp.where(keep, scale_of(p, gy.dtype), gy.dtype.type(0)).reshape(gy.shape)
