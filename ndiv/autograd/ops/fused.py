"""Fused ops: one Function per DESIGN kernel, calling `kernels_for(x).<kernel>_fwd/_bwd`.

Each Function is the forward and backward of a whole composite (an LSTM layer over a sequence,
an attention, a softmax) on raw arrays; the device is chosen by the array (numpy -> Numba
kernels, cupy -> CUDA kernels). The same computations composed of ordinary Tensor ops are the
oracles in tests/kernels/composed.py.

    >>> import ndiv
    >>> x = ndiv.randn(4, 10, requires_grad=True)
    >>> softmax(x).sum(axis=-1).data.round(5)            # doctest: +SKIP
    array([1., 1., 1., 1.], dtype=float32)
"""
from __future__ import annotations

import math

import numpy as np

from ndiv.autograd import amp
from ndiv.autograd.function import Function
from ndiv.autograd.tensor import Tensor
from ndiv.device import array_module, kernels_for

__all__ = ["small_attention", "batch_norm_train", "linear_act", "rnn_seq", "lstm_seq", "gru_seq", "conv1d_dilated", "conv2d", "flash_attention", "softmax", "log_softmax",
           "layer_norm", "add_layer_norm", "gelu", "glu", "elu"]


def _xp(x):
    return array_module(x)


# -- Linear + bias + activation -----------------------------------------------------------------
class LinearAct(Function):
    """act(x @ w^T + b): the GEMM in BLAS, then one kernel pass for the bias and the activation;
    backward: one pass for the activation's mask and the bias gradient, then the two GEMMs.
    x [..., in]; w [out, in]; b [out] -> y [..., out]; activation 'relu' or 'identity'."""

    def forward(self, x, w, b, activation="relu"):
        x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
        if amp.active(x2, w, k=w.shape[1]):     # bf16 factors inside autocast
            x2, w = amp.operand(x2), amp.operand(w)
        y = kernels_for(b).linear_act_fwd(amp.matmul(x2, w.T), b, activation)
        self.save_for_backward(x2, w, y if activation == "relu" else None)
        self.x_shape, self.activation = x.shape, activation
        return y.reshape(x.shape[:-1] + (w.shape[0],)) if x.ndim != 2 else y

    def backward(self, gy):
        x2, w, y = self.saved
        g2 = gy.reshape(-1, gy.shape[-1]) if gy.ndim != 2 else gy
        g, gb = kernels_for(gy).linear_act_bwd(g2, g2 if y is None else y, self.activation)
        need = self.needs_input_grad
        gx = amp.matmul(g, w).reshape(self.x_shape) if need[0] else None
        return gx, (amp.matmul(g.T, x2) if need[1] else None), (gb if need[2] else None)


def linear_act(x, weight, bias, activation: str = "relu"):
    """activation(x @ weight^T + bias) as one node (ndiv's fusion of nn.Linear and nn.ReLU).

    x [..., in]; weight [out, in]; bias [out]; activation 'relu' or 'identity' -> [..., out].
    """
    if activation not in ("relu", "identity"):
        raise ValueError(f"linear_act: activation must be 'relu' or 'identity', got {activation!r}")
    if x.shape[-1:] != weight.shape[-1:] or tuple(bias.shape) != weight.shape[:1]:
        raise ValueError(f"linear_act: x {tuple(x.shape)} must end in in_features={weight.shape[-1]} and bias "
                         f"{tuple(bias.shape)} must be [out_features] = [{weight.shape[0]}]")
    return LinearAct.apply(x, weight, bias, activation=activation)


# -- batch normalisation (training mode) ---------------------------------------------------------
class BatchNormTrain(Function):
    """x [B, C, *S] normalised per channel with its batch statistics, then * weight + bias.
    Inputs: x, then weight [C] if has_weight, then bias [C] if has_bias. The batch mean and
    1 / sqrt(var + eps) (float64 [C]) are left in `stats` for the running-statistics update."""

    def forward(self, x, *params, has_weight, has_bias, eps, stats):
        xp = _xp(x)
        B, C = x.shape[:2]
        x3 = x.reshape(B, C, -1)
        w = params[0] if has_weight else xp.ones(C, x.dtype)
        b = params[-1] if has_bias else xp.zeros(C, x.dtype)
        y, mean, invstd = kernels_for(x).batch_norm_fwd(x3, w, b, eps)
        stats["mean"], stats["invstd"] = mean, invstd
        self.save_for_backward(x3, mean, invstd, w)
        self.x_shape, self.has = x.shape, (has_weight, has_bias)
        return y.reshape(x.shape)

    def backward(self, gy):
        x3, mean, invstd, w = self.saved
        gx, gw, gb = kernels_for(gy).batch_norm_bwd(gy.reshape(x3.shape), x3, mean, invstd, w)
        return (gx.reshape(self.x_shape),) + ((gw,) if self.has[0] else ()) + ((gb,) if self.has[1] else ())


