"""Flash attention (Numba + BLAS), twin of reference/attention.py: tiled, online softmax.

Forward keeps per query row a running max m, a running sum l and an accumulator; it saves only
out [B, H, Lq, D] and lse [B, H, Lq], never a score matrix: extra memory is one [BQ, BK] tile per
thread. Backward recomputes each score tile from q, k and lse (FlashAttention-2's schedule).
With causal=True the key tiles right of the diagonal are never visited, unless the head holds a
nan or inf (in q, k, v, or a nan/+inf bias): NaN and inf follow reference/attention.py (the
composed formula in IEEE arithmetic, as torch's math backend), where a masked nan still makes a
row nan, so such a head visits every tile. Heads run in parallel (a thread per range of heads),
each thread doing its tile GEMMs through BLAS.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from ndiv.kernels.config import ATTN_BLOCK_K, ATTN_BLOCK_Q, njit
from ndiv.kernels.cpu._math import fast_exp


def _prepare(q, k, v, bias, scale):
    dt = q.dtype
    qs = np.ascontiguousarray(q * dt.type(scale))     # the scale folded into q: scores stay in q's dtype
    k, v = np.ascontiguousarray(k, dtype=dt), np.ascontiguousarray(v, dtype=dt)
    bias = np.ascontiguousarray(bias, dtype=dt)
    if bias.ndim != 4:
        bias = bias.reshape((1,) * (4 - bias.ndim) + bias.shape)
    return qs, k, v, bias


def flash_attn_fwd(q, k, v, bias, scale, causal):
    """q [B, H, Lq, D]; k, v [B, H, Lk, D]; bias [Bm, Hm, Lq, Lk] additive (or empty); scale; causal
    -> out [B, H, Lq, D], lse [B, H, Lq]."""
    qs, k, v, bias = _prepare(q, k, v, bias, scale)
    B, H, Lq, D = q.shape
    out = np.empty((B, H, Lq, D), q.dtype)
    lse = np.empty((B, H, Lq), q.dtype)
    _over_heads(_flash_fwd, B * H, qs, k, v, bias, bool(causal), out, lse, ATTN_BLOCK_Q, ATTN_BLOCK_K)
    return out, lse


def flash_attn_bwd(gout, q, k, v, bias, scale, causal, out, lse):
    """gout [B, H, Lq, D]; q, k, v, bias, scale, causal as in forward; out, lse from forward
    -> gq [B, H, Lq, D], gk, gv [B, H, Lk, D]."""
    qs, k, v, bias = _prepare(q, k, v, bias, scale)
    gout = np.ascontiguousarray(gout, dtype=q.dtype)
    delta = np.einsum("bhqd,bhqd->bhq", gout, out)     # rowsum(gout * out) = rowsum(P * dP)
    gq, gk, gv = np.zeros_like(qs), np.zeros_like(k), np.zeros_like(v)
    _over_heads(_flash_bwd, q.shape[0] * q.shape[1], gout, qs, k, v, bias, bool(causal),
                np.ascontiguousarray(lse), delta, gq, gk, gv, ATTN_BLOCK_Q, ATTN_BLOCK_K)
    gq *= q.dtype.type(scale)
    return gq, gk, gv


def _over_heads(kernel, n_heads, *args):
    """Run kernel(*args, first, last) on ranges of heads, one range per thread.

    The kernels are serial njit(nogil=True) functions and the threads are Python's: a prange
    driver compiled the same loop ~3x slower (cold start) and measured no faster.
    """
    n_threads = min(n_heads, numba.get_num_threads())
    bounds = [n_heads * i // n_threads for i in range(n_threads + 1)]
    if n_threads <= 1:
        kernel(*args, 0, n_heads)
        return
    with ThreadPoolExecutor(n_threads) as pool:
        list(pool.map(lambda i: kernel(*args, bounds[i], bounds[i + 1]), range(n_threads)))


@njit(nogil=True)
def _flash_fwd(qs, k, v, bias, causal, out, lse, BQ, BK, first, last):
    H = qs.shape[1]
    for bh in range(first, last):
        b, h = bh // H, bh % H
        bb, hb = min(b, bias.shape[0] - 1), min(h, bias.shape[1] - 1)
        _flash_fwd_head(qs[b, h], k[b, h], v[b, h], bias[bb, hb], causal, out[b, h], lse[b, h], BQ, BK)


@njit(nogil=True)
def _flash_bwd(gout, qs, k, v, bias, causal, lse, delta, gq, gk, gv, BQ, BK, first, last):
    H = qs.shape[1]
    for bh in range(first, last):
        b, h = bh // H, bh % H
        bb, hb = min(b, bias.shape[0] - 1), min(h, bias.shape[1] - 1)
        _flash_bwd_head(gout[b, h], qs[b, h], k[b, h], v[b, h], bias[bb, hb], causal, lse[b, h], delta[b, h],
                        gq[b, h], gk[b, h], gv[b, h], BQ, BK)


@njit()
def _score_tile(Q, K, bias, causal, q0, q1, k0, k1):
    """scores of queries q0:q1 against keys k0:k1, bias added, causal mask added -> [nq, nk]."""
    s = np.dot(Q[q0:q1], K[k0:k1].T)
    if bias.shape[0] > 0:
        s += bias[q0:q1, k0:k1]
    if causal and k1 > q0 + 1:
        for i in range(q1 - q0):
            for j in range(max(q0 + i + 1, k0) - k0, k1 - k0):
                s[i, j] -= np.inf                  # added, not set: a nan score stays nan
    return s


@njit()
def _finite_head(arrays, bias):
    """True when the [L, D] arrays (q, k, v; and gout in backward) are finite and bias holds no
    nan or +inf (-inf is a mask): the causal tiles right of the diagonal then add exactly nothing."""
    z = 0.0
    for A in arrays:
        for i in range(A.shape[0]):
            for d in range(A.shape[1]):
                z += A[i, d] * 0.0                 # nan for a nan or an inf: one branch-free pass
    n_bad = 0
    for i in range(bias.shape[0]):
        for j in range(bias.shape[1]):
            n_bad += not bias[i, j] < np.inf
    return z == 0.0 and n_bad == 0


@njit()
def _max_nan(a, b):
    """max(a, b) that propagates a nan in either argument (builtin max(1.0, nan) is 1.0)."""
    return b if (b > a or b != b) else a


@njit()
def _flash_fwd_head(Q, K, V, bias, causal, out, lse, BQ, BK):
    """One head: Q [Lq, D] (scaled), K, V [Lk, D], bias [Lq, Lk] or [0, 0] -> out [Lq, D], lse [Lq]."""
    Lq, D = Q.shape
    Lk = K.shape[0]
    clean = not causal or _finite_head((Q, K, V), bias)
    for q0 in range(0, Lq, BQ):
        q1 = min(q0 + BQ, Lq)
        nq = q1 - q0
        m = np.full(nq, -np.inf, Q.dtype)
        l = np.zeros(nq, np.float64)
        acc = np.zeros((nq, D), Q.dtype)
        k_end = min(Lk, q1) if causal and clean else Lk   # tiles right of the diagonal: skipped
        for k0 in range(0, k_end, BK):
            k1 = min(k0 + BK, k_end)
            s = _score_tile(Q, K, bias, causal, q0, q1, k0, k1)
            for i in range(nq):
                m_new = _max_nan(m[i], s[i].max())     # array max keeps a nan; builtin max may not
                if m_new == -np.inf:                   # row fully masked so far: weights 0
                    s[i] = 0                           # (0 * v still carries a nan of v)
                    continue
                alpha = fast_exp(m[i] - m_new)         # nan once the max is nan or +inf
                row = 0.0
                for j in range(k1 - k0):
                    p = fast_exp(s[i, j] - m_new)
                    s[i, j] = p
                    row += p
                l[i] = l[i] * alpha + row
                m[i] = m_new
                for d in range(D):
                    acc[i, d] *= alpha
            acc += np.dot(s, V[k0:k1])
        for i in range(nq):
            if l[i] == 0:                              # every key masked: out = 0 @ v, lse -inf
                for d in range(D):
                    out[q0 + i, d] = acc[i, d]
                lse[q0 + i] = -np.inf
            else:                                      # l is nan where a score was nan or +inf
                for d in range(D):
                    out[q0 + i, d] = acc[i, d] / l[i]
                lse[q0 + i] = m[i] + math.log(l[i])


@njit()
def _flash_bwd_head(GO, Q, K, V, bias, causal, lse, delta, GQ, GK, GV, BQ, BK):
    """One head: GO, Q [Lq, D]; K, V [Lk, D]; lse, delta [Lq] -> adds into GQ, GK, GV."""
    Lq = Q.shape[0]
    Lk = K.shape[0]
    clean = not causal or _finite_head((GO, Q, K, V), bias)
    for q0 in range(0, Lq, BQ):
        q1 = min(q0 + BQ, Lq)
        k_end = min(Lk, q1) if causal and clean else Lk
        for k0 in range(0, k_end, BK):
            k1 = min(k0 + BK, k_end)
            p = _score_tile(Q, K, bias, causal, q0, q1, k0, k1)
            dp = np.dot(GO[q0:q1], V[k0:k1].T)
            for i in range(q1 - q0):
                m = lse[q0 + i]
                dlt = delta[q0 + i]
                for j in range(k1 - k0):
                    pij = 0.0 if m == -np.inf else fast_exp(p[i, j] - m)   # nan for a nan lse
                    p[i, j] = pij
                    dp[i, j] = pij * (dp[i, j] - dlt)      # dS (the scale lives in qs and gq)
            GV[k0:k1] += np.dot(p.T, GO[q0:q1])
            GQ[q0:q1] += np.dot(dp, K[k0:k1])
            GK[k0:k1] += np.dot(dp.T, Q[q0:q1])


# -- many heads of few tokens (PatchTST's residual attention) ----------------------------------
# One call for every (n, h) pair: PatchTST runs 16 heads of 8 dims over 3-12 patches, where the
# composed ops are ~10 array passes and 4 batched products of tiny matrices each way. Here each
# pair's scores, softmax and products stay in registers and L1; the inputs may be strided views.
# The loops run scalar on those views, so this wins only for very few tokens (PatchTST routes
# L <= 4 here: 2x faster at L = 3; 1.8x slower at L = 6, see models/patchtst.py).
def _four_d(a, dt):
    """a in dtype dt; an empty array (an absent input) as a 4-d one, the kernels' argument type."""
    return a.astype(dt, copy=False) if a.size else np.zeros((0, 0, 0, 0), dt)


