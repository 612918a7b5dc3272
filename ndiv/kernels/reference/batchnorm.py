"""Batch normalisation in training mode (batch statistics), forward and backward (plain NumPy).

x [B, C, S] (any spatial dims flattened into S, S = 1 for [B, C]); statistics per channel C over
the B * S values, biased variance, float64 accumulation. weight, bias [C] (ones / zeros when the
layer has no affine parameters).
"""
from __future__ import annotations

import numpy as np


def batch_norm_fwd(x, weight, bias, eps):
    """x [B, C, S]; weight, bias [C]; eps -> y [B, C, S], mean [C], invstd [C] (float64 stats)."""
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=(0, 2))
    var = ((x64 - mean[:, None]) ** 2).mean(axis=(0, 2))
    invstd = 1.0 / np.sqrt(var + eps)
    y = (x64 - mean[:, None]) * (invstd * weight)[:, None] + bias[:, None]
    return y.astype(x.dtype), mean, invstd


def batch_norm_bwd(gy, x, mean, invstd, weight):
    """gy, x [B, C, S]; mean, invstd [C] from forward; weight [C] -> gx [B, C, S], gw [C], gb [C].

    With xhat = (x - mean) invstd and n = B * S: gb = sum gy, gw = sum gy xhat,
    gx = weight invstd (gy - gb / n - xhat gw / n)."""
    n = x.shape[0] * x.shape[2]
    g64 = gy.astype(np.float64)
    xhat = (x.astype(np.float64) - mean[:, None]) * invstd[:, None]
    gb = g64.sum(axis=(0, 2))
    gw = (g64 * xhat).sum(axis=(0, 2))
    gx = (weight * invstd)[:, None] * (g64 - gb[:, None] / n - xhat * (gw / n)[:, None])
    return gx.astype(gy.dtype), gw.astype(gy.dtype), gb.astype(gy.dtype)
