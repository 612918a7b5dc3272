"""softmax, log_softmax, layer norm (also of a sum x + r), GELU, GLU and ELU on the GPU (CuPy RawKernels),
twins of reference/norm.py and cpu/norm.py.

Row kernels take [N, D] (the autograd Function reshapes): one thread block per row, a
block-wide reduction (warp shuffles, then one shared word per warp) and one pass to write, with
A (float or double) accumulators. Layer norm's weight and bias gradients are column sums over
rows: a second kernel writes one partial row per chunk of rows, which CuPy then sums. NaN and
inf propagate as in reference/norm.py: the row max keeps a nan (max_nan), expf/erff/tanhf give
libm's results on nan and +-inf.
"""
from __future__ import annotations

import numpy as np

from ndiv.device import get_cupy
from ndiv.kernels.cuda._compile import REDUCE, function, i32, i64, launch

SOURCE = REDUCE + r"""
extern "C" __global__ void softmax_fwd(const T* x, T* y, int D, int log_) {
    __shared__ A sh[32];
    const T* xr = x + (long long)blockIdx.x * D;
    T* yr = y + (long long)blockIdx.x * D;
    A m = NEG_INF;
    for (int j = threadIdx.x; j < D; j += blockDim.x) m = max_nan(m, ld(xr[j]));
    m = block_max(m, sh);
    A s = 0;
    for (int j = threadIdx.x; j < D; j += blockDim.x) s += EXP(ld(xr[j]) - m);
    s = block_sum(s, sh);
    if (log_) {
        A lse = m + LOG(s);
        for (int j = threadIdx.x; j < D; j += blockDim.x) yr[j] = st(ld(xr[j]) - lse);
    } else {
        A r = (A)1 / s;
        for (int j = threadIdx.x; j < D; j += blockDim.x) yr[j] = st(EXP(ld(xr[j]) - m) * r);
    }
}

extern "C" __global__ void softmax_bwd(const T* gy, const T* y, T* gx, int D, int log_) {
    __shared__ A sh[32];
    long long o = (long long)blockIdx.x * D;
    A s = 0;
    for (int j = threadIdx.x; j < D; j += blockDim.x) s += log_ ? ld(gy[o + j]) : ld(gy[o + j]) * ld(y[o + j]);
    s = block_sum(s, sh);
    for (int j = threadIdx.x; j < D; j += blockDim.x) {
        A g = ld(gy[o + j]), v = ld(y[o + j]);
        gx[o + j] = st(log_ ? g - EXP(v) * s : v * (g - s));
    }
}

extern "C" __global__ void layer_norm_fwd(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd,
                                          int D, A eps) {
    __shared__ A sh[32];
    long long o = (long long)blockIdx.x * D;
    A s = 0;
    for (int j = threadIdx.x; j < D; j += blockDim.x) s += ld(x[o + j]);
    A mu = block_sum(s, sh) / D;
    A s2 = 0;                                     // two passes: no cancellation in the variance
    for (int j = threadIdx.x; j < D; j += blockDim.x) { A d = ld(x[o + j]) - mu; s2 += d * d; }
    A r = (A)1 / SQRT(block_sum(s2, sh) / D + eps);
    for (int j = threadIdx.x; j < D; j += blockDim.x) y[o + j] = st((ld(x[o + j]) - mu) * r * ld(w[j]) + ld(b[j]));
    if (threadIdx.x == 0) { mean[blockIdx.x] = st(mu); rstd[blockIdx.x] = st(r); }
}

// layer norm of s = x + r, with s written out (the backward's input): each thread reads back only
// the elements of s it wrote itself, so no barrier is needed between the passes
extern "C" __global__ void add_layer_norm_fwd(const T* x, const T* r, const T* w, const T* b, T* y, T* s,
                                              T* mean, T* rstd, int D, A eps) {
    __shared__ A sh[32];
    long long o = (long long)blockIdx.x * D;
    A acc = 0;
    for (int j = threadIdx.x; j < D; j += blockDim.x) {
        T v = st(ld(x[o + j]) + ld(r[o + j]));    // rounded to T, as x + r then layer_norm
        s[o + j] = v;
        acc += ld(v);
    }
    A mu = block_sum(acc, sh) / D;
    A acc2 = 0;
    for (int j = threadIdx.x; j < D; j += blockDim.x) { A d = ld(s[o + j]) - mu; acc2 += d * d; }
    A rs = (A)1 / SQRT(block_sum(acc2, sh) / D + eps);
    for (int j = threadIdx.x; j < D; j += blockDim.x) y[o + j] = st((ld(s[o + j]) - mu) * rs * ld(w[j]) + ld(b[j]));
    if (threadIdx.x == 0) { mean[blockIdx.x] = st(mu); rstd[blockIdx.x] = st(rs); }
}

extern "C" __global__ void layer_norm_bwd_x(const T* gy, const T* x, const T* w, const T* mean,
                                            const T* rstd, T* gx, int D) {
    __shared__ A sh[32];
    long long o = (long long)blockIdx.x * D;
    A mu = ld(mean[blockIdx.x]), r = ld(rstd[blockIdx.x]);
    A s1 = 0, s2 = 0;
    for (int j = threadIdx.x; j < D; j += blockDim.x) {
        A g = ld(gy[o + j]) * ld(w[j]);
        s1 += g;
        s2 += g * (ld(x[o + j]) - mu) * r;
    }
    s1 = block_sum(s1, sh);
    s2 = block_sum(s2, sh);
    for (int j = threadIdx.x; j < D; j += blockDim.x) {
        A xhat = (ld(x[o + j]) - mu) * r;
        gx[o + j] = st(r * (ld(gy[o + j]) * ld(w[j]) - (s1 + xhat * s2) / D));
    }
}

// block (32, 8): 32 columns, 8 row lanes; blockIdx.y is a chunk of rows -> partial[chunk, D] x 2
extern "C" __global__ void layer_norm_bwd_wb(const T* gy, const T* x, const T* mean, const T* rstd,
                                             A* pw, A* pb, int N, int D, int rows_per_chunk) {
    __shared__ A sw[8][33], sb[8][33];
    int j = blockIdx.x * 32 + threadIdx.x;
    int i0 = blockIdx.y * rows_per_chunk, i1 = min(N, i0 + rows_per_chunk);
    A aw = 0, ab = 0;
    if (j < D) {
        for (int i = i0 + threadIdx.y; i < i1; i += 8) {
            A g = ld(gy[(long long)i * D + j]);
            aw += g * (ld(x[(long long)i * D + j]) - ld(mean[i])) * ld(rstd[i]);
            ab += g;
        }
    }
    sw[threadIdx.y][threadIdx.x] = aw;
    sb[threadIdx.y][threadIdx.x] = ab;
    __syncthreads();
    if (threadIdx.y == 0 && j < D) {
        for (int k = 1; k < 8; k++) { aw += sw[k][threadIdx.x]; ab += sb[k][threadIdx.x]; }
        pw[(long long)blockIdx.y * D + j] = aw;
        pb[(long long)blockIdx.y * D + j] = ab;
    }
}

// backward = 0: out = gelu(x) (gy unused); backward = 1: out = gy * gelu'(x)
extern "C" __global__ void gelu(const T* gy, const T* x, T* out, long long n, int approximate, int backward) {
    const A K = (A)0.7978845608028654, C = (A)0.044715, RSQRT2 = (A)0.7071067811865476,
            RSQRT2PI = (A)0.3989422804014327;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        A v = ld(x[i]);
        A r;
        if (approximate) {
            A t = TANH(K * (v + C * v * v * v));
            r = backward ? ld(gy[i]) * ((A)0.5 * (1 + t) + (A)0.5 * v * (1 - t * t) * K * (1 + 3 * C * v * v))
                         : (A)0.5 * v * (1 + t);
        } else {
            A cdf = (A)0.5 * (1 + ERF(v * RSQRT2));
            r = backward ? ld(gy[i]) * (cdf + v * EXP((A)-0.5 * v * v) * RSQRT2PI) : v * cdf;
        }
        out[i] = st(r);
    }
}

// backward = 0: out [N, n] = a * sigmoid(b) for the rows [a | b] of x [N, 2n] (gy unused);
// backward = 1: out [N, 2n] = [gy s | (1 - s) s a gy], gy [N, n]
extern "C" __global__ void glu(const T* gy, const T* x, T* out, long long N, long long n, int backward) {
    for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < N * n; k += (long long)gridDim.x * blockDim.x) {
        long long i = k / n, j = k - i * n, o = i * 2 * n + j;
        A a = ld(x[o]), s = (A)1 / ((A)1 + EXP(-ld(x[o + n])));
        if (backward) {
            A g = ld(gy[k]);
            out[o] = st(g * s);
            out[o + n] = st(((A)1 - s) * s * a * g);
        } else {
            out[k] = st(a * s);
        }
    }
}

// backward = 0: out = elu(x) (gy unused); backward = 1: out = gy * elu'(x), torch's elu_backward
// on the input (a nan input gives nan, as torch's vectorized loop)
extern "C" __global__ void elu(const T* gy, const T* x, T* out, long long n, A alpha, int backward) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        A v = ld(x[i]);
        A neg = v > 0 ? (A)0 : v;
        if (backward) {
            out[i] = st(v > 0 ? ld(gy[i]) : ld(gy[i]) * (alpha * EXP(neg)));
        } else {
            out[i] = st(v > 0 ? v : alpha * EXPM1(neg));
        }
    }
}
"""
VARIANTS = [("float32", {}), ("float64", {})]


