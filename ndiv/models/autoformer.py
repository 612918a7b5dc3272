"""Autoformer: a decomposition encoder-decoder whose attention is an auto-correlation over time
delays (NeuralForecast's Autoformer; the encoder/decoder blocks it shares with FEDformer are in
models/common/_autoformer.py)."""
from __future__ import annotations

import math

import numpy as np

import ndiv
from ndiv import nn
from ndiv.autograd.ops.nn_ops import RollSum
from ndiv.models._checks import NON_NEGATIVE_INT, POSITIVE_INT, POSITIVE_NUMBER, POSITIVE_ODD_INT, PROBABILITY, Rule
from ndiv.models.base import BaseModel
from ndiv.models.common._autoformer import (AutoCorrelationLayer, Decoder, DecoderLayer, Encoder, EncoderLayer,
                                            LayerNorm, check_heads, decoder_label_len, decomposition_forward)
from ndiv.models.common._embeddings import DataEmbedding
from ndiv.models.common._normalization import SeriesDecomp
from ndiv.nn import functional as F


class AutoCorrelation(nn.Module):
    """Period-based dependencies and time-delay aggregation (NF's AutoCorrelation).

    queries [B, L, H, E], keys and values [B, S, H, D] (cropped or zero-padded to L) ->
    (out [B, L, H, D], None). The correlation of q and k over every delay comes from
    irfft(rfft(q) * conj(rfft(k))) (length 2 (L // 2): L - 1 for odd L, as torch's irfft
    default); its mean over heads and channels scores each delay. The top_k = int(factor ln L)
    delays are taken per batch in training (the delays of the batch-mean score, each sample
    weighted by its own scores) and per sample in eval mode; the output is the softmax-weighted
    sum of the values rolled back by each delay, out[t] = sum_i w_i v[(t + d_i) mod L].
    NF builds a Dropout here that it never applies; it is left out.
    """

    def __init__(self, mask_flag: bool = True, factor: float = 1, scale=None, attention_dropout: float = 0.1,
                 output_attention: bool = False):
        super().__init__()
        self.factor, self.scale, self.mask_flag, self.output_attention = factor, scale, mask_flag, output_attention

    def forward(self, queries, keys, values, attn_mask=None):
        b, L, H, _ = queries.shape
        s = values.shape[1]
        if L > s:
            zeros = ndiv.zeros(b, L - s, *queries.shape[2:], dtype=queries.dtype, device=queries.device)
            values, keys = ndiv.cat([values, zeros], axis=1), ndiv.cat([keys, zeros], axis=1)
        else:
            values, keys = values[:, :L], keys[:, :L]
        q_fft = ndiv.fft.rfft(queries.permute(0, 2, 3, 1), dim=-1)            # [B, H, E, L//2+1]
        k_fft = ndiv.fft.rfft(keys.permute(0, 2, 3, 1), dim=-1)
        corr = ndiv.fft.irfft(q_fft * k_fft.conj(), dim=-1)                   # [B, H, E, 2 (L//2)]
        mean_value = corr.mean(axis=1).mean(axis=1)                           # [B, Lc]
        top_k = int(self.factor * math.log(L))
        if self.training:   # one set of delays for the batch: the top of the batch-mean score
            index = ndiv.topk(mean_value.detach().mean(axis=0), top_k, dim=-1)[1].numpy()
            weights, delays = mean_value[:, index], index                     # [B, k], [k]
        else:               # per sample
            weights, delays = ndiv.topk(mean_value, top_k, dim=-1)
            delays = delays.numpy()
        out = _delay_aggregation(values, delays, F.softmax(weights, dim=-1))
        return out, (corr.permute(0, 3, 1, 2) if self.output_attention else None)


def _delay_aggregation(values, delays: np.ndarray, weights):
    """values [B, L, H, D], delays int [k] (one set for the batch) or [B, k] (per sample),
    weights [B, k] -> [B, L, H, D]: out[b, t] = sum_i weights[b, i] values[b, (t + d_i) mod L]
    (torch.roll(v, -d) per delay): batch delays as one RollSum (rolls summed in place), per-sample
    delays as one gather of the rolled copies and one batched matmul."""
    delays = np.asarray(delays)
    if delays.ndim == 1:
        return RollSum.apply(values, weights, shifts=tuple(int(d) for d in delays))
    b, L, H, D = values.shape
    k = weights.shape[1]
    idx = (np.arange(L)[None, None, :] + delays[:, :, None]) % L                           # [B, k, L]
    patterns = values.reshape(b, L, H * D)[np.arange(b)[:, None, None], idx]               # [B, k, L, H*D]
    out = weights.unsqueeze(1) @ patterns.reshape(b, k, L * H * D)                          # [B, 1, L*H*D]
    return out.reshape(b, L, H, D)


