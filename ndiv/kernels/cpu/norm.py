"""softmax, log_softmax, layer norm (also of a sum x + r), GELU, GLU and ELU (Numba), twins of
reference/norm.py.

Row kernels take [N, D] (the autograd Function reshapes), split the rows into one chunk per
thread, and make one pass to reduce and one to write, with float64 accumulators. NaN and inf
propagate as in reference/norm.py (and torch) with no extra pass: a nan or +inf in a row (for
layer norm also a -inf; for softmax a row of -inf only) reaches its sums, so the row comes out nan.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from ndiv.kernels.config import PARALLEL_MIN_SIZE, njit
from ndiv.kernels.cpu._math import fast_exp, fast_expm1, fast_tanh, gelu_cdf, gelu_pdf


def _chunks(n, size):
    """Chunks (threads) for n rows of `size` elements in all. Small inputs take one chunk, which
    runs the kernel's serial twin: a parallel launch costs more than the work there, and far more
    while BLAS threads still spin on the cores after a matmul (measured: PatchTST's batch-1
    forward 51 ms with parallel GELU/softmax on 8K-element inputs, see kernels/config.py).
    The cached kernel must not ask numba for its thread count itself, hence the argument."""
    if size < PARALLEL_MIN_SIZE:
        return 1
    return max(1, min(n, numba.get_num_threads()))


def softmax_fwd(x):
    """x [N, D] -> y [N, D]."""
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    _softmax_fwd(x, y, False, _chunks(x.shape[0], x.size))
    return y


def log_softmax_fwd(x):
    """x [N, D] -> y [N, D] = x - logsumexp(x)."""
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    _softmax_fwd(x, y, True, _chunks(x.shape[0], x.size))
    return y


@njit(parallel=True)
def _softmax_fwd(x, y, log, n_chunks):
    n, d = x.shape
    for c in numba.prange(n_chunks):
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            m = x[i, 0]
            for j in range(1, d):
                m = max(m, x[i, j])            # may drop a nan: exp(nan - m) puts it in s below,
            s = 0.0                            # as exp(inf - inf) does for +inf: the row is nan
            for j in range(d):
                e = fast_exp(x[i, j] - m)
                y[i, j] = e
                s += e
            if log:
                lse = m + math.log(s)
                for j in range(d):
                    y[i, j] = x[i, j] - lse
            else:
                r = 1.0 / s
                for j in range(d):
                    y[i, j] *= r


def softmax_bwd(gy, y):
    """gy, y [N, D] -> gx [N, D]."""
    gy, y = np.ascontiguousarray(gy, dtype=y.dtype), np.ascontiguousarray(y)
    gx = np.empty_like(y)
    _softmax_bwd(gy, y, gx, False, _chunks(y.shape[0], y.size))
    return gx


def log_softmax_bwd(gy, y):
    """gy, y [N, D] -> gx [N, D]."""
    gy, y = np.ascontiguousarray(gy, dtype=y.dtype), np.ascontiguousarray(y)
    gx = np.empty_like(y)
    _softmax_bwd(gy, y, gx, True, _chunks(y.shape[0], y.size))
    return gx


@njit(parallel=True)
def _softmax_bwd(gy, y, gx, log, n_chunks):
    n, d = y.shape
    for c in numba.prange(n_chunks):
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            s = 0.0
            if log:
                for j in range(d):
                    s += gy[i, j]
                for j in range(d):
                    gx[i, j] = gy[i, j] - fast_exp(y[i, j]) * s
            else:
                for j in range(d):
                    s += gy[i, j] * y[i, j]
                for j in range(d):
                    gx[i, j] = y[i, j] * (gy[i, j] - s)


def layer_norm_fwd(x, weight, bias, eps):
    """x [N, D]; weight, bias [D]; eps -> y [N, D], mean [N], rstd [N]."""
    x = np.ascontiguousarray(x)
    n = x.shape[0]
    y = np.empty_like(x)
    mean, rstd = np.empty(n, x.dtype), np.empty(n, x.dtype)
    _layer_norm_fwd(x, np.ascontiguousarray(weight, dtype=x.dtype), np.ascontiguousarray(bias, dtype=x.dtype),
                    float(eps), y, mean, rstd, _chunks(n, x.size))
    return y, mean, rstd


@njit(parallel=True)
def _layer_norm_fwd(x, weight, bias, eps, y, mean, rstd, n_chunks):
    n, d = x.shape
    for c in numba.prange(n_chunks):
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            s = 0.0
            for j in range(d):
                s += x[i, j]
            mu = s / d
            s2 = 0.0
            for j in range(d):                         # two passes: no cancellation in var
                s2 += (x[i, j] - mu) ** 2
            r = 1.0 / math.sqrt(s2 / d + eps)
            mean[i], rstd[i] = mu, r
            for j in range(d):
                y[i, j] = (x[i, j] - mu) * r * weight[j] + bias[j]


def layer_norm_bwd(gy, x, weight, mean, rstd):
    """gy, x [N, D]; weight [D]; mean, rstd [N] -> gx [N, D], gweight [D], gbias [D]."""
    x = np.ascontiguousarray(x)
    gy = np.ascontiguousarray(gy, dtype=x.dtype)
    n_chunks = _chunks(x.shape[0], x.size)
    return _layer_norm_bwd(gy, x, np.ascontiguousarray(weight, dtype=x.dtype), mean, rstd, n_chunks)


@njit(parallel=True)
def _layer_norm_bwd(gy, x, weight, mean, rstd, n_chunks):
    n, d = x.shape
    gx = np.empty_like(x)
    gw = np.zeros((n_chunks, d))      # a private row per chunk: a shared "gw[j] += ..."
    gb = np.zeros((n_chunks, d))      # inside prange would lose updates
    for c in numba.prange(n_chunks):
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            s1 = 0.0
            s2 = 0.0
            for j in range(d):
                xhat = (x[i, j] - mean[i]) * rstd[i]
                g = gy[i, j] * weight[j]
                s1 += g
                s2 += g * xhat
                gw[c, j] += gy[i, j] * xhat
                gb[c, j] += gy[i, j]
            for j in range(d):
                xhat = (x[i, j] - mean[i]) * rstd[i]
                gx[i, j] = rstd[i] * (gy[i, j] * weight[j] - (s1 + xhat * s2) / d)
    return gx, gw.sum(axis=0).astype(x.dtype), gb.sum(axis=0).astype(x.dtype)


def add_layer_norm_fwd(x, r, weight, bias, eps):
    """Layer norm of s = x + r in one kernel (the Add & Norm of a post-norm Transformer layer).
    x, r [N, D]; weight, bias [D]; eps -> y [N, D], s [N, D], mean [N], rstd [N]."""
    x = np.ascontiguousarray(x)
    r = np.ascontiguousarray(r, dtype=x.dtype)
    n = x.shape[0]
    y, s = np.empty_like(x), np.empty_like(x)
    mean, rstd = np.empty(n, x.dtype), np.empty(n, x.dtype)
    _add_layer_norm_fwd(x, r, np.ascontiguousarray(weight, dtype=x.dtype), np.ascontiguousarray(bias, dtype=x.dtype),
                        float(eps), y, s, mean, rstd, _chunks(n, x.size))
    return y, s, mean, rstd


@njit(parallel=True)
def _add_layer_norm_fwd(x, r, weight, bias, eps, y, s, mean, rstd, n_chunks):
    n, d = x.shape
    for c in numba.prange(n_chunks):
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            t = 0.0
            for j in range(d):
                v = x[i, j] + r[i, j]                  # in x's dtype, as x + r then layer_norm
                s[i, j] = v                            # kept: the backward's input; the row stays
                t += v                                 # in cache for the two passes below
            mu = t / d
            t2 = 0.0
            for j in range(d):
                t2 += (s[i, j] - mu) ** 2
            rs = 1.0 / math.sqrt(t2 / d + eps)
            mean[i], rstd[i] = mu, rs
            for j in range(d):
                y[i, j] = (s[i, j] - mu) * rs * weight[j] + bias[j]


def add_layer_norm_bwd(gy, s, weight, mean, rstd):
    """gy, s [N, D]; weight [D]; mean, rstd [N] -> gs [N, D] (the gradient of x and of r alike),
    gweight [D], gbias [D]: layer norm's backward at the saved sum s, the same compiled kernel."""
    return layer_norm_bwd(gy, s, weight, mean, rstd)


