"""softmax, log_softmax, layer norm (also of a sum x + r), GELU, GLU and ELU, plain NumPy: the
oracle for cpu/norm.py. Rows are the last axis of an [N, D] array (the autograd Function reshapes to it).
NaN and inf propagate as in torch (a row holding a nan or an inf softmaxes and normalizes to nan;
gelu(nan) = nan, gelu(inf) = inf, gelu(-inf) = -inf * 0 = nan), silently: NumPy's warnings are
off here."""
from __future__ import annotations

import functools
import math

import numpy as np
from scipy.special import erf



def _quiet(fn):
    """fn under np.errstate(all='ignore'): a nan or inf input is expected here, not a warning."""
    @functools.wraps(fn)
    def quiet(*args):
        with np.errstate(all="ignore"):
            return fn(*args)
    return quiet


@_quiet
def softmax_fwd(x):
    """x [N, D] -> y [N, D], each row sums to 1."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@_quiet
def softmax_bwd(gy, y):
    """gy, y [N, D] -> gx [N, D] = y * (gy - sum(gy * y))."""
    return y * (gy - (gy * y).sum(axis=1, keepdims=True))


@_quiet
def log_softmax_fwd(x):
    """x [N, D] -> y [N, D] = x - logsumexp(x)."""
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


@_quiet
def log_softmax_bwd(gy, y):
    """gy, y [N, D] -> gx [N, D] = gy - exp(y) * sum(gy)."""
    return gy - np.exp(y) * gy.sum(axis=1, keepdims=True)


@_quiet
def layer_norm_fwd(x, weight, bias, eps):
    """x [N, D]; weight, bias [D]; eps -> y [N, D], mean [N], rstd [N] (1/sqrt(var + eps))."""
    mean = x.mean(axis=1)
    rstd = 1.0 / np.sqrt(x.var(axis=1) + eps)
    y = (x - mean[:, None]) * rstd[:, None] * weight + bias
    return y.astype(x.dtype), mean.astype(x.dtype), rstd.astype(x.dtype)


@_quiet
def layer_norm_bwd(gy, x, weight, mean, rstd):
    """gy, x [N, D]; weight [D]; mean, rstd [N] -> gx [N, D], gweight [D], gbias [D]."""
    xhat = (x - mean[:, None]) * rstd[:, None]
    g = gy * weight
    gx = rstd[:, None] * (g - g.mean(1, keepdims=True) - xhat * (g * xhat).mean(1, keepdims=True))
    # column sums in float64, as the kernels accumulate them (NumPy adds float32 rows one by one)
    gw, gb = (gy * xhat).sum(axis=0, dtype=np.float64), gy.sum(axis=0, dtype=np.float64)
    return gx, gw.astype(x.dtype), gb.astype(x.dtype)


@_quiet
def add_layer_norm_fwd(x, r, weight, bias, eps):
    """Layer norm of the sum s = x + r (a residual and a sublayer's output).
    x, r [N, D]; weight, bias [D]; eps -> y [N, D], s [N, D], mean [N], rstd [N]."""
    s = x + r
    y, mean, rstd = layer_norm_fwd(s, weight, bias, eps)
    return y, s, mean, rstd


def add_layer_norm_bwd(gy, s, weight, mean, rstd):
    """gy, s [N, D]; weight [D]; mean, rstd [N] -> gs [N, D] (the gradient of x and of r
    alike: ds/dx = ds/dr = 1), gweight [D], gbias [D]. Layer norm's backward at s."""
    return layer_norm_bwd(gy, s, weight, mean, rstd)


_K = math.sqrt(2.0 / math.pi)


@_quiet
def gelu_fwd(x, approximate):
    """x any shape; approximate: False (exact, x * Phi(x)) or True (tanh form) -> y."""
    if approximate:
        return 0.5 * x * (1 + np.tanh(_K * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + erf(x / math.sqrt(2.0)))


@_quiet
def gelu_bwd(gy, x, approximate):
    """gy, x same shape -> gx."""
    if approximate:
        u = _K * (x + 0.044715 * x ** 3)
        t = np.tanh(u)
        return gy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _K * (1 + 3 * 0.044715 * x * x))
    cdf = 0.5 * (1 + erf(x / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return gy * (cdf + x * pdf)


def _sigmoid(b):
    return 1 / (1 + np.exp(-b))


@_quiet
def glu_fwd(x):
    """x [N, 2n] = [a | b] -> y [N, n] = a * sigmoid(b) (torch's F.glu along the last axis)."""
    n = x.shape[1] // 2
    return x[:, :n] * _sigmoid(x[:, n:])


@_quiet
def glu_bwd(gy, x):
    """gy [N, n], x [N, 2n] -> gx [N, 2n] = [gy s | gy a s (1 - s)], s = sigmoid(b) (torch's order)."""
    n = x.shape[1] // 2
    a, s = x[:, :n], _sigmoid(x[:, n:])
    return np.concatenate([gy * s, (1 - s) * s * a * gy], axis=1)


@_quiet
def elu_fwd(x, alpha):
    """x any shape -> x where x > 0, alpha (e^x - 1) elsewhere (nan stays nan)."""
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


@_quiet
def elu_bwd(gy, x, alpha):
    """gy, x same shape -> gy where x > 0, gy alpha e^x elsewhere: torch's elu_backward on the input.
    A nan input gives a nan gradient, as torch's vectorized loop does (its scalar tail passes gy on,
    so torch's own result depends on the tensor's size and the element's place)."""
    return np.where(x > 0, gy, gy * (alpha * np.exp(np.minimum(x, 0))))
