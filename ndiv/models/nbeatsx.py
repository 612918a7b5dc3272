"""NBEATSx: NBEATS with exogenous inputs in every block's MLP and an exogenous basis
(NeuralForecast's NBEATSx)."""
from __future__ import annotations

import ndiv
from ndiv import nn
from ndiv.models.base import BaseModel
from ndiv.models.common._stacks import build_blocks, doubly_residual
from ndiv.models.common._modules import dense_input, dense_input_size
from ndiv.models._checks import NON_NEGATIVE_INT, POSITIVE_INT
from ndiv.models.nbeats import (BLOCK_RULES, IdentityBasis, NBEATSBlock, SeasonalityBasis, TrendBasis,
                                check_block_options)

STACK_TYPES = ("identity", "trend", "seasonality", "exogenous")


class ExogenousBasis(nn.Module):
    """The covariates as the basis: theta [B, 2P], covariates [B, L + h, P] ->
    backcast [B, L] = sum_p theta[:, P + p] * cov[:, :L, p],
    forecast [B, h, 1] = sum_p theta[:, p] * cov[:, L:, p] (NF's order: forecast coefficients first)."""

    def __init__(self, forecast_size: int):
        super().__init__()
        self.forecast_size = forecast_size

    def forward(self, theta, futr_exog):
        h = self.forecast_size
        p = futr_exog.shape[2]
        backcast = (theta[:, p:].unsqueeze(1) * futr_exog[:, :-h]).sum(2)          # [B, L]
        forecast = (theta[:, :p].unsqueeze(1) * futr_exog[:, -h:]).sum(2, keepdim=True)   # [B, h, 1]
        return backcast, forecast


class NBEATSxBlock(NBEATSBlock):
    """NBEATS' block reading [residual | hist exog | futr exog | static] (flattened as NF's dense
    models do). An ExogenousBasis projects on the futr exogenous and the static values
    repeated over time (stacked in that order)."""

    def __init__(self, input_size: int, h: int, futr_input_size: int, hist_input_size: int, stat_input_size: int,
                 n_theta: int, mlp_units, basis: nn.Module, dropout_prob: float, activation: str):
        n_in = dense_input_size(input_size, h, hist_input_size, futr_input_size, stat_input_size)
        super().__init__(n_in, n_theta, mlp_units, basis, dropout_prob, activation)
        self.input_size, self.h = input_size, h
        self.futr_input_size, self.hist_input_size, self.stat_input_size = futr_input_size, hist_input_size, stat_input_size

    def forward(self, insample_y, windows_batch):
        x = dense_input(insample_y, windows_batch, self.hist_input_size, self.futr_input_size, self.stat_input_size)
        theta = self.layers(x)
        if not isinstance(self.basis, ExogenousBasis):
            return self.basis(theta)
        covariates = []
        if self.futr_input_size > 0:
            covariates.append(windows_batch["futr_exog"])
        if self.stat_input_size > 0:
            stat = windows_batch["stat_exog"]
            covariates.append(stat.unsqueeze(1).expand(stat.shape[0], self.input_size + self.h, stat.shape[1]))
        return self.basis(theta, ndiv.cat(covariates, axis=2) if len(covariates) > 1 else covariates[0])


