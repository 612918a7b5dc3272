"""TSMixer: time and feature mixing MLPs over all series (NeuralForecast's TSMixer)."""
from __future__ import annotations

from ndiv import nn
from ndiv.models._checks import BOOL, POSITIVE_INT, PROBABILITY
from ndiv.models.base import BaseModel
from ndiv.models.common._normalization import RevINMultivariate


class TemporalMixing(nn.Module):
    """BatchNorm1d over the N * L values, Linear over time, ReLU, dropout, residual:
    x [B, L, N] -> [B, L, N]."""

    def __init__(self, n_series, input_size, dropout):
        super().__init__()
        self.temporal_norm = nn.BatchNorm1d(n_series * input_size, eps=0.001, momentum=0.01)
        self.temporal_lin = nn.Linear(input_size, input_size)
        self.temporal_drop = nn.Dropout(dropout)

    def forward(self, x):
        b, L, n = x.shape
        y = self.temporal_norm(x.permute(0, 2, 1).reshape(b, -1)).reshape(b, n, L)   # series-major
        y = self.temporal_lin(y).relu().permute(0, 2, 1)
        return self.temporal_drop(y) + x


class FeatureMixing(nn.Module):
    """BatchNorm1d over the L * N values, Linear N -> ff_dim, ReLU, dropout, Linear ff_dim -> N,
    dropout, residual: x [B, L, N] -> [B, L, N]."""

    def __init__(self, n_series, input_size, dropout, ff_dim):
        super().__init__()
        self.feature_norm = nn.BatchNorm1d(n_series * input_size, eps=0.001, momentum=0.01)
        self.feature_lin_1 = nn.Linear(n_series, ff_dim)
        self.feature_lin_2 = nn.Linear(ff_dim, n_series)
        self.feature_drop_1 = nn.Dropout(dropout)
        self.feature_drop_2 = nn.Dropout(dropout)

    def forward(self, x):
        b, L, n = x.shape
        y = self.feature_norm(x.reshape(b, -1)).reshape(b, L, n)                     # time-major
        y = self.feature_drop_1(self.feature_lin_1(y).relu())
        return self.feature_drop_2(self.feature_lin_2(y)) + x


class MixingLayer(nn.Module):
    """TemporalMixing then FeatureMixing: [B, L, N] -> [B, L, N]."""

    def __init__(self, n_series, input_size, dropout, ff_dim):
        super().__init__()
        self.temporal_mixer = TemporalMixing(n_series, input_size, dropout)
        self.feature_mixer = FeatureMixing(n_series, input_size, dropout, ff_dim)

    def forward(self, x):
        return self.feature_mixer(self.temporal_mixer(x))


class TSMixer(BaseModel):
    """TSMixer: RevIN, n_block (temporal mixing, feature mixing) layers, then a Linear L -> h * n_out
    per series.

    Args: h (int) horizon; input_size (int) window length L; n_series (int) number of series N;
        n_block (int) mixing layers; ff_dim (int) width of the feature MLP; dropout (float,
        NF's default 0.9); revin (bool) RevINMultivariate around the network; **kwargs: the
        shared options (see BaseModel).
    References: Chen et al. (2023), "TSMixer: An All-MLP Architecture for Time Series Forecasting".
    """
    EXOGENOUS_FUTR = EXOGENOUS_HIST = EXOGENOUS_STAT = False
    MULTIVARIATE, RECURRENT = True, False
    DEFAULTS = dict(max_steps=1000, learning_rate=1e-3, num_lr_decays=-1, windows_batch_size=32,
                    inference_windows_batch_size=32, scaler_type="identity")
    OPTION_RULES = dict(n_block=POSITIVE_INT, ff_dim=POSITIVE_INT, dropout=PROBABILITY, revin=BOOL)

    def __init__(self, h, input_size, n_series=None, n_block=2, ff_dim=64, dropout=0.9, revin=True, **kwargs):
        super().__init__(h=h, input_size=input_size, n_series=n_series, **kwargs)
        self.revin = revin
        if revin:
            self.norm = RevINMultivariate(num_features=self.n_series, affine=True)
        self.mixing_layers = nn.Sequential(*[MixingLayer(self.n_series, input_size, dropout, ff_dim)
                                             for _ in range(n_block)])
        self.out = nn.Linear(input_size, h * self.loss.outputsize_multiplier)

    def forward(self, windows_batch):
        """insample_y [B, L, N] -> [B, h, N * n_out]."""
        x = windows_batch["insample_y"]
        b = x.shape[0]
        stats = None
        if self.revin:
            x, stats = self.norm(x, "norm")
        x = self.out(self.mixing_layers(x).permute(0, 2, 1)).permute(0, 2, 1)   # [B, h * n_out, N]
        if self.revin:
            x = self.norm(x, "denorm", stats)
        return x.reshape(b, self.h, -1)
