"""Dilated 1-D convolution (stride 1, groups 1), Numba + BLAS, twin of reference/conv.py.

Both directions are one GEMM each over an im2col matrix cols [Cin*K, B*Lout] (row c*K + k,
column b*Lout + t holds xpad[b, c, t + k*d]): a GEMM of [Cout, Cin*K] @ [Cin*K, B*Lout] runs near
BLAS's peak, where K shifted GEMMs per batch row would be small and memory bound. The copies in
and out of that layout are compiled loops; the padding never materializes.
"""
from __future__ import annotations

import numpy as np

from ndiv.kernels.config import njit


def conv1d_dilated_fwd(x, w, pad_left, pad_right, dilation):
    """x [B, Cin, L]; w [Cout, Cin, K]; pad_left, pad_right >= 0; dilation >= 1 -> y [B, Cout, Lout]."""
    B, Cin, L = x.shape
    Cout, _, K = w.shape
    Lout = L + pad_left + pad_right - dilation * (K - 1)
    cols = _im2col(np.ascontiguousarray(x), K, pad_left, dilation, Lout)
    y2 = np.ascontiguousarray(w, dtype=x.dtype).reshape(Cout, Cin * K) @ cols     # [Cout, B*Lout]
    return np.ascontiguousarray(y2.reshape(Cout, B, Lout).transpose(1, 0, 2))


def conv1d_dilated_bwd(gy, x, w, pad_left, pad_right, dilation):
    """gy [B, Cout, Lout]; x [B, Cin, L]; w [Cout, Cin, K] -> gx [B, Cin, L], gw [Cout, Cin, K]."""
    B, Cin, L = x.shape
    Cout, _, K = w.shape
    Lout = gy.shape[2]
    gy2 = np.ascontiguousarray(gy.astype(x.dtype, copy=False).transpose(1, 0, 2)).reshape(Cout, B * Lout)
    cols = _im2col(np.ascontiguousarray(x), K, pad_left, dilation, Lout)
    gw = (gy2 @ cols.T).reshape(Cout, Cin, K)
    gcols = np.ascontiguousarray(w, dtype=x.dtype).reshape(Cout, Cin * K).T @ gy2   # [Cin*K, B*Lout]
    return _col2im(gcols, B, L, K, pad_left, dilation), gw


@njit()
def _im2col(x, K, pad_left, dilation, Lout):
    B, Cin, L = x.shape
    cols = np.zeros((Cin * K, B * Lout), x.dtype)
    for c in range(Cin):
        for k in range(K):
            shift = k * dilation - pad_left           # cols[.., t] = x[.., t + shift]
            t0, t1 = max(0, -shift), min(Lout, L - shift)
            for b in range(B):
                row = cols[c * K + k, b * Lout:(b + 1) * Lout]
                for t in range(t0, t1):
                    row[t] = x[b, c, t + shift]
    return cols


@njit()
def _col2im(gcols, B, L, K, pad_left, dilation):
    CinK, BL = gcols.shape
    Cin, Lout = CinK // K, BL // B
    gx = np.zeros((B, Cin, L), gcols.dtype)
    for b in range(B):
        for c in range(Cin):
            for k in range(K):
                shift = k * dilation - pad_left
                t0, t1 = max(0, -shift), min(Lout, L - shift)
                row = gcols[c * K + k, b * Lout:(b + 1) * Lout]
                for t in range(t0, t1):
                    gx[b, c, t + shift] += row[t]
    return gx