class Autoformer(BaseModel):
    """Autoformer: progressive trend/seasonal decomposition around auto-correlation attention.

    Args: h (int) horizon; input_size (int) window length L; decoder_input_size_multiplier
        (float in (0, 1)) the decoder's look-back label_len = ceil(L * multiplier); hidden_size;
        dropout; factor (top_k = int(factor ln length) delays); n_head; conv_hidden_size (the
        feed-forward width); activation ('relu' or 'gelu'); encoder_layers; decoder_layers;
        MovingAvg_window (odd) the decomposition's moving average; futr_exog_list (and its
        categorical columns); **kwargs: the shared options, see BaseModel.

    In training mode the delays are chosen from the batch mean (NF's time_delay_agg_training),
    so a window's forecast depends on its batch: repeated windows are never merged.

    References: Wu et al. (2021), "Autoformer: Decomposition Transformers with Auto-Correlation
    for Long-Term Series Forecasting".

    >>> model = Autoformer(h=12, input_size=24, max_steps=200)
    """
    EXOGENOUS_FUTR = True
    EXOGENOUS_HIST = EXOGENOUS_STAT = MULTIVARIATE = RECURRENT = False
    EXOGENOUS_CAT = True
    DEFAULTS = dict(max_steps=5000, learning_rate=1e-4, num_lr_decays=-1, windows_batch_size=1024,
                    inference_windows_batch_size=1024, scaler_type="identity")
    OPTION_RULES = dict(hidden_size=POSITIVE_INT, dropout=PROBABILITY, factor=POSITIVE_NUMBER, n_head=POSITIVE_INT,
                        conv_hidden_size=POSITIVE_INT, encoder_layers=NON_NEGATIVE_INT,
                        decoder_layers=NON_NEGATIVE_INT, MovingAvg_window=POSITIVE_ODD_INT,
                        activation=Rule(lambda v: v in ("relu", "gelu"), "'relu' or 'gelu'"))

    def __init__(self, h, input_size, decoder_input_size_multiplier: float = 0.5, hidden_size: int = 128,
                 dropout: float = 0.05, factor: int = 3, n_head: int = 4, conv_hidden_size: int = 32,
                 activation: str = "gelu", encoder_layers: int = 2, decoder_layers: int = 1,
                 MovingAvg_window: int = 25, **kwargs):
        super().__init__(h=h, input_size=input_size, **kwargs)
        self.label_len = decoder_label_len(type(self).__name__, input_size, decoder_input_size_multiplier)
        check_heads(type(self).__name__, hidden_size, n_head)
        for what, length in (("input_size", input_size), ("label_len + h", self.label_len + self.h)):
            if int(factor * math.log(length)) > 2 * (length // 2):    # top_k delays of 2 (L // 2) scores
                raise ValueError(f"Autoformer: factor={factor!r} asks for int(factor * ln {length}) = "
                                 f"{int(factor * math.log(length))} delays of a {what} = {length} step sequence, "
                                 f"which has {2 * (length // 2)}; lower factor")
        self.c_out = self.loss.outputsize_multiplier
        self.output_attention = False
        self.enc_in = self.dec_in = 1
        self.decomp = SeriesDecomp(MovingAvg_window)
        self.enc_embedding = DataEmbedding(c_in=self.enc_in, exog_input_size=self.futr_exog_size,
                                           hidden_size=hidden_size, pos_embedding=False, dropout=dropout)
        self.dec_embedding = DataEmbedding(c_in=self.dec_in, exog_input_size=self.futr_exog_size,
                                           hidden_size=hidden_size, pos_embedding=False, dropout=dropout)

        def correlation(mask_flag):
            return AutoCorrelationLayer(AutoCorrelation(mask_flag, factor, attention_dropout=dropout),
                                        hidden_size, n_head)
        layer_kw = dict(hidden_size=hidden_size, conv_hidden_size=conv_hidden_size, MovingAvg=MovingAvg_window,
                        dropout=dropout, activation=activation)
        self.encoder = Encoder([EncoderLayer(correlation(False), **layer_kw) for _ in range(encoder_layers)],
                               norm_layer=LayerNorm(hidden_size))
        self.decoder = Decoder([DecoderLayer(correlation(True), correlation(False), c_out=self.c_out, **layer_kw)
                                for _ in range(decoder_layers)],
                               norm_layer=LayerNorm(hidden_size), projection=nn.Linear(hidden_size, self.c_out))

    def _has_sample_randomness(self) -> bool:
        return True   # training-mode delays are a batch statistic: merging repeated windows changes them

    def forward(self, windows_batch):
        """insample_y [B, L, 1], futr_exog [B, L + h, F] -> forecast [B, h, c_out]."""
        return decomposition_forward(self, windows_batch)

