"""Flash attention on the GPU (CuPy RawKernels), twin of reference/attention.py and cpu/attention.py.

Forward: a thread block owns ROWS query rows (a thread each, its scaled q row in shared memory)
and walks the keys in tiles of TILE rows of K and V staged in shared memory; each thread keeps an
online softmax (running max m, sum l, accumulator acc[D] in registers, A = float32 for float32,
float16 and bfloat16 inputs, float64 for float64). It writes out [B, H, Lq, D] and the row
log-sum-exp [B, H, Lq] only: extra memory O(B*H*L). With causal=True the tiles right of the
diagonal are never loaded. A boolean mask arrives as an additive bias (-inf where masked).

NaN and inf follow reference/attention.py (the composed formula in IEEE arithmetic, as torch's
math backend): a masked key still passes a nan of its score or of v on (0 * nan = nan), so the
skips above (masked keys, causal tiles, fully masked rows) are taken only in heads whose q, k, v
(and gout) are finite and whose bias holds no nan or +inf: one pass over the inputs
(_finite_heads) marks them; the other heads visit every key, with the causal mask added.

Backward (FlashAttention-2's split, no atomics): delta = rowsum(gout * out); one kernel owns key
rows and accumulates gk, gv over query tiles; another owns query rows and accumulates gq over key
tiles; both recompute the score tiles from q, k and lse.

This first version is SIMT (FMA units, no tensor cores): correct for D <= 256; speed against
torch's SDPA is for the GPU benchmark to say (asv_benchmarks/gpu_bench.py).
"""
from __future__ import annotations

import numpy as np

from ndiv.device import get_cupy
from ndiv.kernels.cuda._compile import accumulator, dtype_name, function, i32, i64, launch

