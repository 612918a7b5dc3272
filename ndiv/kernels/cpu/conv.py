"""Dilated 1-D and 2-D convolution (stride 1, groups 1), Numba + BLAS, twin of reference/conv.py.

1-D: the batch is laid out channel-major and flat, xf [Cin, B*Lp] (each batch row zero-padded to
Lp = L + pad_left + pad_right), so that tap k of every output column j = b*Lp + t is column
j + k*d of the same matrix. The forward is then one GEMM of all taps' weights stacked,
[K*Cout, Cin] @ xf, and one pass that adds tap k's block shifted by k*d (and drops the columns
t >= Lout, which straddle two batch rows); the input gradient is the same with the transposed
weights, and tap k's weight gradient is one GEMM against xf shifted by k*d. No im2col copy of
K x the input is made (the older route, kept for non-finite inputs below): at TCN's sizes
(C 64, K 2, L 96) that copy and its adjoint cost as much as the GEMMs.
"""
from __future__ import annotations

import numba
import numpy as np

from ndiv.kernels.config import njit
from ndiv.kernels.cpu.norm import _chunks


def _flat(x, pad_left, Lp):
    """x [B, C, L] -> [C, B*Lp]: channel-major, each batch row zero-padded to Lp."""
    B, C, L = x.shape
    xf = np.zeros((C, B, Lp), x.dtype)
    xf[:, :, pad_left:pad_left + L] = x.transpose(1, 0, 2)
    return xf.reshape(C, B * Lp)


def conv1d_dilated_fwd(x, w, pad_left, pad_right, dilation):
    """x [B, Cin, L]; w [Cout, Cin, K]; pad_left, pad_right >= 0; dilation >= 1 -> y [B, Cout, Lout]."""
    B, Cin, L = x.shape
    Cout, _, K = w.shape
    Lp = L + pad_left + pad_right
    Lout = Lp - dilation * (K - 1)
    ws = np.ascontiguousarray(w.transpose(2, 0, 1), dtype=x.dtype).reshape(K * Cout, Cin)
    z = ws @ _flat(x, pad_left, Lp)                                    # [K*Cout, B*Lp]
    y = np.empty((B, Cout, Lout), x.dtype)
    _shift_sum_out(z, y, Lp, dilation, _chunks(B * Cout, y.size))
    return y


def conv1d_dilated_bwd(gy, x, w, pad_left, pad_right, dilation):
    """gy [B, Cout, Lout]; x [B, Cin, L]; w [Cout, Cin, K] -> gx [B, Cin, L], gw [Cout, Cin, K]."""
    gy = gy.astype(x.dtype, copy=False)
    if not np.isfinite(x).all():
        # the weight-gradient GEMMs below also multiply x's values by the zero gradient of the
        # dropped columns, which turns an inf there into nan where the reference has none
        return _bwd_im2col(gy, x, w, pad_left, pad_right, dilation)
    B, Cin, L = x.shape
    Cout, _, K = w.shape
    Lp = L + pad_left + pad_right
    Lout = gy.shape[2]
    xf = _flat(x, pad_left, Lp)                                        # [Cin, B*Lp]
    gyf = _flat(gy, 0, Lp)                                             # [Cout, B*Lp], zero past Lout
    n = B * Lp
    gw = np.empty((Cout, Cin, K), x.dtype)
    for k in range(K):
        s = k * dilation
        gw[:, :, k] = gyf[:, :n - s] @ xf[:, s:].T
    ws = np.ascontiguousarray(w.transpose(2, 1, 0), dtype=x.dtype).reshape(K * Cin, Cout)
    zg = ws @ gyf                                                      # [K*Cin, B*Lp]
    gx = np.empty((B, Cin, L), x.dtype)
    _shift_sum_in(zg, gx, Lp, Lout, pad_left, dilation, _chunks(B * Cin, gx.size))
    return gx, gw


@njit(parallel=True)
def _shift_sum_out(z, y, Lp, d, n_chunks):
    """y[b, o, t] = sum_k z[k*Cout + o, b*Lp + t + k*d] for t < Lout."""
    B, Cout, Lout = y.shape
    K = z.shape[0] // Cout
    n = B * Cout
    for c in numba.prange(n_chunks):
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            b, o = i // Cout, i % Cout
            row = y[b, o]
            src = z[o, b * Lp:b * Lp + Lout]
            for t in range(Lout):
                row[t] = src[t]
            for k in range(1, K):
                src = z[k * Cout + o, b * Lp + k * d:b * Lp + k * d + Lout]
                for t in range(Lout):
                    row[t] += src[t]


