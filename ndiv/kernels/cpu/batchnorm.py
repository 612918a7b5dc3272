"""Batch normalisation in training mode (Numba), twin of reference/batchnorm.py.

Forward: two passes for the statistics (sum, then squared deviations: no cancellation) and one
to write y (x * scale + shift per channel); backward: one pass for the two per-channel sums and
one to write gx (gy * k1 + x * k2 + k3 per channel); float64 accumulators.
"""
from __future__ import annotations

import numpy as np

from ndiv.kernels.config import njit


def batch_norm_fwd(x, weight, bias, eps):
    """x [B, C, S]; weight, bias [C]; eps -> y [B, C, S], mean [C], invstd [C] (float64 stats)."""
    x = np.ascontiguousarray(x)
    B, C, S = x.shape
    y = np.empty_like(x)
    mean, invstd = np.zeros(C), np.zeros(C)
    _bn_fwd(x, np.ascontiguousarray(weight, dtype=np.float64), np.ascontiguousarray(bias, dtype=np.float64),
            float(eps), y, mean, invstd)
    return y, mean, invstd


@njit()
def _bn_fwd(x, w, b, eps, y, mean, invstd):
    B, C, S = x.shape
    n = B * S
    acc = np.zeros(C)
    for i in range(B):
        for c in range(C):
            s = 0.0
            for k in range(S):
                s += x[i, c, k]
            acc[c] += s
    for c in range(C):
        mean[c] = acc[c] / n
        acc[c] = 0.0
    for i in range(B):
        for c in range(C):
            s = 0.0
            m = mean[c]
            for k in range(S):
                d = x[i, c, k] - m
                s += d * d
            acc[c] += s
    scale = np.empty(C)
    shift = np.empty(C)
    for c in range(C):
        invstd[c] = 1.0 / np.sqrt(acc[c] / n + eps)
        scale[c] = invstd[c] * w[c]
        shift[c] = b[c] - mean[c] * scale[c]
    for i in range(B):
        for c in range(C):
            a, t = scale[c], shift[c]
            for k in range(S):
                y[i, c, k] = x[i, c, k] * a + t


def batch_norm_bwd(gy, x, mean, invstd, weight):
    """gy, x [B, C, S]; mean, invstd [C]; weight [C] -> gx [B, C, S], gw [C], gb [C]."""
    gy = np.ascontiguousarray(gy)
    x = np.ascontiguousarray(x, dtype=gy.dtype)
    C = x.shape[1]
    gx = np.empty_like(gy)
    gw, gb = np.zeros(C), np.zeros(C)
    _bn_bwd(gy, x, np.ascontiguousarray(mean, dtype=np.float64), np.ascontiguousarray(invstd, dtype=np.float64),
            np.ascontiguousarray(weight, dtype=np.float64), gx, gw, gb)
    return gx, gw.astype(gy.dtype), gb.astype(gy.dtype)


@njit()
def _bn_bwd(gy, x, mean, invstd, w, gx, gw, gb):
    B, C, S = x.shape
    n = B * S
    for i in range(B):
        for c in range(C):
            sb, sw = 0.0, 0.0
            m, r = mean[c], invstd[c]
            for k in range(S):
                g = gy[i, c, k]
                sb += g
                sw += g * (x[i, c, k] - m) * r
            gb[c] += sb
            gw[c] += sw
    # gx = k1 * gy + k2 * x + k3 per channel (xhat expanded)
    k1, k2, k3 = np.empty(C), np.empty(C), np.empty(C)
    for c in range(C):
        a = w[c] * invstd[c]
        k1[c] = a
        k2[c] = -a * invstd[c] * gw[c] / n
        k3[c] = -a * gb[c] / n - k2[c] * mean[c]
    for i in range(B):
        for c in range(C):
            p, q, t = k1[c], k2[c], k3[c]
            for k in range(S):
                gx[i, c, k] = gy[i, c, k] * p + x[i, c, k] * q + t