def batch_norm_train(x, weight=None, bias=None, eps: float = 1e-5):
    """Training-mode batch norm with the fused kernels: x [B, C, *] (n = B * prod(*) > 1);
    weight, bias [C] or None -> (y [B, C, *], batch mean [C], invstd [C]) (the two statistics as
    float64 arrays, not Tensors: for the running-statistics update)."""
    stats = {}
    params = [p for p in (weight, bias) if p is not None]
    y = BatchNormTrain.apply(x, *params, has_weight=weight is not None, has_bias=bias is not None, eps=eps,
                             stats=stats)
    return y, stats["mean"], stats["invstd"]


# -- recurrent layers ------------------------------------------------------------------------
class LSTMSeq(Function):
    """One LSTM layer over a whole sequence. x [T, B, I]; h0, c0 [B, H]; w_ih [4H, I];
    w_hh [4H, H]; optional b_ih, b_hh [4H] -> y [T, B, H], h_n [B, H], c_n [B, H]."""

    def forward(self, x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None):
        T, B, I = x.shape
        H4 = w_ih.shape[0]
        xw = _input_projection(self, x, w_ih, w_hh).reshape(T, B, H4)     # every step's input at once
        if b_ih is not None:
            xw += b_ih + b_hh
        y, c, gates = kernels_for(x).lstm_seq_fwd(xw, h0, c0, w_hh, **self.bf16)
        self.save_for_backward(x, h0, c0, w_ih, w_hh, y, c, gates)
        self.has_bias = b_ih is not None
        h_n, c_n = (y[-1].copy(), c[-1].copy()) if T else (h0.copy(), c0.copy())
        return y, h_n, c_n

    def backward(self, gy, gh_n, gc_n):
        x, h0, c0, w_ih, w_hh, y, c, gates = self.saved
        gxw, gh0, gc0, gw_hh = kernels_for(x).lstm_seq_bwd(gy, gh_n, gc_n, h0, c0, w_hh, y, c, gates, **self.bf16)
        return _input_projection_grads(self, x, w_ih, gxw, (gh0, gc0), gw_hh, 2 if self.has_bias else 0)


class RNNSeq(Function):
    """One Elman RNN layer (tanh or relu) over a whole sequence. x [T, B, I]; h0 [B, H];
    w_ih [H, I]; w_hh [H, H]; optional b_ih, b_hh [H]; relu: bool -> y [T, B, H], h_n [B, H]."""

    def forward(self, x, h0, w_ih, w_hh, b_ih=None, b_hh=None, relu=False):
        T, B, I = x.shape
        H = w_ih.shape[0]
        xw = _input_projection(self, x, w_ih, w_hh).reshape(T, B, H)      # every step's input at once
        if b_ih is not None:
            xw += b_ih + b_hh
        y = kernels_for(x).rnn_seq_fwd(xw, h0, w_hh, relu, **self.bf16)
        self.save_for_backward(x, h0, w_ih, w_hh, y)
        self.has_bias, self.relu = b_ih is not None, relu
        return y, (y[-1].copy() if T else h0.copy())

    def backward(self, gy, gh_n):
        x, h0, w_ih, w_hh, y = self.saved
        gxw, gh0, gw_hh = kernels_for(x).rnn_seq_bwd(gy, gh_n, h0, w_hh, y, self.relu, **self.bf16)
        return _input_projection_grads(self, x, w_ih, gxw, (gh0,), gw_hh, 2 if self.has_bias else 0)


