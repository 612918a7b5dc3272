"""Batch normalisation in training mode on the GPU (CuPy), twin of reference/batchnorm.py: CuPy
array expressions with float64 statistics (cuBLAS-free reductions). Not yet measured on a GPU."""
from __future__ import annotations


def batch_norm_fwd(x, weight, bias, eps):
    """x [B, C, S]; weight, bias [C]; eps -> y [B, C, S], mean [C], invstd [C] (float64 stats)."""
    import cupy as cp

    mean = x.mean(axis=(0, 2), dtype=cp.float64)
    var = ((x - mean[:, None].astype(x.dtype)).astype(cp.float64) ** 2).mean(axis=(0, 2))
    invstd = 1.0 / cp.sqrt(var + eps)
    scale = invstd * cp.asarray(weight, dtype=cp.float64)
    shift = cp.asarray(bias, dtype=cp.float64) - mean * scale
    y = (x * scale[:, None].astype(x.dtype) + shift[:, None].astype(x.dtype)).astype(x.dtype)
    return y, mean, invstd


def batch_norm_bwd(gy, x, mean, invstd, weight):
    """gy, x [B, C, S]; mean, invstd [C]; weight [C] -> gx [B, C, S], gw [C], gb [C]."""
    import cupy as cp

    n = x.shape[0] * x.shape[2]
    xhat = (x.astype(cp.float64) - mean[:, None]) * invstd[:, None]
    gb = gy.sum(axis=(0, 2), dtype=cp.float64)
    gw = (gy * xhat).sum(axis=(0, 2))
    gx = (cp.asarray(weight, dtype=cp.float64) * invstd)[:, None] * (gy - gb[:, None] / n - xhat * (gw / n)[:, None])
    return gx.astype(gy.dtype), gw.astype(gy.dtype), gb.astype(gy.dtype)