def _threads(D):
    """A power of two from 32 to 1024 threads per row, about one element each for short rows."""
    t = 32
    while t < D and t < 1024:
        t *= 2
    return t


def _acc(dt):
    return np.float64 if dt == np.float64 else np.float32


def softmax_fwd(x):
    """x [N, D] -> y [N, D]."""
    return _softmax(x, 0)


def log_softmax_fwd(x):
    """x [N, D] -> y [N, D] = x - logsumexp(x)."""
    return _softmax(x, 1)


def _softmax(x, log):
    cp = get_cupy()
    x = cp.ascontiguousarray(x)
    y = cp.empty_like(x)
    N, D = x.shape
    if N and D:
        function(SOURCE, "softmax_fwd", x.dtype)((N,), (_threads(D),), (x, y, i32(D), i32(log)))
    return y


def softmax_bwd(gy, y):
    """gy, y [N, D] -> gx [N, D]."""
    return _softmax_bwd(gy, y, 0)


def log_softmax_bwd(gy, y):
    """gy, y [N, D] -> gx [N, D]."""
    return _softmax_bwd(gy, y, 1)


def _softmax_bwd(gy, y, log):
    cp = get_cupy()
    y = cp.ascontiguousarray(y)
    gy = cp.ascontiguousarray(gy, dtype=y.dtype)
    gx = cp.empty_like(y)
    N, D = y.shape
    if N and D:
        function(SOURCE, "softmax_bwd", y.dtype)((N,), (_threads(D),), (gy, y, gx, i32(D), i32(log)))
    return gx


