"""TSMixerx: TSMixer with exogenous mixing (NeuralForecast's TSMixerx)."""
from __future__ import annotations

import ndiv
from ndiv import nn
from ndiv.models._checks import POSITIVE_INT, PROBABILITY
from ndiv.models.base import BaseModel
from ndiv.models.common._normalization import RevINMultivariate


class TemporalMixing(nn.Module):
    """Linear over time, ReLU, dropout, residual, LayerNorm over (h, C): x [B, h, C] -> [B, h, C]."""

    def __init__(self, num_features, h, dropout):
        super().__init__()
        self.temporal_norm = nn.LayerNorm((h, num_features))
        self.temporal_lin = nn.Linear(h, h)
        self.temporal_drop = nn.Dropout(dropout)

    def forward(self, x):
        y = self.temporal_lin(x.permute(0, 2, 1)).relu().permute(0, 2, 1)
        return self.temporal_norm.add_forward(self.temporal_drop(y), x)


class FeatureMixing(nn.Module):
    """Two Linear over channels with ReLU and dropout, a projected residual when the widths
    differ, LayerNorm over (h, C_out): x [B, h, C_in] -> [B, h, C_out]."""

    def __init__(self, in_features, out_features, h, dropout, ff_dim):
        super().__init__()
        self.feature_lin_1 = nn.Linear(in_features, ff_dim)
        self.feature_lin_2 = nn.Linear(ff_dim, out_features)
        self.feature_drop_1 = nn.Dropout(dropout)
        self.feature_drop_2 = nn.Dropout(dropout)
        self.linear_project_residual = in_features != out_features
        if self.linear_project_residual:
            self.project_residual = nn.Linear(in_features, out_features)
        self.feature_norm = nn.LayerNorm((h, out_features))

    def forward(self, x):
        y = self.feature_drop_2(self.feature_lin_2(self.feature_drop_1(self.feature_lin_1(x).relu())))
        if self.linear_project_residual:
            x = self.project_residual(x)
        return self.feature_norm.add_forward(y, x)


class MixingLayer(nn.Module):
    """TemporalMixing then FeatureMixing: [B, h, C_in] -> [B, h, C_out]."""

    def __init__(self, in_features, out_features, h, dropout, ff_dim):
        super().__init__()
        self.temporal_mixer = TemporalMixing(in_features, h, dropout)
        self.feature_mixer = FeatureMixing(in_features, out_features, h, dropout, ff_dim)

    def forward(self, x):
        return self.feature_mixer(self.temporal_mixer(x))


class MixingLayerWithStaticExogenous(nn.Module):
    """The static features mixed to ff_dim, concatenated, then a MixingLayer:
    (x [B, h, ff_dim], stat [B, h, N * S]) -> (x [B, h, ff_dim], stat)."""

    def __init__(self, h, dropout, ff_dim, stat_input_size):
        super().__init__()
        self.feature_mixer_stat = FeatureMixing(stat_input_size, ff_dim, h, dropout, ff_dim)
        self.temporal_mixer = TemporalMixing(2 * ff_dim, h, dropout)
        self.feature_mixer = FeatureMixing(2 * ff_dim, ff_dim, h, dropout, ff_dim)

    def forward(self, inputs):
        x, stat = inputs
        x = ndiv.cat([x, self.feature_mixer_stat(stat)], axis=2)
        return self.feature_mixer(self.temporal_mixer(x)), stat


