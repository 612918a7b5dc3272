"""Scaled dot-product attention, plain NumPy with the full score matrix: the oracle for
cpu/attention.py (whose kernels are tiled and never hold an [Lq, Lk] matrix).

NaN and inf follow the composed formula softmax(q k^T * scale + bias + causal) v in IEEE
arithmetic, as torch's math backend does: the causal mask is added (-inf), so a NaN score stays
NaN even where masked; a NaN or inf in v reaches every output row through its zero weight
(0 * nan = nan); a row whose scores are all -inf (every key masked) has weights 0 and lse -inf.
"""
from __future__ import annotations

import numpy as np


def _scores(q, k, bias, scale, causal):
    with np.errstate(invalid="ignore", over="ignore"):      # inf - inf = nan, as intended
        s = (q @ np.swapaxes(k, -1, -2)) * scale             # [B, H, Lq, Lk]
        if bias.size:
            s = s + bias
        if causal:
            Lq, Lk = s.shape[-2:]
            s = s + np.where(np.tril(np.ones((Lq, Lk), bool)), 0.0, -np.inf).astype(s.dtype)
    return s


def flash_attn_fwd(q, k, v, bias, scale, causal):
    """q [B, H, Lq, D]; k, v [B, H, Lk, D]; bias: additive float mask [Bm, Hm, Lq, Lk] with
    Bm in (1, B), Hm in (1, H) (-inf where masked), or an empty array for none; scale: float;
    causal: bool (query i sees keys j <= i, as torch's is_causal)
    -> out [B, H, Lq, D], lse [B, H, Lq] (log-sum-exp of each row of scores; -inf where a row
    is fully masked, whose weights are then 0: its output is 0 @ v).
    """
    s = _scores(q, k, bias, scale, causal)
    m = s.max(axis=-1, keepdims=True)                        # nan if the row holds a nan
    dead = m == -np.inf
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        p = np.exp(s - np.where(dead, 0.0, m))
        l = p.sum(axis=-1, keepdims=True)
        out = ((p / np.where(dead, 1.0, l)) @ v).astype(q.dtype)
        lse = np.where(dead, -np.inf, m + np.log(l))[..., 0].astype(q.dtype)
    return out, lse


def flash_attn_bwd(gout, q, k, v, bias, scale, causal, out, lse):
    """gout [B, H, Lq, D]; q, k, v, bias, scale, causal as in forward; out, lse from forward
    -> gq [B, H, Lq, D], gk, gv [B, H, Lk, D]."""
    s = _scores(q, k, bias, scale, causal)
    with np.errstate(invalid="ignore", over="ignore"):
        p = np.where((lse == -np.inf)[..., None], 0.0, np.exp(s - lse[..., None]))
        gv = np.swapaxes(p, -1, -2) @ gout
        gp = gout @ np.swapaxes(v, -1, -2)
        gs = p * (gp - (gout * out).sum(axis=-1, keepdims=True)) * scale
        return (gs @ k).astype(q.dtype), (np.swapaxes(gs, -1, -2) @ q).astype(q.dtype), gv.astype(q.dtype)


# -- many heads of few tokens (PatchTST's residual attention): all (n, h) pairs in one call -------
def small_attn_fwd(q, k, v, prev, scale):
    """q [N, H, L, D]; k [N, H, D, L] (keys already transposed, as PatchTST builds them);
    v [N, H, L, E]; prev [N, H, L, L] added to the scores (an empty array: none); scale
    -> out [N, H, L, E], p [N, H, L, L] (softmax weights), s [N, H, L, L] (pre-softmax scores).

    s = q k * scale + prev; p = softmax(s) over the last axis (a row holding a nan or +inf is
    nan, as torch's softmax); out = p v."""
    s = (q @ k) * scale
    if prev.size:
        s = s + prev
    m = np.max(s, axis=-1, keepdims=True)
    e = np.exp(s - m)
    p = e / e.sum(axis=-1, keepdims=True)
    return p @ v, p, s


def small_attn_bwd(gout, gp, gs, q, k, v, p, scale):
    """Gradients of small_attn_fwd's three outputs in (gout [N, H, L, E]; gp, gs [N, H, L, L],
    empty arrays where absent) -> gq, gk, gv and gprev (= the gradient of s) in the inputs' shapes."""
    dp = gout @ np.swapaxes(v, -1, -2)
    if gp.size:
        dp = dp + gp
    gv = np.swapaxes(p, -1, -2) @ gout
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    if gs.size:
        ds = ds + gs
    dqk = ds * scale
    return dqk @ np.swapaxes(k, -1, -2), np.swapaxes(q, -1, -2) @ dqk, gv, ds
