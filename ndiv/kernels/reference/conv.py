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