class GRUSeq(Function):
    """One GRU layer over a whole sequence (PyTorch's equations: b_hn stays inside r * (...)).
    x [T, B, I]; h0 [B, H]; w_ih [3H, I]; w_hh [3H, H]; optional b_ih, b_hh [3H]
    -> y [T, B, H], h_n [B, H]."""

    def forward(self, x, h0, w_ih, w_hh, b_ih=None, b_hh=None):
        T, B, I = x.shape
        H3 = w_ih.shape[0]
        xw = _input_projection(self, x, w_ih, w_hh).reshape(T, B, H3)
        if b_ih is not None:
            xw += b_ih
        else:
            b_hh = _xp(x).zeros(H3, x.dtype)
        y, gates = kernels_for(x).gru_seq_fwd(xw, h0, w_hh, b_hh, **self.bf16)
        self.save_for_backward(x, h0, w_ih, w_hh, y, gates)
        self.has_bias = b_ih is not None
        return y, (y[-1].copy() if T else h0.copy())

    def backward(self, gy, gh_n):
        x, h0, w_ih, w_hh, y, gates = self.saved
        gxw, gh0, gw_hh, gb_hh = kernels_for(x).gru_seq_bwd(gy, gh_n, h0, w_hh, y, gates, **self.bf16)
        grads = _input_projection_grads(self, x, w_ih, gxw, (gh0,), gw_hh, 0)
        return grads + ((gxw.sum(axis=(0, 1)), gb_hh) if self.has_bias else ())


def _input_projection(fn, x, w_ih, w_hh):
    """x [T, B, I] @ w_ih^T -> [T * B, G], one GEMM for every step. Inside ndiv.autocast (float32
    CPU arrays) it runs with bf16 factors when I >= amp.MIN_K, and the recurrent products when
    H >= amp.MIN_K (fn.bf16: the kernels' option)."""
    T, B, I = x.shape
    fn.bf16 = {"bf16": True} if amp.active(x, w_hh, k=w_hh.shape[1]) else {}
    x2, w = x.reshape(T * B, I), w_ih
    if amp.active(x2, w, k=I):
        x2, w = amp.operand(x2), amp.operand(w)
    fn.projection = (x2, w)               # as multiplied: the backward's products use the same
    return amp.matmul(x2, w.T)


def _input_projection_grads(fn, x, w_ih, gxw, state_grads, gw_hh, n_bias):
    """Gradients of x and w_ih through xw = x @ w_ih^T (two GEMMs over all steps), in the order
    (x, *states, w_ih, w_hh, *biases); an LSTM's two biases both receive the sum of gxw."""
    T, B, I = x.shape
    g2 = gxw.reshape(T * B, -1)
    need = fn.needs_input_grad
    x2, w = fn.projection
    gx = amp.matmul(g2, w).reshape(T, B, I) if need[0] else None
    gw_ih = amp.matmul(g2.T, x2) if need[1 + len(state_grads)] else None
    if n_bias:
        gb = g2.sum(axis=0)
        return (gx, *state_grads, gw_ih, gw_hh, gb, gb.copy())
    return (gx, *state_grads, gw_ih, gw_hh)


def _check_rnn(name, x, h0, w_ih, w_hh, n_gates):
    if x.ndim != 3:
        raise ValueError(f"{name}: x must be [T, B, I] (time-major), got shape {tuple(x.shape)}")
    G = w_ih.shape[0]
    H = G // n_gates
    if G != n_gates * H or w_ih.shape[1] != x.shape[2] or tuple(w_hh.shape) != (G, H):
        raise ValueError(f"{name}: expected w_ih [{n_gates}H, {x.shape[2]}] and w_hh [{n_gates}H, H], "
                         f"got w_ih {tuple(w_ih.shape)} and w_hh {tuple(w_hh.shape)}")
    if tuple(h0.shape) != (x.shape[1], H):
        raise ValueError(f"{name}: h0 must be [B, H] = [{x.shape[1]}, {H}], got {tuple(h0.shape)}")


def rnn_seq(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity: str = "tanh"):
    """One Elman RNN layer, one direction, with the fused kernel (PyTorch's nn.RNN:
    h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act 'tanh' or 'relu').

    x [T, B, I] (time-major); h0 [B, H]; w_ih [H, I]; w_hh [H, H]; b_ih, b_hh [H] or None
    -> (y [T, B, H], h_n [B, H]).
    """
    _check_rnn("rnn_seq", x, h0, w_ih, w_hh, 1)
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"rnn_seq: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    if (b_ih is None) != (b_hh is None):
        raise ValueError("rnn_seq: pass both b_ih and b_hh, or neither")
    biases = () if b_ih is None else (b_ih, b_hh)
    return RNNSeq.apply(x, h0, w_ih, w_hh, *biases, relu=nonlinearity == "relu")