def gelu_fwd(x, approximate):
    """x any shape; approximate False (erf) or True (tanh form) -> y, same shape."""
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    _gelu(x.reshape(-1), x.reshape(-1), y.reshape(-1), bool(approximate), False, _chunks(x.size, x.size))
    return y


def gelu_bwd(gy, x, approximate):
    """gy, x same shape -> gx."""
    x = np.ascontiguousarray(x)
    gy = np.ascontiguousarray(gy, dtype=x.dtype)
    gx = np.empty_like(x)
    _gelu(gy.reshape(-1), x.reshape(-1), gx.reshape(-1), bool(approximate), True, _chunks(x.size, x.size))
    return gx


_K = math.sqrt(2.0 / math.pi)


@njit()
def _tanh_in_dtype(u, like):
    # float32 data: tanh in float32, the vectorized polynomial; float64: libm's tanh
    return fast_tanh(np.float32(u)) if like.itemsize == 4 else fast_tanh(u)


@njit(parallel=True)
def _gelu(gy, x, out, approximate, backward, n_chunks):
    """backward=False: out = gelu(x) (gy unused); backward=True: out = gy * gelu'(x).
    The formula is chosen once per chunk, and each element loop runs over a chunk's views from
    index 0: a loop over range(lo, hi) keeps Numba's negative-index check in it, and that (or a
    branch inside the loop) keeps LLVM from vectorizing it (measured 8x slower)."""
    n = x.shape[0]
    for c in numba.prange(n_chunks):
        lo, hi = c * n // n_chunks, (c + 1) * n // n_chunks
        if approximate:
            _gelu_tanh(gy[lo:hi], x[lo:hi], out[lo:hi], backward)
        elif backward:
            _gelu_erf_bwd(gy[lo:hi], x[lo:hi], out[lo:hi])
        else:
            _gelu_erf_fwd(x[lo:hi], out[lo:hi])


