"""MLP: a multi-layer perceptron over the flattened window (NeuralForecast's MLP)."""
from __future__ import annotations

from ndiv import nn
from ndiv.models._checks import POSITIVE_INT
from ndiv.models.base import BaseModel
from ndiv.models.common._modules import dense_input, dense_input_size


class MLP(BaseModel):
    """MLP: [y_{t-L..t} | hist exog | futr exog | static] -> num_layers x (Linear, ReLU) -> Linear.

    Args: h (int) horizon; input_size (int) window length L; num_layers (int) hidden layers;
        hidden_size (int) units per layer; **kwargs: the shared options (loss, max_steps,
        learning_rate, scaler_type, futr/hist/stat_exog_list, ...), see BaseModel.

    >>> model = MLP(h=12, input_size=24, max_steps=100)
    """
    EXOGENOUS_FUTR = EXOGENOUS_HIST = EXOGENOUS_STAT = True
    EXOGENOUS_CAT = True   # cat_exog_list: embedded in the shared base (NF 3.3)
    MULTIVARIATE = RECURRENT = False
    DEFAULTS = dict(max_steps=1000, learning_rate=1e-3, num_lr_decays=-1, windows_batch_size=1024,
                    inference_windows_batch_size=-1, scaler_type="identity")
    OPTION_RULES = dict(num_layers=POSITIVE_INT, hidden_size=POSITIVE_INT)

    def __init__(self, h, input_size, num_layers=2, hidden_size=1024, **kwargs):
        super().__init__(h=h, input_size=input_size, **kwargs)
        self.num_layers, self.hidden_size = num_layers, hidden_size
        n_in = dense_input_size(input_size, h, self.hist_exog_size, self.futr_exog_size, self.stat_exog_size)
        self.mlp = nn.ModuleList([nn.Linear(n_in, hidden_size)]
                                 + [nn.Linear(hidden_size, hidden_size) for _ in range(num_layers - 1)])
        self.out = nn.Linear(hidden_size, h * self.loss.outputsize_multiplier)

    def forward(self, windows_batch):
        """insample_y [B, L, 1], hist_exog [B, L, X], futr_exog [B, L + h, F], stat_exog [B, S]
        -> [B, h, n_out]."""
        x = windows_batch["insample_y"].squeeze(-1)                       # [B, L]
        b = x.shape[0]
        y = dense_input(x, windows_batch, self.hist_exog_size, self.futr_exog_size, self.stat_exog_size)
        for layer in self.mlp:
            y = layer(y).relu()
        return self.out(y).reshape(b, self.h, self.loss.outputsize_multiplier)
