"""VanillaTransformer: the full-attention encoder-decoder that the Informer paper uses as its
baseline (NeuralForecast's VanillaTransformer)."""
from __future__ import annotations

from ndiv import nn
from ndiv.models._checks import POSITIVE_INT, PROBABILITY
from ndiv.models.base import BaseModel
from ndiv.models.common._attention import (ACTIVATION, MULTIPLIER, AttentionLayer, FullAttention, TransDecoder,
                                           TransDecoderLayer, TransEncoder, TransEncoderLayer, check_encoder_decoder)
from ndiv.models.common._embeddings import DataEmbedding, encoder_decoder_inputs


class VanillaTransformer(BaseModel):
    """VanillaTransformer: DataEmbedding (circular-conv values + sinusoid positions + futr exog)
    -> `encoder` (encoder_layers of full attention) and, on the last label_len values followed
    by h zeros, `decoder` (decoder_layers of self- and cross-attention) -> projection
    [B, label_len + h, n_out], of which the last h steps are the forecast [B, h, n_out].

    As in NeuralForecast, the decoder's self-attention is built with mask_flag=True but called
    without a mask, so it is not causal (NF's FullAttention passes no mask to its SDPA).

    Args: h (int) horizon; input_size (int) window length L; decoder_input_size_multiplier (float,
        in (0, 1)) label_len = ceil(L * it); hidden_size (int, even) model width; dropout (float);
        n_head (int) attention heads; conv_hidden_size (int) feed-forward width; activation ('relu'
        or 'gelu'); encoder_layers, decoder_layers (int);
        **kwargs: the shared options (loss, max_steps, learning_rate, futr_exog_list,
        cat_exog_list, ...), see BaseModel.
    Exogenous: futr (and categorical futr columns, embedded by the shared base).
    References: Zhou et al. (2021), "Informer: Beyond Efficient Transformer for Long Sequence
        Time-Series Forecasting" (its full-attention baseline).

    >>> model = VanillaTransformer(h=12, input_size=24, hidden_size=16, conv_hidden_size=8, max_steps=100)
    """
    EXOGENOUS_FUTR = True
    EXOGENOUS_HIST = EXOGENOUS_STAT = False
    EXOGENOUS_CAT = True
    MULTIVARIATE = RECURRENT = False
    DEFAULTS = dict(max_steps=5000, learning_rate=1e-4, num_lr_decays=-1, windows_batch_size=1024,
                    inference_windows_batch_size=1024, scaler_type="identity")
    OPTION_RULES = dict(hidden_size=POSITIVE_INT, n_head=POSITIVE_INT, conv_hidden_size=POSITIVE_INT,
                        encoder_layers=POSITIVE_INT, decoder_layers=POSITIVE_INT, dropout=PROBABILITY,
                        activation=ACTIVATION, decoder_input_size_multiplier=MULTIPLIER)

    def __init__(self, h, input_size, decoder_input_size_multiplier=0.5, hidden_size=128, dropout=0.05, n_head=4,
                 conv_hidden_size=32, activation="gelu", encoder_layers=2, decoder_layers=1, **kwargs):
        super().__init__(h=h, input_size=input_size, **kwargs)
        self.label_len = check_encoder_decoder(self, hidden_size, n_head, decoder_input_size_multiplier)
        self.c_out = self.loss.outputsize_multiplier

        def attention(mask_flag):
            return AttentionLayer(FullAttention(mask_flag, attention_dropout=dropout), hidden_size, n_head)

        self.enc_embedding = DataEmbedding(1, self.futr_exog_size, hidden_size, pos_embedding=True, dropout=dropout)
        self.dec_embedding = DataEmbedding(1, self.futr_exog_size, hidden_size, pos_embedding=True, dropout=dropout)
        self.encoder = TransEncoder(
            [TransEncoderLayer(attention(False), hidden_size, conv_hidden_size, dropout=dropout, activation=activation)
             for _ in range(encoder_layers)],
            norm_layer=nn.LayerNorm(hidden_size))
        self.decoder = TransDecoder(
            [TransDecoderLayer(attention(True), attention(False), hidden_size, conv_hidden_size, dropout=dropout,
                               activation=activation) for _ in range(decoder_layers)],
            norm_layer=nn.LayerNorm(hidden_size),
            projection=nn.Linear(hidden_size, self.c_out))

    def forward(self, windows_batch):
        """insample_y [B, L, 1], futr_exog [B, L + h, F] -> forecast [B, h, n_out]."""
        x_enc, mark_enc, x_dec, mark_dec = encoder_decoder_inputs(windows_batch, self.input_size, self.label_len,
                                                                  self.h, self.futr_exog_size)
        enc_out, _ = self.encoder(self.enc_embedding(x_enc, mark_enc))
        dec_out = self.decoder(self.dec_embedding(x_dec, mark_dec), enc_out)
        return dec_out[:, -self.h:]