def lstm_seq(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None):
    """One LSTM layer, one direction, with the fused kernel (gate order i, f, g, o as PyTorch).

    x [T, B, I] (time-major); h0, c0 [B, H]; w_ih [4H, I]; w_hh [4H, H]; b_ih, b_hh [4H] or None
    -> (y [T, B, H], h_n [B, H], c_n [B, H]).
    """
    _check_rnn("lstm_seq", x, h0, w_ih, w_hh, 4)
    if (b_ih is None) != (b_hh is None):
        raise ValueError("lstm_seq: pass both b_ih and b_hh, or neither")
    biases = () if b_ih is None else (b_ih, b_hh)
    return LSTMSeq.apply(x, h0, c0, w_ih, w_hh, *biases)


def gru_seq(x, h0, w_ih, w_hh, b_ih=None, b_hh=None):
    """One GRU layer, one direction, with the fused kernel (gates r, z, n as PyTorch).

    x [T, B, I] (time-major); h0 [B, H]; w_ih [3H, I]; w_hh [3H, H]; b_ih, b_hh [3H] or None
    -> (y [T, B, H], h_n [B, H]).
    """
    _check_rnn("gru_seq", x, h0, w_ih, w_hh, 3)
    if (b_ih is None) != (b_hh is None):
        raise ValueError("gru_seq: pass both b_ih and b_hh, or neither")
    biases = () if b_ih is None else (b_ih, b_hh)
    return GRUSeq.apply(x, h0, w_ih, w_hh, *biases)


# -- convolution -------------------------------------------------------------------------------
class Conv1dDilated(Function):
    """x [B, Cin, L]; weight [Cout, Cin, K]; optional bias [Cout] -> y [B, Cout, Lout]
    (stride 1, groups 1, zero padding (left, right), dilation d)."""

    def forward(self, x, w, b=None, pad_left=0, pad_right=0, dilation=1):
        y = kernels_for(x).conv1d_dilated_fwd(x, w, pad_left, pad_right, dilation)
        if b is not None:
            y += b[:, None]
        self.save_for_backward(x, w)
        self.args = (pad_left, pad_right, dilation, b is not None)
        return y

    def backward(self, gy):
        x, w = self.saved
        pad_left, pad_right, dilation, has_bias = self.args
        gx, gw = kernels_for(x).conv1d_dilated_bwd(gy, x, w, pad_left, pad_right, dilation)
        return (gx, gw, gy.sum(axis=(0, 2))) if has_bias else (gx, gw)


def conv1d_dilated(x, weight, bias=None, padding=0, dilation: int = 1):
    """Dilated 1-D convolution, stride 1, groups 1, with the fused kernel.

    x [B, Cin, L]; weight [Cout, Cin, K]; bias [Cout] or None; padding: int (both sides) or
    (left, right) (TCN's causal padding: ((K - 1) * dilation, 0)); dilation >= 1
    -> y [B, Cout, L + left + right - dilation * (K - 1)].
    """
    pad_left, pad_right = (padding, padding) if isinstance(padding, (int, np.integer)) else tuple(padding)
    if x.ndim != 3 or weight.ndim != 3 or weight.shape[1] != x.shape[1]:
        raise ValueError(f"conv1d_dilated: expected x [B, Cin, L] and weight [Cout, Cin, K], got "
                         f"{tuple(x.shape)} and {tuple(weight.shape)}")
    if dilation < 1 or pad_left < 0 or pad_right < 0:
        raise ValueError(f"conv1d_dilated: need dilation >= 1 and padding >= 0, got dilation={dilation}, "
                         f"padding={padding!r}")
    if x.shape[2] + pad_left + pad_right - dilation * (weight.shape[2] - 1) < 1:
        raise ValueError(f"conv1d_dilated: input length {x.shape[2]} with padding {padding!r} is shorter "
                         f"than the dilated kernel ({dilation} * ({weight.shape[2]} - 1) + 1)")
    args = (x, weight) if bias is None else (x, weight, bias)
    return Conv1dDilated.apply(*args, pad_left=int(pad_left), pad_right=int(pad_right), dilation=int(dilation))


