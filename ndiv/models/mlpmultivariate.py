"""MLPMultivariate: one MLP over the flattened windows of all series (NeuralForecast's MLPMultivariate)."""
from __future__ import annotations

import ndiv
from ndiv import nn
from ndiv.models._checks import POSITIVE_INT
from ndiv.models.base import BaseModel


class MLPMultivariate(BaseModel):
    """MLPMultivariate: [y | hist exog | futr exog | static] of all N series, flattened ->
    num_layers x (Linear, ReLU) -> Linear(h * n_out * N).

    Args: h (int) horizon; input_size (int) window length L; n_series (int) number of series N;
        num_layers (int) hidden layers; hidden_size (int) units per layer; **kwargs: the shared
        options (loss, max_steps, learning_rate, scaler_type, futr/hist/stat_exog_list, ...).

    >>> model = MLPMultivariate(h=12, input_size=24, n_series=7, max_steps=100)
    """
    EXOGENOUS_FUTR = EXOGENOUS_HIST = EXOGENOUS_STAT = True
    EXOGENOUS_CAT = True
    MULTIVARIATE, RECURRENT = True, False
    DEFAULTS = dict(max_steps=1000, learning_rate=1e-3, num_lr_decays=-1, windows_batch_size=32,
                    inference_windows_batch_size=32, scaler_type="identity")
    OPTION_RULES = dict(num_layers=POSITIVE_INT, hidden_size=POSITIVE_INT)

    def __init__(self, h, input_size, n_series=None, num_layers=2, hidden_size=1024, **kwargs):
        super().__init__(h=h, input_size=input_size, n_series=n_series, **kwargs)
        self.num_layers, self.hidden_size = num_layers, hidden_size
        n_in = self.n_series * (input_size + self.hist_exog_size * input_size
                                + self.futr_exog_size * (input_size + h) + self.stat_exog_size)
        self.mlp = nn.ModuleList([nn.Linear(n_in, hidden_size)]
                                 + [nn.Linear(hidden_size, hidden_size) for _ in range(num_layers - 1)])
        self.out = nn.Linear(hidden_size, h * self.loss.outputsize_multiplier * self.n_series)

    def forward(self, windows_batch):
        """insample_y [B, L, N], hist_exog [B, X, L, N], futr_exog [B, F, L + h, N],
        stat_exog [N, S] -> [B, h, N * n_out]."""
        y = windows_batch["insample_y"]
        b = y.shape[0]
        parts = [y.reshape(b, -1)]
        if self.hist_exog_size:
            parts.append(windows_batch["hist_exog"].reshape(b, -1))
        if self.futr_exog_size:
            parts.append(windows_batch["futr_exog"].reshape(b, -1))
        if self.stat_exog_size:
            s = windows_batch["stat_exog"].reshape(1, -1)                 # [N, S] -> [1, N * S]
            parts.append(s.expand(b, s.shape[1]))
        x = ndiv.cat(parts, axis=1) if len(parts) > 1 else parts[0]
        for layer in self.mlp:
            x = layer(x).relu()
        return self.out(x).reshape(b, self.h, -1)
