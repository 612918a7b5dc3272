"""Informer: an encoder-decoder transformer with ProbSparse self-attention and distilling
convolutions between the encoder layers (NeuralForecast's Informer)."""
from __future__ import annotations

import math

import numpy as np

import ndiv
from ndiv import nn
from ndiv.models._checks import BOOL, POSITIVE_INT, PROBABILITY
from ndiv.device import array_module
from ndiv.models.base import BaseModel
from ndiv.models.common._attention import (ACTIVATION, MULTIPLIER, AttentionLayer, ConvLayer, TransDecoder,
                                           TransDecoderLayer, TransEncoder, TransEncoderLayer, check_encoder_decoder)
from ndiv.models.common._embeddings import DataEmbedding, encoder_decoder_inputs
from ndiv.nn import functional as F


class ProbAttention(nn.Module):
    """ProbSparse attention (NF's ProbAttention): only the u = factor * ceil(ln L_Q) "most active"
    queries attend; the others get the mean of the values (or, with mask_flag, their running sum).

    queries [B, L_Q, H, E], keys [B, L_K, H, E], values [B, L_K, H, D] -> ([B, H, L_Q, D], None).
    The activity of a query is max - mean of its scores against U_part = factor * ceil(ln L_K)
    keys drawn with `ndiv.randint(L_K, (L_Q, U_part))`: the global generator, or the indices handed
    in with `ndiv.random.inject(randint=[...])` (one array per call, in the order the layers run).
    With u >= L_Q every query is kept and this is full attention. The output stays [B, H, L_Q, D]:
    AttentionLayer flattens it as NF does (heads and steps mixed, NF's view of a [B, H, L, D] tensor).
    The query selection carries no gradient; the kept queries' scores, keys and values do.
    attention_dropout is stored but, as in NF, never applied.
    """

    def __init__(self, mask_flag: bool = True, factor: int = 5, scale: float | None = None,
                 attention_dropout: float = 0.1, output_attention: bool = False):
        super().__init__()
        self.factor, self.scale, self.mask_flag, self.output_attention = factor, scale, mask_flag, output_attention
        self.dropout = nn.Dropout(attention_dropout)

    def _prob_QK(self, Q, K, sample_k: int, n_top: int):
        """Q [B, H, L_Q, E], K [B, H, L_K, E] -> (scores of the top queries [B, H, n_top, L_K], their indices)."""
        L_K, L_Q = K.shape[2], Q.shape[2]
        q, k = Q.data, K.data                                                # the selection needs no graph
        xp = array_module(q)
        index_sample = ndiv.randint(L_K, (L_Q, sample_k), device=Q.device).data
        if L_K <= sample_k * q.shape[-1]:   # every score in one GEMM, then the sampled ones: less than K_sample
            qk_sample = xp.take_along_axis(q @ xp.swapaxes(k, -2, -1), index_sample[None, None], axis=-1)
        else:                               # K_sample [B, H, L_Q, sample_k, E], as NF
            qk_sample = xp.einsum("bhle,bhlse->bhls", q, k[:, :, index_sample, :])
        M = qk_sample.max(-1) - qk_sample.sum(-1) / L_K                       # [B, H, L_Q]
        M_top = xp.argsort(-M, axis=-1)[..., :n_top]                         # [B, H, n_top] (ties: any order)
        b, h = xp.arange(Q.shape[0])[:, None, None], xp.arange(Q.shape[1])[None, :, None]
        Q_reduce = Q[b, h, M_top]                                            # [B, H, n_top, E]
        return Q_reduce @ K.swapaxes(-2, -1), M_top

    def _initial_context(self, V, L_Q: int):
        B, H, L_V, D = V.shape
        if not self.mask_flag:
            return V.mean(axis=-2, keepdims=True).expand(B, H, L_Q, D)
        if L_Q != L_V:
            raise ValueError(f"ProbAttention: masked attention needs as many queries as values, got {L_Q} and {L_V}")
        return ndiv.cumsum(V, axis=-2)

    def forward(self, queries, keys, values, attn_mask=None, tau=None, delta=None):
        B, L_Q, H, E = queries.shape
        L_K = keys.shape[1]
        Q, K, V = (t.swapaxes(1, 2) for t in (queries, keys, values))       # [B, H, L, E|D]
        U_part = min(self.factor * int(np.ceil(np.log(L_K))), L_K)
        u = min(self.factor * int(np.ceil(np.log(L_Q))), L_Q)
        scores, index = self._prob_QK(Q, K, sample_k=U_part, n_top=u)
        scores = scores * (self.scale or 1.0 / math.sqrt(E))
        xp, dev = array_module(index), Q.device
        if self.mask_flag:                                                   # NF's ProbMask: key j > query index
            future = ndiv.tensor(xp.arange(L_K)[None, None, None, :] > index[..., None], device=dev)
            scores = ndiv.where(future, ndiv.tensor(np.float32(-np.inf), dtype=scores.dtype, device=dev), scores)
        attn = F.softmax(scores, dim=-1)
        b, h = xp.arange(B)[:, None, None], xp.arange(H)[None, :, None]
        context = ndiv.index_put(self._initial_context(V, L_Q),
                                 tuple(ndiv.tensor(i, device=dev) for i in (b, h, index)), attn @ V)
        return context, None