@njit()
def _gelu_tanh(gy, x, out, backward):
    for i in range(x.shape[0]):
        v = x[i]
        t = _tanh_in_dtype(_K * (v + 0.044715 * v * v * v), x)
        if backward:
            out[i] = gy[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * _K * (1 + 3 * 0.044715 * v * v))
        else:
            out[i] = 0.5 * v * (1 + t)


# float32: the vectorized erf and exp of _math; float64: libm's
@njit()
def _gelu_erf_fwd(x, out):
    for i in range(x.shape[0]):
        v = x[i]
        out[i] = v * gelu_cdf(v)


@njit()
def _gelu_erf_bwd(gy, x, out):
    for i in range(x.shape[0]):
        v = x[i]
        out[i] = gy[i] * (gelu_cdf(v) + v * gelu_pdf(v))


# -- GLU and ELU: one pass each way (the composed ops make 4-6 passes and as many temporaries) ------
def glu_fwd(x):
    """x [N, 2n] = [a | b] -> y [N, n] = a * sigmoid(b)."""
    x = np.ascontiguousarray(x)
    n = x.shape[1] // 2
    y = np.empty((x.shape[0], n), x.dtype)
    _glu(x, x, y, False, _chunks(x.shape[0], x.size))
    return y


def glu_bwd(gy, x):
    """gy [N, n], x [N, 2n] -> gx [N, 2n] = [gy s | gy a s (1 - s)]; s is recomputed from x."""
    x = np.ascontiguousarray(x)
    gy = np.ascontiguousarray(gy, dtype=x.dtype)
    gx = np.empty_like(x)
    _glu(gy, x, gx, True, _chunks(x.shape[0], x.size))
    return gx