def layer_norm_fwd(x, weight, bias, eps):
    """x [N, D]; weight, bias [D]; eps -> y [N, D], mean [N], rstd [N]."""
    cp = get_cupy()
    x = cp.ascontiguousarray(x)
    N, D = x.shape
    y = cp.empty_like(x)
    mean, rstd = cp.empty(N, x.dtype), cp.empty(N, x.dtype)
    if N and D:
        w = cp.ascontiguousarray(weight, dtype=x.dtype)
        b = cp.ascontiguousarray(bias, dtype=x.dtype)
        function(SOURCE, "layer_norm_fwd", x.dtype)((N,), (_threads(D),),
                                                    (x, w, b, y, mean, rstd, i32(D), _acc(x.dtype)(eps)))
    return y, mean, rstd


def layer_norm_bwd(gy, x, weight, mean, rstd):
    """gy, x [N, D]; weight [D]; mean, rstd [N] -> gx [N, D], gweight [D], gbias [D]."""
    cp = get_cupy()
    x = cp.ascontiguousarray(x)
    gy = cp.ascontiguousarray(gy, dtype=x.dtype)
    mean, rstd = cp.ascontiguousarray(mean, dtype=x.dtype), cp.ascontiguousarray(rstd, dtype=x.dtype)
    N, D = x.shape
    gx = cp.empty_like(x)
    if not (N and D):
        return gx, cp.zeros(D, x.dtype), cp.zeros(D, x.dtype)
    w = cp.ascontiguousarray(weight, dtype=x.dtype)
    function(SOURCE, "layer_norm_bwd_x", x.dtype)((N,), (_threads(D),), (gy, x, w, mean, rstd, gx, i32(D)))
    rows_per_chunk = max(64, -(-N // 256))             # at most 256 partial rows to sum
    n_chunks = -(-N // rows_per_chunk)
    acc = _acc(x.dtype)
    pw, pb = cp.empty((n_chunks, D), acc), cp.empty((n_chunks, D), acc)
    function(SOURCE, "layer_norm_bwd_wb", x.dtype)(((D + 31) // 32, n_chunks), (32, 8),
                                                   (gy, x, mean, rstd, pw, pb, i32(N), i32(D), i32(rows_per_chunk)))
    return gx, pw.sum(axis=0).astype(x.dtype), pb.sum(axis=0).astype(x.dtype)


def add_layer_norm_fwd(x, r, weight, bias, eps):
    """x, r [N, D]; weight, bias [D]; eps -> y [N, D], s = x + r [N, D], mean [N], rstd [N]."""
    cp = get_cupy()
    x = cp.ascontiguousarray(x)
    r = cp.ascontiguousarray(r, dtype=x.dtype)
    N, D = x.shape
    y, s = cp.empty_like(x), cp.empty_like(x)
    mean, rstd = cp.empty(N, x.dtype), cp.empty(N, x.dtype)
    if N and D:
        w = cp.ascontiguousarray(weight, dtype=x.dtype)
        b = cp.ascontiguousarray(bias, dtype=x.dtype)
        function(SOURCE, "add_layer_norm_fwd", x.dtype)((N,), (_threads(D),),
                                                        (x, r, w, b, y, s, mean, rstd, i32(D), _acc(x.dtype)(eps)))
    return y, s, mean, rstd


def add_layer_norm_bwd(gy, s, weight, mean, rstd):
    """gy, s [N, D]; weight [D]; mean, rstd [N] -> gs [N, D] (the gradient of x and of r alike),
    gweight [D], gbias [D]: layer norm's backward at the saved sum s."""
    return layer_norm_bwd(gy, s, weight, mean, rstd)


def gelu_fwd(x, approximate):
    """x any shape; approximate False (erf) or True (tanh form) -> y, same shape."""
    return _gelu(x, x, bool(approximate), 0)


def gelu_bwd(gy, x, approximate):
    """gy, x same shape -> gx."""
    return _gelu(gy, x, bool(approximate), 1)


def _gelu(gy, x, approximate, backward):
    cp = get_cupy()
    x = cp.ascontiguousarray(x)
    gy = cp.ascontiguousarray(gy, dtype=x.dtype)
    out = cp.empty_like(x)
    launch(function(SOURCE, "gelu", x.dtype), x.size, (gy, x, out, i64(x.size), i32(approximate), i32(backward)))
    return out


def glu_fwd(x):
    """x [N, 2n] = [a | b] -> y [N, n] = a * sigmoid(b)."""
    cp = get_cupy()
    x = cp.ascontiguousarray(x)
    N, n = x.shape[0], x.shape[1] // 2
    y = cp.empty((N, n), x.dtype)
    launch(function(SOURCE, "glu", x.dtype), N * n, (x, x, y, i64(N), i64(n), i32(0)))
    return y


def glu_bwd(gy, x):
    """gy [N, n], x [N, 2n] -> gx [N, 2n]."""
    cp = get_cupy()
    x = cp.ascontiguousarray(x)
    gy = cp.ascontiguousarray(gy, dtype=x.dtype)
    N, n = x.shape[0], x.shape[1] // 2
    gx = cp.empty_like(x)
    launch(function(SOURCE, "glu", x.dtype), N * n, (gy, x, gx, i64(N), i64(n), i32(1)))
    return gx


def elu_fwd(x, alpha):
    """x any shape; alpha a float -> y, same shape."""
    return _elu(x, x, alpha, 0)


def elu_bwd(gy, x, alpha):
    """gy, x same shape -> gx."""
    return _elu(gy, x, alpha, 1)


def _elu(gy, x, alpha, backward):
    cp = get_cupy()
    x = cp.ascontiguousarray(x)
    gy = cp.ascontiguousarray(gy, dtype=x.dtype)
    out = cp.empty_like(x)
    launch(function(SOURCE, "elu", x.dtype), x.size, (gy, x, out, i64(x.size), _acc(x.dtype)(alpha), i32(backward)))
    return out