@njit(parallel=True)
def _shift_sum_in(zg, gx, Lp, Lout, pad_left, d, n_chunks):
    """gx[b, c, s] = sum_k zg[k*Cin + c, b*Lp + u - k*d] over the taps with 0 <= u - k*d < Lout,
    u = s + pad_left (the padded position): only columns of real outputs are read."""
    B, Cin, L = gx.shape
    K = zg.shape[0] // Cin
    n = B * Cin
    for c in numba.prange(n_chunks):
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            b, ch = i // Cin, i % Cin
            row = gx[b, ch]
            for s in range(L):
                row[s] = 0.0
            for k in range(K):
                # the s with 0 <= s + pad_left - k*d < Lout
                lo = max(0, k * d - pad_left)
                hi = min(L, Lout + k * d - pad_left)
                n_s = hi - lo
                start = b * Lp + pad_left - k * d + lo
                src = zg[k * Cin + ch, start:start + n_s]
                dst = row[lo:hi]
                for s in range(n_s):
                    dst[s] = dst[s] + src[s]      # (measured: 2x faster than dst[s] += src[s] here)


def _bwd_im2col(gy, x, w, pad_left, pad_right, dilation):
    """The backward over an im2col matrix cols [Cin*K, B*Lout] (row c*K + k, column b*Lout + t
    holds xpad[b, c, t + k*d]): reads only the windows of real outputs, for non-finite x."""
    B, Cin, L = x.shape
    Cout, _, K = w.shape
    Lout = gy.shape[2]
    gy2 = np.ascontiguousarray(gy.transpose(1, 0, 2)).reshape(Cout, B * Lout)
    cols = _im2col(np.ascontiguousarray(x), K, pad_left, dilation, Lout)
    gw = (gy2 @ cols.T).reshape(Cout, Cin, K)
    gcols = np.ascontiguousarray(w, dtype=x.dtype).reshape(Cout, Cin * K).T @ gy2   # [Cin*K, B*Lout]
    return _col2im(gcols, B, L, K, pad_left, dilation), gw


def _im2col(x, K, pad_left, dilation, Lout):
    """x [B, Cin, L] -> cols [Cin*K, B*Lout]: x goes channel-major into a zero-padded [Cin, B, Lp]
    once, then each tap is one strided copy of it."""
    B, Cin, L = x.shape
    xp = np.zeros((Cin, B, Lout + dilation * (K - 1)), x.dtype)
    xp[:, :, pad_left:pad_left + L] = x.transpose(1, 0, 2)
    cols = np.empty((Cin, K, B, Lout), x.dtype)
    for k in range(K):
        cols[:, k] = xp[:, :, k * dilation:k * dilation + Lout]
    return cols.reshape(Cin * K, B * Lout)


def _col2im(gcols, B, L, K, pad_left, dilation):
    """The adjoint of _im2col: gcols [Cin*K, B*Lout] -> gx [B, Cin, L] (the padding's share dropped)."""
    CinK, BL = gcols.shape
    Cin, Lout = CinK // K, BL // B
    g = gcols.reshape(Cin, K, B, Lout)
    gxp = np.zeros((Cin, B, Lout + dilation * (K - 1)), gcols.dtype)
    for k in range(K):
        gxp[:, :, k * dilation:k * dilation + Lout] += g[:, k]
    return np.ascontiguousarray(gxp[:, :, pad_left:pad_left + L].transpose(1, 0, 2))


# -- 2-D ---------------------------------------------------------------------------------------
# One GEMM per direction over pixel-major columns: x goes to channels-last, zero-padded, xpad
# [B, Hp, Wp, C]; cols [B*Hout*Wout, KH*KW*C] holds, in row (b*Hout + i)*Wout + j, the KH runs
# xpad[b, i + p, j:j + KW, :], each KW*C contiguous elements (a plain copy, whatever the grid's
# width: TimesNet's grids are 2 to 36 wide), and the weight is reordered to [O, KH*KW*C] to match.
# Taps that only ever meet the zero padding (an 11x11 kernel over a 3 x 12 grid keeps 5 x 11 of
# its 121 taps; TimesNet's Inception block on its folds) are cropped before the GEMM: exact,
# since they add zeros, as long as the weights (and, backward, the output gradient) are finite;
# otherwise the whole kernel runs, so that a nan or inf reaches the result as in the reference.


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


