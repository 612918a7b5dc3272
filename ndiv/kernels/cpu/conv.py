"""Dilated 1-D and 2-D convolution (stride 1, groups 1), Numba + BLAS, twin of reference/conv.py.

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


# -- 2-D ---------------------------------------------------------------------------------------
# The same scheme one dimension up: cols [C*KH*KW, B*Hout*Wout] (row (c*KH + p)*KW + q, column
# (b*Hout + i)*Wout + j holds xpad[b, c, i + p, j + q]), one GEMM per direction. Taps that only
# ever meet the zero padding (an 11x11 kernel over a 3 x 12 grid keeps 3 x 11 of its 121 taps:
# TimesNet's Inception block on a short period) are cropped before the GEMM: exact, since they
# add zeros, as long as the weights (and, backward, the output gradient) are finite; otherwise
# the whole kernel runs, so that a nan or inf reaches the result as in the reference.


def _live_taps(K, pad_lo, n, n_out):
    """Taps p of a kernel of size K whose window i + p - pad_lo (0 <= i < n_out) meets [0, n)."""
    return max(0, pad_lo - n_out + 1), min(K, n + pad_lo)


def _crop(w, gy, x_shape, pad_top, pad_left, Hout, Wout):
    KH, KW = w.shape[2:]
    if not (np.isfinite(w).all() and (gy is None or np.isfinite(gy).all())):
        return 0, KH, 0, KW
    p0, p1 = _live_taps(KH, pad_top, x_shape[2], Hout)
    q0, q1 = _live_taps(KW, pad_left, x_shape[3], Wout)
    return p0, p1, q0, q1


def conv2d_fwd(x, w, b, pad_top, pad_bottom, pad_left, pad_right):
    """x [B, C, H, W]; w [O, C, KH, KW]; b [O] or None; zero padding -> y [B, O, Hout, Wout]."""
    B, C, H, W = x.shape
    O, _, KH, KW = w.shape
    Hout, Wout = H + pad_top + pad_bottom - KH + 1, W + pad_left + pad_right - KW + 1
    p0, p1, q0, q1 = _crop(w, None, x.shape, pad_top, pad_left, Hout, Wout)
    wc = np.ascontiguousarray(w[:, :, p0:p1, q0:q1], dtype=x.dtype)
    cols = _im2col2d(np.ascontiguousarray(x), p1 - p0, q1 - q0, pad_top - p0, pad_left - q0, Hout, Wout)
    y2 = wc.reshape(O, -1) @ cols                                       # [O, B*Hout*Wout]
    y = np.ascontiguousarray(y2.reshape(O, B, Hout, Wout).transpose(1, 0, 2, 3))
    if b is not None:
        y += b.astype(x.dtype, copy=False)[:, None, None]
    return y


def conv2d_bwd(gy, x, w, pad_top, pad_bottom, pad_left, pad_right):
    """gy [B, O, Hout, Wout]; x [B, C, H, W]; w [O, C, KH, KW] -> gx [B, C, H, W], gw, gb [O]."""
    B, C, H, W = x.shape
    O, _, KH, KW = w.shape
    Hout, Wout = gy.shape[2:]
    gy = gy.astype(x.dtype, copy=False)
    p0, p1, q0, q1 = _crop(w, gy, x.shape, pad_top, pad_left, Hout, Wout)
    wc = np.ascontiguousarray(w[:, :, p0:p1, q0:q1], dtype=x.dtype)
    gy2 = np.ascontiguousarray(gy.transpose(1, 0, 2, 3)).reshape(O, B * Hout * Wout)
    cols = _im2col2d(np.ascontiguousarray(x), p1 - p0, q1 - q0, pad_top - p0, pad_left - q0, Hout, Wout)
    gw = np.zeros(w.shape, x.dtype)
    gw[:, :, p0:p1, q0:q1] = (gy2 @ cols.T).reshape(O, C, p1 - p0, q1 - q0)
    del cols
    gcols = wc.reshape(O, -1).T @ gy2                                   # [C*KH*KW, B*Hout*Wout]
    gx = _col2im2d(gcols, B, H, W, p1 - p0, q1 - q0, pad_top - p0, pad_left - q0, Hout, Wout)
    return gx, gw, gy.sum(axis=(0, 2, 3))


@njit()
def _im2col2d(x, KH, KW, pad_top, pad_left, Hout, Wout):
    B, C, H, W = x.shape
    HW = Hout * Wout
    cols = np.zeros((C * KH * KW, B * HW), x.dtype)
    for c in range(C):
        for p in range(KH):
            i0, i1 = max(0, pad_top - p), min(Hout, H + pad_top - p)      # rows that meet x
            for q in range(KW):
                j0, j1 = max(0, pad_left - q), min(Wout, W + pad_left - q)
                r = (c * KH + p) * KW + q
                for b in range(B):
                    for i in range(i0, i1):
                        base = b * HW + i * Wout
                        src = x[b, c, i + p - pad_top]
                        for j in range(j0, j1):
                            cols[r, base + j] = src[j + q - pad_left]
    return cols


@njit()
def _col2im2d(gcols, B, H, W, KH, KW, pad_top, pad_left, Hout, Wout):
    C = gcols.shape[0] // (KH * KW)
    HW = Hout * Wout
    gx = np.zeros((B, C, H, W), gcols.dtype)
    for b in range(B):
        for c in range(C):
            for p in range(KH):
                i0, i1 = max(0, pad_top - p), min(Hout, H + pad_top - p)
                for q in range(KW):
                    j0, j1 = max(0, pad_left - q), min(Wout, W + pad_left - q)
                    row = gcols[(c * KH + p) * KW + q]
                    for i in range(i0, i1):
                        base = b * HW + i * Wout
                        dst = gx[b, c, i + p - pad_top]
                        for j in range(j0, j1):
                            dst[j + q - pad_left] += row[base + j]
    return gx
