"""RNN (tanh, relu), LSTM and GRU whole-sequence kernels (Numba), twins of reference/rnn.py.

The time loop stays in Python around two calls per step: the recurrent GEMM through NumPy's BLAS
(`np.dot(..., out=)`) and one compiled kernel that fuses every gate nonlinearity and state update
of the step. Measured here at [32x128]@[128x512] float32: NumPy's BLAS ~35-60 us per call, the
BLAS that Numba reaches from inside njit (SciPy's) ~47-85 us, and the Python call overhead ~1 us;
so a Python loop is the faster schedule. The weight gradient is one GEMM over all steps after the
loop, not a GEMM per step.
"""
from __future__ import annotations

import numpy as np

from ndiv.kernels.config import njit
from ndiv.kernels.cpu import bf16 as _bf16
from ndiv.kernels.cpu._math import fast_sigmoid, fast_tanh


def _by(w, bf16):
    """(a, out) -> out = a @ w, the time loop's product: BLAS in w's dtype, or with bfloat16
    factors (w rounded once for all steps; ndiv.autocast)."""
    if not bf16:
        return lambda a, out: np.dot(a, w, out=out)
    pw = _bf16.prepare(w)
    return lambda a, out: _bf16.gemm_bf16(a, pw, out=out)


def _mm(a, b, bf16):
    return _bf16.gemm_bf16(a, b) if bf16 else a @ b


def lstm_seq_fwd(xw, h0, c0, w_hh, bf16=False):
    """xw [T, B, 4H]; h0, c0 [B, H]; w_hh [4H, H] -> y [T, B, H], c [T, B, H], gates [T, B, 4H].
    bf16: the recurrent products with bfloat16 factors (float32 only)."""
    T, B, H4 = xw.shape
    H = H4 // 4
    dt = xw.dtype
    xw = np.ascontiguousarray(xw)
    y, c, gates = np.empty((T, B, H), dt), np.empty((T, B, H), dt), np.empty((T, B, H4), dt)
    w_t = np.ascontiguousarray(w_hh.T, dtype=dt)    # h @ w_t: a plain GEMM, ~2x faster than h @ w_hh.T
    by_w = _by(w_t, bf16)
    hw = np.empty((B, H4), dt)
    h_prev, c_prev = np.ascontiguousarray(h0, dtype=dt), np.ascontiguousarray(c0, dtype=dt)
    for t in range(T):
        by_w(h_prev, hw)
        _lstm_step_fwd(xw[t], hw, c_prev, gates[t], c[t], y[t])
        h_prev, c_prev = y[t], c[t]
    return y, c, gates


# The step kernels loop over one batch row at a time with one simple loop per gate: LLVM then
# vectorizes each loop (8 float32 lanes); a single loop writing four gates at offsets j, H + j, ...
# of one array stays scalar (it cannot prove the stores independent), 3.5x slower measured.
@njit()
def _lstm_step_fwd(xw, hw, c_prev, gates, c, h):
    B, H = c.shape
    for b in range(B):
        x_, w_, g_ = xw[b], hw[b], gates[b]
        for j in range(2 * H):                                   # i, f
            g_[j] = fast_sigmoid(x_[j] + w_[j])
        for j in range(2 * H, 3 * H):                            # g
            g_[j] = fast_tanh(x_[j] + w_[j])
        for j in range(3 * H, 4 * H):                            # o
            g_[j] = fast_sigmoid(x_[j] + w_[j])
        i, f, g, o = g_[:H], g_[H:2 * H], g_[2 * H:3 * H], g_[3 * H:]
        cp, c_, h_ = c_prev[b], c[b], h[b]
        for j in range(H):
            c_[j] = f[j] * cp[j] + i[j] * g[j]
        for j in range(H):
            h_[j] = o[j] * fast_tanh(c_[j])


def lstm_seq_bwd(gy, gh_n, gc_n, h0, c0, w_hh, y, c, gates, bf16=False):
    """gy [T, B, H]; gh_n, gc_n [B, H]; h0, c0 [B, H]; w_hh [4H, H]; y, c, gates from forward
    -> gxw [T, B, 4H], gh0 [B, H], gc0 [B, H], gw_hh [4H, H]."""
    T = gates.shape[0]
    dt = gates.dtype
    gy = np.ascontiguousarray(gy, dtype=dt)
    w_hh = np.ascontiguousarray(w_hh, dtype=dt)
    c0 = np.ascontiguousarray(c0, dtype=dt)
    gxw = np.empty_like(gates)
    dh = np.array(gh_n, dtype=dt, order="C")        # gradient reaching h_t from step t+1
    dc = np.array(gc_n, dtype=dt, order="C")
    by_w = _by(w_hh, bf16)
    for t in range(T - 1, -1, -1):
        _lstm_step_bwd(gy[t], gates[t], c[t], c[t - 1] if t > 0 else c0, dh, dc, gxw[t])
        by_w(gxw[t], dh)
    gw_hh = _weight_grad(gxw, h0.astype(dt, copy=False), y, bf16)

    return gxw, dh, dc, gw_hh


