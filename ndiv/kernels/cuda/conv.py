"""Dilated 1-D convolution (stride 1, groups 1) on the GPU, twin of reference/conv.py and cpu/conv.py.

As on the CPU, both directions are one cuBLAS GEMM each over an im2col matrix cols
[Cin*K, B*Lout] (row c*K + k, column b*Lout + t holds xpad[b, c, t + k*d]); the copies into and
out of that layout are RawKernels, a thread per element, and the padding never materializes.
col2im gathers (each gx element sums its K taps), so it needs no atomics. A direct kernel that
never writes cols is the next step where cuDNN shows the GEMM form is memory bound.
"""
from __future__ import annotations

from ndiv.device import array_module, get_cupy
from ndiv.kernels.cuda._compile import function, i32, i64, launch

SOURCE = r"""
// x [B, Cin, L] -> cols [Cin*K, B*Lout]
extern "C" __global__ void im2col(const T* x, T* cols, int B, int Cin, int L, int K, int pad_left,
                                  int dilation, int Lout, long long n) {
    long long BL = (long long)B * Lout;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x) {
        long long row = e / BL, col = e - row * BL;
        int c = (int)(row / K), k = (int)(row - (long long)c * K);
        int b = (int)(col / Lout), t = (int)(col - (long long)b * Lout);
        int s = t + k * dilation - pad_left;
        cols[e] = (s >= 0 && s < L) ? x[((long long)b * Cin + c) * L + s] : st((A)0);
    }
}

// gcols [Cin*K, B*Lout] -> gx [B, Cin, L]: gx[b, c, l] = sum_k gcols[c*K + k, b*Lout + l + pad_left - k*d]
extern "C" __global__ void col2im(const T* gcols, T* gx, int B, int Cin, int L, int K, int pad_left,
                                  int dilation, int Lout, long long n) {
    long long BL = (long long)B * Lout;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x) {
        int l = (int)(e % L);
        long long bc = e / L;
        int c = (int)(bc % Cin), b = (int)(bc / Cin);
        A acc = 0;
        for (int k = 0; k < K; k++) {
            int t = l + pad_left - k * dilation;
            if (t >= 0 && t < Lout) acc += ld(gcols[((long long)c * K + k) * BL + (long long)b * Lout + t]);
        }
        gx[e] = st(acc);
    }
}
"""
VARIANTS = [("float32", {}), ("float64", {})]


def _im2col(x, K, pad_left, dilation, Lout):
    cp = get_cupy()
    B, Cin, L = x.shape
    cols = cp.empty((Cin * K, B * Lout), x.dtype)
    launch(function(SOURCE, "im2col", x.dtype), cols.size,
           (x, cols, i32(B), i32(Cin), i32(L), i32(K), i32(pad_left), i32(dilation), i32(Lout), i64(cols.size)))
    return cols


def conv1d_dilated_fwd(x, w, pad_left, pad_right, dilation):
    """x [B, Cin, L]; w [Cout, Cin, K]; pad_left, pad_right >= 0; dilation >= 1 -> y [B, Cout, Lout]."""
    cp = get_cupy()
    x = cp.ascontiguousarray(x)
    B, Cin, L = x.shape
    Cout, _, K = w.shape
    Lout = L + pad_left + pad_right - dilation * (K - 1)
    cols = _im2col(x, K, pad_left, dilation, Lout)
    y2 = cp.ascontiguousarray(w, dtype=x.dtype).reshape(Cout, Cin * K) @ cols       # [Cout, B*Lout]
    return cp.ascontiguousarray(y2.reshape(Cout, B, Lout).transpose(1, 0, 2))


def conv1d_dilated_bwd(gy, x, w, pad_left, pad_right, dilation):
    """gy [B, Cout, Lout]; x [B, Cin, L]; w [Cout, Cin, K] -> gx [B, Cin, L], gw [Cout, Cin, K]."""
    cp = get_cupy()
    x = cp.ascontiguousarray(x)
    B, Cin, L = x.shape
    Cout, _, K = w.shape
    Lout = gy.shape[2]
    gy2 = cp.ascontiguousarray(gy.astype(x.dtype, copy=False).transpose(1, 0, 2)).reshape(Cout, B * Lout)
    cols = _im2col(x, K, pad_left, dilation, Lout)
    gw = (gy2 @ cols.T).reshape(Cout, Cin, K)
    gcols = cp.ascontiguousarray(cp.ascontiguousarray(w, dtype=x.dtype).reshape(Cout, Cin * K).T @ gy2)
    gx = cp.empty((B, Cin, L), x.dtype)
    launch(function(SOURCE, "col2im", x.dtype), gx.size,
           (gcols, gx, i32(B), i32(Cin), i32(L), i32(K), i32(pad_left), i32(dilation), i32(Lout), i64(gx.size)))
    return gx, gw


