"""LSTM and GRU whole-sequence kernels, plain NumPy: the oracle for cpu/rnn.py.

Time-major, one layer, one direction. The input projection of all steps is done by the caller
(one GEMM): LSTM xw = x @ W_ih^T + b_ih + b_hh; GRU xw = x @ W_ih^T + b_ih (b_hh stays inside,
because PyTorch's GRU applies r to W_hn h + b_hn).
"""
from __future__ import annotations

import numpy as np

from ndiv.kernels.reference.bf16 import gemm_bf16


def _mm(a, b, bf16):
    """a @ b; with bfloat16 factors when bf16 (ndiv.autocast)."""
    return gemm_bf16(a, b) if bf16 else a @ b


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def lstm_seq_fwd(xw, h0, c0, w_hh, bf16=False):
    """xw [T, B, 4H]; h0, c0 [B, H]; w_hh [4H, H] -> y [T, B, H], c [T, B, H], gates [T, B, 4H].

    gates holds the activated i, f, g, o of each step (PyTorch's order); y and c are the hidden
    and cell states after each step. These three are all that lstm_seq_bwd needs.
    """
    T, B, H4 = xw.shape
    H = H4 // 4
    y = np.empty((T, B, H), xw.dtype)
    c = np.empty((T, B, H), xw.dtype)
    gates = np.empty((T, B, H4), xw.dtype)
    h_prev, c_prev = h0, c0
    for t in range(T):
        a = xw[t] + _mm(h_prev, w_hh.T, bf16)
        i, f, g, o = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), _sigmoid(a[:, 3 * H:])
        c[t] = f * c_prev + i * g
        y[t] = o * np.tanh(c[t])
        gates[t] = np.concatenate([i, f, g, o], axis=1)
        h_prev, c_prev = y[t], c[t]
    return y, c, gates


def lstm_seq_bwd(gy, gh_n, gc_n, h0, c0, w_hh, y, c, gates, bf16=False):
    """Backprop through time for lstm_seq_fwd.

    gy [T, B, H] (gradient of y); gh_n, gc_n [B, H] (gradients of the last h and c); h0, c0,
    w_hh as in forward; y, c, gates from forward
    -> gxw [T, B, 4H] (gradient of the pre-activations = of xw and of each bias),
       gh0 [B, H], gc0 [B, H], gw_hh [4H, H].
    """
    T, B, H4 = gates.shape
    H = H4 // 4
    gxw = np.empty_like(gates)
    dh, dc = gh_n.copy(), gc_n.copy()
    for t in range(T - 1, -1, -1):
        i, f, g, o = gates[t, :, :H], gates[t, :, H:2 * H], gates[t, :, 2 * H:3 * H], gates[t, :, 3 * H:]
        c_prev = c[t - 1] if t > 0 else c0
        dh = dh + gy[t]
        tc = np.tanh(c[t])
        dc = dc + dh * o * (1 - tc * tc)
        gxw[t] = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                                 dc * i * (1 - g * g), dh * tc * o * (1 - o)], axis=1)
        dc = dc * f
        dh = _mm(gxw[t], w_hh, bf16)
    h_prev = np.concatenate([h0[None], y], axis=0)[:T]
    gw_hh = _mm(gxw.reshape(T * B, H4).T, h_prev.reshape(T * B, H), bf16)
    return gxw, dh, dc, gw_hh


def gru_seq_fwd(xw, h0, w_hh, b_hh, bf16=False):
    """xw [T, B, 3H] (= x @ W_ih^T + b_ih); h0 [B, H]; w_hh [3H, H]; b_hh [3H]
    -> y [T, B, H], gates [T, B, 4H] holding r, z, n and hn = W_hn h + b_hn of each step.

    PyTorch's equations: r = s(xr + hr), z = s(xz + hz), n = tanh(xn + r * hn),
    h' = (1 - z) * n + z * h, with [hr, hz, hn] = h @ W_hh^T + b_hh.
    """
    T, B, H3 = xw.shape
    H = H3 // 3
    y = np.empty((T, B, H), xw.dtype)
    gates = np.empty((T, B, 4 * H), xw.dtype)
    h_prev = h0
    for t in range(T):
        hw = _mm(h_prev, w_hh.T, bf16) + b_hh
        r = _sigmoid(xw[t, :, :H] + hw[:, :H])
        z = _sigmoid(xw[t, :, H:2 * H] + hw[:, H:2 * H])
        n = np.tanh(xw[t, :, 2 * H:] + r * hw[:, 2 * H:])
        y[t] = (1 - z) * n + z * h_prev
        gates[t] = np.concatenate([r, z, n, hw[:, 2 * H:]], axis=1)
        h_prev = y[t]
    return y, gates


