"""NLinear: one linear map of the window after subtracting its last value (NeuralForecast's NLinear)."""
from __future__ import annotations

from ndiv import nn
from ndiv.models.base import BaseModel


class NLinear(BaseModel):
    """NLinear: y_hat = Linear(y - y_last) + y_last, a guard against distribution shift.

    Args: h (int) horizon; input_size (int) window length L; **kwargs: the shared options
        (loss, max_steps, learning_rate, ...), see BaseModel. No exogenous variables.

    References: Zeng et al. (2023), "Are Transformers Effective for Time Series Forecasting?"

    >>> model = NLinear(h=12, input_size=24, max_steps=200)
    """
    EXOGENOUS_FUTR = EXOGENOUS_HIST = EXOGENOUS_STAT = MULTIVARIATE = RECURRENT = False
    DEFAULTS = dict(max_steps=5000, learning_rate=1e-4, num_lr_decays=-1, windows_batch_size=1024,
                    inference_windows_batch_size=1024, scaler_type="identity")

    def __init__(self, h, input_size, **kwargs):
        super().__init__(h=h, input_size=input_size, **kwargs)
        self.linear = nn.Linear(input_size, self.loss.outputsize_multiplier * h)

    def forward(self, windows_batch):
        """insample_y [B, L, 1] -> forecast [B, h, n_out]."""
        y = windows_batch["insample_y"].squeeze(-1)                 # [B, L]
        last = y[:, -1:]                                            # [B, 1]
        out = self.linear(y - last) + last                          # [B, h * n_out]
        return out.reshape(y.shape[0], self.h, self.loss.outputsize_multiplier)