class NBEATSx(BaseModel):
    """NBEATSx: NBEATS' doubly residual stacks where every block also reads the exogenous
    inputs, plus an 'exogenous' stack whose basis is the futr exogenous and static values
    (the forecast is the last value plus every block's forecast).

    Args: h (int) horizon; input_size (int) window length L;
        stack_types (list of 'identity' | 'trend' | 'seasonality' | 'exogenous'); n_blocks (list
        of int) blocks per stack; mlp_units (list of [in, out]) the hidden Linear layers of every
        block; n_harmonics (int) seasonality: harmonics per forecast length; n_polynomials (int)
        trend: polynomial degree; dropout_prob_theta (float) dropout after each hidden activation;
        activation (str) one of 'ReLU', 'Softplus', 'Tanh', 'SELU', 'LeakyReLU', 'PReLU', 'Sigmoid';
        shared_weights (bool) the blocks of a stack share one set of weights;
        **kwargs: the shared options (loss, max_steps, learning_rate, futr/hist/stat_exog_list, ...),
        see BaseModel.
    Exogenous: futr, hist, stat. An 'exogenous' stack needs futr or stat exogenous columns; its
    forecast has one output column, added to every output of a multi-output loss (as in NF).
    References: Olivares et al. (2021), "Neural basis expansion analysis with exogenous
    variables: Forecasting electricity prices with NBEATSx".

    >>> model = NBEATSx(h=12, input_size=24, mlp_units=[[64, 64]] * 3, futr_exog_list=["promo"])
    """
    EXOGENOUS_FUTR = EXOGENOUS_HIST = EXOGENOUS_STAT = True
    EXOGENOUS_CAT = True   # cat_exog_list: embedded in the shared base (NF 3.3)
    MULTIVARIATE = RECURRENT = False
    DEFAULTS = dict(max_steps=1000, learning_rate=1e-3, num_lr_decays=3, windows_batch_size=1024,
                    inference_windows_batch_size=-1, scaler_type="identity")
    OPTION_RULES = dict(BLOCK_RULES, n_harmonics=POSITIVE_INT, n_polynomials=NON_NEGATIVE_INT)

    def __init__(self, h, input_size, n_harmonics=2, n_polynomials=2,
                 stack_types=("identity", "trend", "seasonality"), n_blocks=(1, 1, 1), mlp_units=((512, 512),) * 3,
                 dropout_prob_theta=0.0, activation="ReLU", shared_weights=False, **kwargs):
        if h == 1 and ("seasonality" in stack_types or "trend" in stack_types):
            raise ValueError("NBEATSx: h=1 does not work with 'seasonality' or 'trend' stacks; "
                             "use stack_types=['identity', ...] or a longer horizon")
        super().__init__(h=h, input_size=input_size, **kwargs)
        check_block_options("NBEATSx", stack_types, n_blocks, mlp_units, activation, dropout_prob_theta)
        bad = [s for s in stack_types if s not in STACK_TYPES]
        if bad:
            raise ValueError(f"NBEATSx: stack_types must be among {list(STACK_TYPES)}, got {bad}")
        if "exogenous" in stack_types and self.futr_exog_size + self.stat_exog_size == 0:
            raise ValueError("NBEATSx: an 'exogenous' stack needs futr_exog_list or stat_exog_list (its basis is "
                             "those columns); add them or remove 'exogenous' from stack_types")
        self.n_harmonics, self.n_polynomials = n_harmonics, n_polynomials
        self.stack_types, self.n_blocks, self.mlp_units = list(stack_types), list(n_blocks), mlp_units
        self.dropout_prob_theta, self.activation, self.shared_weights = dropout_prob_theta, activation, shared_weights
        n_out = self.loss.outputsize_multiplier
        def make_block(stack, _):
            if stack == "seasonality":
                basis = SeasonalityBasis(n_harmonics, input_size, h, n_out)
                n_theta = basis.n_theta
            elif stack == "trend":
                basis = TrendBasis(n_polynomials, input_size, h, n_out, basis="polynomial")
                n_theta = basis.n_theta
            elif stack == "identity":
                basis = IdentityBasis(input_size, h, n_out)
                n_theta = basis.n_theta
            else:
                basis = ExogenousBasis(h)
                n_theta = 2 * (self.futr_exog_size + self.stat_exog_size)
            return NBEATSxBlock(input_size, h, self.futr_exog_size, self.hist_exog_size, self.stat_exog_size,
                                n_theta, mlp_units, basis, dropout_prob_theta, activation)

        self.blocks = build_blocks(stack_types, n_blocks, shared_weights, make_block)

    def forward(self, windows_batch):
        """insample_y, insample_mask [B, L, 1], hist_exog [B, L, X], futr_exog [B, L + h, F],
        stat_exog [B, S] -> forecast [B, h, n_out]."""
        return doubly_residual(self.blocks, windows_batch, lambda block, residuals: block(residuals, windows_batch))