def small_attn_fwd(q, k, v, prev, scale):
    """See reference.attention.small_attn_fwd: -> out [N, H, L, E], p, s [N, H, L, L]."""
    N, H, L, _ = q.shape
    dt = q.dtype
    out = np.empty((N, H, L, v.shape[3]), dt)
    p, s = np.empty((N, H, L, L), dt), np.empty((N, H, L, L), dt)
    _small_fwd(q, k, v, _four_d(prev, dt), prev.size > 0, dt.type(scale), out, p, s)
    return out, p, s


@njit()
def _small_fwd(q, k, v, prev, has_prev, scale, out, p, s):
    N, H, L, D = q.shape
    E = v.shape[3]
    for n in range(N):
        for h in range(H):
            for i in range(L):
                srow, prow, orow = s[n, h, i], p[n, h, i], out[n, h, i]
                for j in range(L):
                    srow[j] = 0
                for d in range(D):                        # scores as D axpys over the keys
                    qv = q[n, h, i, d]
                    for j in range(L):
                        srow[j] += qv * k[n, h, d, j]
                m = -np.inf
                for j in range(L):
                    val = srow[j] * scale
                    if has_prev:
                        val += prev[n, h, i, j]
                    srow[j] = val
                    m = max(m, val)           # may drop a nan: exp(nan - m) makes the row nan below
                tot = 0.0
                for j in range(L):
                    e = fast_exp(srow[j] - m)
                    prow[j] = e
                    tot += e
                r = 1.0 / tot
                for e_ in range(E):
                    orow[e_] = 0
                for j in range(L):                        # out as L axpys over the values
                    prow[j] *= r
                    pj = prow[j]
                    for e_ in range(E):
                        orow[e_] += pj * v[n, h, j, e_]


