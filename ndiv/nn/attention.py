"""MultiheadAttention with torch's parameters (in_proj_weight [3E, E], in_proj_bias, out_proj) and masks."""
from __future__ import annotations

import math

import numpy as np

import ndiv
from ndiv import device as _device
from ndiv.autograd.ops.nn_ops import Split
from ndiv.autograd.tensor import DEFAULT_DTYPE, Tensor
from ndiv.nn import functional as F
from ndiv.nn import init
from ndiv.nn.linear import Linear
from ndiv.nn.module import Module
from ndiv.nn.parameter import Parameter


def _additive_mask(mask, dtype, xp, name: str):
    """A bool mask (True = masked out) or float mask (added) as a raw float array."""
    m = mask.data if isinstance(mask, Tensor) else xp.asarray(mask)
    if m.dtype == np.bool_:
        return xp.where(m, xp.asarray(-np.inf, dtype=dtype), xp.asarray(0.0, dtype=dtype))
    if m.dtype.kind != "f":
        raise TypeError(f"MultiheadAttention: {name} must be bool or float, got dtype {m.dtype}")
    return m.astype(dtype, copy=False)


class MultiheadAttention(Module):
    """Attention over num_heads heads of size embed_dim // num_heads.

    forward(query [L, B, E], key [S, B, kdim], value [S, B, vdim]) ([B, L, E] etc. if batch_first,
    or unbatched [L, E]) -> (output [L, B, E], weights [B, L, S] averaged over heads (or
    [B, heads, L, S]), or None when need_weights=False).
    attn_mask [L, S] or [B*heads, L, S]: bool (True = may NOT attend) or float (added);
    key_padding_mask [B, S]: bool (True = padding, ignored) or float (added).

    >>> mha = MultiheadAttention(16, 4, batch_first=True)
    >>> x = ndiv.randn(2, 5, 16)
    >>> out, w = mha(x, x, x); out.shape, w.shape
    ((2, 5, 16), (2, 5, 5))
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device=None, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be positive, got {embed_dim} and {num_heads}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        if add_zero_attn:
            raise NotImplementedError("MultiheadAttention: add_zero_attn is not supported")
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads, self.dropout, self.batch_first = num_heads, dropout, batch_first
        self.head_dim = embed_dim // num_heads
        self.add_zero_attn = add_zero_attn
        dt = np.dtype(dtype or DEFAULT_DTYPE)
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(np.empty((3 * embed_dim, embed_dim), dtype=dt))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = Parameter(np.empty((embed_dim, embed_dim), dtype=dt))
            self.k_proj_weight = Parameter(np.empty((embed_dim, self.kdim), dtype=dt))
            self.v_proj_weight = Parameter(np.empty((embed_dim, self.vdim), dtype=dt))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(np.empty(3 * embed_dim, dtype=dt))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dt)
        if add_bias_kv:
            self.bias_k = Parameter(np.empty((1, 1, embed_dim), dtype=dt))
            self.bias_v = Parameter(np.empty((1, 1, embed_dim), dtype=dt))
        else:
            self.bias_k = self.bias_v = None
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """As torch: xavier_uniform_ projections, zero biases; out_proj.weight keeps Linear's init."""
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def _project(self, query, key, value, same: bool):
        E, b = self.embed_dim, self.in_proj_bias
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            if same:  # self-attention: one matmul for q, k and v
                return Split.apply(F.linear(query, w, b), sizes=(E, E, E), axis=-1)
            wq, wk, wv = w[:E], w[E:2 * E], w[2 * E:]
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        bq, bk, bv = (None, None, None) if b is None else (b[:E], b[E:2 * E], b[2 * E:])
        return F.linear(query, wq, bq), F.linear(key, wk, bk), F.linear(value, wv, bv)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask=None, need_weights: bool = True,
                attn_mask=None, average_attn_weights: bool = True, is_causal: bool = False):
        same = query is key and key is value
        batched = query.ndim == 3
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(
                "MultiheadAttention: query, key and value must all be 3-d ([L, B, E]) or all 2-d (unbatched), got "
                f"shapes {tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}"
            )
        if not batched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            if key_padding_mask is not None:
                key_padding_mask = (key_padding_mask.data if isinstance(key_padding_mask, Tensor) else key_padding_mask)[None]
        elif not self.batch_first:
            query, key, value = query.swapaxes(0, 1), key.swapaxes(0, 1), value.swapaxes(0, 1)
        B, L, E = query.shape
        S = key.shape[1]
        if E != self.embed_dim:
            raise ValueError(f"MultiheadAttention: was expecting embedding dimension of {self.embed_dim}, but got {E}")
        if key.shape[:2] != value.shape[:2]:
            raise ValueError(f"MultiheadAttention: key shape {tuple(key.shape)} does not match value shape {tuple(value.shape)}")
        H, Dh = self.num_heads, self.head_dim
        q, k, v = self._project(query, key, value, same)
        xp = _device.array_module(q.data)
        mask = None
        if attn_mask is None and is_causal:
            attn_mask = np.triu(np.ones((L, S), dtype=bool), 1)
        if attn_mask is not None:
            mask = _additive_mask(attn_mask, q.dtype, xp, "attn_mask")
            if mask.ndim == 2:
                if mask.shape != (L, S):
                    raise ValueError(f"MultiheadAttention: the shape of the 2D attn_mask is {mask.shape}, but should be {(L, S)}")
            elif mask.ndim == 3:
                if mask.shape != (B * H, L, S):
                    raise ValueError(f"MultiheadAttention: the shape of the 3D attn_mask is {mask.shape}, but should be {(B * H, L, S)}")
                mask = mask.reshape(B, H, L, S)
            else:
                raise ValueError(f"MultiheadAttention: attn_mask must be 2-d or 3-d, got shape {mask.shape}")
        if key_padding_mask is not None:
            kpm = _additive_mask(key_padding_mask, q.dtype, xp, "key_padding_mask")
            if kpm.shape != (B, S):
                raise ValueError(f"MultiheadAttention: expected key_padding_mask of shape {(B, S)}, got {kpm.shape}")
            kpm = kpm.reshape(B, 1, 1, S)
            mask = kpm if mask is None else mask + kpm
        if self.bias_k is not None:
            k = ndiv.cat([k, self.bias_k.expand(B, 1, E)], axis=1)
            v = ndiv.cat([v, self.bias_v.expand(B, 1, E)], axis=1)
            if mask is not None:
                mask = xp.concatenate([mask, xp.zeros(mask.shape[:-1] + (1,), dtype=mask.dtype)], axis=-1)
            S += 1
        q = q.reshape(B, L, H, Dh).swapaxes(1, 2)  # [B, H, L, Dh]
        k = k.reshape(B, S, H, Dh).swapaxes(1, 2)  # [B, H, S, Dh]
        v = v.reshape(B, S, H, Dh).swapaxes(1, 2)
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = (q * (1.0 / math.sqrt(Dh))) @ k.swapaxes(-1, -2)  # [B, H, L, S]
            if mask is not None:
                weights = F._softmax_rows_safe(scores + mask)
            else:
                weights = F.softmax(scores, -1)
            if p > 0:  # torch returns the weights after dropout
                weights = F.dropout(weights, p, True)
            out = weights @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        out = out.swapaxes(1, 2).reshape(B, L, E)
        out = F.linear(out, self.out_proj.weight, self.out_proj.bias)
        if not batched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.swapaxes(0, 1)
        if weights is not None:
            if average_attn_weights:
                weights = weights.mean(axis=1)
            if not batched:
                weights = weights.squeeze(0)
        return out, weights

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"
