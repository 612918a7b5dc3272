"""Batch normalisation in training mode (Numba), twin of reference/batchnorm.py.

Forward: two passes for the statistics (sum, then squared deviations: no cancellation) and one
to write y (x * scale + shift per channel); backward: one pass for the two per-channel sums and
one to write gx (gy * k1 + x * k2 + k3 per channel); float64 accumulators.

Two layouts: [B, C, S] with long contiguous runs of S (one (b, c) at a time), and channels-last
rows [B * S, C] (the inner loop over channels, which vectorizes) for short S, for [B, C] inputs,
and for inputs that already are a transposed [B, S, C] array (PatchTST's BatchNorm1d sees its
[B, patches, d_model] activations through a transpose: the rows layout then costs no copy).
"""
from __future__ import annotations

import numpy as np

from ndiv.kernels.config import njit


_ROWS_MAX_S = 16      # below this run length the channels-last rows kernel is the faster one


def _rows(a):
    """a [B, C, S] as channels-last rows [B * S, C] (a view when a is a transposed [B, S, C] array
    or S == 1, else a copy), or None when the [B, C, S] kernel suits it better (long runs of S)."""
    B, C, S = a.shape
    t = a.transpose(0, 2, 1)
    if t.flags.c_contiguous or S < _ROWS_MAX_S:
        return np.ascontiguousarray(t).reshape(B * S, C)
    return None


def batch_norm_fwd(x, weight, bias, eps):
    """x [B, C, S]; weight, bias [C]; eps -> y [B, C, S], mean [C], invstd [C] (float64 stats)."""
    B, C, S = x.shape
    w, b = np.ascontiguousarray(weight, dtype=np.float64), np.ascontiguousarray(bias, dtype=np.float64)
    mean, invstd = np.zeros(C), np.zeros(C)
    rows = _rows(x)
    if rows is not None:
        y = np.empty_like(rows)
        _bn_fwd_rows(rows, w, b, float(eps), y, mean, invstd)
        return y.reshape(B, S, C).transpose(0, 2, 1), mean, invstd
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    _bn_fwd(x, w, b, float(eps), y, mean, invstd)
    return y, mean, invstd


@njit()
def _bn_fwd_rows(x, w, b, eps, y, mean, invstd):
    n, C = x.shape
    acc = np.zeros(C)
    for i in range(n):
        for c in range(C):
            acc[c] += x[i, c]
    for c in range(C):
        mean[c] = acc[c] / n
        acc[c] = 0.0
    for i in range(n):
        for c in range(C):
            d = x[i, c] - mean[c]
            acc[c] += d * d
    scale, shift = _scale_shift(acc, n, eps, w, b, mean, invstd)
    for i in range(n):
        for c in range(C):
            y[i, c] = x[i, c] * scale[c] + shift[c]


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
    scale, shift = _scale_shift(acc, n, eps, w, b, mean, invstd)
    for i in range(B):
        for c in range(C):
            a, t = scale[c], shift[c]
            for k in range(S):
                y[i, c, k] = x[i, c, k] * a + t


@njit()
def _scale_shift(sq_sums, n, eps, w, b, mean, invstd):
    """Fills invstd from the channels' sums of squared deviations; y = x * scale + shift."""
    C = mean.shape[0]
    scale, shift = np.empty(C), np.empty(C)
    for c in range(C):
        invstd[c] = 1.0 / np.sqrt(sq_sums[c] / n + eps)
        scale[c] = invstd[c] * w[c]
        shift[c] = b[c] - mean[c] * scale[c]
    return scale, shift


@njit()
def _gx_coefficients(w, invstd, mean, gw, gb, n):
    """gx = gy * k1 + x * k2 + k3 per channel: w invstd (gy - gb / n - xhat gw / n), xhat expanded."""
    C = mean.shape[0]
    k1, k2, k3 = np.empty(C), np.empty(C), np.empty(C)
    for c in range(C):
        a = w[c] * invstd[c]
        k1[c] = a
        k2[c] = -a * invstd[c] * gw[c] / n
        k3[c] = -a * gb[c] / n - k2[c] * mean[c]
    return k1, k2, k3


def batch_norm_bwd(gy, x, mean, invstd, weight):
    """gy, x [B, C, S]; mean, invstd [C]; weight [C] -> gx [B, C, S], gw [C], gb [C]."""
    B, C, S = x.shape
    stats = [np.ascontiguousarray(a, dtype=np.float64) for a in (mean, invstd, weight)]
    gw, gb = np.zeros(C), np.zeros(C)
    x = x.astype(gy.dtype, copy=False)
    rows_x = _rows(x)
    if rows_x is not None:
        rows_g = np.ascontiguousarray(gy.transpose(0, 2, 1)).reshape(B * S, C)
        gx = np.empty_like(rows_g)
        _bn_bwd_rows(rows_g, rows_x, *stats, gx, gw, gb)
        return gx.reshape(B, S, C).transpose(0, 2, 1), gw.astype(gy.dtype), gb.astype(gy.dtype)
    gy, x = np.ascontiguousarray(gy), np.ascontiguousarray(x)
    gx = np.empty_like(gy)
    _bn_bwd(gy, x, *stats, gx, gw, gb)
    return gx, gw.astype(gy.dtype), gb.astype(gy.dtype)


@njit()
def _bn_bwd_rows(gy, x, mean, invstd, w, gx, gw, gb):
    n, C = x.shape
    for i in range(n):
        for c in range(C):
            g = gy[i, c]
            gb[c] += g
            gw[c] += g * (x[i, c] - mean[c]) * invstd[c]
    k1, k2, k3 = _gx_coefficients(w, invstd, mean, gw, gb, n)
    for i in range(n):
        for c in range(C):
            gx[i, c] = gy[i, c] * k1[c] + x[i, c] * k2[c] + k3[c]


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
    k1, k2, k3 = _gx_coefficients(w, invstd, mean, gw, gb, n)
    for i in range(B):
        for c in range(C):
            p, q, t = k1[c], k2[c], k3[c]
            for k in range(S):
                gx[i, c, k] = gy[i, c, k] * p + x[i, c, k] * q + t