class Conv2d(Function):
    """x [B, C, H, W]; weight [O, C, KH, KW]; optional bias [O] -> y [B, O, Hout, Wout]
    (stride 1, dilation 1, groups 1, zero padding (top, bottom, left, right))."""

    def forward(self, x, w, b=None, padding=(0, 0, 0, 0)):
        y = kernels_for(x).conv2d_fwd(x, w, b, *padding)
        self.save_for_backward(x, w)
        self.args = (padding, b is not None)
        return y

    def backward(self, gy):
        x, w = self.saved
        padding, has_bias = self.args
        gx, gw, gb = kernels_for(x).conv2d_bwd(gy, x, w, *padding)
        return (gx, gw, gb) if has_bias else (gx, gw)


def conv2d(x, weight, bias=None, padding=(0, 0, 0, 0)):
    """2-D convolution (cross-correlation, as torch), stride 1, dilation 1, groups 1, with the
    fused kernel. x [B, C, H, W]; weight [O, C, KH, KW]; bias [O] or None; padding (top,
    bottom, left, right) >= 0 -> y [B, O, H + top + bottom - KH + 1, W + left + right - KW + 1]."""
    top, bottom, left, right = (int(p) for p in padding)
    if x.ndim != 4 or weight.ndim != 4 or weight.shape[1] != x.shape[1]:
        raise ValueError(f"conv2d: expected x [B, C, H, W] and weight [O, C, KH, KW], got "
                         f"{tuple(x.shape)} and {tuple(weight.shape)}")
    if min(top, bottom, left, right) < 0:
        raise ValueError(f"conv2d: padding must be >= 0, got {tuple(padding)}")
    if (x.shape[2] + top + bottom < weight.shape[2] or x.shape[3] + left + right < weight.shape[3]
            or x.shape[2] < 1 or x.shape[3] < 1):
        raise ValueError(f"conv2d: the padded input {(x.shape[2] + top + bottom, x.shape[3] + left + right)} "
                         f"is smaller than the kernel {tuple(weight.shape[2:])}")
    args = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d.apply(*args, padding=(top, bottom, left, right))


# -- attention ---------------------------------------------------------------------------------
class FlashAttention(Function):
    """q [B, H, Lq, D]; k, v [B, H, Lk, D] -> out [B, H, Lq, D]. Saves out and the row
    log-sum-exp [B, H, Lq] only: the backward recomputes the scores tile by tile."""

    def forward(self, q, k, v, bias=None, scale=1.0, causal=False):
        out, lse = kernels_for(q).flash_attn_fwd(q, k, v, bias, scale, causal)
        self.save_for_backward(q, k, v, bias, out, lse)
        self.args = (scale, causal)
        return out

    def backward(self, gout):
        q, k, v, bias, out, lse = self.saved
        scale, causal = self.args
        return kernels_for(q).flash_attn_bwd(gout, q, k, v, bias, scale, causal, out, lse)


class SmallAttention(Function):
    """Many heads of few tokens in one kernel call. q [N, H, L, D]; k [N, H, D, L]; v [N, H, L, E];
    optional prev [N, H, L, L] -> out [N, H, L, E], weights p [N, H, L, L], scores s [N, H, L, L]
    (s = q k * scale + prev, p = softmax(s), out = p v): PatchTST's residual attention."""

    def forward(self, q, k, v, prev=None, scale=1.0):
        xp = _xp(q)
        none = xp.empty(0, q.dtype)
        out, p, s = kernels_for(q).small_attn_fwd(q, k, v, none if prev is None else prev, scale)
        self.save_for_backward(q, k, v, p)
        self.scale, self.has_prev = scale, prev is not None
        return out, p, s

    def backward(self, gout, gp, gs):
        q, k, v, p = self.saved
        xp = _xp(q)
        none = xp.empty(0, q.dtype)
        gout = xp.zeros((*p.shape[:3], v.shape[3]), q.dtype) if gout is None else gout
        gq, gk, gv, gprev = kernels_for(q).small_attn_bwd(gout, none if gp is None else gp, none if gs is None else gs,
                                                          q, k, v, p, self.scale)
        return (gq, gk, gv, gprev) if self.has_prev else (gq, gk, gv)


