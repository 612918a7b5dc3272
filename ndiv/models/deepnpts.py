"""DeepNPTS: the forecast is a learned weighted mean of the window's own values
(NeuralForecast's DeepNPTS)."""
from __future__ import annotations

import ndiv
from ndiv import nn
from ndiv.losses import MAE
from ndiv.losses.point import BasePointLoss
from ndiv.models._checks import POSITIVE_INT, PROBABILITY
from ndiv.models.base import BaseModel
from ndiv.nn import functional as F


class DeepNPTS(BaseModel):
    """DeepNPTS: [y_t | futr exog_t | hist exog_t for t in the window] (flattened time-major) |
    static | futr exog of the horizon -> `deepnptsnetwork` (n_layers x (Linear, ReLU, BatchNorm1d,
    Dropout), then Linear to L * h) -> weights [B, L, h] -> softmax over the L window steps ->
    forecast[b, j] = sum_t softmax_t * y_t -> [B, h, 1]. The forecast stays within the window's range.

    Args: h (int) horizon; input_size (int) window length L; hidden_size (int) units per layer;
        batch_norm (bool) a BatchNorm1d after each hidden layer; dropout (float) in [0, 1), 0 leaves
        the Dropout modules out (as in NF); n_layers (int) hidden layers;
        **kwargs: the shared options (max_steps, learning_rate, futr/hist/stat_exog_list, ...), see
        BaseModel. loss and valid_loss must be point losses with one output (MAE, MSE, ...):
        the model outputs one weighted mean. valid_loss defaults to MAE() (as in NF).
    Exogenous: futr, hist, stat. Batch statistics (batch_norm) and dropout make repeated windows
    differ, so training computes every drawn window (no window deduplication).
    References: Rangapuram et al. (2023), "Deep Non-Parametric Time Series Forecaster".

    >>> model = DeepNPTS(h=12, input_size=24, max_steps=100)
    """
    EXOGENOUS_FUTR = EXOGENOUS_HIST = EXOGENOUS_STAT = True
    EXOGENOUS_CAT = True   # cat_exog_list: embedded in the shared base (NF 3.3)
    MULTIVARIATE = RECURRENT = False
    DEFAULTS = dict(max_steps=1000, learning_rate=1e-3, num_lr_decays=3, windows_batch_size=1024,
                    inference_windows_batch_size=1024, scaler_type="standard")

    OPTION_RULES = dict(hidden_size=POSITIVE_INT, n_layers=POSITIVE_INT, dropout=PROBABILITY)

    def __init__(self, h, input_size, hidden_size=32, batch_norm=True, dropout=0.1, n_layers=2, **kwargs):
        if kwargs.get("exclude_insample_y"):
            raise ValueError("DeepNPTS: exclude_insample_y=True is not possible: the forecast is a weighted mean "
                             "of the window's values; leave exclude_insample_y=False")
        loss = kwargs.get("loss")
        if loss is not None and (loss.outputsize_multiplier > 1 or loss.is_distribution_output):
            raise ValueError(f"DeepNPTS only supports point loss functions (MAE, MSE, etc) as loss function, got "
                             f"loss={loss!r}; use a loss with one output")
        valid_loss = kwargs.get("valid_loss", MAE())
        if valid_loss is not None and not isinstance(valid_loss, BasePointLoss):
            raise ValueError(f"DeepNPTS only supports point loss functions (MAE, MSE, etc) as valid loss function, "
                             f"got valid_loss={valid_loss!r}")
        super().__init__(h=h, input_size=input_size, **{**kwargs, "valid_loss": valid_loss})
        self.hidden_size, self.batch_norm, self.dropout, self.n_layers = hidden_size, batch_norm, dropout, n_layers
        n_in = input_size * (1 + self.futr_exog_size + self.hist_exog_size) + self.stat_exog_size + h * self.futr_exog_size
        layers = []
        for i in range(n_layers):
            layers += [nn.Linear(n_in if i == 0 else hidden_size, hidden_size), nn.ReLU()]
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_size))
            if dropout > 0.0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(hidden_size, input_size * h))
        self.deepnptsnetwork = nn.Sequential(*layers)

    def forward(self, windows_batch):
        """insample_y [B, L, 1], hist_exog [B, L, X], futr_exog [B, L + h, F], stat_exog [B, S]
        -> [B, h, 1]."""
        y = windows_batch["insample_y"]
        b, L = y.shape[:2]
        steps = [y]
        if self.futr_exog_size > 0:
            steps.append(windows_batch["futr_exog"][:, :L])
        if self.hist_exog_size > 0:
            steps.append(windows_batch["hist_exog"])
        parts = [(ndiv.cat(steps, axis=2) if len(steps) > 1 else y).reshape(b, -1)]   # [B, L * (1 + F + X)]
        if self.stat_exog_size > 0:
            parts.append(windows_batch["stat_exog"])
        if self.futr_exog_size > 0:
            parts.append(windows_batch["futr_exog"][:, L:].reshape(b, -1))              # [B, h * F]
        x = ndiv.cat(parts, axis=1) if len(parts) > 1 else parts[0]
        weights = self.deepnptsnetwork(x).reshape(b, L, -1)                             # [B, L, h]
        return (F.softmax(weights, dim=1) * y).sum(1).unsqueeze(-1)                     # [B, h, 1]
