"""TCN: a dilated causal convolution encoder with an MLP decoder (NeuralForecast's TCN)."""
from __future__ import annotations

import ndiv
from ndiv import nn
from ndiv.models._checks import POSITIVE_INT
from ndiv.models.base import BaseModel
from ndiv.models.common._modules import MLP, encoder_input as _encoder_input, TemporalConvolutionEncoder, resolve_decoder_activation
from ndiv.models.rnn import RECURRENT_DEFAULTS, resolve_input_size


class TCN(BaseModel):
    """TCN: [y | hist | stat | futr exog] [B, L, C_in] -> `hist_encoder` (one causal conv1d per
    dilation, kernel_size taps, encoder_activation) [B, L, C] -> `context_adapter` (a Linear over
    time, L -> h) [B, h, C] -> [.. | futr exog of the horizon] [B, h, C + F] -> `mlp_decoder`
    -> [B, h, n_out].

    Args: h (int) horizon; input_size (int) window length L (< 1: 3 * h); kernel_size (int) taps
        per convolution; dilations (list of int) one layer each (receptive field
        1 + (kernel_size - 1) * sum(dilations)); encoder_hidden_size (int) channels C;
        encoder_activation (str) torch.nn name; context_size: unused (as in NF);
        decoder_hidden_size, decoder_layers, decoder_activation: the MLP decoder;
        **kwargs: the shared options (loss, max_steps, learning_rate, ...), see BaseModel.
    Exogenous: futr, hist, stat.
    References: Bai, Kolter, Koltun (2018), "An Empirical Evaluation of Generic Convolutional and
    Recurrent Networks for Sequence Modeling".

    >>> model = TCN(h=12, input_size=24, max_steps=100)
    """
    EXOGENOUS_FUTR = EXOGENOUS_HIST = EXOGENOUS_STAT = True
    EXOGENOUS_CAT = True   # cat_exog_list: embedded in the shared base (NF 3.3)
    MULTIVARIATE = RECURRENT = False
    DEFAULTS = RECURRENT_DEFAULTS
    OPTION_RULES = dict(kernel_size=POSITIVE_INT, encoder_hidden_size=POSITIVE_INT,
                        decoder_hidden_size=POSITIVE_INT, decoder_layers=POSITIVE_INT)

    def __init__(self, h, input_size=-1, inference_input_size=None, kernel_size=2, dilations=(1, 2, 4, 8, 16),
                 encoder_hidden_size=128, encoder_activation="ReLU", context_size=10, decoder_hidden_size=128,
                 decoder_layers=2, decoder_activation=None, **kwargs):
        input_size = resolve_input_size("TCN", h, input_size)
        super().__init__(h=h, input_size=input_size, **kwargs)
        dilations = list(dilations)
        if not dilations or any(not isinstance(d, int) or d < 1 for d in dilations):
            raise ValueError(f"TCN: dilations must be a non-empty list of positive ints, got {dilations!r}")
        self.inference_input_size = input_size if inference_input_size is None else inference_input_size
        self.kernel_size, self.dilations = kernel_size, dilations
        self.encoder_hidden_size, self.encoder_activation = encoder_hidden_size, encoder_activation
        self.context_size = context_size
        self.decoder_hidden_size, self.decoder_layers = decoder_hidden_size, decoder_layers
        self.decoder_activation = resolve_decoder_activation(
            decoder_activation, "decoder_layers=1, since the decoder is then a single linear layer"
            if decoder_layers == 1 else None)

        input_encoder = 1 + self.hist_exog_size + self.stat_exog_size + self.futr_exog_size
        self.hist_encoder = TemporalConvolutionEncoder(input_encoder, encoder_hidden_size, kernel_size, dilations,
                                                       activation=encoder_activation)
        self.context_adapter = nn.Linear(self.input_size, h)
        self.mlp_decoder = MLP(in_features=encoder_hidden_size + self.futr_exog_size,
                               out_features=self.loss.outputsize_multiplier, hidden_size=decoder_hidden_size,
                               num_layers=decoder_layers, activation=self.decoder_activation, dropout=0.0)

    def forward(self, windows_batch):
        """insample_y [B, L, 1], hist_exog [B, L, X], futr_exog [B, L + h, F], stat_exog [B, S]
        -> [B, h, n_out]."""
        encoder_input = _encoder_input(windows_batch, self.hist_exog_size, self.stat_exog_size,
                                       self.futr_exog_size)          # [B, L, C_in]
        hidden = self.hist_encoder(encoder_input)                                 # [B, L, C]
        context = self.context_adapter(hidden.swapaxes(1, 2))                    # [B, C, h]
        if self.futr_exog_size:
            context = ndiv.cat([context, windows_batch["futr_exog"][:, -self.h:].swapaxes(1, 2)], axis=1)  # [B, C + F, h]
        return self.mlp_decoder(context.swapaxes(1, 2))                           # [B, h, n_out]