def small_attention(q, k, v, prev=None, scale: float = 1.0):
    """softmax(q k * scale + prev) v for many heads of few tokens, in one fused node.

    q [N, H, L, D]; k [N, H, D, L] (keys transposed); v [N, H, L, E]; prev [N, H, L, L] or None
    -> (out [N, H, L, E], weights [N, H, L, L], scores [N, H, L, L]).
    """
    N, H, L, D = q.shape
    if tuple(k.shape) != (N, H, D, L) or tuple(v.shape[:3]) != (N, H, L) or \
            (prev is not None and tuple(prev.shape) != (N, H, L, L)):
        raise ValueError(f"small_attention: expected k [N, H, D, L] = {[N, H, D, L]}, v [N, H, L, E] and prev "
                         f"[N, H, L, L]; got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
                         + ("" if prev is None else f", prev {tuple(prev.shape)}"))
    tensors = (q, k, v) if prev is None else (q, k, v, prev)
    return SmallAttention.apply(*tensors, scale=float(scale))


def _mask_as_bias(attn_mask, q, B, H, Lq, Lk):
    """A boolean (True = attend, as torch) or additive float mask, broadcastable to [B, H, Lq, Lk]
    -> additive bias [Bm, Hm, Lq, Lk] in q's dtype with Bm in (1, B), Hm in (1, H); the batch
    and head dims stay unbroadcast, so a [Lq, Lk] mask is stored once."""
    xp = _xp(q)
    if attn_mask is None:
        return xp.zeros((1, 1, 0, 0), q.dtype)
    m = attn_mask.data if isinstance(attn_mask, Tensor) else attn_mask    # (a cupy array has .data too)
    m = xp.asarray(m)
    if m.dtype == bool:
        m = xp.where(m, 0.0, -xp.inf)
    if m.ndim > 4 or not all(a in (1, b) for a, b in zip(m.shape[::-1], (Lk, Lq, H, B))):
        raise ValueError(f"flash_attention: attn_mask of shape {tuple(m.shape)} does not broadcast to "
                         f"[B, H, Lq, Lk] = {[B, H, Lq, Lk]}")
    m = m.reshape((1,) * (4 - m.ndim) + m.shape)
    return xp.ascontiguousarray(xp.broadcast_to(m, m.shape[:2] + (Lq, Lk)), dtype=q.dtype)


