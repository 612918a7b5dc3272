"""DLinear: a moving-average decomposition, one linear map for the trend and one for the rest
(NeuralForecast's DLinear)."""
from __future__ import annotations

import numpy as np

from ndiv import device, nn
from ndiv.models._checks import POSITIVE_ODD_INT
from ndiv.models.base import BaseModel


class MovingAvg(nn.Module):
    """The centred moving average of window kernel_size, the ends padded by repeating the first
    and last values: x [B, L] -> [B, L] (stride 1).

    NeuralForecast pads and runs AvgPool1d; the same map is linear in x, so it is one product
    x @ A with A [L, L] built once per length (the padding folds into A's first and last rows).
    """

    def __init__(self, kernel_size: int, stride: int = 1):
        super().__init__()
        if stride != 1:
            raise ValueError(f"MovingAvg: only stride=1 is supported (the trend has the input's length), got {stride}")
        self.kernel_size = kernel_size
        self._cache: dict = {}

    def _matrix(self, x) -> np.ndarray:
        """A [L, L] in x's dtype and on x's device: column t averages x[clip(t-half .. t+half)]."""
        key = (x.shape[-1], x.dtype.str, x.device)
        if key not in self._cache:
            length, half = x.shape[-1], (self.kernel_size - 1) // 2
            a = np.zeros((length, length))
            cols = np.arange(length)
            for j in range(-half, half + 1):
                np.add.at(a, (np.clip(cols + j, 0, length - 1), cols), 1.0 / self.kernel_size)
            self._cache[key] = device.to_device(a.astype(x.dtype), x.device)
        return self._cache[key]

    def forward(self, x):
        return x @ self._matrix(x)


class SeriesDecomp(nn.Module):
    """x [B, L] -> (remainder [B, L], trend [B, L]), trend the moving average of x."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.MovingAvg = MovingAvg(kernel_size, stride=1)

    def forward(self, x):
        moving_mean = self.MovingAvg(x)
        return x - moving_mean, moving_mean


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
