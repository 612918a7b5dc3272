"""iTransformer: a Transformer encoder over series tokens (NeuralForecast's iTransformer)."""
from __future__ import annotations

import ndiv
from ndiv import nn
from ndiv.models._checks import BOOL, POSITIVE_INT, PROBABILITY
from ndiv.models.base import BaseModel
from ndiv.models.common._attention import AttentionLayer, FullAttention, TransEncoder, TransEncoderLayer
from ndiv.models.common._embeddings import DataEmbedding_inverted


class iTransformer(BaseModel):
    """iTransformer: each series' window (and each future exogenous variable of each series) is
    one token; e_layers encoder layers attend across the tokens; a Linear maps each series token
    to h * n_out. use_norm: each window and series standardised over time, and back.

    Args: h (int) horizon; input_size (int) window length L; n_series (int) number of series N;
        hidden_size (int); n_heads (int); e_layers (int) encoder layers; d_layers, factor (kept
        for NF's signature, unused as in NF); d_ff (int) feed-forward width; dropout (float);
        use_norm (bool); **kwargs: the shared options (see BaseModel).
    References: Liu et al. (2024), "iTransformer: Inverted Transformers Are Effective for Time
        Series Forecasting".
    """
    EXOGENOUS_FUTR = True
    EXOGENOUS_HIST = EXOGENOUS_STAT = False
    MULTIVARIATE, RECURRENT = True, False
    DEFAULTS = dict(max_steps=1000, learning_rate=1e-3, num_lr_decays=-1, windows_batch_size=32,
                    inference_windows_batch_size=32, scaler_type="identity")
    OPTION_RULES = dict(hidden_size=POSITIVE_INT, n_heads=POSITIVE_INT, e_layers=POSITIVE_INT, d_ff=POSITIVE_INT,
                        dropout=PROBABILITY, use_norm=BOOL)

    def __init__(self, h, input_size, n_series=None, hidden_size=512, n_heads=8, e_layers=2, d_layers=1, d_ff=2048,
                 factor=1, dropout=0.1, use_norm=True, **kwargs):
        super().__init__(h=h, input_size=input_size, n_series=n_series, **kwargs)
        self.enc_in = self.dec_in = self.c_out = self.n_series
        self.hidden_size, self.n_heads, self.e_layers, self.d_layers = hidden_size, n_heads, e_layers, d_layers
        self.d_ff, self.factor, self.dropout, self.use_norm = d_ff, factor, dropout, use_norm
        self.enc_embedding = DataEmbedding_inverted(input_size, hidden_size, dropout)
        if self.futr_exog_size:
            self.futr_embedding = nn.Linear(input_size + h, hidden_size)
            self.futr_dropout = nn.Dropout(dropout)
        self.encoder = TransEncoder(
            [TransEncoderLayer(AttentionLayer(FullAttention(False, factor, attention_dropout=dropout), hidden_size,
                                              n_heads), hidden_size, d_ff, dropout=dropout, activation="gelu")
             for _ in range(e_layers)],
            norm_layer=nn.LayerNorm(hidden_size))
        self.projector = nn.Linear(hidden_size, h * self.loss.outputsize_multiplier)

    def forward(self, windows_batch):
        """insample_y [B, L, N], futr_exog [B, F, L + h, N] -> [B, h, N * n_out]."""
        x = windows_batch["insample_y"]
        b, _, n = x.shape
        if self.use_norm:
            mean = x.mean(axis=1, keepdims=True).detach()
            x = x - mean
            std = (x.var(axis=1, keepdims=True, unbiased=False) + 1e-5).sqrt().detach()
            x = x / std
        tokens = self.enc_embedding(x, None)                                   # [B, N, hidden]
        futr = windows_batch.get("futr_exog")
        if self.futr_exog_size and futr is not None:
            _, f, lf, _ = futr.shape
            futr = futr.permute(0, 3, 1, 2).reshape(b, n * f, lf)              # a token per series and variable
            tokens = ndiv.cat([tokens, self.futr_dropout(self.futr_embedding(futr))], axis=1)
        enc, _ = self.encoder(tokens, attn_mask=None)
        out = self.projector(enc[:, :n]).permute(0, 2, 1)                      # [B, h * n_out, N]
        if self.use_norm:
            out = out * std + mean
        return out.reshape(b, self.h, -1)
