"""NHITS: NBEATS-style blocks that read a pooled window and forecast a few knots, interpolated to
the horizon, each stack at its own time scale (NeuralForecast's NHITS)."""
from __future__ import annotations

import math

import ndiv
from ndiv import nn
from ndiv.nn import functional as F
from ndiv.models.base import BaseModel
from ndiv.models.common._stacks import build_blocks, doubly_residual
from ndiv.models.nbeats import BLOCK_RULES, block_layers, check_block_options

POOLING = ("MaxPool1d", "AvgPool1d")
INTERPOLATION = ("linear", "nearest", "cubic")


class _IdentityBasis(nn.Module):
    """theta [B, L + n_out * K] -> backcast [B, L], forecast [B, h, n_out]: the K knots of each
    output interpolated to h steps ('linear', 'nearest', or 'cubic': torch's bicubic along time)."""

    def __init__(self, backcast_size: int, forecast_size: int, interpolation_mode: str, out_features: int = 1):
        super().__init__()
        self.backcast_size, self.forecast_size = backcast_size, forecast_size
        self.interpolation_mode, self.out_features = interpolation_mode, out_features

    def forward(self, theta):
        b = theta.shape[0]
        knots = theta[:, self.backcast_size:].reshape(b, self.out_features, -1)         # [B, n_out, K]
        if self.interpolation_mode == "cubic":
            # NF interpolates [B, 1, 1, K] to (h, h) and keeps row 0: with one input row every output
            # row is that row, so (1, h) gives the same numbers for 1/h of the work
            forecast = F.interpolate(knots.unsqueeze(1), size=(1, self.forecast_size), mode="bicubic")[:, 0]
        else:
            forecast = F.interpolate(knots, size=self.forecast_size, mode=self.interpolation_mode)
        return theta[:, :self.backcast_size], forecast.swapaxes(1, 2)                # [B, h, n_out]


class NHITSBlock(nn.Module):
    """[pool(residual) | pool(hist_exog) | pool(futr_exog) | stat_exog] -> MLP -> theta -> basis.

    insample_y [B, L], hist_exog [B, L, X], futr_exog [B, L + h, F], stat_exog [B, S]
    -> (backcast [B, L], forecast [B, h, n_out]). Pools of kernel k, stride k, the last window
    partial (ceil_mode), so the MLP reads ceil(L / k) + X * ceil(L / k) + F * ceil((L + h) / k) + S values.
    """

    def __init__(self, input_size: int, h: int, n_theta: int, mlp_units, basis: nn.Module, futr_input_size: int,
                 hist_input_size: int, stat_input_size: int, n_pool_kernel_size: int, pooling_mode: str,
                 dropout_prob: float, activation: str):
        super().__init__()
        pooled_hist = math.ceil(input_size / n_pool_kernel_size)
        pooled_futr = math.ceil((input_size + h) / n_pool_kernel_size)
        n_in = pooled_hist * (1 + hist_input_size) + futr_input_size * pooled_futr + stat_input_size
        self.futr_input_size, self.hist_input_size, self.stat_input_size = futr_input_size, hist_input_size, stat_input_size
        self.pooling_layer = getattr(nn, pooling_mode)(kernel_size=n_pool_kernel_size, stride=n_pool_kernel_size,
                                                       ceil_mode=True)
        self.layers = block_layers(n_in, mlp_units, n_theta, activation, dropout_prob)
        self.basis = basis

    def _pool_time(self, x):
        """[B, T, C] -> [B, ceil(T / k) * C], pooled along time, time-major as NF flattens it."""
        return self.pooling_layer(x.swapaxes(1, 2)).swapaxes(1, 2).reshape(x.shape[0], -1)

    def forward(self, insample_y, futr_exog, hist_exog, stat_exog):
        parts = [self.pooling_layer(insample_y.unsqueeze(1))[:, 0]]                     # [B, ceil(L / k)]
        if self.hist_input_size > 0:
            parts.append(self._pool_time(hist_exog))
        if self.futr_input_size > 0:
            parts.append(self._pool_time(futr_exog))
        if self.stat_input_size > 0:
            parts.append(stat_exog.reshape(stat_exog.shape[0], -1))
        x = ndiv.cat(parts, axis=1) if len(parts) > 1 else parts[0]
        return self.basis(self.layers(x))