def small_attn_bwd(gout, gp, gs, q, k, v, p, scale):
    """See reference.attention.small_attn_bwd: -> gq, gk, gv, gprev."""
    dt = q.dtype
    gq, gk, gv = np.empty(q.shape, dt), np.empty(k.shape, dt), np.empty(v.shape, dt)
    ds = np.empty(p.shape, dt)
    _small_bwd(gout.astype(dt, copy=False), _four_d(gp, dt), gp.size > 0, _four_d(gs, dt), gs.size > 0, q, k, v, p,
               dt.type(scale), gq, gk, gv, ds)
    return gq, gk, gv, ds


@njit()
def _small_bwd(gout, gp, has_gp, gs, has_gs, q, k, v, p, scale, gq, gk, gv, ds):
    N, H, L, D = q.shape
    E = v.shape[3]
    for n in range(N):
        for h in range(H):
            gv[n, h] = 0
            gk[n, h] = 0
            for i in range(L):
                go, prow, drow = gout[n, h, i], p[n, h, i], ds[n, h, i]
                for j in range(L):                        # gv += p[i, j] gout[i]
                    pij = prow[j]
                    for e_ in range(E):
                        gv[n, h, j, e_] += pij * go[e_]
                dot = 0.0                                 # dp = gout v^T (+ gp); rowsum(dp * p)
                for j in range(L):
                    acc = q.dtype.type(0)
                    for e_ in range(E):
                        acc += go[e_] * v[n, h, j, e_]
                    if has_gp:
                        acc += gp[n, h, i, j]
                    drow[j] = acc
                    dot += acc * prow[j]
                for j in range(L):
                    val = prow[j] * (drow[j] - dot)
                    if has_gs:
                        val += gs[n, h, i, j]
                    drow[j] = val
                for d in range(D):                        # gq = ds k^T * scale; gk += q^T ds * scale
                    acc = q.dtype.type(0)
                    for j in range(L):
                        acc += drow[j] * k[n, h, d, j]
                    gq[n, h, i, d] = acc * scale
                    qv = q[n, h, i, d] * scale
                    for j in range(L):
                        gk[n, h, d, j] += qv * drow[j]