SOURCE = r"""
// Defines: DMAX (head dim rounded up; zero padded), ROWS (threads = rows owned per block),
// TILE (rows of the other operand per shared-memory tile).

__device__ __forceinline__ const T* bias_base(const T* bias, int b, int h, int Bm, int Hm, int Lq, int Lk) {
    return bias + ((long long)(Bm > 1 ? b : 0) * Hm + (Hm > 1 ? h : 0)) * Lq * Lk;
}

extern "C" __global__ void flash_fwd(const T* q, const T* k, const T* v, const T* bias, T* out, A* lse,
                                     int H, int Lq, int Lk, int D, A scale, int causal, int Bm, int Hm,
                                     int n_tiles, const int* finite) {
    __shared__ A Qs[ROWS][DMAX + 1];                 // +1: row-per-thread reads hit distinct banks
    __shared__ A Ks[TILE][DMAX];
    __shared__ A Vs[TILE][DMAX];
    int bh = blockIdx.x / n_tiles, q0 = (blockIdx.x - bh * n_tiles) * ROWS;
    int b = bh / H, h = bh - b * H, tid = threadIdx.x, i = q0 + tid;
    bool valid = i < Lq;
    const T* qb = q + (long long)bh * Lq * D;
    const T* kb = k + (long long)bh * Lk * D;
    const T* vb = v + (long long)bh * Lk * D;
    const T* bb = Bm > 0 ? bias_base(bias, b, h, Bm, Hm, Lq, Lk) : bias;
    for (int e = tid; e < ROWS * DMAX; e += ROWS) {
        int r = e / DMAX, d = e - r * DMAX;
        Qs[r][d] = (q0 + r < Lq && d < D) ? ld(qb[(long long)(q0 + r) * D + d]) * scale : (A)0;
    }
    A acc[DMAX];
#pragma unroll
    for (int d = 0; d < DMAX; d++) acc[d] = 0;
    A m = NEG_INF, l = 0;
    bool clean = finite[bh];                         // skips below add exactly nothing
    int k_end = causal && clean ? min(Lk, q0 + ROWS) : Lk;   // tiles right of the diagonal: skipped
    for (int k0 = 0; k0 < k_end; k0 += TILE) {
        __syncthreads();                             // the previous tile is consumed
        for (int e = tid; e < TILE * DMAX; e += ROWS) {
            int r = e / DMAX, d = e - r * DMAX;
            bool in = k0 + r < Lk && d < D;
            long long o = (long long)(k0 + r) * D + d;
            Ks[r][d] = in ? ld(kb[o]) : (A)0;
            Vs[r][d] = in ? ld(vb[o]) : (A)0;
        }
        __syncthreads();
        if (!valid) continue;
        int jn = min(TILE, k_end - k0);
        if (causal && clean) jn = min(jn, i - k0 + 1);   // keys j <= i
        for (int jj = 0; jj < jn; jj++) {
            A s = 0;
#pragma unroll
            for (int d = 0; d < DMAX; d++) s += Qs[tid][d] * Ks[jj][d];
            if (Bm > 0) s += ld(bb[(long long)i * Lk + k0 + jj]);
            if (causal && k0 + jj > i) s += NEG_INF;     // added, not set: a nan stays nan
            if (s == NEG_INF) {                      // masked: weight 0
                if (clean) continue;
#pragma unroll
                for (int d = 0; d < DMAX; d++) acc[d] += (A)0 * Vs[jj][d];   // 0 * nan = nan
                continue;
            }
            if (s > m) {                             // new running max: rescale what is summed
                A a = EXP(m - s);
                l *= a;
#pragma unroll
                for (int d = 0; d < DMAX; d++) acc[d] *= a;
                m = s;
            }
            A p = EXP(s - m);                        // nan for a nan s, or once m is +inf
            l += p;
#pragma unroll
            for (int d = 0; d < DMAX; d++) acc[d] += p * Vs[jj][d];
        }
    }
    if (!valid) return;
    T* ob = out + ((long long)bh * Lq + i) * D;
    A r = l == 0 ? (A)1 : (A)1 / l;                 // a fully masked row: 0 @ v, lse -inf
#pragma unroll
    for (int d = 0; d < DMAX; d++) if (d < D) ob[d] = st(acc[d] * r);
    lse[(long long)bh * Lq + i] = l == 0 ? NEG_INF : m + LOG(l);     // nan where l is nan
}

// ok[e / per] = 0 for each element e of x that is nan or inf (bias = 1: nan or +inf, -inf being a
// mask); every writer writes the same 0, so the race is benign
extern "C" __global__ void mark_nonfinite(const T* x, long long n, long long per, int bias, int* ok) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x) {
        A a = ld(x[e]);
        if (bias ? !(a < -NEG_INF) : !(a - a == 0)) ok[e / per] = 0;
    }
}

// delta[row] = sum_d gout[row, d] * out[row, d]
extern "C" __global__ void attn_delta(const T* gout, const T* out, A* delta, long long rows, int D) {
    for (long long r = blockIdx.x * (long long)blockDim.x + threadIdx.x; r < rows; r += (long long)gridDim.x * blockDim.x) {
        A s = 0;
        for (int d = 0; d < D; d++) s += ld(gout[r * D + d]) * ld(out[r * D + d]);
        delta[r] = s;
    }
}

// a block owns ROWS key rows; walks query tiles -> gk, gv
extern "C" __global__ void flash_bwd_kv(const T* q, const T* k, const T* v, const T* bias, const T* gout,
                                        const A* lse, const A* delta, T* gk, T* gv, int H, int Lq, int Lk,
                                        int D, A scale, int causal, int Bm, int Hm, int n_tiles,
                                        const int* finite) {
    __shared__ A Ks[ROWS][DMAX + 1];
    __shared__ A Vs[ROWS][DMAX + 1];
    __shared__ A Qs[TILE][DMAX];
    __shared__ A Gs[TILE][DMAX];
    __shared__ A Ls[TILE], Ds[TILE];
    int bh = blockIdx.x / n_tiles, k0 = (blockIdx.x - bh * n_tiles) * ROWS;
    int b = bh / H, h = bh - b * H, tid = threadIdx.x, j = k0 + tid;
    bool valid = j < Lk;
    const T* qb = q + (long long)bh * Lq * D;
    const T* gb = gout + (long long)bh * Lq * D;
    const T* bb = Bm > 0 ? bias_base(bias, b, h, Bm, Hm, Lq, Lk) : bias;
    for (int e = tid; e < ROWS * DMAX; e += ROWS) {
        int r = e / DMAX, d = e - r * DMAX;
        bool in = k0 + r < Lk && d < D;
        long long o = ((long long)bh * Lk + k0 + r) * D + d;
        Ks[r][d] = in ? ld(k[o]) : (A)0;
        Vs[r][d] = in ? ld(v[o]) : (A)0;
    }
    A dk[DMAX], dv[DMAX];
#pragma unroll
    for (int d = 0; d < DMAX; d++) { dk[d] = 0; dv[d] = 0; }
    bool clean = finite[bh];
    int i_start = causal && clean ? (k0 / TILE) * TILE : 0;   // queries above the diagonal: none of these keys
    for (int i0 = i_start; i0 < Lq; i0 += TILE) {
        __syncthreads();
        for (int e = tid; e < TILE * DMAX; e += ROWS) {
            int r = e / DMAX, d = e - r * DMAX;
            bool in = i0 + r < Lq && d < D;
            long long o = (long long)(i0 + r) * D + d;
            Qs[r][d] = in ? ld(qb[o]) * scale : (A)0;
            Gs[r][d] = in ? ld(gb[o]) : (A)0;
        }
        for (int r = tid; r < TILE; r += ROWS) {
            bool in = i0 + r < Lq;
            Ls[r] = in ? lse[(long long)bh * Lq + i0 + r] : NEG_INF;
            Ds[r] = in ? delta[(long long)bh * Lq + i0 + r] : (A)0;
        }
        __syncthreads();
        if (!valid) continue;
        int in_ = min(TILE, Lq - i0);
        for (int ii = 0; ii < in_; ii++) {
            int i = i0 + ii;
            A L = Ls[ii];
            if (clean && ((causal && i < j) || L == NEG_INF)) continue;
            A s = 0, dp = 0;
#pragma unroll
            for (int d = 0; d < DMAX; d++) { s += Qs[ii][d] * Ks[tid][d]; dp += Gs[ii][d] * Vs[tid][d]; }
            if (Bm > 0) s += ld(bb[(long long)i * Lk + j]);
            if (causal && i < j) s += NEG_INF;
            A p = L == NEG_INF ? (A)0 : EXP(s - L);
            A ds = p * (dp - Ds[ii]);
#pragma unroll
            for (int d = 0; d < DMAX; d++) { dv[d] += p * Gs[ii][d]; dk[d] += ds * Qs[ii][d]; }
        }
    }
    if (!valid) return;
    long long o = ((long long)bh * Lk + j) * D;
#pragma unroll
    for (int d = 0; d < DMAX; d++) if (d < D) { gk[o + d] = st(dk[d]); gv[o + d] = st(dv[d]); }
}

// a block owns ROWS query rows; walks key tiles -> gq
extern "C" __global__ void flash_bwd_q(const T* q, const T* k, const T* v, const T* bias, const T* gout,
                                       const A* lse, const A* delta, T* gq, int H, int Lq, int Lk, int D,
                                       A scale, int causal, int Bm, int Hm, int n_tiles, const int* finite) {
    __shared__ A Qs[ROWS][DMAX + 1];
    __shared__ A Gs[ROWS][DMAX + 1];
    __shared__ A Ks[TILE][DMAX];
    __shared__ A Vs[TILE][DMAX];
    int bh = blockIdx.x / n_tiles, q0 = (blockIdx.x - bh * n_tiles) * ROWS;
    int b = bh / H, h = bh - b * H, tid = threadIdx.x, i = q0 + tid;
    bool valid = i < Lq;
    const T* kb = k + (long long)bh * Lk * D;
    const T* vb = v + (long long)bh * Lk * D;
    const T* bb = Bm > 0 ? bias_base(bias, b, h, Bm, Hm, Lq, Lk) : bias;
    for (int e = tid; e < ROWS * DMAX; e += ROWS) {
        int r = e / DMAX, d = e - r * DMAX;
        bool in = q0 + r < Lq && d < D;
        long long o = ((long long)bh * Lq + q0 + r) * D + d;
        Qs[r][d] = in ? ld(q[o]) * scale : (A)0;
        Gs[r][d] = in ? ld(gout[o]) : (A)0;
    }
    A L = valid ? lse[(long long)bh * Lq + i] : NEG_INF;
    A dl = valid ? delta[(long long)bh * Lq + i] : (A)0;
    A dq[DMAX];
#pragma unroll
    for (int d = 0; d < DMAX; d++) dq[d] = 0;
    bool clean = finite[bh];
    int k_end = causal && clean ? min(Lk, q0 + ROWS) : Lk;
    for (int k0 = 0; k0 < k_end; k0 += TILE) {
        __syncthreads();
        for (int e = tid; e < TILE * DMAX; e += ROWS) {
            int r = e / DMAX, d = e - r * DMAX;
            bool in = k0 + r < Lk && d < D;
            long long o = (long long)(k0 + r) * D + d;
            Ks[r][d] = in ? ld(kb[o]) : (A)0;
            Vs[r][d] = in ? ld(vb[o]) : (A)0;
        }
        __syncthreads();
        if (!valid || (clean && L == NEG_INF)) continue;
        int jn = min(TILE, k_end - k0);
        if (causal && clean) jn = min(jn, i - k0 + 1);
        for (int jj = 0; jj < jn; jj++) {
            A s = 0, dp = 0;
#pragma unroll
            for (int d = 0; d < DMAX; d++) { s += Qs[tid][d] * Ks[jj][d]; dp += Gs[tid][d] * Vs[jj][d]; }
            if (Bm > 0) s += ld(bb[(long long)i * Lk + k0 + jj]);
            if (causal && k0 + jj > i) s += NEG_INF;
            A ds = (L == NEG_INF ? (A)0 : EXP(s - L)) * (dp - dl);
#pragma unroll
            for (int d = 0; d < DMAX; d++) dq[d] += ds * Ks[jj][d];
        }
    }
    if (!valid) return;
    long long o = ((long long)bh * Lq + i) * D;
#pragma unroll
    for (int d = 0; d < DMAX; d++) if (d < D) gq[o + d] = st(dq[d] * scale);
}
"""

