"""The attention blocks and the encoder/decoder stacks of NeuralForecast's transformer family (its
common/_modules.py, and Informer's distilling ConvLayer), under NF's module and parameter names:

    FullAttention      softmax(q k^T scale) v per head, through F.scaled_dot_product_attention
    AttentionLayer     q/k/v projections -> an inner attention -> out_projection
    ConvLayer          Informer's distilling layer: circular conv -> BatchNorm1d -> ELU -> MaxPool1d(3, 2, 1)
    TransEncoderLayer  attention + position-wise feed-forward (Conv1d k=1 pair), post-LayerNorm
    TransEncoder       a stack of them, optional ConvLayers between, an optional final norm
    TransDecoderLayer  self-attention, cross-attention, feed-forward, post-LayerNorm
    TransDecoder       a stack of them, an optional norm and projection

Shapes: x [B, L, hidden_size]; the inner attentions take queries [B, L, H, E], keys [B, S, H, E],
values [B, S, H, D] and return ([B, L, H, D], attention weights or None).
`check_encoder_decoder` and the option rules hold the checks the encoder-decoder models share.
"""
from __future__ import annotations

import math

import numpy as np

import ndiv
from ndiv import nn
from ndiv.models._checks import Rule, is_number
from ndiv.nn import functional as F

# the options NF's encoder-decoder transformers share (VanillaTransformer, Informer, ...)
ACTIVATION = Rule(lambda v: v in ("relu", "gelu"), "'relu' or 'gelu'")
MULTIPLIER = Rule(lambda v: is_number(v) and 0 < v < 1, "a number in (0, 1)")
MAX_LEN = 5000  # the rows of PositionalEmbedding's table


def check_encoder_decoder(model, hidden_size: int, n_head: int, decoder_input_size_multiplier) -> int:
    """The checks NF's encoder-decoder transformers share (NF raises bare Exceptions or fails
    later on these); returns label_len = ceil(input_size * decoder_input_size_multiplier)."""
    name = type(model).__name__
    label_len = int(math.ceil(model.input_size * decoder_input_size_multiplier))
    if not 0 < label_len < model.input_size:
        raise ValueError(f"{name}: decoder_input_size_multiplier={decoder_input_size_multiplier} gives a decoder "
                         f"window of {label_len} steps for input_size={model.input_size}; it must keep between 1 "
                         f"and input_size - 1 steps (a smaller multiplier in (0, 1), or a longer input_size)")
    if hidden_size % 2:
        raise ValueError(f"{name}: hidden_size must be even (the positional embedding pairs sines and cosines), "
                         f"got {hidden_size}")
    if n_head > hidden_size:
        raise ValueError(f"{name}: n_head={n_head} must be at most hidden_size={hidden_size}")
    if max(model.input_size, label_len + model.h) > MAX_LEN:
        raise ValueError(f"{name}: the positional embedding covers {MAX_LEN} steps; input_size={model.input_size} "
                         f"and label_len + h={label_len + model.h} must not exceed it")
    return label_len


def _mask_array(attn_mask):
    """NF's masks are objects with a `.mask` (TriangularCausalMask, ProbMask); arrays pass as they are."""
    mask = getattr(attn_mask, "mask", attn_mask)
    return mask.numpy() if hasattr(mask, "numpy") else np.asarray(mask)