# -- 2-D ---------------------------------------------------------------------------------------
# cols [C*KH*KW, B*Hout*Wout] as on the CPU (ndiv/kernels/cpu/conv.py), filled by one strided copy
# per tap (KH*KW array copies, no RawKernel), and one cuBLAS GEMM per direction. Written against
# the array's module, so the same code also runs on NumPy arrays (tests/kernels hold it to the
# reference there); not yet measured on a GPU.

def _live_range(p, pad_lo, n, n_out):
    """Output positions i whose input i + p - pad_lo lies in [0, n)."""
    return max(0, pad_lo - p), min(n_out, n + pad_lo - p)


def _im2col2d(xp, x, KH, KW, pad_top, pad_left, Hout, Wout):
    B, C, H, W = x.shape
    cols = xp.zeros((C, KH, KW, B, Hout, Wout), x.dtype)
    xt = x.transpose(1, 0, 2, 3)
    for p in range(KH):
        i0, i1 = _live_range(p, pad_top, H, Hout)
        for q in range(KW):
            j0, j1 = _live_range(q, pad_left, W, Wout)
            if i1 > i0 and j1 > j0:
                cols[:, p, q, :, i0:i1, j0:j1] = xt[:, :, i0 + p - pad_top:i1 + p - pad_top,
                                                    j0 + q - pad_left:j1 + q - pad_left]
    return cols.reshape(C * KH * KW, B * Hout * Wout)


def conv2d_fwd(x, w, b, pad_top, pad_bottom, pad_left, pad_right):
    """x [B, C, H, W]; w [O, C, KH, KW]; b [O] or None; zero padding -> y [B, O, Hout, Wout]."""
    xp = array_module(x)
    B, C, H, W = x.shape
    O, _, KH, KW = w.shape
    Hout, Wout = H + pad_top + pad_bottom - KH + 1, W + pad_left + pad_right - KW + 1
    cols = _im2col2d(xp, x, KH, KW, pad_top, pad_left, Hout, Wout)
    y2 = xp.ascontiguousarray(w, dtype=x.dtype).reshape(O, -1) @ cols
    y = xp.ascontiguousarray(y2.reshape(O, B, Hout, Wout).transpose(1, 0, 2, 3))
    if b is not None:
        y += b.astype(x.dtype, copy=False)[:, None, None]
    return y


def conv2d_bwd(gy, x, w, pad_top, pad_bottom, pad_left, pad_right):
    """gy [B, O, Hout, Wout]; x [B, C, H, W]; w [O, C, KH, KW] -> gx [B, C, H, W], gw, gb [O]."""
    xp = array_module(x)
    B, C, H, W = x.shape
    O, _, KH, KW = w.shape
    Hout, Wout = gy.shape[2:]
    gy = gy.astype(x.dtype, copy=False)
    gy2 = xp.ascontiguousarray(gy.transpose(1, 0, 2, 3)).reshape(O, B * Hout * Wout)
    cols = _im2col2d(xp, x, KH, KW, pad_top, pad_left, Hout, Wout)
    gw = (gy2 @ cols.T).reshape(w.shape)
    gcols = (xp.ascontiguousarray(w, dtype=x.dtype).reshape(O, -1).T @ gy2).reshape(C, KH, KW, B, Hout, Wout)
    gx = xp.zeros((C, B, H, W), x.dtype)
    for p in range(KH):
        i0, i1 = _live_range(p, pad_top, H, Hout)
        for q in range(KW):
            j0, j1 = _live_range(q, pad_left, W, Wout)
            if i1 > i0 and j1 > j0:
                gx[:, :, i0 + p - pad_top:i1 + p - pad_top, j0 + q - pad_left:j1 + q - pad_left] += \
                    gcols[:, p, q, :, i0:i1, j0:j1]
    return xp.ascontiguousarray(gx.transpose(1, 0, 2, 3)), gw, gy.sum(axis=(0, 2, 3))
