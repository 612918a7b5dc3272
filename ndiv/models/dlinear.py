"""DLinear: a moving-average decomposition, one linear map for the trend and one for the rest
(NeuralForecast's DLinear)."""
from __future__ import annotations

from ndiv import nn
from ndiv.models._checks import POSITIVE_ODD_INT
from ndiv.models.base import BaseModel
from ndiv.models.common._normalization import SeriesDecomp


class DLinear(BaseModel):
    """DLinear: trend (moving average) + remainder, one linear map each.

    Args: h (int) horizon; input_size (int) window length L; moving_avg_window (int, odd) the
        trend's moving-average window; **kwargs: the shared options (loss, max_steps,
        learning_rate, ...), see BaseModel. No exogenous variables.

    References: Zeng et al. (2023), "Are Transformers Effective for Time Series Forecasting?"

    >>> model = DLinear(h=12, input_size=24, max_steps=200)
    """
    EXOGENOUS_FUTR = EXOGENOUS_HIST = EXOGENOUS_STAT = MULTIVARIATE = RECURRENT = False
    DEFAULTS = dict(max_steps=5000, learning_rate=1e-4, num_lr_decays=-1, windows_batch_size=1024,
                    inference_windows_batch_size=1024, scaler_type="identity")
    OPTION_RULES = dict(moving_avg_window=POSITIVE_ODD_INT)

    def __init__(self, h, input_size, moving_avg_window=25, **kwargs):
        super().__init__(h=h, input_size=input_size, **kwargs)
        n_out = self.loss.outputsize_multiplier
        self.decomp = SeriesDecomp(moving_avg_window)             # NF's attribute names, so
        self.linear_trend = nn.Linear(input_size, n_out * h)      # NF weights load as they are
        self.linear_season = nn.Linear(input_size, n_out * h)

    def forward(self, windows_batch):
        """insample_y [B, L, 1] -> forecast [B, h, n_out]."""
        y = windows_batch["insample_y"].squeeze(-1)                      # [B, L]
        season, trend = self.decomp(y)                                   # [B, L] each
        out = self.linear_trend(trend) + self.linear_season(season)      # [B, h * n_out]
        return out.reshape(y.shape[0], self.h, self.loss.outputsize_multiplier)
