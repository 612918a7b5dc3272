"""BiTCN: a backward TCN over the past and a forward TCN over the future covariates
(NeuralForecast's BiTCN)."""
from __future__ import annotations

import math

import numpy as np

import ndiv
from ndiv import nn
from ndiv.autograd.ops import fused
from ndiv.models._checks import POSITIVE_INT, PROBABILITY
from ndiv.models.base import BaseModel
from ndiv.models.common._modules import encoder_input
from ndiv.autograd.tensor import DEFAULT_DTYPE
from ndiv.nn import functional as F
from ndiv.nn import init


class CustomConv1d(nn.Module):
    """[B, C_in, T] -> [B, C_out, T + padding - dilation * (k - 1)]: a dilated conv1d padded on
    one side only, the left (mode='backward': output t sees inputs up to t) or the right
    (mode='forward': output t sees inputs from t on). weight [C_out, C_in, k] and bias [C_out]
    ~ U(-s, s), s = 1 / sqrt(C_in * k) (NF's own init). Runs the fused dilated conv1d kernel."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0, dilation: int = 1,
                 mode: str = "backward", groups: int = 1):
        super().__init__()
        if groups != 1:
            raise ValueError(f"CustomConv1d: groups must be 1 (the only value BiTCN uses), got {groups!r}")
        if mode not in ("backward", "forward"):
            raise ValueError(f"CustomConv1d: mode must be 'backward' or 'forward', got {mode!r}")
        k = math.sqrt(1 / (in_channels * kernel_size))
        self.weight = nn.Parameter(np.empty((out_channels, in_channels, kernel_size), DEFAULT_DTYPE))
        self.bias = nn.Parameter(np.empty(out_channels, DEFAULT_DTYPE))
        init.uniform_(self.weight, -k, k)
        init.uniform_(self.bias, -k, k)
        self.dilation, self.groups = dilation, groups
        self.padding_left, self.padding_right = (padding, 0) if mode == "backward" else (0, padding)

    def forward(self, x):
        return fused.conv1d_dilated(x, self.weight, self.bias, padding=(self.padding_left, self.padding_right),
                                    dilation=self.dilation)


class TCNCell(nn.Module):
    """(h [B, C, T], out [B, C, T] or 0) -> (h + h_next, out + out_next), where
    [h_next | out_next] = conv2(Dropout(GELU(conv1(h)))): conv1 a dilated CustomConv1d,
    conv2 a 1x1 CustomConv1d to 2 * C channels, split in halves."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int, dilation: int, mode: str,
                 groups: int, dropout: float):
        super().__init__()
        self.conv1 = CustomConv1d(in_channels, out_channels, kernel_size, padding, dilation, mode, groups)
        self.conv2 = CustomConv1d(out_channels, in_channels * 2, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        h_prev, out_prev = x
        h = self.conv2(self.drop(F.gelu(self.conv1(h_prev))))
        c = h.shape[1] // 2
        return h_prev + h[:, :c], out_prev + h[:, c:]


def _n_layers(length: int, kernel_size: int) -> int:
    """Layers of dilations 1, 2, 4, ... whose receptive field covers `length` steps."""
    return int(math.ceil(math.log2((length - 1) / (kernel_size - 1) + 1)))


class BiTCN(BaseModel):
    """BiTCN: [y | hist | stat | futr exog] [B, L, C_in] -> `lin_hist` -> `net_bwd` (TCNCells with
    dilations 1, 2, 4, ... padded on the left, their skip outputs summed) [B, H, L]; with futr
    exogenous, futr [B, L + h, F] -> `lin_futr` -> `net_fwd` (padded on the right) [B, H, L + h],
    its first L steps stacked with the backward output; then over time `temporal_lin1` (L -> H),
    GELU, `temporal_lin2` (H -> h) [B, C, h], with the forward output of the horizon stacked on,
    -> `output_lin` per step -> [B, h, n_out]. Kernel size 2 throughout (as in NF).

    Args: h (int) horizon; input_size (int) window length L (>= 2); hidden_size (int) channels H;
        dropout (float) in [0, 1); **kwargs: the shared options (loss, max_steps, learning_rate,
        futr/hist/stat_exog_list, ...), see BaseModel.
    Exogenous: futr, hist, stat.
    References: Sprangers, Schelter, de Rijke (2023), "Parameter-Efficient Deep Probabilistic
    Forecasting", International Journal of Forecasting 39(1).

    >>> model = BiTCN(h=12, input_size=24, max_steps=100)
    """
    EXOGENOUS_FUTR = EXOGENOUS_HIST = EXOGENOUS_STAT = True
    EXOGENOUS_CAT = True   # cat_exog_list: embedded in the shared base (NF 3.3)
    MULTIVARIATE = RECURRENT = False
    DEFAULTS = dict(max_steps=1000, learning_rate=1e-3, num_lr_decays=-1, windows_batch_size=1024,
                    inference_windows_batch_size=1024, scaler_type="identity")
    OPTION_RULES = dict(hidden_size=POSITIVE_INT, dropout=PROBABILITY)

    def __init__(self, h, input_size, hidden_size=16, dropout=0.5, **kwargs):
        super().__init__(h=h, input_size=input_size, **kwargs)
        if input_size < 2:
            raise ValueError(f"BiTCN: input_size must be at least 2 (the backward TCN needs one layer), got {input_size}")
        self.kernel_size, self.hidden_size, self.dropout = 2, hidden_size, dropout
        k = self.kernel_size

        def cells(n, mode):
            return nn.Sequential(*[TCNCell(hidden_size, hidden_size, k, padding=(k - 1) * 2 ** i, dilation=2 ** i,
                                           mode=mode, groups=1, dropout=dropout) for i in range(n)])

        self.n_layers_bwd = _n_layers(input_size, k)
        self.lin_hist = nn.Linear(1 + self.hist_exog_size + self.stat_exog_size + self.futr_exog_size, hidden_size)
        self.drop_hist = nn.Dropout(dropout)
        self.net_bwd = cells(self.n_layers_bwd, "backward")
        n_parts = 1
        if self.futr_exog_size > 0:
            self.n_layers_fwd = _n_layers(h + input_size, k)
            self.lin_futr = nn.Linear(self.futr_exog_size, hidden_size)
            self.drop_futr = nn.Dropout(dropout)
            self.net_fwd = cells(self.n_layers_fwd, "forward")
            n_parts += 2
        self.drop_temporal = nn.Dropout(dropout)
        self.temporal_lin1 = nn.Linear(input_size, hidden_size)
        self.temporal_lin2 = nn.Linear(hidden_size, h)
        self.output_lin = nn.Linear(n_parts * hidden_size, self.loss.outputsize_multiplier)

    @staticmethod
    def _stack(net, x):
        """The summed skip outputs of a TCNCell stack."""
        state = (x, 0.0)
        for cell in net:
            state = cell(state)
        return state[1]

    def forward(self, windows_batch):
        """insample_y [B, L, 1], hist_exog [B, L, X], futr_exog [B, L + h, F], stat_exog [B, S]
        -> [B, h, n_out]."""
        L = windows_batch["insample_y"].shape[1]
        x = encoder_input(windows_batch, self.hist_exog_size, self.stat_exog_size, self.futr_exog_size)  # [B, L, C_in]
        if self.futr_exog_size > 0:
            futr = self.drop_futr(self.lin_futr(windows_batch["futr_exog"])).swapaxes(1, 2)   # [B, H, L + h]
            futr = self._stack(self.net_fwd, futr)
        x = self.drop_hist(self.lin_hist(x)).swapaxes(1, 2)                                   # [B, H, L]
        x = self._stack(self.net_bwd, x)
        if self.futr_exog_size > 0:
            x = ndiv.cat([x, futr[:, :, :L]], axis=1)                                          # [B, 2H, L]
        x = self.temporal_lin2(self.drop_temporal(F.gelu(self.temporal_lin1(x))))  # [B, C, h]
        if self.futr_exog_size > 0:
            x = ndiv.cat([x, futr[:, :, L:]], axis=1)                                          # [B, 3H, h]
        return self.output_lin(x.swapaxes(1, 2))                                               # [B, h, n_out]
