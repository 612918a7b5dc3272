"""The input embeddings of NeuralForecast's transformer family (its common/_modules.py), under NF's
module and parameter names so that NF's state_dicts load strictly:

    TokenEmbedding         values [B, L, c_in] -> [B, L, d]: circular Conv1d k=3 without bias
    PositionalEmbedding    the sinusoid table, persistent buffer `pe` [1, 5000, d]
    TimeFeatureEmbedding   exogenous / calendar features [B, L, F] -> [B, L, d]: Linear without bias
    FixedEmbedding         a frozen sinusoid lookup table (`emb.weight`)
    TemporalEmbedding      month/day/weekday/hour(/minute) codes [B, L, 4|5] -> [B, L, d]
    DataEmbedding          value + position + exogenous, then dropout (Informer, VanillaTransformer, ...)
    DataEmbedding_inverted a series is a token: [B, L, N] -> [B, N (+F), d] (iTransformer, ...)
"""
from __future__ import annotations

import math

import numpy as np

import ndiv
from ndiv import nn
from ndiv.nn import init


def sinusoid_table(n_positions: int, d: int) -> np.ndarray:
    """[n_positions, d] float32: sin(p w_i) in the even columns, cos(p w_i) in the odd ones,
    w_i = 10000^(-2i/d), computed in float32 as NF (torch) does."""
    table = np.zeros((n_positions, d), np.float32)
    position = np.arange(n_positions, dtype=np.float32)[:, None]
    div_term = np.exp(np.arange(0, d, 2, dtype=np.float32) * np.float32(-(math.log(10000.0) / d)))
    table[:, 0::2] = np.sin(position * div_term)
    table[:, 1::2] = np.cos(position * div_term[: d // 2])
    return table


class PositionalEmbedding(nn.Module):
    """x [B, L, ...] -> pe[:, :L] [1, L, hidden_size], the fixed sinusoid table (no gradient).

    The table is a persistent buffer `pe` [1, max_len, hidden_size], as in NF: it is in the
    state_dict and NF's checkpoints carry it.
    """

    def __init__(self, hidden_size: int, max_len: int = 5000):
        super().__init__()
        self.register_buffer("pe", ndiv.tensor(sinusoid_table(max_len, hidden_size)[None]))

    def forward(self, x):
        return self.pe[:, : x.shape[1]]


class TokenEmbedding(nn.Module):
    """x [B, L, c_in] -> [B, L, hidden_size]: Conv1d(c_in, hidden_size, 3) with circular padding 1,
    without bias (`tokenConv`), kaiming-normal initialised (fan_in, leaky_relu) as in NF."""

    def __init__(self, c_in: int, hidden_size: int):
        super().__init__()
        self.tokenConv = nn.Conv1d(c_in, hidden_size, kernel_size=3, padding=1, padding_mode="circular", bias=False)
        init.kaiming_normal_(self.tokenConv.weight, mode="fan_in", nonlinearity="leaky_relu")

    def forward(self, x):
        return self.tokenConv(x.swapaxes(1, 2)).swapaxes(1, 2)


class TimeFeatureEmbedding(nn.Module):
    """x [B, L, input_size] -> [B, L, hidden_size]: one Linear without bias (`embed`)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.embed = nn.Linear(input_size, hidden_size, bias=False)

    def forward(self, x):
        return self.embed(x)


class FixedEmbedding(nn.Module):
    """codes (int) [B, L] -> [B, L, d_model] from a frozen sinusoid table `emb.weight` [c_in, d_model]."""

    def __init__(self, c_in: int, d_model: int):
        super().__init__()
        self.emb = nn.Embedding(c_in, d_model)
        self.emb.weight = nn.Parameter(sinusoid_table(c_in, d_model), requires_grad=False)

    def forward(self, x):
        return self.emb(x).detach()


class TemporalEmbedding(nn.Module):
    """Calendar codes x [B, L, 4 or 5] (month, day, weekday, hour[, minute]) -> the sum of their
    embeddings [B, L, d_model]. embed_type 'fixed': FixedEmbedding tables, else learnt nn.Embedding;
    freq 't' adds the minute table (4 codes)."""

    SIZES = dict(minute=4, hour=24, weekday=7, day=32, month=13)

    def __init__(self, d_model: int, embed_type: str = "fixed", freq: str = "h"):
        super().__init__()
        embed = FixedEmbedding if embed_type == "fixed" else nn.Embedding
        if freq == "t":
            self.minute_embed = embed(self.SIZES["minute"], d_model)
        self.hour_embed = embed(self.SIZES["hour"], d_model)
        self.weekday_embed = embed(self.SIZES["weekday"], d_model)
        self.day_embed = embed(self.SIZES["day"], d_model)
        self.month_embed = embed(self.SIZES["month"], d_model)

    def forward(self, x):
        codes = np.asarray(x.numpy() if hasattr(x, "numpy") else x).astype(np.int64)   # NF's x.long(): truncation
        out = (self.hour_embed(codes[:, :, 3]) + self.weekday_embed(codes[:, :, 2])
               + self.day_embed(codes[:, :, 1]) + self.month_embed(codes[:, :, 0]))
        if "minute_embed" in self._modules:
            out = out + self.minute_embed(codes[:, :, 4])
        return out


class DataEmbedding(nn.Module):
    """dropout(TokenEmbedding(x) [+ PositionalEmbedding] [+ TimeFeatureEmbedding(x_mark)]).

    x [B, L, c_in], x_mark [B, L, exog_input_size] or None -> [B, L, hidden_size].
    position_embedding is None without pos_embedding; temporal_embedding is None when
    exog_input_size is 0 (then x_mark is ignored), as in NF.
    """

    def __init__(self, c_in: int, exog_input_size: int, hidden_size: int, pos_embedding: bool = True,
                 dropout: float = 0.1):
        super().__init__()
        self.value_embedding = TokenEmbedding(c_in=c_in, hidden_size=hidden_size)
        self.position_embedding = PositionalEmbedding(hidden_size=hidden_size) if pos_embedding else None
        self.temporal_embedding = (TimeFeatureEmbedding(exog_input_size, hidden_size) if exog_input_size > 0
                                   else None)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x, x_mark=None):
        out = self.value_embedding(x)
        if self.position_embedding is not None:
            out = out + self.position_embedding(out)
        if self.temporal_embedding is not None:
            out = out + self.temporal_embedding(x_mark)
        return self.dropout(out)


class DataEmbedding_inverted(nn.Module):
    """A series (variate) is a token: x [B, L, N], x_mark [B, L, F] or None ->
    dropout(value_embedding([x; x_mark] over variates)) [B, N (+ F), hidden_size], c_in = L."""

    def __init__(self, c_in: int, hidden_size: int, dropout: float = 0.1):
        super().__init__()
        self.value_embedding = nn.Linear(c_in, hidden_size)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x, x_mark=None):
        x = x.swapaxes(1, 2)                                             # [B, N, L]
        if x_mark is not None:
            x = ndiv.cat([x, x_mark.swapaxes(1, 2)], axis=1)             # [B, N + F, L]
        return self.dropout(self.value_embedding(x))
