"""The fused ops of ndiv.autograd.ops.fused written with ordinary ndiv Tensor ops: the oracles
that the fused Functions are tested against (and that the benchmarks compare speeds with)."""
import math

import numpy as np

import ndiv


def lstm_seq(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None):
    """x [T, B, I] -> (y [T, B, H], h_n, c_n), one step of Tensor ops at a time."""
    H = h0.shape[1]
    h, c, ys = h0, c0, []
    for t in range(x.shape[0]):
        a = x[t] @ w_ih.transpose(0, 1) + h @ w_hh.transpose(0, 1)
        if b_ih is not None:
            a = a + b_ih + b_hh
        i, f, g, o = a[:, :H].sigmoid(), a[:, H:2 * H].sigmoid(), a[:, 2 * H:3 * H].tanh(), a[:, 3 * H:].sigmoid()
        c = f * c + i * g
        h = o * c.tanh()
        ys.append(h)
    return ndiv.stack(ys, 0), h, c


def small_attention(q, k, v, prev=None, scale=1.0):
    """(softmax(q k * scale + prev) v, the weights, the scores) from Tensor ops."""
    s = (q @ k) * scale
    if prev is not None:
        s = s + prev
    p = ndiv.nn.functional.softmax(s, -1)
    return p @ v, p, s


def batch_norm_train(x, weight=None, bias=None, eps=1e-5):
    """Training-mode batch norm from Tensor ops (biased batch variance per channel)."""
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    xc = x - x.mean(axis=axes, keepdims=True)
    y = xc * ((xc * xc).mean(axis=axes, keepdims=True) + eps).pow(-0.5)
    if weight is not None:
        y = y * weight.reshape(shape)
    return y + bias.reshape(shape) if bias is not None else y


def linear_act(x, weight, bias, activation="relu"):
    """act(x @ weight^T + bias) from F.linear and relu."""
    y = ndiv.nn.functional.linear(x, weight, bias)
    return y.relu() if activation == "relu" else y


def rnn_seq(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    """x [T, B, I] -> (y [T, B, H], h_n), PyTorch's Elman RNN (tanh or relu)."""
    h, ys = h0, []
    for t in range(x.shape[0]):
        a = x[t] @ w_ih.transpose(0, 1) + h @ w_hh.transpose(0, 1)
        if b_ih is not None:
            a = a + b_ih + b_hh
        h = a.relu() if nonlinearity == "relu" else a.tanh()
        ys.append(h)
    return ndiv.stack(ys, 0), h


def gru_seq(x, h0, w_ih, w_hh, b_ih=None, b_hh=None):
    """x [T, B, I] -> (y [T, B, H], h_n), PyTorch's GRU equations."""
    H = h0.shape[1]
    h, ys = h0, []
    for t in range(x.shape[0]):
        xw = x[t] @ w_ih.transpose(0, 1)
        hw = h @ w_hh.transpose(0, 1)
        if b_ih is not None:
            xw, hw = xw + b_ih, hw + b_hh
        r = (xw[:, :H] + hw[:, :H]).sigmoid()
        z = (xw[:, H:2 * H] + hw[:, H:2 * H]).sigmoid()
        n = (xw[:, 2 * H:] + r * hw[:, 2 * H:]).tanh()
        h = (1 - z) * n + z * h
        ys.append(h)
    return ndiv.stack(ys, 0), h


def conv1d_dilated(x, weight, bias=None, padding=0, dilation=1):
    """x [B, Cin, L]; weight [Cout, Cin, K] -> y [B, Cout, Lout], as a sum of K shifted products."""
    pl, pr = (padding, padding) if isinstance(padding, int) else padding
    K = weight.shape[2]
    xp = ndiv.pad(x, ((0, 0), (0, 0), (pl, pr)))
    Lout = xp.shape[2] - dilation * (K - 1)
    y = None
    for k in range(K):
        term = ndiv.einsum("oc,bct->bot", weight[:, :, k], xp[:, :, k * dilation:k * dilation + Lout])
        y = term if y is None else y + term
    return y if bias is None else y + bias[:, None]


def conv2d(x, weight, bias=None, padding=(0, 0, 0, 0)):
    """x [B, C, H, W]; weight [O, C, KH, KW]; padding (top, bottom, left, right) -> y [B, O, Hout, Wout],
    as a sum of KH * KW shifted products."""
    top, bottom, left, right = padding
    KH, KW = weight.shape[2:]
    xp = ndiv.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    Hout, Wout = xp.shape[2] - KH + 1, xp.shape[3] - KW + 1
    y = None
    for p in range(KH):
        for q in range(KW):
            term = ndiv.einsum("oc,bchw->bohw", weight[:, :, p, q], xp[:, :, p:p + Hout, q:q + Wout])
            y = term if y is None else y + term
    return y if bias is None else y + bias[:, None, None]


def attention(q, k, v, attn_mask=None, is_causal=False, scale=None):
    """softmax(q k^T * scale + mask) v with the full [Lq, Lk] score matrix; masks are added (-inf),
    so a nan stays a nan; a row with every key masked has weights 0 (torch's math backend)."""
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = (q @ k.swapaxes(-1, -2)) * scale
    if attn_mask is not None:
        m = np.asarray(attn_mask)
        s = s + (np.where(m, 0.0, -np.inf) if m.dtype == bool else m).astype(s.dtype)
    if is_causal:
        Lq, Lk = s.shape[-2:]
        s = s + np.where(np.tril(np.ones((Lq, Lk), bool)), 0.0, -np.inf).astype(s.dtype)
    m = s.data.max(axis=-1, keepdims=True)                 # a constant shift (nan if the row has one)
    dead = m == -np.inf
    e = (s - np.where(dead, 0.0, m).astype(s.dtype)).exp()
    return (e / (e.sum(axis=-1, keepdims=True) + dead.astype(s.dtype))) @ v


def softmax(x, axis=-1):
    e = (x - x.max(axis=axis, keepdims=True).detach()).exp()
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    s = x - x.max(axis=axis, keepdims=True).detach()
    return s - s.exp().sum(axis=axis, keepdims=True).log()


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    xc = x - mu
    y = xc / ((xc * xc).mean(axis=axes, keepdims=True) + eps).sqrt()
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias


def add_layer_norm(x, residual, normalized_shape, weight=None, bias=None, eps=1e-5):
    return layer_norm(x + residual, normalized_shape, weight, bias, eps)


def gelu(x, approximate="none"):
    if approximate == "tanh":
        return 0.5 * x * (1 + (math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)).tanh())
    return 0.5 * x * (1 + ndiv.erf(x / math.sqrt(2.0)))


def glu(x, axis=-1):
    """a * sigmoid(b) for x = [a | b] halved along axis."""
    axis %= x.ndim
    n = x.shape[axis] // 2
    head = (slice(None),) * axis
    return x[head + (slice(0, n),)] * x[head + (slice(n, 2 * n),)].sigmoid()


def elu(x, alpha=1.0):
    """alpha (e^x - 1) where x <= 0, x elsewhere (so a nan input passes its gradient on, as torch's)."""
    return ndiv.where(x <= 0, x.clamp(max=0).expm1() * alpha, x)
