"""Scaled dot-product attention, plain NumPy with the full score matrix: the oracle for
cpu/attention.py (whose kernels are tiled and never hold an [Lq, Lk] matrix)."""
from __future__ import annotations

import numpy as np


def _scores(q, k, bias, scale, causal):
    s = (q @ np.swapaxes(k, -1, -2)) * scale                 # [B, H, Lq, Lk]
    if bias.size:
        s = s + bias
    if causal:
        Lq, Lk = s.shape[-2:]
        s = np.where(np.tril(np.ones((Lq, Lk), bool)), s, -np.inf)
    return s


def flash_attn_fwd(q, k, v, bias, scale, causal):
    """q [B, H, Lq, D]; k, v [B, H, Lk, D]; bias: additive float mask [Bm, Hm, Lq, Lk] with
    Bm in (1, B), Hm in (1, H) (-inf where masked), or an empty array for none; scale: float;
    causal: bool (query i sees keys j <= i, as torch's is_causal)
    -> out [B, H, Lq, D], lse [B, H, Lq] (log-sum-exp of each row of scores; -inf where a row
    is fully masked, whose output is then 0).
    """
    s = _scores(q, k, bias, scale, causal)
    m = s.max(axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    p = np.exp(s - m)
    l = p.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(l > 0, (p / np.where(l > 0, l, 1)) @ v, 0.0).astype(q.dtype)
        lse = (m + np.log(l))[..., 0].astype(q.dtype)
    return out, lse


def flash_attn_bwd(gout, q, k, v, bias, scale, causal, out, lse):
    """gout [B, H, Lq, D]; q, k, v, bias, scale, causal as in forward; out, lse from forward
    -> gq [B, H, Lq, D], gk, gv [B, H, Lk, D]."""
    s = _scores(q, k, bias, scale, causal)
    with np.errstate(invalid="ignore"):
        p = np.where(np.isfinite(lse)[..., None], np.exp(s - lse[..., None]), 0.0)
    gv = np.swapaxes(p, -1, -2) @ gout
    gp = gout @ np.swapaxes(v, -1, -2)
    gs = p * (gp - (gout * out).sum(axis=-1, keepdims=True)) * scale
    return (gs @ k).astype(q.dtype), (np.swapaxes(gs, -1, -2) @ q).astype(q.dtype), gv.astype(q.dtype)