def flash_attention(q, k, v, attn_mask=None, is_causal: bool = False, scale: float | None = None):
    """softmax(q k^T * scale + mask) v, tiled with an online softmax: O(B*H*L) extra memory.

    q [B, H, Lq, D] (or [N, Lq, D]); k, v [B, H, Lk, D]; attn_mask: boolean (True = attend) or
    additive float, broadcastable to [B, H, Lq, Lk]; is_causal: query i sees keys j <= i (as
    torch's scaled_dot_product_attention); scale: default 1/sqrt(D) -> out [B, H, Lq, D].
    A row with every key masked gives 0, as torch's; NaN and inf propagate as in torch's math
    backend (the composed formula), see ndiv/kernels/reference/attention.py.
    """
    squeeze = q.ndim == 3
    if squeeze:
        q, k, v = q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0)
    if q.ndim != 4 or k.shape != v.shape or k.shape[:2] != q.shape[:2] or k.shape[3] != q.shape[3]:
        raise ValueError(f"flash_attention: expected q [B, H, Lq, D] and k, v [B, H, Lk, D], got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    B, H, Lq, D = q.shape
    Lk = k.shape[2]
    scale = 1.0 / math.sqrt(D) if scale is None else float(scale)
    bias = _mask_as_bias(attn_mask, q.data, B, H, Lq, Lk)
    if squeeze and attn_mask is not None and bias.shape[1] > 1:   # [N, Lq, Lk] masks N = heads here
        bias = bias.reshape(1, -1, Lq, Lk)
    out = FlashAttention.apply(q, k, v, bias=bias, scale=scale, causal=bool(is_causal))
    return out.squeeze(0) if squeeze else out


# -- softmax, layer norm, GELU -----------------------------------------------------------------
def _rows(x, axis):
    """x moved so that `axis` is last and reshaped to [N, D]; returns (rows, undo)."""
    xp = _xp(x)
    axis = axis % x.ndim if x.ndim else 0
    moved = xp.moveaxis(x, axis, -1) if x.ndim else x.reshape(1)
    shape = moved.shape
    rows = xp.ascontiguousarray(moved).reshape(-1, shape[-1] if shape else 1)

    def undo(r):
        r = r.reshape(shape)
        return xp.moveaxis(r, -1, axis) if x.ndim else r.reshape(())
    return rows, undo


class Softmax(Function):
    """softmax along `axis`; x any float array -> y same shape. Saves y only."""

    def forward(self, x, axis=-1, log=False):
        rows, undo = _rows(x, axis)
        kern = kernels_for(x)
        y = (kern.log_softmax_fwd if log else kern.softmax_fwd)(rows)
        self.save_for_backward(y)
        self.undo, self.axis, self.log = undo, axis, log
        return undo(y)

    def backward(self, gy):
        (y,) = self.saved
        rows, _ = _rows(gy, self.axis)
        kern = kernels_for(y)
        return self.undo((kern.log_softmax_bwd if self.log else kern.softmax_bwd)(rows, y))


def softmax(x, axis: int = -1):
    """exp(x) / sum(exp(x)) along axis, fused forward and backward. x any shape -> same shape."""
    return Softmax.apply(x, axis=axis, log=False)


def log_softmax(x, axis: int = -1):
    """x - logsumexp(x) along axis, fused forward and backward. x any shape -> same shape."""
    return Softmax.apply(x, axis=axis, log=True)


def _norm_affine(x, weight, bias, n_dims):
    """Layer norm's row view: (D, weight [D], bias [D] (ones / zeros when None), meta) of x
    normalized over its last n_dims axes; meta keeps what the backward reshapes back."""
    xp = _xp(x)
    D = int(np.prod(x.shape[x.ndim - n_dims:]))
    w = weight.reshape(D) if weight is not None else xp.ones(D, x.dtype)
    b = bias.reshape(D) if bias is not None else xp.zeros(D, x.dtype)
    return D, w, b, (x.shape, weight is not None, bias is not None, x.shape[x.ndim - n_dims:])


def _affine_grads(meta, gw, gb) -> tuple:
    """The weight and bias gradients the Function returns (only for the ones it was given)."""
    _, has_w, has_b, wshape = meta
    return ((gw.reshape(wshape),) if has_w else ()) + ((gb.reshape(wshape),) if has_b else ())


class LayerNorm(Function):
    """x [..., *normalized_shape] normalized over its last n_dims axes; weight, bias
    [*normalized_shape] or None -> y, x's shape. Saves x, mean and 1/std."""

    def forward(self, x, weight=None, bias=None, n_dims=1, eps=1e-5):
        D, w, b, self.meta = _norm_affine(x, weight, bias, n_dims)
        rows = x.reshape(-1, D)
        y, mean, rstd = kernels_for(x).layer_norm_fwd(rows, w, b, eps)
        self.save_for_backward(rows, w, mean, rstd)
        return y.reshape(x.shape)

    def backward(self, gy):
        rows, w, mean, rstd = self.saved
        gx, gw, gb = kernels_for(rows).layer_norm_bwd(gy.reshape(rows.shape), rows, w, mean, rstd)
        return (gx.reshape(self.meta[0]),) + _affine_grads(self.meta, gw, gb)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    """Layer norm over the last len(normalized_shape) axes, fused forward and backward.

    x [..., *normalized_shape]; weight, bias [*normalized_shape] or None -> y, x's shape.
    """
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
    if tuple(x.shape[x.ndim - len(normalized_shape):]) != normalized_shape:
        raise ValueError(f"layer_norm: x of shape {tuple(x.shape)} does not end with normalized_shape "
                         f"{normalized_shape}")
    args = (x,) + tuple(t for t in (weight, bias) if t is not None)
    if weight is None and bias is not None:
        raise ValueError("layer_norm: a bias without a weight is not supported; pass weight too")
    return LayerNorm.apply(*args, n_dims=len(normalized_shape), eps=float(eps))


class AddLayerNorm(Function):
    """Layer norm of the sum s = x + r over the last n_dims axes, in one kernel: x, r
    [..., *normalized_shape] (one shape); weight, bias [*normalized_shape] or None -> y, x's shape.
    Saves s (which x + r then LayerNorm saves too), its mean and 1/std: layer norm's backward at s
    gives one gradient, x's and r's alike (ds/dx = ds/dr = 1)."""

    def forward(self, x, r, weight=None, bias=None, n_dims=1, eps=1e-5):
        D, w, b, self.meta = _norm_affine(x, weight, bias, n_dims)
        y, s, mean, rstd = kernels_for(x).add_layer_norm_fwd(x.reshape(-1, D), r.reshape(-1, D), w, b, eps)
        self.save_for_backward(s, w, mean, rstd)
        return y.reshape(x.shape)

    def backward(self, gy):
        s, w, mean, rstd = self.saved
        gs, gw, gb = kernels_for(s).add_layer_norm_bwd(gy.reshape(s.shape), s, w, mean, rstd)
        gs = gs.reshape(self.meta[0])
        need = self.needs_input_grad
        return (gs if need[0] else None, gs if need[1] else None) + _affine_grads(self.meta, gw, gb)


def add_layer_norm(x, residual, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    """layer_norm(x + residual) as one node: the Add & Norm of a post-norm Transformer layer.

    x, residual [..., *normalized_shape], the same shape (no broadcasting); weight, bias
    [*normalized_shape] or None -> y, x's shape.
    """
    if isinstance(normalized_shape, (int, np.integer)):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(normalized_shape)
    if tuple(x.shape) != tuple(residual.shape):
        raise ValueError(f"add_layer_norm: x {tuple(x.shape)} and residual {tuple(residual.shape)} must have the "
                         f"same shape (no broadcasting; expand the smaller one first)")
    if tuple(x.shape[x.ndim - len(normalized_shape):]) != normalized_shape:
        raise ValueError(f"add_layer_norm: x of shape {tuple(x.shape)} does not end with normalized_shape "
                         f"{normalized_shape}")
    if weight is None and bias is not None:
        raise ValueError("add_layer_norm: a bias without a weight is not supported; pass weight too")
    args = (x, residual) + tuple(t for t in (weight, bias) if t is not None)
    return AddLayerNorm.apply(*args, n_dims=len(normalized_shape), eps=float(eps))


class GELU(Function):
    """GELU, exact (x * Phi(x)) or its tanh approximation; x any shape -> same shape. Saves x."""

    def forward(self, x, approximate=False):
        self.save_for_backward(x)
        self.approximate = approximate
        return kernels_for(x).gelu_fwd(x, approximate)

    def backward(self, gy):
        (x,) = self.saved
        return kernels_for(x).gelu_bwd(gy, x, self.approximate)


def gelu(x, approximate: str = "none"):
    """GELU with the fused kernel; approximate 'none' (erf, exact) or 'tanh' as torch."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(x, approximate=approximate == "tanh")


# -- GLU and ELU ---------------------------------------------------------------------------------
class GLU(Function):
    """glu(x) = a * sigmoid(b) for x = [a | b] halved along `axis`, one kernel pass each way.
    x [..., 2n, ...] -> y [..., n, ...]; saves x only (backward recomputes sigmoid(b)). The kernel
    works on rows [P, 2 n Q] (P the sizes before `axis`, Q those after), whose halves are a and b."""

    def forward(self, x, axis=-1):
        axis %= x.ndim
        self.save_for_backward(x)
        self.rows, self.cols = math.prod(x.shape[:axis]), math.prod(x.shape[axis:])
        y = kernels_for(x).glu_fwd(x.reshape(self.rows, self.cols))
        return y.reshape(x.shape[:axis] + (x.shape[axis] // 2,) + x.shape[axis + 1:])

    def backward(self, gy):
        (x,) = self.saved
        gx = kernels_for(gy).glu_bwd(gy.reshape(self.rows, self.cols // 2), x.reshape(self.rows, self.cols))
        return gx.reshape(x.shape)


def glu(x, axis: int = -1):
    """GLU with the fused kernel; x's size along axis must be even."""
    n = x.shape[axis]
    if n % 2:
        raise ValueError(f"glu: dim {axis} of size {n} must be even")
    return GLU.apply(x, axis=axis)


class ELU(Function):
    """elu(x) = x for x > 0, alpha (e^x - 1) otherwise, one kernel pass each way; x any shape.
    The gradient is torch's elu_backward on the input: 1 for x > 0, else alpha e^x (a nan input
    gives nan, as torch's vectorized loop). Saves x."""

    def forward(self, x, alpha=1.0):
        self.save_for_backward(x)
        self.alpha = alpha
        return kernels_for(x).elu_fwd(x, alpha)

    def backward(self, gy):
        (x,) = self.saved
        return kernels_for(gy).elu_bwd(gy, x, self.alpha)


def elu(x, alpha: float = 1.0):
    """ELU with the fused kernel."""
    return ELU.apply(x, alpha=float(alpha))