class FullAttention(nn.Module):
    """Scaled dot-product attention over all keys (NF's FullAttention).

    As in NF, with output_attention=False the heads go through scaled_dot_product_attention and
    a mask is passed only when the caller gives one (and mask_flag is set): NF's "masked" decoder
    self-attention, which is called without a mask, is therefore NOT causal. With
    output_attention=True the scores are explicit, a missing mask under mask_flag becomes the
    causal one, and the weights [B, H, L, S] are returned. factor is unused (ProbAttention's).
    """

    def __init__(self, mask_flag: bool = True, factor: int = 5, scale: float | None = None,
                 attention_dropout: float = 0.1, output_attention: bool = False):
        super().__init__()
        self.scale, self.mask_flag, self.output_attention = scale, mask_flag, output_attention
        self.dropout = nn.Dropout(attention_dropout)

    def forward(self, queries, keys, values, attn_mask=None, tau=None, delta=None):
        E = queries.shape[-1]
        scale = self.scale or 1.0 / math.sqrt(E)
        if not self.output_attention:
            q, k, v = (t.swapaxes(1, 2) for t in (queries, keys, values))      # [B, H, L|S, E|D]
            mask = None
            if self.mask_flag and attn_mask is not None:
                mask = ndiv.tensor(_mask_array(attn_mask)[:, 0], device=q.device)   # NF's mask[:, 0] as it is
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                 dropout_p=self.dropout.p if self.training else 0.0, scale=scale)
            return out.swapaxes(1, 2), None                                  # [B, L, H, D]
        scores = ndiv.einsum("blhe,bshe->bhls", queries, keys)
        if self.mask_flag:
            L, S = scores.shape[-2:]
            mask = np.triu(np.ones((L, S), bool), 1) if attn_mask is None else _mask_array(attn_mask)
            dev = scores.device
            scores = ndiv.where(ndiv.tensor(mask, device=dev), ndiv.tensor(np.float32(-np.inf), dtype=scores.dtype,
                                                                           device=dev), scores)
        A = self.dropout(F.softmax(scores * scale, dim=-1))
        return ndiv.einsum("bhls,bshd->blhd", A, values), A


class AttentionLayer(nn.Module):
    """queries [B, L, hidden], keys/values [B, S, hidden] -> ([B, L, hidden], attention or None):
    the projections (query_/key_/value_projection), `inner_attention`, then out_projection.
    The inner attention's [B, L, H, D] output is flattened row-major to [B, L, H * D], as NF's view."""

    def __init__(self, attention: nn.Module, hidden_size: int, n_heads: int, d_keys: int | None = None,
                 d_values: int | None = None):
        super().__init__()
        d_keys = d_keys or hidden_size // n_heads
        d_values = d_values or hidden_size // n_heads
        self.inner_attention = attention
        self.query_projection = nn.Linear(hidden_size, d_keys * n_heads)
        self.key_projection = nn.Linear(hidden_size, d_keys * n_heads)
        self.value_projection = nn.Linear(hidden_size, d_values * n_heads)
        self.out_projection = nn.Linear(d_values * n_heads, hidden_size)
        self.n_heads = n_heads

    def forward(self, queries, keys, values, attn_mask=None, tau=None, delta=None):
        B, L, _ = queries.shape
        S, H = keys.shape[1], self.n_heads
        queries = self.query_projection(queries).reshape(B, L, H, -1)
        keys = self.key_projection(keys).reshape(B, S, H, -1)
        values = self.value_projection(values).reshape(B, S, H, -1)
        out, attn = self.inner_attention(queries, keys, values, attn_mask, tau=tau, delta=delta)
        return self.out_projection(out.reshape(B, L, -1)), attn


class ConvLayer(nn.Module):
    """Informer's distilling layer: x [B, L, c_in] -> [B, (L + 1) // 2 + 1, c_in]: downConv (Conv1d
    k=3, circular padding 2, so L + 2 steps) -> BatchNorm1d (`norm`) -> ELU -> MaxPool1d(3, 2, 1)."""

    def __init__(self, c_in: int):
        super().__init__()
        self.downConv = nn.Conv1d(c_in, c_in, kernel_size=3, padding=2, padding_mode="circular")
        self.norm = nn.BatchNorm1d(c_in)
        self.activation = nn.ELU()
        self.maxPool = nn.MaxPool1d(kernel_size=3, stride=2, padding=1)

    def forward(self, x):
        x = self.activation(self.norm(self.downConv(x.swapaxes(1, 2))))
        return self.maxPool(x).swapaxes(1, 2)


def _pointwise(conv: nn.Conv1d, x):
    """A Conv1d with kernel size 1 on x [B, L, C_in] -> [B, L, C_out], as the Linear it is."""
    return F.linear(x, conv.weight.reshape(conv.weight.shape[0], -1), conv.bias)


def _activation(activation: str):
    return F.relu if activation == "relu" else F.gelu                   # NF: anything else is GELU


