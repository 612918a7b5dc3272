"""RNN (tanh, relu), LSTM and GRU whole-sequence kernels on the GPU (CuPy), twins of reference/rnn.py and cpu/rnn.py.

As on the CPU, the caller did the input projection of every step in one GEMM. Each step here is
two launches: the recurrent GEMM through cuBLAS (`cupy.matmul(..., out=)`) and one RawKernel, a
thread per (batch row, hidden unit), that fuses every gate nonlinearity and the state update. The
weight gradient is one GEMM over all steps after the loop. A persistent kernel (the whole time
loop in one launch, W_hh held in shared memory) is the next step where measured better.
"""
from __future__ import annotations

from ndiv.device import get_cupy
from ndiv.kernels.cuda._compile import function, i32, launch

SOURCE = r"""
__device__ __forceinline__ A sigm(A x) { return (A)1 / ((A)1 + EXP(-x)); }

// one thread per (b, j): xw, hw [B, 4H]; c_prev [B, H] -> gates [B, 4H], c, h [B, H]
extern "C" __global__ void lstm_step_fwd(const T* xw, const T* hw, const T* c_prev, T* gates, T* c, T* h,
                                         int B, int H) {
    int n = B * H;
    for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < n; k += gridDim.x * blockDim.x) {
        int b = k / H, j = k - b * H;
        long long g0 = (long long)b * 4 * H + j;
        A i = sigm(ld(xw[g0]) + ld(hw[g0]));
        A f = sigm(ld(xw[g0 + H]) + ld(hw[g0 + H]));
        A g = TANH(ld(xw[g0 + 2 * H]) + ld(hw[g0 + 2 * H]));
        A o = sigm(ld(xw[g0 + 3 * H]) + ld(hw[g0 + 3 * H]));
        A cv = f * ld(c_prev[k]) + i * g;
        gates[g0] = st(i); gates[g0 + H] = st(f); gates[g0 + 2 * H] = st(g); gates[g0 + 3 * H] = st(o);
        c[k] = st(cv);
        h[k] = st(o * TANH(cv));
    }
}

// dh (from step t+1 through W_hh) and dc are [B, H]; dc is updated in place to the gradient
// reaching c_{t-1}; gxw [B, 4H] receives the pre-activation gradients of step t
extern "C" __global__ void lstm_step_bwd(const T* gy, const T* gates, const T* c, const T* c_prev,
                                         const T* dh, T* dc, T* gxw, int B, int H) {
    int n = B * H;
    for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < n; k += gridDim.x * blockDim.x) {
        int b = k / H, j = k - b * H;
        long long g0 = (long long)b * 4 * H + j;
        A i = ld(gates[g0]), f = ld(gates[g0 + H]), g = ld(gates[g0 + 2 * H]), o = ld(gates[g0 + 3 * H]);
        A dhv = ld(dh[k]) + ld(gy[k]);
        A tc = TANH(ld(c[k]));
        A dcv = ld(dc[k]) + dhv * o * (1 - tc * tc);
        gxw[g0] = st(dcv * g * i * (1 - i));
        gxw[g0 + H] = st(dcv * ld(c_prev[k]) * f * (1 - f));
        gxw[g0 + 2 * H] = st(dcv * i * (1 - g * g));
        gxw[g0 + 3 * H] = st(dhv * tc * o * (1 - o));
        dc[k] = st(dcv * f);
    }
}

// xw [B, 3H] (x W_ih^T + b_ih); hw [B, 3H] (h W_hh^T, no bias); b_hh [3H]
// -> gates [B, 4H] = r, z, n, hn (= W_hn h + b_hn), h [B, H]
extern "C" __global__ void gru_step_fwd(const T* xw, const T* hw, const T* b_hh, const T* h_prev, T* gates,
                                        T* h, int B, int H) {
    int n = B * H;
    for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < n; k += gridDim.x * blockDim.x) {
        int b = k / H, j = k - b * H;
        long long x0 = (long long)b * 3 * H + j, g0 = (long long)b * 4 * H + j;
        A r = sigm(ld(xw[x0]) + ld(hw[x0]) + ld(b_hh[j]));
        A z = sigm(ld(xw[x0 + H]) + ld(hw[x0 + H]) + ld(b_hh[j + H]));
        A hn = ld(hw[x0 + 2 * H]) + ld(b_hh[j + 2 * H]);
        A nv = TANH(ld(xw[x0 + 2 * H]) + r * hn);
        gates[g0] = st(r); gates[g0 + H] = st(z); gates[g0 + 2 * H] = st(nv); gates[g0 + 3 * H] = st(hn);
        h[k] = st(nv + z * (ld(h_prev[k]) - nv));
    }
}

// carry [B, H]: gradient of h_t through the z * h path (gh_n at the last step), updated in place
// to carry for step t-1; rec [B, H]: gradient of h_t through W_hh (from step t+1)
extern "C" __global__ void gru_step_bwd(const T* gy, const T* gates, const T* h_prev, T* carry, const T* rec,
                                        T* gxw, T* ghw, int B, int H) {
    int n = B * H;
    for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < n; k += gridDim.x * blockDim.x) {
        int b = k / H, j = k - b * H;
        long long x0 = (long long)b * 3 * H + j, g0 = (long long)b * 4 * H + j;
        A r = ld(gates[g0]), z = ld(gates[g0 + H]), nv = ld(gates[g0 + 2 * H]), hn = ld(gates[g0 + 3 * H]);
        A dh = ld(carry[k]) + ld(gy[k]) + ld(rec[k]);
        A gn = dh * (1 - z) * (1 - nv * nv);
        A gz = dh * (ld(h_prev[k]) - nv) * z * (1 - z);
        A gr = gn * hn * r * (1 - r);
        gxw[x0] = st(gr); gxw[x0 + H] = st(gz); gxw[x0 + 2 * H] = st(gn);
        ghw[x0] = st(gr); ghw[x0 + H] = st(gz); ghw[x0 + 2 * H] = st(gn * r);
        carry[k] = st(dh * z);
    }
}

// h [n] holds h_{t-1} W_hh^T on entry and h_t on exit: h = act(xw + h), act relu or tanh
extern "C" __global__ void rnn_step_fwd(const T* xw, T* h, int n, int relu) {
    for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < n; k += gridDim.x * blockDim.x) {
        A v = ld(xw[k]) + ld(h[k]);
        h[k] = st(relu ? (v <= (A)0 ? (A)0 : v) : TANH(v));    // a nan stays a nan, as torch.relu
    }
}

// gxw = (dh + gy) * act'(y): relu' as torch's threshold_backward on the output, tanh' = 1 - y^2
extern "C" __global__ void rnn_step_bwd(const T* gy, const T* y, const T* dh, T* gxw, int n, int relu) {
    for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < n; k += gridDim.x * blockDim.x) {
        A d = ld(dh[k]) + ld(gy[k]), yv = ld(y[k]);
        gxw[k] = st(relu ? (yv <= (A)0 ? (A)0 : d) : d * ((A)1 - yv * yv));
    }
}
"""
VARIANTS = [("float32", {}), ("float64", {})]