# (ROWS, TILE) per DMAX for 4-byte accumulators; shared memory stays under the 48 KiB static limit
# (largest: flash_bwd_kv, A-sized 2*ROWS*(DMAX+1) + 2*TILE*(DMAX+1)). Halved for float64.
_BLOCKS = {16: (64, 64), 32: (64, 64), 64: (64, 16), 128: (32, 8), 256: (16, 4)}
VARIANTS = [(dt, dict(DMAX=dm, ROWS=r // (2 if dt == "float64" else 1), TILE=t // (2 if dt == "float64" else 1)))
            for dt in ("float32", "float64", "float16", "bfloat16") for dm, (r, t) in _BLOCKS.items()]


def _config(D: int, dtype) -> dict:
    dmax = next((p for p in _BLOCKS if D <= p), None)
    if dmax is None:
        raise ValueError(f"flash_attn (cuda): head dim D={D} is above the kernels' maximum of 256")
    rows, tile = _BLOCKS[dmax]
    if np.dtype(dtype) == np.float64:
        rows, tile = rows // 2, tile // 2
    return dict(DMAX=dmax, ROWS=rows, TILE=tile)


def _prepare(q, k, v, bias):
    """Contiguous q, k, v in q's dtype; bias as [Bm, Hm, Lq, Lk] (or q itself as a dummy with Bm = 0)."""
    cp = get_cupy()
    dt = q.dtype
    dtype_name(dt)                                     # raises for an unsupported dtype
    q, k, v = (cp.ascontiguousarray(a, dtype=dt) for a in (q, k, v))
    Lq, Lk = q.shape[2], k.shape[2]
    if bias is None or bias.size == 0:
        return q, k, v, q, 0, 0
    bias = cp.asarray(bias, dtype=dt)
    bias = bias.reshape((1,) * (4 - bias.ndim) + bias.shape)
    bias = cp.ascontiguousarray(cp.broadcast_to(bias, bias.shape[:2] + (Lq, Lk)))
    return q, k, v, bias, bias.shape[0], bias.shape[1]


def _finite_heads(arrays, bias, Bm, Hm, cfg):
    """int32 [B * H]: 1 for a head whose arrays ([B, H, L, D] each) are all finite and whose bias
    (when Bm > 0) holds no nan or +inf, 0 otherwise; one pass over the inputs."""
    cp = get_cupy()
    B, H = arrays[0].shape[:2]
    ok = cp.ones(B * H, cp.int32)
    mark = function(SOURCE, "mark_nonfinite", arrays[0].dtype, cfg)
    for a in arrays:
        launch(mark, a.size, (a, i64(a.size), i64(max(1, a.size // max(1, B * H))), i32(0), ok))
    if Bm > 0:
        ok_bias = cp.ones(Bm * Hm, cp.int32)
        launch(mark, bias.size, (bias, i64(bias.size), i64(max(1, bias.size // (Bm * Hm))), i32(1), ok_bias))
        ok = cp.ascontiguousarray((ok.reshape(B, H) * ok_bias.reshape(Bm, Hm)).reshape(-1), dtype=cp.int32)
    return ok


def flash_attn_fwd(q, k, v, bias, scale, causal):
    """q [B, H, Lq, D]; k, v [B, H, Lk, D]; bias [Bm, Hm, Lq, Lk] additive (or empty); scale; causal
    -> out [B, H, Lq, D] (q's dtype), lse [B, H, Lq] (q's dtype; float32 for float16/bfloat16)."""
    cp = get_cupy()
    q, k, v, bias, Bm, Hm = _prepare(q, k, v, bias)
    B, H, Lq, D = q.shape
    Lk = k.shape[2]
    acc = accumulator(q.dtype)
    out = cp.empty_like(q)
    lse = cp.empty((B, H, Lq), acc)
    cfg = _config(D, q.dtype)
    n_tiles = -(-Lq // cfg["ROWS"])
    if B * H * n_tiles:
        function(SOURCE, "flash_fwd", q.dtype, cfg)(
            (B * H * n_tiles,), (cfg["ROWS"],),
            (q, k, v, bias, out, lse, i32(H), i32(Lq), i32(Lk), i32(D), acc.type(scale), i32(bool(causal)),
             i32(Bm), i32(Hm), i32(n_tiles), _finite_heads((q, k, v), bias, Bm, Hm, cfg)))
    return out, lse


def flash_attn_bwd(gout, q, k, v, bias, scale, causal, out, lse):
    """gout [B, H, Lq, D]; q, k, v, bias, scale, causal as in forward; out, lse from forward
    -> gq [B, H, Lq, D], gk, gv [B, H, Lk, D]."""
    cp = get_cupy()
    q, k, v, bias, Bm, Hm = _prepare(q, k, v, bias)
    B, H, Lq, D = q.shape
    Lk = k.shape[2]
    dt, acc = q.dtype, accumulator(q.dtype)
    gout, out = cp.ascontiguousarray(gout, dtype=dt), cp.ascontiguousarray(out, dtype=dt)
    lse = cp.ascontiguousarray(lse, dtype=acc)
    delta = cp.empty((B, H, Lq), acc)
    cfg = _config(D, dt)                               # the source's shared arrays need its defines
    launch(function(SOURCE, "attn_delta", dt, cfg), delta.size, (gout, out, delta, i64(delta.size), i32(D)))
    gq, gk, gv = cp.empty_like(q), cp.empty_like(k), cp.empty_like(v)
    rows = cfg["ROWS"]
    common = (i32(H), i32(Lq), i32(Lk), i32(D), acc.type(scale), i32(bool(causal)), i32(Bm), i32(Hm))
    finite = _finite_heads((q, k, v, gout), bias, Bm, Hm, cfg)
    n_k = -(-Lk // rows)
    if B * H * n_k:
        function(SOURCE, "flash_bwd_kv", dt, cfg)((B * H * n_k,), (rows,),
                                                 (q, k, v, bias, gout, lse, delta, gk, gv) + common + (i32(n_k), finite))
    n_q = -(-Lq // rows)
    if B * H * n_q:
        function(SOURCE, "flash_bwd_q", dt, cfg)((B * H * n_q,), (rows,),
                                                (q, k, v, bias, gout, lse, delta, gq) + common + (i32(n_q), finite))
    return gq, gk, gv


def small_attn_fwd(q, k, v, prev, scale):
    """Many heads of few tokens (see reference.attention.small_attn_fwd), as CuPy batched products:
    on the GPU the batched GEMMs are the right tool at these sizes. Not yet measured on a GPU."""
    import cupy as cp

    s = cp.matmul(q, k) * q.dtype.type(scale)
    if prev.size:
        s = s + prev
    m = s.max(axis=-1, keepdims=True)
    e = cp.exp(s - m)
    p = e / e.sum(axis=-1, keepdims=True)
    return cp.matmul(p, v), p, s


def small_attn_bwd(gout, gp, gs, q, k, v, p, scale):
    """See reference.attention.small_attn_bwd (CuPy batched products)."""
    import cupy as cp

    dp = cp.matmul(gout, cp.swapaxes(v, -1, -2))
    if gp.size:
        dp = dp + gp
    gv = cp.matmul(cp.swapaxes(p, -1, -2), gout)
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    if gs.size:
        ds = ds + gs
    dqk = ds * q.dtype.type(scale)
    return cp.matmul(dqk, cp.swapaxes(k, -1, -2)), cp.matmul(cp.swapaxes(q, -1, -2), dqk), gv, ds
