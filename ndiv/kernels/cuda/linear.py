"""The epilogue of a Linear layer on the GPU (CuPy), twin of reference/linear.py: one RawKernel
for bias + activation (in place on the GEMM's output), one for the activation's mask; the bias
gradient is CuPy's column sum. Not yet measured on a GPU."""
from __future__ import annotations

from ndiv.device import get_cupy
from ndiv.kernels.cuda._compile import function, i32, launch

SOURCE = r"""
// y [n, d] += b, then relu when asked (a nan stays a nan, as torch.relu)
extern "C" __global__ void bias_act(T* y, const T* b, int n, int d, int relu) {
    long long total = (long long)n * d;
    for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < total;
         k += (long long)gridDim.x * blockDim.x) {
        A v = ld(y[k]) + ld(b[k % d]);
        y[k] = st(relu && v <= (A)0 ? (A)0 : v);
    }
}

// g = 0 where y <= 0 else gy (torch's threshold_backward)
extern "C" __global__ void relu_mask(const T* gy, const T* y, T* g, int n) {
    for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < n; k += gridDim.x * blockDim.x) {
        g[k] = ld(y[k]) <= (A)0 ? st((A)0) : gy[k];
    }
}
"""
VARIANTS = [("float32", {}), ("float64", {})]


def linear_act_fwd(y0, b, activation):
    """y0 [N, out] (overwritten); b [out] -> act(y0 + b)."""
    cp = get_cupy()
    y = cp.ascontiguousarray(y0)
    n, d = y.shape
    launch(function(SOURCE, "bias_act", y.dtype), n * d,
           (y, cp.ascontiguousarray(b, dtype=y.dtype), i32(n), i32(d), i32(activation == "relu")))
    return y


def linear_act_bwd(gy, y, activation):
    """gy, y [N, out] -> g [N, out], gb [out]."""
    cp = get_cupy()
    gy = cp.ascontiguousarray(gy)
    if activation == "relu":
        g = cp.empty_like(gy)
        launch(function(SOURCE, "relu_mask", gy.dtype), gy.size,
               (gy, cp.ascontiguousarray(y, dtype=gy.dtype), g, i32(gy.size)))
    else:
        g = gy.copy()
    return g, g.sum(axis=0, dtype=cp.float64).astype(gy.dtype)