@njit(parallel=True)
def _glu(gy, x, out, backward, n_chunks):
    """backward=False: out [N, n] = glu(x) (gy unused); backward=True: out [N, 2n] = glu's gradient.
    Rows go to the element loops as views from index 0, so that they vectorize (see _gelu)."""
    N, n = x.shape[0], x.shape[1] // 2
    for c in numba.prange(n_chunks):
        for i in range(c * N // n_chunks, (c + 1) * N // n_chunks):
            if backward:
                _glu_bwd_row(gy[i], x[i, :n], x[i, n:], out[i, :n], out[i, n:])
            else:
                _glu_fwd_row(x[i, :n], x[i, n:], out[i])


_ONE32 = np.float32(1.0)     # float32 + float32 stays float32; float64 + float32 is float64


@njit()
def _sigmoid_in_dtype(v):
    # 1 / (1 + e^-v) in v's dtype (torch's formula): e^-v = inf gives 0, nan stays nan
    return _ONE32 / (_ONE32 + fast_exp(-v))


@njit()
def _glu_fwd_row(a, b, y):
    for j in range(a.shape[0]):
        y[j] = a[j] * _sigmoid_in_dtype(b[j])


@njit()
def _glu_bwd_row(gy, a, b, ga, gb):
    for j in range(a.shape[0]):
        s = _sigmoid_in_dtype(b[j])
        ga[j] = gy[j] * s
        gb[j] = (_ONE32 - s) * s * a[j] * gy[j]


def elu_fwd(x, alpha):
    """x any shape; alpha a float -> y = x where x > 0, alpha (e^x - 1) elsewhere."""
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    _elu(x.reshape(-1), x.reshape(-1), y.reshape(-1), x.dtype.type(alpha), False, _chunks(x.size, x.size))
    return y


def elu_bwd(gy, x, alpha):
    """gy, x same shape -> gx = gy where x > 0, gy alpha e^x elsewhere (a nan input: nan)."""
    x = np.ascontiguousarray(x)
    gy = np.ascontiguousarray(gy, dtype=x.dtype)
    gx = np.empty_like(x)
    _elu(gy.reshape(-1), x.reshape(-1), gx.reshape(-1), x.dtype.type(alpha), True, _chunks(x.size, x.size))
    return gx


@njit(parallel=True)
def _elu(gy, x, out, alpha, backward, n_chunks):
    """backward=False: out = elu(x) (gy unused); backward=True: out = gy * elu'(x)."""
    n = x.shape[0]
    for c in numba.prange(n_chunks):
        lo, hi = c * n // n_chunks, (c + 1) * n // n_chunks
        if backward:
            _elu_bwd_flat(gy[lo:hi], x[lo:hi], out[lo:hi], alpha)
        else:
            _elu_fwd_flat(x[lo:hi], out[lo:hi], alpha)


@njit()
def _elu_fwd_flat(x, out, alpha):
    for i in range(x.shape[0]):
        v = x[i]
        neg = alpha - alpha if v > 0 else v     # the clipped input, 0 in x's dtype: no overflow (a nan stays)
        out[i] = v if v > 0 else alpha * fast_expm1(neg)


@njit()
def _elu_bwd_flat(gy, x, out, alpha):
    for i in range(x.shape[0]):
        v = x[i]
        neg = alpha - alpha if v > 0 else v
        out[i] = gy[i] if v > 0 else gy[i] * (alpha * fast_exp(neg))
