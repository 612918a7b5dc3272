"""The decomposition encoder-decoder that Autoformer and FEDformer share (NeuralForecast defines
these six classes twice, identically, in autoformer.py and fedformer.py; here they live once,
under NF's class, module and parameter names, so both models' NF state_dicts load unchanged).

- LayerNorm: the seasonal LayerNorm (NF's my_Layernorm): LayerNorm, minus its mean over time.
- AutoCorrelationLayer: the q/k/v/out projections around an inner "correlation" (Autoformer's
  AutoCorrelation, FEDformer's FourierBlock / FourierCrossAttention).
- EncoderLayer / Encoder: correlation, then 1x1-conv feed-forward, each followed by a series
  decomposition that keeps the seasonal part.
- DecoderLayer / Decoder: self and cross correlation and feed-forward, each decomposed; the three
  trends are summed, projected by a circular Conv1d (k=3) to c_out and accumulated.

And the glue both models share: `decomposition_forward` (their identical forward: the window's
seasonal and trend parts seed the decoder), `decoder_label_len`, `check_heads`.

Shapes: x [B, L, D] (D = hidden_size), cross [B, S, D], trend [B, L, c_out or 1].
"""
from __future__ import annotations

import numpy as np

import ndiv
from ndiv import nn
from ndiv.models.common._attention import TransEncoder
from ndiv.models.common._normalization import SeriesDecomp
from ndiv.nn import functional as F


class LayerNorm(nn.Module):
    """The seasonal LayerNorm: x [B, L, D] -> layernorm(x) minus its mean over L, [B, L, D]."""

    def __init__(self, channels: int):
        super().__init__()
        self.layernorm = nn.LayerNorm(channels)

    def forward(self, x):
        x_hat = self.layernorm(x)
        return x_hat - x_hat.mean(axis=1, keepdims=True)


class AutoCorrelationLayer(nn.Module):
    """Projections around an inner correlation: queries [B, L, D], keys and values [B, S, D] ->
    (out [B, L, D], attn or None). The inner module takes q [B, L, H, E], k [B, S, H, E],
    v [B, S, H, E] and returns (x, attn), x holding B*L*H*E values that are read in C order as
    [B, L, H*E] (NF's `.view`: FEDformer's blocks return [B, H, E, L] and NF reads it this way)."""

    def __init__(self, correlation: nn.Module, hidden_size: int, n_head: int, d_keys: int | None = None,
                 d_values: int | None = None):
        super().__init__()
        d_keys = d_keys or hidden_size // n_head
        d_values = d_values or hidden_size // n_head
        self.inner_correlation = correlation
        self.query_projection = nn.Linear(hidden_size, d_keys * n_head)
        self.key_projection = nn.Linear(hidden_size, d_keys * n_head)
        self.value_projection = nn.Linear(hidden_size, d_values * n_head)
        self.out_projection = nn.Linear(d_values * n_head, hidden_size)
        self.n_head = n_head

    def forward(self, queries, keys, values, attn_mask=None):
        b, L, _ = queries.shape
        s, H = keys.shape[1], self.n_head
        q = self.query_projection(queries).reshape(b, L, H, -1)
        k = self.key_projection(keys).reshape(b, s, H, -1)
        v = self.value_projection(values).reshape(b, s, H, -1)
        out, attn = self.inner_correlation(q, k, v, attn_mask)
        return self.out_projection(out.reshape(b, L, -1)), attn


def _activation(name: str):
    return F.relu if name == "relu" else F.gelu


class _FeedForward(nn.Module):
    """The 1x1-conv feed-forward of both layer kinds: conv1 [C, D, 1], conv2 [D, C, 1], no bias
    (NF's names and shapes); a 1x1 conv over [B, D, L] is x @ W.T over [B, L, D], computed so."""

    def _feed_forward(self, x):
        w1 = self.conv1.weight.reshape(self.conv1.weight.shape[0], -1)   # [C, D]
        w2 = self.conv2.weight.reshape(self.conv2.weight.shape[0], -1)   # [D, C]
        y = self.dropout(self.activation(F.linear(x, w1)))
        return self.dropout(F.linear(y, w2))


class EncoderLayer(_FeedForward):
    """x [B, L, D] -> (seasonal part [B, L, D], attn): x + correlation(x), decomposed; then
    + feed-forward, decomposed again (the trends are dropped)."""

    def __init__(self, attention: nn.Module, hidden_size: int, conv_hidden_size: int | None = None,
                 MovingAvg: int = 25, dropout: float = 0.1, activation: str = "relu"):
        super().__init__()
        conv_hidden_size = conv_hidden_size or 4 * hidden_size
        self.attention = attention
        self.conv1 = nn.Conv1d(hidden_size, conv_hidden_size, kernel_size=1, bias=False)
        self.conv2 = nn.Conv1d(conv_hidden_size, hidden_size, kernel_size=1, bias=False)
        self.decomp1 = SeriesDecomp(MovingAvg)
        self.decomp2 = SeriesDecomp(MovingAvg)
        self.dropout = nn.Dropout(dropout)
        self.activation = _activation(activation)

    def forward(self, x, attn_mask=None):
        new_x, attn = self.attention(x, x, x, attn_mask=attn_mask)
        x, _ = self.decomp1(x + self.dropout(new_x))
        res, _ = self.decomp2(x + self._feed_forward(x))
        return res, attn