class TransEncoderLayer(nn.Module):
    """x [B, L, hidden] -> ([B, L, hidden], attention or None):
    x = norm1(x + dropout(attention(x, x, x))); norm2(x + dropout(conv2(dropout(act(conv1(x)))))).
    conv1/conv2 are NF's Conv1d(k=1) pair (conv_hidden_size defaults to 4 * hidden_size)."""

    def __init__(self, attention: nn.Module, hidden_size: int, conv_hidden_size: int | None = None,
                 dropout: float = 0.1, activation: str = "relu"):
        super().__init__()
        conv_hidden_size = conv_hidden_size or 4 * hidden_size
        self.attention = attention
        self.conv1 = nn.Conv1d(hidden_size, conv_hidden_size, kernel_size=1)
        self.conv2 = nn.Conv1d(conv_hidden_size, hidden_size, kernel_size=1)
        self.norm1 = nn.LayerNorm(hidden_size)
        self.norm2 = nn.LayerNorm(hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.activation = _activation(activation)

    def forward(self, x, attn_mask=None):
        new_x, attn = self.attention(x, x, x, attn_mask=attn_mask)
        x = self.norm1.add_forward(x, self.dropout(new_x))
        y = self.dropout(self.activation(_pointwise(self.conv1, x)))
        y = self.dropout(_pointwise(self.conv2, y))
        return self.norm2.add_forward(x, y), attn


class TransEncoder(nn.Module):
    """x [B, L, hidden] -> ([B, L', hidden], [attention or None per layer]). With conv_layers
    (len(attn_layers) - 1 of them, Informer's distilling) each but the last attention layer is
    followed by its conv layer, which halves L; then the optional final `norm`."""

    def __init__(self, attn_layers, conv_layers=None, norm_layer: nn.Module | None = None):
        super().__init__()
        self.attn_layers = nn.ModuleList(attn_layers)
        self.conv_layers = nn.ModuleList(conv_layers) if conv_layers is not None else None
        self.norm = norm_layer

    def forward(self, x, attn_mask=None):
        attns = []
        if self.conv_layers is not None:
            for attn_layer, conv_layer in zip(self.attn_layers, self.conv_layers):
                x, attn = attn_layer(x, attn_mask=attn_mask)
                x = conv_layer(x)
                attns.append(attn)
            x, attn = self.attn_layers[-1](x)
            attns.append(attn)
        else:
            for attn_layer in self.attn_layers:
                x, attn = attn_layer(x, attn_mask=attn_mask)
                attns.append(attn)
        if self.norm is not None:
            x = self.norm(x)
        return x, attns


class TransDecoderLayer(nn.Module):
    """x [B, L, hidden], cross [B, S, hidden] -> [B, L, hidden]: self-attention, cross-attention
    and the Conv1d(k=1) feed-forward, each with dropout, a residual and a LayerNorm (norm1..3)."""

    def __init__(self, self_attention: nn.Module, cross_attention: nn.Module, hidden_size: int,
                 conv_hidden_size: int | None = None, dropout: float = 0.1, activation: str = "relu"):
        super().__init__()
        conv_hidden_size = conv_hidden_size or 4 * hidden_size
        self.self_attention = self_attention
        self.cross_attention = cross_attention
        self.conv1 = nn.Conv1d(hidden_size, conv_hidden_size, kernel_size=1)
        self.conv2 = nn.Conv1d(conv_hidden_size, hidden_size, kernel_size=1)
        self.norm1 = nn.LayerNorm(hidden_size)
        self.norm2 = nn.LayerNorm(hidden_size)
        self.norm3 = nn.LayerNorm(hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.activation = _activation(activation)

    def forward(self, x, cross, x_mask=None, cross_mask=None):
        x = self.norm1.add_forward(x, self.dropout(self.self_attention(x, x, x, attn_mask=x_mask)[0]))
        x = self.norm2.add_forward(x, self.dropout(self.cross_attention(x, cross, cross, attn_mask=cross_mask)[0]))
        y = self.dropout(self.activation(_pointwise(self.conv1, x)))
        y = self.dropout(_pointwise(self.conv2, y))
        return self.norm3.add_forward(x, y)


class TransDecoder(nn.Module):
    """x [B, L, hidden], cross [B, S, hidden] -> [B, L, hidden] (or [B, L, out] with `projection`):
    the layers in turn, then the optional `norm` and `projection`."""

    def __init__(self, layers, norm_layer: nn.Module | None = None, projection: nn.Module | None = None):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = norm_layer
        self.projection = projection

    def forward(self, x, cross, x_mask=None, cross_mask=None):
        for layer in self.layers:
            x = layer(x, cross, x_mask=x_mask, cross_mask=cross_mask)
        if self.norm is not None:
            x = self.norm(x)
        if self.projection is not None:
            x = self.projection(x)
        return x
