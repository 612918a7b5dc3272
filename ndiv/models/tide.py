"""TiDE: a dense MLP encoder-decoder with projected covariates and a temporal decoder
(NeuralForecast's TiDE)."""
from __future__ import annotations

import ndiv
from ndiv import nn
from ndiv.models._checks import POSITIVE_INT, PROBABILITY
from ndiv.models.base import BaseModel


class MLPResidual(nn.Module):
    """x [..., input_dim] -> LayerNorm(Dropout(lin2(relu(lin1(x)))) + skip(x)) [..., output_dim]
    (no LayerNorm when layernorm=False)."""

    def __init__(self, input_dim: int, hidden_size: int, output_dim: int, dropout: float, layernorm: bool):
        super().__init__()
        self.layernorm = layernorm
        if layernorm:
            self.norm = nn.LayerNorm(output_dim)
        self.drop = nn.Dropout(dropout)
        self.lin1 = nn.Linear(input_dim, hidden_size)
        self.lin2 = nn.Linear(hidden_size, output_dim)
        self.skip = nn.Linear(input_dim, output_dim)

    def forward(self, x):
        y = self.drop(self.lin2(self.lin1(x).relu()))
        return self.norm.add_forward(y, self.skip(x)) if self.layernorm else y + self.skip(x)


class TiDE(BaseModel):
    """TiDE: covariates projected per step to temporal_width (`hist_exog_projection`,
    `futr_exog_projection`); [y_{t-L..t} | projected hist | projected futr (L + h steps) | static]
    -> `dense_encoder` (num_encoder_layers MLPResidual) -> `dense_decoder` (num_decoder_layers,
    the last to decoder_output_dim * h) -> [B, h, decoder_output_dim] | projected futr of the
    horizon -> `temporal_decoder` (an MLPResidual per step) -> + `global_skip` (a Linear L -> h)
    -> [B, h, n_out].

    Args: h (int) horizon; input_size (int) window length L; hidden_size (int) units of the dense
        MLPs; decoder_output_dim (int) per-step output of the dense decoder; temporal_decoder_dim
        (int) hidden units of the temporal decoder; dropout (float) in [0, 1); layernorm (bool)
        LayerNorm on every MLPResidual output; num_encoder_layers, num_decoder_layers (int);
        temporal_width (int) width of the projected covariates;
        **kwargs: the shared options (loss, max_steps, learning_rate, futr/hist/stat_exog_list, ...),
        see BaseModel.
    Exogenous: futr, hist, stat. As in NeuralForecast, `hist_exog_projection` exists whenever
    there are hist or futr exogenous columns (with futr only it is built with 0 inputs and unused).
    References: Das et al. (2024), "Long-term Forecasting with TiDE: Time-series Dense Encoder".

    >>> model = TiDE(h=12, input_size=24, hidden_size=64, max_steps=100)
    """
    EXOGENOUS_FUTR = EXOGENOUS_HIST = EXOGENOUS_STAT = True
    EXOGENOUS_CAT = True   # cat_exog_list: embedded in the shared base (NF 3.3)
    MULTIVARIATE = RECURRENT = False
    DEFAULTS = dict(max_steps=1000, learning_rate=1e-3, num_lr_decays=-1, windows_batch_size=1024,
                    inference_windows_batch_size=1024, scaler_type="identity")
    OPTION_RULES = dict(hidden_size=POSITIVE_INT, decoder_output_dim=POSITIVE_INT, temporal_decoder_dim=POSITIVE_INT,
                        num_encoder_layers=POSITIVE_INT, num_decoder_layers=POSITIVE_INT, temporal_width=POSITIVE_INT,
                        dropout=PROBABILITY)

    def __init__(self, h, input_size, hidden_size=512, decoder_output_dim=32, temporal_decoder_dim=128, dropout=0.3,
                 layernorm=True, num_encoder_layers=1, num_decoder_layers=1, temporal_width=4, **kwargs):
        super().__init__(h=h, input_size=input_size, **kwargs)
        self.hidden_size, self.decoder_output_dim, self.temporal_decoder_dim = hidden_size, decoder_output_dim, temporal_decoder_dim
        self.dropout, self.layernorm, self.temporal_width = dropout, layernorm, temporal_width
        self.num_encoder_layers, self.num_decoder_layers = num_encoder_layers, num_decoder_layers
        n_out = self.loss.outputsize_multiplier

        def block(n_in, n_out_, hidden=hidden_size):
            return MLPResidual(n_in, hidden, n_out_, dropout, layernorm)

        if self.hist_exog_size > 0 or self.futr_exog_size > 0:
            self.hist_exog_projection = block(self.hist_exog_size, temporal_width)
        if self.futr_exog_size > 0:
            self.futr_exog_projection = block(self.futr_exog_size, temporal_width)
        n_in = (input_size + input_size * (self.hist_exog_size > 0) * temporal_width
                + (input_size + h) * (self.futr_exog_size > 0) * temporal_width + self.stat_exog_size)
        self.dense_encoder = nn.Sequential(*[block(n_in if i == 0 else hidden_size, hidden_size)
                                             for i in range(num_encoder_layers)])
        self.dense_decoder = nn.Sequential(*[block(hidden_size, decoder_output_dim * h if i == num_decoder_layers - 1
                                                   else hidden_size) for i in range(num_decoder_layers)])
        self.temporal_decoder = block(decoder_output_dim + (self.futr_exog_size > 0) * temporal_width, n_out,
                                      hidden=temporal_decoder_dim)
        self.global_skip = nn.Linear(input_size, h * n_out)

    def forward(self, windows_batch):
        """insample_y [B, L, 1], hist_exog [B, L, X], futr_exog [B, L + h, F], stat_exog [B, S]
        -> [B, h, n_out]."""
        x = windows_batch["insample_y"]
        b, L = x.shape[:2]
        x = x.reshape(b, L)                                                       # [B, L]
        skip = self.global_skip(x).reshape(b, self.h, -1)                         # [B, h, n_out]
        parts = [x]
        if self.hist_exog_size > 0:
            parts.append(self.hist_exog_projection(windows_batch["hist_exog"]).reshape(b, -1))   # [B, L * W]
        if self.futr_exog_size > 0:
            futr = self.futr_exog_projection(windows_batch["futr_exog"])           # [B, L + h, W]
            parts.append(futr.reshape(b, -1))
        if self.stat_exog_size > 0:
            parts.append(windows_batch["stat_exog"])
        x = ndiv.cat(parts, axis=1) if len(parts) > 1 else x
        x = self.dense_decoder(self.dense_encoder(x)).reshape(b, self.h, -1)      # [B, h, decoder_output_dim]
        if self.futr_exog_size > 0:
            x = ndiv.cat([x, futr[:, L:]], axis=2)                                 # [B, h, decoder_output_dim + W]
        return self.temporal_decoder(x) + skip