class Encoder(TransEncoder):
    """A stack of EncoderLayer (attn_layers), optional conv_layers between them (unused by
    Autoformer and FEDformer, kept for NF's signature), then norm_layer: x [B, L, D] ->
    (x [B, L, D], [attn per layer]). NF writes the same loop as TransEncoder's: ndiv shares it."""


class DecoderLayer(_FeedForward):
    """x [B, L, D], cross [B, S, D] -> (seasonal part [B, L, D], residual trend [B, L, c_out]):
    self correlation, cross correlation and feed-forward, each added and decomposed; the sum of
    the three trends goes through `projection`, a circular Conv1d(D, c_out, k=3) without bias."""

    def __init__(self, self_attention: nn.Module, cross_attention: nn.Module, hidden_size: int, c_out: int,
                 conv_hidden_size: int | None = None, MovingAvg: int = 25, dropout: float = 0.1,
                 activation: str = "relu"):
        super().__init__()
        conv_hidden_size = conv_hidden_size or 4 * hidden_size
        self.self_attention = self_attention
        self.cross_attention = cross_attention
        self.conv1 = nn.Conv1d(hidden_size, conv_hidden_size, kernel_size=1, bias=False)
        self.conv2 = nn.Conv1d(conv_hidden_size, hidden_size, kernel_size=1, bias=False)
        self.decomp1 = SeriesDecomp(MovingAvg)
        self.decomp2 = SeriesDecomp(MovingAvg)
        self.decomp3 = SeriesDecomp(MovingAvg)
        self.dropout = nn.Dropout(dropout)
        self.projection = nn.Conv1d(hidden_size, c_out, kernel_size=3, stride=1, padding=1,
                                    padding_mode="circular", bias=False)
        self.activation = _activation(activation)

    def forward(self, x, cross, x_mask=None, cross_mask=None):
        x, trend1 = self.decomp1(x + self.dropout(self.self_attention(x, x, x, attn_mask=x_mask)[0]))
        x, trend2 = self.decomp2(x + self.dropout(self.cross_attention(x, cross, cross, attn_mask=cross_mask)[0]))
        x, trend3 = self.decomp3(x + self._feed_forward(x))
        residual_trend = trend1 + trend2 + trend3                                  # [B, L, D]
        residual_trend = self.projection(residual_trend.permute(0, 2, 1)).transpose(1, 2)
        return x, residual_trend


class Decoder(nn.Module):
    """A stack of DecoderLayer, then norm and projection (a Linear(D, c_out)) on the seasonal
    part: x [B, L, D], cross [B, S, D], trend [B, L, 1 or c_out] ->
    (seasonal [B, L, c_out], trend + every layer's residual trend [B, L, c_out])."""

    def __init__(self, layers, norm_layer: nn.Module | None = None, projection: nn.Module | None = None):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = norm_layer
        self.projection = projection

    def forward(self, x, cross, x_mask=None, cross_mask=None, trend=None):
        for layer in self.layers:
            x, residual_trend = layer(x, cross, x_mask=x_mask, cross_mask=cross_mask)
            trend = trend + residual_trend
        if self.norm is not None:
            x = self.norm(x)
        if self.projection is not None:
            x = self.projection(x)
        return x, trend


def decoder_label_len(model: str, input_size: int, multiplier: float) -> int:
    """NF's label_len = ceil(input_size * multiplier), which must lie in [1, input_size)."""
    label_len = int(np.ceil(input_size * multiplier))
    if not 0 < label_len < input_size:
        raise ValueError(f"{model}: decoder_input_size_multiplier must be in (0, 1) and give a decoder look-back "
                         f"ceil(input_size * multiplier) in [1, input_size) (input_size={input_size}), "
                         f"got {multiplier!r}")
    return label_len


def check_heads(model: str, hidden_size: int, n_head: int) -> None:
    if hidden_size < n_head:
        raise ValueError(f"{model}: hidden_size must be at least n_head={n_head} (each head gets "
                         f"hidden_size // n_head channels), got {hidden_size}")


def decomposition_forward(model, windows_batch):
    """Autoformer's and FEDformer's forward (NF writes it twice): the window's seasonal and trend
    parts seed the decoder (its last label_len steps, then zeros / the window mean for the h
    future steps); the encoder reads the whole window.

    insample_y [B, L, 1], futr_exog [B, L + h, F] -> (trend + seasonal)[:, -h:] [B, h, c_out]."""
    y = windows_batch["insample_y"]
    b, h, label_len = y.shape[0], model.h, model.label_len
    x_mark_enc = x_mark_dec = None
    if model.futr_exog_size > 0:
        futr = windows_batch["futr_exog"]
        x_mark_enc, x_mark_dec = futr[:, :model.input_size], futr[:, -(label_len + h):]
    mean = y.mean(axis=1, keepdims=True).expand(b, h, y.shape[2])
    zeros = ndiv.zeros(b, h, y.shape[2], dtype=y.dtype, device=y.device)
    seasonal_init, trend_init = model.decomp(y)
    trend_init = ndiv.cat([trend_init[:, -label_len:], mean], axis=1)          # [B, label_len + h, 1]
    seasonal_init = ndiv.cat([seasonal_init[:, -label_len:], zeros], axis=1)
    enc_out, _ = model.encoder(model.enc_embedding(y, x_mark_enc), attn_mask=None)
    seasonal, trend = model.decoder(model.dec_embedding(seasonal_init, x_mark_dec), enc_out, x_mask=None,
                                    cross_mask=None, trend=trend_init)
    return (trend + seasonal)[:, -h:]