@njit()
def _lstm_step_bwd(gy, gates, c, c_prev, dh, dc, gxw):
    B, H = c.shape
    for b in range(B):
        g_, gx = gates[b], gxw[b]
        i, f, g, o = g_[:H], g_[H:2 * H], g_[2 * H:3 * H], g_[3 * H:]
        gi, gf, gg, go = gx[:H], gx[H:2 * H], gx[2 * H:3 * H], gx[3 * H:]
        gy_, c_, cp, dh_, dc_ = gy[b], c[b], c_prev[b], dh[b], dc[b]
        for j in range(H):
            dhv = dh_[j] + gy_[j]
            tc = fast_tanh(c_[j])
            go[j] = dhv * tc * o[j] * (1 - o[j])
            dc_[j] += dhv * o[j] * (1 - tc * tc)
        for j in range(H):
            gi[j] = dc_[j] * g[j] * i[j] * (1 - i[j])
        for j in range(H):
            gf[j] = dc_[j] * cp[j] * f[j] * (1 - f[j])
        for j in range(H):
            gg[j] = dc_[j] * i[j] * (1 - g[j] * g[j])
        for j in range(H):
            dc_[j] *= f[j]


def _weight_grad(g, h0, y, bf16=False):
    """sum_t g[t]^T @ h_{t-1} as two GEMMs (h_{-1} = h0), without concatenating h0 and y.
    g [T, B, G]; h0 [B, H]; y [T, B, H] -> [G, H]."""
    T, B, G = g.shape
    if T == 0:
        return np.zeros((G, h0.shape[1]), g.dtype)
    gw = _mm(g[0].T, h0, bf16)
    if T > 1:
        gw += _mm(g[1:].reshape((T - 1) * B, G).T, y[:-1].reshape((T - 1) * B, -1), bf16)
    return gw


def gru_seq_fwd(xw, h0, w_hh, b_hh, bf16=False):
    """xw [T, B, 3H]; h0 [B, H]; w_hh [3H, H]; b_hh [3H] -> y [T, B, H], gates [T, B, 4H] (r, z, n, hn)."""
    T, B, H3 = xw.shape
    H = H3 // 3
    dt = xw.dtype
    xw = np.ascontiguousarray(xw)
    y, gates = np.empty((T, B, H), dt), np.empty((T, B, 4 * H), dt)
    w_t = np.ascontiguousarray(w_hh.T, dtype=dt)
    b_hh = np.ascontiguousarray(b_hh, dtype=dt)
    hw = np.empty((B, H3), dt)
    h_prev = np.ascontiguousarray(h0, dtype=dt)
    by_w = _by(w_t, bf16)
    for t in range(T):
        by_w(h_prev, hw)
        _gru_step_fwd(xw[t], hw, b_hh, h_prev, gates[t], y[t])
        h_prev = y[t]
    return y, gates


@njit()
def _gru_step_fwd(xw, hw, b_hh, h_prev, gates, h):
    B, H = h.shape
    for b in range(B):
        x_, w_, g_ = xw[b], hw[b], gates[b]
        for j in range(2 * H):                                   # r, z
            g_[j] = fast_sigmoid(x_[j] + w_[j] + b_hh[j])
        r, n, hn = g_[:H], g_[2 * H:3 * H], g_[3 * H:]
        for j in range(H):
            hn[j] = w_[2 * H + j] + b_hh[2 * H + j]
        for j in range(H):
            n[j] = fast_tanh(x_[2 * H + j] + r[j] * hn[j])
        z, hp, h_ = g_[H:2 * H], h_prev[b], h[b]
        for j in range(H):
            h_[j] = n[j] + z[j] * (hp[j] - n[j])