class Informer(BaseModel):
    """Informer: DataEmbedding (circular-conv values + sinusoid positions + futr exog) -> `encoder`
    (encoder_layers of ProbSparse self-attention, with a distilling ConvLayer after each but the
    last when distil, each halving the sequence) and, on the last label_len values followed by h
    zeros, `decoder` (decoder_layers of masked ProbSparse self-attention and ProbSparse
    cross-attention) -> projection; the last h steps are the forecast [B, h, n_out].

    ProbAttention samples keys on every forward (ndiv's generator, or injected indices, see
    ProbAttention), so forecasts are random unless `factor` keeps every query
    (factor * ceil(ln L) >= L for every attention's query length L).

    Args: h (int) horizon; input_size (int) window length L; decoder_input_size_multiplier (float,
        in (0, 1)) label_len = ceil(L * it); hidden_size (int, even); dropout (float); factor (int)
        ProbSparse sampling factor; n_head (int); conv_hidden_size (int) feed-forward width;
        activation ('relu' or 'gelu'); encoder_layers, decoder_layers (int); distil (bool)
        ConvLayers between the encoder layers;
        **kwargs: the shared options (loss, max_steps, learning_rate, futr_exog_list,
        cat_exog_list, ...), see BaseModel.
    Exogenous: futr (and categorical futr columns, embedded by the shared base).
    Known difference: with n_head=1 NF's ProbAttention squeezes the head axis away and mixes the
    windows of a batch; ndiv computes the per-window attention.
    References: Zhou et al. (2021), "Informer: Beyond Efficient Transformer for Long Sequence
        Time-Series Forecasting".

    >>> model = Informer(h=12, input_size=24, hidden_size=16, conv_hidden_size=8, max_steps=100)
    """
    EXOGENOUS_FUTR = True
    EXOGENOUS_HIST = EXOGENOUS_STAT = False
    EXOGENOUS_CAT = True
    MULTIVARIATE = RECURRENT = False
    DEFAULTS = dict(max_steps=5000, learning_rate=1e-4, num_lr_decays=-1, windows_batch_size=1024,
                    inference_windows_batch_size=1024, scaler_type="identity")
    OPTION_RULES = dict(hidden_size=POSITIVE_INT, n_head=POSITIVE_INT, conv_hidden_size=POSITIVE_INT,
                        encoder_layers=POSITIVE_INT, decoder_layers=POSITIVE_INT, dropout=PROBABILITY,
                        factor=POSITIVE_INT, activation=ACTIVATION, decoder_input_size_multiplier=MULTIPLIER,
                        distil=BOOL)

    def __init__(self, h, input_size, decoder_input_size_multiplier=0.5, hidden_size=128, dropout=0.05, factor=3,
                 n_head=4, conv_hidden_size=32, activation="gelu", encoder_layers=2, decoder_layers=1, distil=True,
                 **kwargs):
        super().__init__(h=h, input_size=input_size, **kwargs)
        self.label_len = check_encoder_decoder(self, hidden_size, n_head, decoder_input_size_multiplier)
        self.c_out = self.loss.outputsize_multiplier

        def attention(mask_flag):
            return AttentionLayer(ProbAttention(mask_flag, factor, attention_dropout=dropout), hidden_size, n_head)

        self.enc_embedding = DataEmbedding(1, self.futr_exog_size, hidden_size, pos_embedding=True, dropout=dropout)
        self.dec_embedding = DataEmbedding(1, self.futr_exog_size, hidden_size, pos_embedding=True, dropout=dropout)
        self.encoder = TransEncoder(
            [TransEncoderLayer(attention(False), hidden_size, conv_hidden_size, dropout=dropout, activation=activation)
             for _ in range(encoder_layers)],
            [ConvLayer(hidden_size) for _ in range(encoder_layers - 1)] if distil else None,
            norm_layer=nn.LayerNorm(hidden_size))
        self.decoder = TransDecoder(
            [TransDecoderLayer(attention(True), attention(False), hidden_size, conv_hidden_size, dropout=dropout,
                               activation=activation) for _ in range(decoder_layers)],
            norm_layer=nn.LayerNorm(hidden_size),
            projection=nn.Linear(hidden_size, self.c_out))

    def _has_sample_randomness(self) -> bool:
        return True                                     # ProbAttention draws keys on every forward

    def forward(self, windows_batch):
        """insample_y [B, L, 1], futr_exog [B, L + h, F] -> forecast [B, h, n_out]."""
        x_enc, mark_enc, x_dec, mark_dec = encoder_decoder_inputs(windows_batch, self.input_size, self.label_len,
                                                                  self.h, self.futr_exog_size)
        enc_out, _ = self.encoder(self.enc_embedding(x_enc, mark_enc))
        dec_out = self.decoder(self.dec_embedding(x_dec, mark_dec), enc_out)
        return dec_out[:, -self.h:]