class TSMixerx(BaseModel):
    """TSMixerx: RevIN, a temporal projection L -> h of y and the exogenous inputs, feature mixing
    of (y, hist, futr) over all series, of the future part of futr and of the statics, then
    n_block mixing layers and a Linear to N * n_out channels.

    Args: h (int) horizon; input_size (int) window length L; n_series (int) number of series N;
        n_block (int) mixing layers; ff_dim (int) hidden width; dropout (float); revin (bool)
        RevINMultivariate around the network; **kwargs: the shared options (see BaseModel).
    References: Chen et al. (2023), "TSMixer: An All-MLP Architecture for Time Series Forecasting".
    """
    EXOGENOUS_FUTR = EXOGENOUS_HIST = EXOGENOUS_STAT = True
    EXOGENOUS_CAT = True
    MULTIVARIATE, RECURRENT = True, False
    DEFAULTS = dict(max_steps=1000, learning_rate=1e-3, num_lr_decays=-1, windows_batch_size=32,
                    inference_windows_batch_size=32, scaler_type="identity")
    OPTION_RULES = dict(n_block=POSITIVE_INT, ff_dim=POSITIVE_INT, dropout=PROBABILITY)

    def __init__(self, h, input_size, n_series=None, n_block=2, ff_dim=64, dropout=0.0, revin=True, **kwargs):
        super().__init__(h=h, input_size=input_size, n_series=n_series, **kwargs)
        n, m = self.n_series, self.loss.outputsize_multiplier
        self.revin = revin
        if revin:
            self.norm = RevINMultivariate(num_features=n, affine=True)
        self.temporal_projection = nn.Linear(input_size, h)
        self.feature_mixer_hist = FeatureMixing(n * (1 + self.hist_exog_size + self.futr_exog_size), ff_dim, h,
                                                dropout, ff_dim)
        k = 1
        if self.futr_exog_size:
            self.feature_mixer_futr = FeatureMixing(n * self.futr_exog_size, ff_dim, h, dropout, ff_dim)
            k += 1
        if self.stat_exog_size:
            self.feature_mixer_stat = FeatureMixing(n * self.stat_exog_size, ff_dim, h, dropout, ff_dim)
            k += 1
        self.first_mixing = MixingLayer(k * ff_dim, ff_dim, h, dropout, ff_dim)
        if self.stat_exog_size:
            blocks = [MixingLayerWithStaticExogenous(h, dropout, ff_dim, n * self.stat_exog_size) for _ in range(n_block)]
        else:
            blocks = [MixingLayer(ff_dim, ff_dim, h, dropout, ff_dim) for _ in range(n_block)]
        self.mixing_block = nn.Sequential(*blocks)
        self.out = nn.Linear(ff_dim, m * n)

    def forward(self, windows_batch):
        """insample_y [B, L, N], hist_exog [B, X, L, N], futr_exog [B, F, L + h, N],
        stat_exog [N, S] -> [B, h, N * n_out]."""
        x = windows_batch["insample_y"]
        b, L = x.shape[:2]
        stats = None
        if self.revin:
            x, stats = self.norm(x, "norm")
        parts = [x.unsqueeze(1)]                                                   # [B, 1, L, N]
        if self.hist_exog_size:
            parts.append(windows_batch["hist_exog"])
        if self.futr_exog_size:
            parts.append(windows_batch["futr_exog"][:, :, :L])
        x = ndiv.cat(parts, axis=1) if len(parts) > 1 else parts[0]                # [B, 1 + X + F, L, N]
        x = self.temporal_projection(x.permute(0, 1, 3, 2))                        # [B, C, N, h]
        x = self.feature_mixer_hist(x.permute(0, 3, 1, 2).reshape(b, self.h, -1))  # [B, h, ff_dim]
        if self.futr_exog_size:
            f = windows_batch["futr_exog"][:, :, L:].permute(0, 2, 1, 3).reshape(b, self.h, -1)
            x = ndiv.cat([x, self.feature_mixer_futr(f)], axis=2)
        stat = None
        if self.stat_exog_size:
            s = windows_batch["stat_exog"].reshape(1, 1, -1)
            stat = s.expand(b, self.h, s.shape[2])                                 # [B, h, N * S]
            x = ndiv.cat([x, self.feature_mixer_stat(stat)], axis=2)
        x = self.first_mixing(x)
        x = self.mixing_block((x, stat))[0] if self.stat_exog_size else self.mixing_block(x)
        out = self.out(x)                                                          # [B, h, n_out * N]
        if self.revin:
            out = self.norm(out.reshape(b, -1, self.n_series), "denorm", stats).reshape(b, self.h, -1)
        return out