def gru_seq_bwd(gy, gh_n, h0, w_hh, y, gates, bf16=False):
    """gy [T, B, H]; gh_n [B, H]; h0 [B, H]; w_hh [3H, H]; y, gates from forward
    -> gxw [T, B, 3H], gh0 [B, H], gw_hh [3H, H], gb_hh [3H]."""
    T, B, H4 = gates.shape
    H = H4 // 4
    dt = gates.dtype
    gy = np.ascontiguousarray(gy, dtype=dt)
    w_hh = np.ascontiguousarray(w_hh, dtype=dt)
    h0 = np.ascontiguousarray(h0, dtype=dt)
    gxw = np.empty((T, B, 3 * H), dt)
    ghw = np.empty((T, B, 3 * H), dt)             # gradient of h @ W_hh^T + b_hh at each step
    carry = np.array(gh_n, dtype=dt, order="C")   # dh through the z * h path (and gh_n at first)
    rec = np.zeros((B, H), dt)                    # dh through W_hh
    by_w = _by(w_hh, bf16)
    for t in range(T - 1, -1, -1):
        _gru_step_bwd(gy[t], gates[t], y[t - 1] if t > 0 else h0, carry, rec, gxw[t], ghw[t])
        by_w(ghw[t], rec)
    gw_hh = _weight_grad(ghw, h0, y, bf16)
    return gxw, carry + rec, gw_hh, ghw.sum(axis=(0, 1))


@njit()
def _gru_step_bwd(gy, gates, h_prev, carry, rec, gxw, ghw):
    B, H = h_prev.shape
    for b in range(B):
        g_, gx, gh = gates[b], gxw[b], ghw[b]
        r, z, n, hn = g_[:H], g_[H:2 * H], g_[2 * H:3 * H], g_[3 * H:]
        gr, gz, gn = gx[:H], gx[H:2 * H], gx[2 * H:]
        hp, gy_, ca, re = h_prev[b], gy[b], carry[b], rec[b]
        for j in range(H):
            ca[j] += gy_[j] + re[j]                              # the whole dh of h_t, for now
        for j in range(H):
            gn[j] = ca[j] * (1 - z[j]) * (1 - n[j] * n[j])
        for j in range(H):
            gz[j] = ca[j] * (hp[j] - n[j]) * z[j] * (1 - z[j])
        for j in range(H):
            gr[j] = gn[j] * hn[j] * r[j] * (1 - r[j])
        for j in range(2 * H):
            gh[j] = gx[j]
        for j in range(H):
            gh[2 * H + j] = gn[j] * r[j]
        for j in range(H):
            ca[j] *= z[j]


def rnn_seq_fwd(xw, h0, w_hh, relu, bf16=False):
    """xw [T, B, H] (both biases included); h0 [B, H]; w_hh [H, H]; relu: bool -> y [T, B, H].
    Each step writes h_{t-1} @ W_hh^T into y[t] and then adds xw[t] and the activation in place."""
    T, B, H = xw.shape
    dt = xw.dtype
    xw = np.ascontiguousarray(xw)
    y = np.empty((T, B, H), dt)
    w_t = np.ascontiguousarray(w_hh.T, dtype=dt)
    h_prev = np.ascontiguousarray(h0, dtype=dt)
    by_w = _by(w_t, bf16)
    for t in range(T):
        by_w(h_prev, y[t])
        _rnn_step_fwd(xw[t], y[t], relu)
        h_prev = y[t]
    return y


@njit()
def _rnn_step_fwd(xw, h, relu):
    B, H = h.shape
    for b in range(B):
        x_, h_ = xw[b], h[b]
        if relu:
            for j in range(H):
                v = x_[j] + h_[j]
                h_[j] = 0 if v <= 0 else v                       # a nan stays a nan, as torch.relu
        else:
            for j in range(H):
                h_[j] = fast_tanh(x_[j] + h_[j])


def rnn_seq_bwd(gy, gh_n, h0, w_hh, y, relu, bf16=False):
    """gy [T, B, H]; gh_n [B, H]; h0 [B, H]; w_hh [H, H]; y from forward; relu: bool
    -> gxw [T, B, H], gh0 [B, H], gw_hh [H, H]."""
    T, B, H = y.shape
    dt = y.dtype
    gy = np.ascontiguousarray(gy, dtype=dt)
    w_hh = np.ascontiguousarray(w_hh, dtype=dt)
    gxw = np.empty((T, B, H), dt)
    dh = np.array(gh_n, dtype=dt, order="C")        # gradient reaching h_t from step t+1
    by_w = _by(w_hh, bf16)
    for t in range(T - 1, -1, -1):
        _rnn_step_bwd(gy[t], y[t], dh, gxw[t], relu)
        by_w(gxw[t], dh)
    return gxw, dh, _weight_grad(gxw, h0.astype(dt, copy=False), y, bf16)


@njit()
def _rnn_step_bwd(gy, y, dh, gxw, relu):
    B, H = y.shape
    for b in range(B):
        gy_, y_, dh_, g_ = gy[b], y[b], dh[b], gxw[b]
        if relu:
            for j in range(H):
                g_[j] = 0 if y_[j] <= 0 else dh_[j] + gy_[j]     # torch's threshold_backward
        else:
            for j in range(H):
                g_[j] = (dh_[j] + gy_[j]) * (1 - y_[j] * y_[j])