def gru_seq_bwd(gy, gh_n, h0, w_hh, y, gates, bf16=False):
    """Backprop through time for gru_seq_fwd.

    gy [T, B, H]; gh_n [B, H]; h0, w_hh as in forward; y, gates from forward
    -> gxw [T, B, 3H] (gradient of xw, also of b_ih), gh0 [B, H], gw_hh [3H, H], gb_hh [3H].
    """
    T, B, H4 = gates.shape
    H = H4 // 4
    gxw = np.empty((T, B, 3 * H), gates.dtype)
    ghw = np.empty((T, B, 3 * H), gates.dtype)   # gradient of h @ W_hh^T + b_hh per step
    dh = gh_n.copy()
    for t in range(T - 1, -1, -1):
        r, z, n, hn = gates[t, :, :H], gates[t, :, H:2 * H], gates[t, :, 2 * H:3 * H], gates[t, :, 3 * H:]
        h_prev = y[t - 1] if t > 0 else h0
        dh = dh + gy[t]
        dn = dh * (1 - z) * (1 - n * n)
        dr = dn * hn * r * (1 - r)
        dz = dh * (h_prev - n) * z * (1 - z)
        gxw[t] = np.concatenate([dr, dz, dn], axis=1)
        ghw[t] = np.concatenate([dr, dz, dn * r], axis=1)
        dh = dh * z + _mm(ghw[t], w_hh, bf16)
    h_prev = np.concatenate([h0[None], y], axis=0)[:T]
    gw_hh = _mm(ghw.reshape(T * B, 3 * H).T, h_prev.reshape(T * B, H), bf16)
    return gxw, dh, gw_hh, ghw.sum(axis=(0, 1))


def rnn_seq_fwd(xw, h0, w_hh, relu, bf16=False):
    """xw [T, B, H] (= x @ W_ih^T + b_ih + b_hh); h0 [B, H]; w_hh [H, H]; relu: bool
    -> y [T, B, H] with h_t = act(xw_t + h_{t-1} @ W_hh^T), act tanh or relu (PyTorch's nn.RNN)."""
    T, B, H = xw.shape
    y = np.empty((T, B, H), xw.dtype)
    h_prev = h0
    for t in range(T):
        pre = xw[t] + _mm(h_prev, w_hh.T, bf16)
        y[t] = np.maximum(pre, 0) if relu else np.tanh(pre)       # maximum keeps a nan, as torch.relu
        h_prev = y[t]
    return y


def rnn_seq_bwd(gy, gh_n, h0, w_hh, y, relu, bf16=False):
    """Backprop through time for rnn_seq_fwd. gy [T, B, H]; gh_n [B, H]; h0, w_hh, relu as in
    forward; y from forward -> gxw [T, B, H] (gradient of xw, also of each bias), gh0 [B, H],
    gw_hh [H, H]. relu' is torch's threshold_backward on the output: 0 where y <= 0, else 1
    (a nan output passes the gradient on); tanh' = 1 - y^2."""
    T, B, H = y.shape
    gxw = np.empty((T, B, H), y.dtype)
    dh = gh_n.copy()
    for t in range(T - 1, -1, -1):
        dh = dh + gy[t]
        gxw[t] = np.where(y[t] <= 0, 0, dh) if relu else dh * (1 - y[t] * y[t])
        dh = _mm(gxw[t], w_hh, bf16)
    h_prev = np.concatenate([h0[None], y], axis=0)[:T]
    gw_hh = _mm(gxw.reshape(T * B, H).T, h_prev.reshape(T * B, H), bf16)
    return gxw, dh, gw_hh