def _no_bf16(bf16):
    if bf16:
        raise ValueError("bf16 products (ndiv.autocast) run on the CPU only; on a GPU train in float32")


def lstm_seq_fwd(xw, h0, c0, w_hh, bf16=False):
    """xw [T, B, 4H]; h0, c0 [B, H]; w_hh [4H, H] -> y [T, B, H], c [T, B, H], gates [T, B, 4H]."""
    _no_bf16(bf16)
    cp = get_cupy()
    T, B, H4 = xw.shape
    H = H4 // 4
    dt = xw.dtype
    xw = cp.ascontiguousarray(xw)
    y, c, gates = cp.empty((T, B, H), dt), cp.empty((T, B, H), dt), cp.empty((T, B, H4), dt)
    w_t = cp.ascontiguousarray(w_hh.T, dtype=dt)
    hw = cp.empty((B, H4), dt)
    h_prev, c_prev = cp.ascontiguousarray(h0, dtype=dt), cp.ascontiguousarray(c0, dtype=dt)
    step = function(SOURCE, "lstm_step_fwd", dt)
    for t in range(T):
        cp.matmul(h_prev, w_t, out=hw)
        launch(step, B * H, (xw[t], hw, c_prev, gates[t], c[t], y[t], i32(B), i32(H)))
        h_prev, c_prev = y[t], c[t]
    return y, c, gates


def lstm_seq_bwd(gy, gh_n, gc_n, h0, c0, w_hh, y, c, gates, bf16=False):
    """gy [T, B, H]; gh_n, gc_n [B, H]; h0, c0 [B, H]; w_hh [4H, H]; y, c, gates from forward
    -> gxw [T, B, 4H], gh0 [B, H], gc0 [B, H], gw_hh [4H, H]."""
    _no_bf16(bf16)
    cp = get_cupy()
    T, B, H4 = gates.shape
    H = H4 // 4
    dt = gates.dtype
    gy = cp.ascontiguousarray(gy, dtype=dt)
    w_hh = cp.ascontiguousarray(w_hh, dtype=dt)
    c0 = cp.ascontiguousarray(c0, dtype=dt)
    gates, c = cp.ascontiguousarray(gates), cp.ascontiguousarray(c)
    gxw = cp.empty_like(gates)
    dh = cp.array(gh_n, dtype=dt, order="C")
    dc = cp.array(gc_n, dtype=dt, order="C")
    step = function(SOURCE, "lstm_step_bwd", dt)
    for t in range(T - 1, -1, -1):
        launch(step, B * H, (gy[t], gates[t], c[t], c[t - 1] if t > 0 else c0, dh, dc, gxw[t], i32(B), i32(H)))
        cp.matmul(gxw[t], w_hh, out=dh)
    return gxw, dh, dc, _weight_grad(gxw, cp.asarray(h0, dtype=dt), y)


