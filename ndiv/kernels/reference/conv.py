"""Dilated 1-D convolution (stride 1, groups 1), plain NumPy: the oracle for cpu/conv.py."""
from __future__ import annotations

import numpy as np


def conv1d_dilated_fwd(x, w, pad_left, pad_right, dilation):
    """x [B, Cin, L]; w [Cout, Cin, K]; zero padding pad_left/pad_right; dilation d
    -> y [B, Cout, Lout] with Lout = L + pad_left + pad_right - d * (K - 1).

    y[b, o, t] = sum_{c, k} w[o, c, k] * xpad[b, c, t + k * d]. TCN's causal padding is
    pad_left = d * (K - 1), pad_right = 0.
    """
    B, Cin, L = x.shape
    Cout, _, K = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad_left, pad_right)))
    Lout = xp.shape[2] - dilation * (K - 1)
    y = np.zeros((B, Cout, Lout), x.dtype)
    for k in range(K):
        y += np.einsum("oc,bct->bot", w[:, :, k], xp[:, :, k * dilation:k * dilation + Lout])
    return y


def conv1d_dilated_bwd(gy, x, w, pad_left, pad_right, dilation):
    """gy [B, Cout, Lout]; x, w, padding, dilation as in forward -> gx [B, Cin, L], gw [Cout, Cin, K]."""
    B, Cin, L = x.shape
    Cout, _, K = w.shape
    Lout = gy.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), (pad_left, pad_right)))
    gxp = np.zeros_like(xp)
    gw = np.empty_like(w)
    for k in range(K):
        window = slice(k * dilation, k * dilation + Lout)
        gw[:, :, k] = np.einsum("bot,bct->oc", gy, xp[:, :, window])
        gxp[:, :, window] += np.einsum("oc,bot->bct", w[:, :, k], gy)
    return gxp[:, :, pad_left:pad_left + L], gw


def conv2d_fwd(x, w, b, pad_top, pad_bottom, pad_left, pad_right):
    """x [B, C, H, W]; w [O, C, KH, KW]; b [O] or None; zero padding on each side (stride 1,
    dilation 1, groups 1) -> y [B, O, Hout, Wout], Hout = H + pad_top + pad_bottom - KH + 1
    (Wout likewise).

    y[b, o, i, j] = bias[o] + sum_{c, p, q} w[o, c, p, q] * xpad[b, c, i + p, j + q].
    """
    O, _, KH, KW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad_top, pad_bottom), (pad_left, pad_right)))
    Hout, Wout = xp.shape[2] - KH + 1, xp.shape[3] - KW + 1
    y = np.zeros((x.shape[0], O, Hout, Wout), x.dtype)
    for p in range(KH):
        for q in range(KW):
            y += np.einsum("oc,bchw->bohw", w[:, :, p, q], xp[:, :, p:p + Hout, q:q + Wout])
    if b is not None:
        y += b[:, None, None]
    return y


def conv2d_bwd(gy, x, w, pad_top, pad_bottom, pad_left, pad_right):
    """gy [B, O, Hout, Wout]; x, w, padding as in forward -> gx [B, C, H, W], gw [O, C, KH, KW],
    gb [O] (the bias gradient, whether or not the forward had a bias)."""
    H, W = x.shape[2:]
    KH, KW = w.shape[2:]
    Hout, Wout = gy.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (pad_top, pad_bottom), (pad_left, pad_right)))
    gxp = np.zeros_like(xp)
    gw = np.empty_like(w)
    for p in range(KH):
        for q in range(KW):
            window = (slice(None), slice(None), slice(p, p + Hout), slice(q, q + Wout))
            gw[:, :, p, q] = np.einsum("bohw,bchw->oc", gy, xp[window])
            gxp[window] += np.einsum("oc,bohw->bchw", w[:, :, p, q], gy)
    return gxp[:, :, pad_top:pad_top + H, pad_left:pad_left + W], gw, gy.sum(axis=(0, 2, 3))