def _setup(x, w, gy, pads):
    """(xpad [B, Hp, Wp, C], cropped weight [O, kh*kw*C], crop box, top/left pad, output size)."""
    pad_top, pad_bottom, pad_left, pad_right = pads
    B, C, H, W = x.shape
    O, _, KH, KW = w.shape
    Hout, Wout = H + pad_top + pad_bottom - KH + 1, W + pad_left + pad_right - KW + 1
    p0, p1, q0, q1 = _crop(w, gy, x.shape, pad_top, pad_left, Hout, Wout)
    top, left = pad_top - p0, pad_left - q0            # both >= 0 and the padded grid holds x
    xpad = np.zeros((B, Hout + p1 - p0 - 1, Wout + q1 - q0 - 1, C), x.dtype)
    xpad[:, top:top + H, left:left + W] = x.transpose(0, 2, 3, 1)
    wr = np.ascontiguousarray(w[:, :, p0:p1, q0:q1].transpose(0, 2, 3, 1), dtype=x.dtype).reshape(O, -1)
    return xpad, wr, (p0, p1, q0, q1), top, left, Hout, Wout


def conv2d_fwd(x, w, b, pad_top, pad_bottom, pad_left, pad_right):
    """x [B, C, H, W]; w [O, C, KH, KW]; b [O] or None; zero padding -> y [B, O, Hout, Wout]."""
    B, O = x.shape[0], w.shape[0]
    xpad, wr, (p0, p1, q0, q1), _, _, Hout, Wout = _setup(x, w, None, (pad_top, pad_bottom, pad_left, pad_right))
    cols = _im2col2d(xpad, p1 - p0, q1 - q0, Hout, Wout)               # [B*Hout*Wout, kh*kw*C]
    y2 = cols @ wr.T                                                    # [B*Hout*Wout, O]
    if b is not None:
        y2 += b.astype(x.dtype, copy=False)
    return np.ascontiguousarray(y2.reshape(B, Hout, Wout, O).transpose(0, 3, 1, 2))


def conv2d_bwd(gy, x, w, pad_top, pad_bottom, pad_left, pad_right):
    """gy [B, O, Hout, Wout]; x [B, C, H, W]; w [O, C, KH, KW] -> gx [B, C, H, W], gw, gb [O]."""
    B, C, H, W = x.shape
    O = w.shape[0]
    gy = gy.astype(x.dtype, copy=False)
    xpad, wr, (p0, p1, q0, q1), top, left, Hout, Wout = _setup(x, w, gy, (pad_top, pad_bottom, pad_left, pad_right))
    kh, kw = p1 - p0, q1 - q0
    gy2 = np.ascontiguousarray(gy.transpose(0, 2, 3, 1)).reshape(B * Hout * Wout, O)
    cols = _im2col2d(xpad, kh, kw, Hout, Wout)
    gw = np.zeros(w.shape, x.dtype)
    gw[:, :, p0:p1, q0:q1] = (gy2.T @ cols).reshape(O, kh, kw, C).transpose(0, 3, 1, 2)
    del cols
    gxpad = _col2im2d(gy2 @ wr, xpad.shape, kh, kw, Hout, Wout)        # gy2 @ wr: [B*Hout*Wout, kh*kw*C]
    gx = np.ascontiguousarray(gxpad[:, top:top + H, left:left + W].transpose(0, 3, 1, 2))
    return gx, gw, gy.sum(axis=(0, 2, 3))


@njit()
def _im2col2d(xpad, KH, KW, Hout, Wout):
    B, Hp, Wp, C = xpad.shape
    rows = xpad.reshape(B, Hp, Wp * C)
    n = KW * C
    cols = np.empty((B * Hout * Wout, KH * n), xpad.dtype)
    for b in range(B):
        for i in range(Hout):
            for j in range(Wout):
                dst = cols[(b * Hout + i) * Wout + j]
                for p in range(KH):
                    src = rows[b, i + p]
                    for t in range(n):
                        dst[p * n + t] = src[j * C + t]
    return cols


@njit()
def _col2im2d(gcols, shape, KH, KW, Hout, Wout):
    B, Hp, Wp, C = shape
    g = np.zeros((B, Hp, Wp * C), gcols.dtype)
    n = KW * C
    for b in range(B):
        for i in range(Hout):
            for j in range(Wout):
                src = gcols[(b * Hout + i) * Wout + j]
                for p in range(KH):
                    dst = g[b, i + p]
                    for t in range(n):
                        dst[j * C + t] += src[p * n + t]
    return g.reshape(B, Hp, Wp, C)