def _weight_grad(g, h0, y):
    """sum_t g[t]^T @ h_{t-1} (h_{-1} = h0) as two cuBLAS GEMMs. g [T, B, G]; y [T, B, H] -> [G, H]."""
    cp = get_cupy()
    T, B, G = g.shape
    if T == 0:
        return cp.zeros((G, h0.shape[1]), g.dtype)
    gw = g[0].T @ h0
    if T > 1:
        gw += g[1:].reshape((T - 1) * B, G).T @ y[:-1].reshape((T - 1) * B, -1)
    return gw


def gru_seq_fwd(xw, h0, w_hh, b_hh, bf16=False):
    """xw [T, B, 3H]; h0 [B, H]; w_hh [3H, H]; b_hh [3H] -> y [T, B, H], gates [T, B, 4H] (r, z, n, hn)."""
    _no_bf16(bf16)
    cp = get_cupy()
    T, B, H3 = xw.shape
    H = H3 // 3
    dt = xw.dtype
    xw = cp.ascontiguousarray(xw)
    y, gates = cp.empty((T, B, H), dt), cp.empty((T, B, 4 * H), dt)
    w_t = cp.ascontiguousarray(w_hh.T, dtype=dt)
    b_hh = cp.ascontiguousarray(b_hh, dtype=dt)
    hw = cp.empty((B, H3), dt)
    h_prev = cp.ascontiguousarray(h0, dtype=dt)
    step = function(SOURCE, "gru_step_fwd", dt)
    for t in range(T):
        cp.matmul(h_prev, w_t, out=hw)
        launch(step, B * H, (xw[t], hw, b_hh, h_prev, gates[t], y[t], i32(B), i32(H)))
        h_prev = y[t]
    return y, gates


def gru_seq_bwd(gy, gh_n, h0, w_hh, y, gates, bf16=False):
    """gy [T, B, H]; gh_n [B, H]; h0 [B, H]; w_hh [3H, H]; y, gates from forward
    -> gxw [T, B, 3H], gh0 [B, H], gw_hh [3H, H], gb_hh [3H]."""
    _no_bf16(bf16)
    cp = get_cupy()
    T, B, H4 = gates.shape
    H = H4 // 4
    dt = gates.dtype
    gy = cp.ascontiguousarray(gy, dtype=dt)
    w_hh = cp.ascontiguousarray(w_hh, dtype=dt)
    h0 = cp.ascontiguousarray(h0, dtype=dt)
    gates, y = cp.ascontiguousarray(gates), cp.ascontiguousarray(y)
    gxw = cp.empty((T, B, 3 * H), dt)
    ghw = cp.empty((T, B, 3 * H), dt)
    carry = cp.array(gh_n, dtype=dt, order="C")
    rec = cp.zeros((B, H), dt)
    step = function(SOURCE, "gru_step_bwd", dt)
    for t in range(T - 1, -1, -1):
        launch(step, B * H, (gy[t], gates[t], y[t - 1] if t > 0 else h0, carry, rec, gxw[t], ghw[t], i32(B), i32(H)))
        cp.matmul(ghw[t], w_hh, out=rec)
    return gxw, carry + rec, _weight_grad(ghw, h0, y), ghw.sum(axis=(0, 1))


def rnn_seq_fwd(xw, h0, w_hh, relu, bf16=False):
    """xw [T, B, H] (both biases included); h0 [B, H]; w_hh [H, H]; relu: bool -> y [T, B, H]."""
    _no_bf16(bf16)
    cp = get_cupy()
    T, B, H = xw.shape
    dt = xw.dtype
    xw = cp.ascontiguousarray(xw)
    y = cp.empty((T, B, H), dt)
    w_t = cp.ascontiguousarray(w_hh.T, dtype=dt)
    h_prev = cp.ascontiguousarray(h0, dtype=dt)
    step = function(SOURCE, "rnn_step_fwd", dt)
    for t in range(T):
        cp.matmul(h_prev, w_t, out=y[t])
        launch(step, B * H, (xw[t], y[t], i32(B * H), i32(bool(relu))))
        h_prev = y[t]
    return y


def rnn_seq_bwd(gy, gh_n, h0, w_hh, y, relu, bf16=False):
    """gy [T, B, H]; gh_n [B, H]; h0 [B, H]; w_hh [H, H]; y from forward; relu: bool
    -> gxw [T, B, H], gh0 [B, H], gw_hh [H, H]."""
    _no_bf16(bf16)
    cp = get_cupy()
    T, B, H = y.shape
    dt = y.dtype
    gy = cp.ascontiguousarray(gy, dtype=dt)
    w_hh = cp.ascontiguousarray(w_hh, dtype=dt)
    y = cp.ascontiguousarray(y)
    gxw = cp.empty((T, B, H), dt)
    dh = cp.array(gh_n, dtype=dt, order="C")
    step = function(SOURCE, "rnn_step_bwd", dt)
    for t in range(T - 1, -1, -1):
        launch(step, B * H, (gy[t], y[t], dh, gxw[t], i32(B * H), i32(bool(relu))))
        cp.matmul(gxw[t], w_hh, out=dh)
    return gxw, dh, _weight_grad(gxw, cp.asarray(h0, dtype=dt), y)