class NHITS(BaseModel):
    """NHITS: stacks of MLP blocks with doubly residual links, as NBEATS, where block i reads the
    residual max- or average-pooled by n_pool_kernel_size[i] and forecasts h // n_freq_downsample[i]
    knots that are interpolated to h steps: early stacks see coarse scales and forecast smooth
    components, later stacks the detail.

    Args: h (int) horizon; input_size (int) window length L;
        stack_types (list of 'identity'); n_blocks (list of int) blocks per stack;
        mlp_units (list of [in, out]) the hidden Linear layers of every block;
        n_pool_kernel_size (list of int) input pooling per stack; n_freq_downsample (list of int)
        forecast knots h // n per stack; pooling_mode ('MaxPool1d' | 'AvgPool1d');
        interpolation_mode ('linear' | 'nearest' | 'cubic'); dropout_prob_theta (float) dropout
        after each hidden activation; activation (str) one of nbeats.ACTIVATIONS;
        futr_exog_list, hist_exog_list, stat_exog_list: exogenous columns, pooled like the target;
        **kwargs: the shared options (loss, max_steps, learning_rate, ...), see BaseModel.

    References: Challu et al. (2023), "NHITS: Neural Hierarchical Interpolation for Time Series
        Forecasting", AAAI.

    >>> model = NHITS(h=12, input_size=24, mlp_units=[[64, 64], [64, 64]], max_steps=200)
    """
    EXOGENOUS_FUTR = EXOGENOUS_HIST = EXOGENOUS_STAT = True
    EXOGENOUS_CAT = True   # cat_exog_list: embedded in the shared base (NF 3.3)
    MULTIVARIATE = RECURRENT = False
    DEFAULTS = dict(max_steps=1000, learning_rate=1e-3, num_lr_decays=3, windows_batch_size=1024,
                    inference_windows_batch_size=-1, scaler_type="identity")
    OPTION_RULES = BLOCK_RULES

    def __init__(self, h, input_size, stack_types=("identity",) * 3, n_blocks=(1, 1, 1),
                 mlp_units=((512, 512),) * 3, n_pool_kernel_size=(2, 2, 1), n_freq_downsample=(4, 2, 1),
                 pooling_mode="MaxPool1d", interpolation_mode="linear", dropout_prob_theta=0.0, activation="ReLU",
                 **kwargs):
        super().__init__(h=h, input_size=input_size, **kwargs)
        check_block_options("NHITS", stack_types, n_blocks, mlp_units, activation, dropout_prob_theta)
        if any(s != "identity" for s in stack_types):
            raise ValueError(f"NHITS: every stack type must be 'identity', got {list(stack_types)}")
        for key, values in (("n_pool_kernel_size", n_pool_kernel_size), ("n_freq_downsample", n_freq_downsample)):
            if len(values) != len(stack_types) or any(int(v) < 1 for v in values):
                raise ValueError(f"NHITS: {key} needs one positive int per stack ({len(stack_types)} stack_types), "
                                 f"got {list(values)}")
        if pooling_mode not in POOLING:
            raise ValueError(f"NHITS: pooling_mode must be one of {list(POOLING)}, got {pooling_mode!r}")
        if interpolation_mode not in INTERPOLATION:
            raise ValueError(f"NHITS: interpolation_mode must be one of {list(INTERPOLATION)}, got {interpolation_mode!r}")
        n_out = self.loss.outputsize_multiplier
        if interpolation_mode == "cubic" and n_out > 1:
            raise ValueError(f"NHITS: interpolation_mode='cubic' needs a loss with one output, but {type(self.loss).__name__} "
                             f"has {n_out}; use 'linear' or 'nearest'")
        def make_block(_, i):
            n_theta = input_size + n_out * max(h // n_freq_downsample[i], 1)
            basis = _IdentityBasis(input_size, h, interpolation_mode, n_out)
            return NHITSBlock(input_size, h, n_theta, mlp_units, basis, self.futr_exog_size, self.hist_exog_size,
                              self.stat_exog_size, n_pool_kernel_size[i], pooling_mode, dropout_prob_theta, activation)

        self.blocks = build_blocks(stack_types, n_blocks, False, make_block)

    def forward(self, windows_batch):
        """insample_y, insample_mask [B, L, 1], futr_exog [B, L + h, F], hist_exog [B, L, X],
        stat_exog [B, S] -> forecast [B, h, n_out]."""
        futr, hist, stat = windows_batch["futr_exog"], windows_batch["hist_exog"], windows_batch["stat_exog"]
        return doubly_residual(self.blocks, windows_batch, lambda block, residuals: block(residuals, futr, hist, stat))
